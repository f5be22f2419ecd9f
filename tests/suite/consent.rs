//! Consent: legal bases, agreements and processing activities; who may give, read and withdraw a
//! consent; consent before the user exists; expiry; the webhook; tenants; forget-me.

use std::time::Duration;

use bunker_tests::{signed, StatusCode, TestApp, TestOptions, WebhookReceiver};
use serde_json::{json, Value};

fn jane() -> Value {
    json!({"mode": "login", "identity": "jane"})
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    base
}

async fn basis(app: &TestApp, body: Value) {
    let (status, answer) = app.root("LegalBasisCreate", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

async fn agreement(app: &TestApp, user: Value, brief: &str) -> (StatusCode, Value) {
    app.root("AgreementGet", with(user, json!({"brief": brief})))
        .await
}

async fn status_of(app: &TestApp, user: Value, brief: &str) -> String {
    let (status, body) = agreement(app, user, brief).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["agreement"]["status"].as_str().unwrap().to_owned()
}

async fn listed_bases(app: &TestApp) -> Vec<(String, String)> {
    let (status, body) = app.root("LegalBasisListAgreements", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["brief"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn legal_bases_are_checked_renamed_and_deleted_as_upstream_keeping_what_agreements_refer_to()
{
    let app = TestApp::spawn().await;
    for (body, rule) in [
        (json!({"brief": "x"}), "Invalid brief"),
        (json!({"brief": "1news"}), "Invalid brief"),
        (json!({"brief": "news letter"}), "Invalid brief"),
        (json!({"brief": "a".repeat(66)}), "Invalid brief"),
        (json!({}), "brief"),
        (
            json!({"brief": "news", "basistype": "whim"}),
            "basistype must be one of consent, contract",
        ),
        (
            json!({"brief": "news", "status": "maybe"}),
            "status must be active or inactive",
        ),
        (
            json!({"brief": "news", "requiredflag": "yes"}),
            "requiredflag",
        ),
        (
            json!({"brief": "news", "fulldesc": "d".repeat(16 * 1024 + 1)}),
            "fulldesc may hold at most",
        ),
    ] {
        let (status, answer) = app.root("LegalBasisCreate", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(rule), "{body}: {message}");
        assert!(
            !message.contains("news letter"),
            "never the value: {message}"
        );
    }
    // Lower-cased; `_` in a type read as `-`; null is absent.
    basis(
        &app,
        json!({"brief": "Newsletter", "basistype": "legitimate_interest", "requiredflag": null}),
    )
    .await;
    let (status, answer) = app
        .root("LegalBasisCreate", json!({"brief": "newsletter"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["message"], "The legal basis record already exists");
    let (_, list) = app.root("LegalBasisListAgreements", json!({})).await;
    assert_eq!(list["rows"][0]["basistype"], "legitimate-interest");
    assert_eq!(list["rows"][0]["requiredflag"], false);

    // Renamed: the agreement follows; renaming onto a taken brief is refused.
    app.create_user(json!({"login": "jane"})).await;
    let (status, answer) = app
        .root(
            "AgreementAccept",
            with(jane(), json!({"brief": "newsletter"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    basis(&app, json!({"brief": "other"})).await;
    let (status, _) = app
        .root(
            "LegalBasisUpdate",
            json!({"brief": "newsletter", "newbrief": "other"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, answer) = app
        .root(
            "LegalBasisUpdate",
            json!({"brief": "newsletter", "newbrief": "weekly-news", "shortdesc": "Weekly"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(status_of(&app, jane(), "weekly-news").await, "yes");
    let (status, _) = agreement(&app, jane(), "newsletter").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Inactive: no new agreement, but withdrawal still works.
    app.root(
        "LegalBasisUpdate",
        json!({"brief": "weekly-news", "status": "inactive"}),
    )
    .await;
    app.create_user(json!({"login": "john"})).await;
    let john = json!({"mode": "login", "identity": "john"});
    let (status, answer) = app
        .root(
            "AgreementAccept",
            with(john.clone(), json!({"brief": "weekly-news"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = app
        .root(
            "AgreementCancel",
            with(jane(), json!({"brief": "weekly-news"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(status_of(&app, jane(), "weekly-news").await, "no");
    app.root(
        "LegalBasisUpdate",
        json!({"brief": "weekly-news", "status": "active"}),
    )
    .await;
    app.root(
        "AgreementAccept",
        with(john.clone(), json!({"brief": "weekly-news"})),
    )
    .await;

    // A basis no agreement refers to goes; one in use is kept, deleted, its agreements revoked.
    let (status, _) = app
        .root("LegalBasisDelete", json!({"brief": "other"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    basis(&app, json!({"brief": "other"})).await;
    let (status, _) = app
        .root("LegalBasisDelete", json!({"brief": "weekly-news"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(listed_bases(&app)
        .await
        .contains(&("weekly-news".to_owned(), "deleted".to_owned())));
    assert_eq!(
        status_of(&app, john.clone(), "weekly-news").await,
        "revoked"
    );
    // Withdrawn before, it stays withdrawn.
    assert_eq!(status_of(&app, jane(), "weekly-news").await, "no");
    for (command, body) in [
        (
            "AgreementAccept",
            with(john.clone(), json!({"brief": "weekly-news"})),
        ),
        (
            "LegalBasisUpdate",
            json!({"brief": "weekly-news", "shortdesc": "again"}),
        ),
        ("LegalBasisDelete", json!({"brief": "weekly-news"})),
    ] {
        let (status, answer) = app.root(command, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{command}: {answer}");
        assert_eq!(answer["message"], "The legal basis record was not found");
    }
    // Its brief stays reserved: old proof never names a new basis.
    let (status, _) = app
        .root("LegalBasisCreate", json!({"brief": "weekly-news"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn agreements_normalize_status_and_times_and_keep_every_change_as_history() {
    let app = TestApp::spawn().await;
    basis(&app, json!({"brief": "newsletter"})).await;
    let token = app.create_user(json!({"login": "jane"})).await;
    for (extra, rule) in [
        (json!({"finaltime": "soon"}), "The finaltime value must be"),
        (json!({"finaltime": "2020-01-01"}), "must be in the future"),
        (
            json!({"starttime": "2020-13-01"}),
            "The starttime value must be",
        ),
        (
            json!({"starttime": "2100-01-02", "finaltime": "2100-01-01"}),
            "must come after the starttime",
        ),
        (
            json!({"referencecode": "r".repeat(1025)}),
            "referencecode may hold",
        ),
        (
            json!({"brief": "nope"}),
            "The legal basis record was not found",
        ),
    ] {
        let body = with(with(jane(), json!({"brief": "newsletter"})), extra.clone());
        let (status, answer) = app.root("AgreementAccept", body).await;
        assert!(status.is_client_error(), "{extra}: {status} {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(rule),
            "{extra}: {answer}"
        );
    }
    let (status, answer) = app
        .root(
            "AgreementAccept",
            with(
                jane(),
                json!({"brief": "newsletter", "status": "Given", "agreementmethod": "web-form",
                       "referencecode": "ref-7", "lastmodifiedby": "clerk-1",
                       "starttime": "2026-01-15", "finaltime": "2100-01-31"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, got) = agreement(&app, jane(), "newsletter").await;
    let a = &got["agreement"];
    assert_eq!(a["status"], "yes");
    assert_eq!(a["agreementmethod"], "web-form");
    assert_eq!(a["referencecode"], "ref-7");
    assert_eq!(a["lastmodifiedby"], "clerk-1");
    assert_eq!(a["starttime"], 1_768_435_200);
    assert_eq!(a["finaltime"], 4_105_036_800_i64);
    // Again, refused this time: the method is kept, the status changes; by token as well.
    app.root(
        "AgreementAccept",
        json!({"mode": "token", "identity": token, "brief": "newsletter", "status": "pending"}),
    )
    .await;
    let (_, got) = agreement(&app, jane(), "newsletter").await;
    let a = &got["agreement"];
    assert_eq!(a["status"], "no");
    assert_eq!(a["agreementmethod"], "web-form");
    assert_eq!(a["referencecode"], "ref-7");
    assert_eq!(a["finaltime"], Value::Null);
    app.root(
        "AgreementAccept",
        with(jane(), json!({"brief": "newsletter", "status": true})),
    )
    .await;
    app.root(
        "AgreementCancel",
        with(jane(), json!({"brief": "newsletter"})),
    )
    .await;
    let (_, got) = agreement(&app, jane(), "newsletter").await;
    let history = got["agreement"]["history"].as_array().unwrap();
    let steps: Vec<(&str, Value, Value)> = history
        .iter()
        .map(|h| {
            (
                h["event"].as_str().unwrap(),
                h["before"]["status"].clone(),
                h["after"]["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("AgreementAccept", Value::Null, json!("yes")),
            ("AgreementAccept", json!("yes"), json!("no")),
            ("AgreementAccept", json!("no"), json!("yes")),
            ("AgreementCancel", json!("yes"), json!("no")),
        ]
    );
    assert_eq!(history[0]["after"]["agreementmethod"], "web-form");
    // The proof never carries the reference code or the modifier.
    assert!(!got["agreement"]["history"].to_string().contains("ref-7"));
    assert!(!got["agreement"]["history"].to_string().contains("clerk-1"));
    // Each change is in the user's trail too.
    let (_, events) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "login", "identity": "jane", "limit": 100}),
        )
        .await;
    let actions: Vec<&str> = events["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["eventtype"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "AgreementAccept").count(),
        3,
        "{actions:?}"
    );
    assert!(
        actions.contains(&"AgreementGet"),
        "reads are audited: {actions:?}"
    );
    // Past its final time it reads as expired, before the sweeper marks it so.
    app.root(
        "AgreementAccept",
        with(jane(), json!({"brief": "newsletter", "finaltime": "1s"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status_of(&app, jane(), "newsletter").await, "expired");
    let (status, list) = app.root("AgreementListUserAgreements", jane()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["rows"][0]["status"], "expired");
    assert_eq!(list["total"], 1);
    assert_eq!(list["rows"][0]["brief"], "newsletter");
    assert!(list["rows"][0].get("history").is_none());
    let (status, _) = agreement(&app, jane(), "other-basis").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_user_token_withdraws_directly_only_where_the_basis_gives_it_control() {
    let app = TestApp::spawn().await;
    basis(&app, json!({"brief": "newsletter", "usercontrol": true})).await;
    basis(&app, json!({"brief": "research"})).await;
    app.create_user(json!({"login": "jane"})).await;
    app.create_user(json!({"login": "john"})).await;
    let user = app.user_xtoken("login", "jane").await;
    // Its own consent: given, read, listed.
    for brief in ["newsletter", "research"] {
        let body = with(jane(), json!({"brief": brief, "agreementmethod": "portal"}));
        let (status, answer) = app.call("AgreementAccept", &user, None, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (status, list) = app
        .call("AgreementListUserAgreements", &user, None, jane())
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 2);
    // Under user control: withdrawn at once.
    let (status, answer) = app
        .call(
            "AgreementCancel",
            &user,
            None,
            with(jane(), json!({"brief": "newsletter"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"], "done");
    assert_eq!(status_of(&app, jane(), "newsletter").await, "no");
    // Without: a request for a DPO, and nothing changes until it is approved.
    let (status, answer) = app
        .call(
            "AgreementCancel",
            &user,
            None,
            with(jane(), json!({"brief": "research"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"], "request-created");
    let uuid = answer["requestuuid"].as_str().unwrap().to_owned();
    assert_eq!(status_of(&app, jane(), "research").await, "yes");
    let (_, again) = app
        .call(
            "AgreementCancelRequest",
            &user,
            None,
            with(jane(), json!({"brief": "research"})),
        )
        .await;
    assert_eq!(
        again["requestuuid"],
        uuid.as_str(),
        "one open request per basis"
    );
    let (_, request) = app
        .root("UserRequestGet", json!({"requestuuid": uuid}))
        .await;
    assert_eq!(request["request"]["requesttype"], "withdraw-consent");
    assert_eq!(request["request"]["brief"], "research");
    assert_eq!(request["request"]["original"]["status"], "yes");
    let (status, _) = app
        .call(
            "UserRequestApprove",
            &user,
            None,
            json!({"requestuuid": uuid}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not by the user itself");
    let (status, answer) = app
        .root("UserRequestApprove", json!({"requestuuid": uuid}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(status_of(&app, jane(), "research").await, "no");
    let (_, got) = agreement(&app, jane(), "research").await;
    let last = got["agreement"]["history"]
        .as_array()
        .unwrap()
        .last()
        .cloned();
    assert_eq!(last.unwrap()["event"], "UserRequestApprove");
    // Withdrawn: nothing left to ask for.
    let (status, answer) = app
        .call(
            "AgreementCancelRequest",
            &user,
            None,
            with(jane(), json!({"brief": "research"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(
        answer["message"],
        "The agreement is not in force: there is nothing to withdraw"
    );

    // Nor by accepting "no" over a consent in force it does not control; where it does, it may.
    app.root(
        "AgreementAccept",
        with(jane(), json!({"brief": "research"})),
    )
    .await;
    let (status, answer) = app
        .call(
            "AgreementAccept",
            &user,
            None,
            with(jane(), json!({"brief": "research", "status": "no"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("AgreementCancelRequest"));
    assert_eq!(status_of(&app, jane(), "research").await, "yes");
    app.call(
        "AgreementAccept",
        &user,
        None,
        with(jane(), json!({"brief": "newsletter"})),
    )
    .await;
    let (status, _) = app
        .call(
            "AgreementAccept",
            &user,
            None,
            with(jane(), json!({"brief": "newsletter", "status": "no"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(status_of(&app, jane(), "newsletter").await, "no");

    // Not another user's consent, nor the tenant's texts, nor everyone's; but it may read them.
    let john = json!({"mode": "login", "identity": "john"});
    app.root(
        "AgreementAccept",
        with(john.clone(), json!({"brief": "newsletter"})),
    )
    .await;
    for (command, body) in [
        (
            "AgreementGet",
            with(john.clone(), json!({"brief": "newsletter"})),
        ),
        (
            "AgreementAccept",
            with(john.clone(), json!({"brief": "research"})),
        ),
        (
            "AgreementCancel",
            with(john.clone(), json!({"brief": "newsletter"})),
        ),
        ("AgreementListUserAgreements", john.clone()),
        (
            "AgreementAccept",
            json!({"mode": "email", "identity": "nobody@example.com", "brief": "research"}),
        ),
        ("AgreementRevokeAll", json!({"brief": "newsletter"})),
        ("LegalBasisCreate", json!({"brief": "mine"})),
        ("LegalBasisDelete", json!({"brief": "research"})),
        ("ProcessingActivityCreate", json!({"activity": "mine"})),
    ] {
        let (status, answer) = app.call(command, &user, None, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {answer}");
        assert_eq!(answer["message"], "API access denied", "{command}");
    }
    assert_eq!(status_of(&app, john, "newsletter").await, "yes");
    for command in [
        "LegalBasisListAgreements",
        "ProcessingActivityListActivities",
    ] {
        let (status, answer) = app.call(command, &user, None, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{command}: {answer}");
    }
}

#[tokio::test]
async fn consent_for_an_email_or_phone_before_its_user_exists_is_linked_when_the_user_is_created() {
    let app = TestApp::spawn().await;
    basis(&app, json!({"brief": "newsletter"})).await;
    basis(&app, json!({"brief": "offers"})).await;
    let early = json!({"mode": "email", "identity": " Early.Bird@Example.com "});
    let (status, answer) = app
        .root(
            "AgreementAccept",
            with(
                early.clone(),
                json!({"brief": "newsletter", "referencecode": "signup-form-1"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Read back before the user exists (normalized as an index is).
    let waiting = json!({"mode": "email", "identity": "early.bird@example.com"});
    assert_eq!(status_of(&app, waiting.clone(), "newsletter").await, "yes");
    // Phone and e-mail both had one for `offers`: the newer change wins.
    app.root(
        "AgreementAccept",
        json!({"mode": "email", "identity": "early.bird@example.com", "brief": "offers",
               "status": "no"}),
    )
    .await;
    app.root(
        "AgreementAccept",
        json!({"mode": "phone", "identity": "+1 650 253 0001", "brief": "offers"}),
    )
    .await;
    // Login and custom name no one before the user exists.
    let (status, _) = app
        .root(
            "AgreementAccept",
            json!({"mode": "login", "identity": "early", "brief": "newsletter"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A role allowed every user's consent is refused for a user that does not exist, as for one
    // it may not reach: it cannot probe for users, nor record consent for no one.
    app.grant(
        "clerk",
        "clerk-consent",
        json!({"Effect": "Allow", "Action": ["Agreement*"],
               "Resource": ["users.profile", "users.consent"]}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    let (status, answer) = app
        .call(
            "AgreementAccept",
            &clerk,
            None,
            json!({"mode": "email", "identity": "someone.else@example.com", "brief": "offers"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");

    // Twenty first accepts for one new e-mail at once: each answered, one agreement kept.
    let mut racing = tokio::task::JoinSet::new();
    for i in 0..20 {
        let request = app
            .command("AgreementAccept")
            .header("X-Bunker-Token", &app.root_token)
            .json(
                &json!({"mode": "email", "identity": "racer@example.com", "brief": "newsletter",
                          "referencecode": format!("race-{i}")}),
            );
        racing.spawn(bunker_tests::answer(request));
    }
    for (status, answer) in racing.join_all().await {
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let db = app.superuser().await;
    let raced: i64 = db
        .query_one("SELECT count(*) FROM agreements WHERE token IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        raced, 4,
        "newsletter and offers for early.bird, offers for the phone, the racer"
    );

    // A role that may read every user's trail but not a group's: the events recorded before the
    // user existed are that user's once linked, refused as the user's own are.
    app.grant(
        "auditor",
        "auditor-all",
        json!({"Effect": "Allow", "Action": ["AuditGetEvent"], "Resource": ["users.profile"]}),
    )
    .await;
    app.grant(
        "auditor",
        "auditor-not-vips",
        json!({"Effect": "Deny", "Action": ["AuditGetEvent"],
               "Resource": ["${target_group_members:role/vip}.profile"]}),
    )
    .await;
    let auditor = app.role_token("auditor").await;
    let pre_link: Vec<uuid::Uuid> = db
        .query(
            "SELECT id FROM audit_events WHERE target LIKE 'agreement:%' AND user_token IS NULL",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!pre_link.is_empty());
    for id in &pre_link {
        let (status, _) = app
            .call(
                "AuditGetEvent",
                &auditor,
                None,
                json!({"auditeventuuid": id.to_string()}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "waiting: admins only");
    }

    let token = app
        .create_user(json!({"email": "early.bird@example.com", "phone": "+16502530001"}))
        .await;
    app.root(
        "GroupCreate",
        json!({"groupname": "vips", "grouptype": "team"}),
    )
    .await;
    app.root("RoleCreate", json!({"rolename": "vip"})).await;
    let (status, answer) = app
        .root(
            "GroupAddUser",
            json!({"mode": "token", "identity": token, "groupname": "vips", "rolename": "vip"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for id in &pre_link {
        let (status, _) = app
            .call(
                "AuditGetEvent",
                &auditor,
                None,
                json!({"auditeventuuid": id.to_string()}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "linked to a user it is denied"
        );
    }
    let by_token = json!({"mode": "token", "identity": token});
    let (status, list) = app
        .root("AgreementListUserAgreements", by_token.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 2, "{list}");
    assert_eq!(list["rows"][0]["brief"], "newsletter");
    assert_eq!(list["rows"][0]["referencecode"], "signup-form-1");
    assert_eq!(list["rows"][1]["brief"], "offers");
    assert_eq!(list["rows"][1]["status"], "yes", "the phone's, newer");
    // Its history goes back to before the user existed.
    let (_, got) = agreement(&app, by_token.clone(), "newsletter").await;
    let events: Vec<&str> = got["agreement"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["AgreementAccept", "AgreementLinked"]);
    // Nothing of early.bird's waits any more (only the racer's).
    let waiting_rows: i64 = db
        .query_one("SELECT count(*) FROM agreements WHERE token IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(waiting_rows, 1);
    // The role reaches the user now.
    let (status, answer) = app
        .call(
            "AgreementGet",
            &clerk,
            None,
            json!({"mode": "token", "identity": token, "brief": "newsletter"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn a_role_reaches_the_consent_its_policy_grants_and_revokes_all_only_if_it_may_for_everyone()
{
    let app = TestApp::spawn().await;
    basis(&app, json!({"brief": "newsletter"})).await;
    app.create_user(json!({"login": "jane", "email": "jane@example.com"}))
        .await;
    app.create_user(json!({"login": "vip"})).await;
    for who in ["jane", "vip"] {
        app.root(
            "AgreementAccept",
            json!({"mode": "login", "identity": who, "brief": "newsletter"}),
        )
        .await;
    }
    // A support role sees profiles, not consent.
    app.grant(
        "support",
        "support-profiles",
        json!({"Effect": "Allow", "Action": ["*"], "Resource": ["users.profile"]}),
    )
    .await;
    let support = app.role_token("support").await;
    for (command, body) in [
        ("AgreementGet", with(jane(), json!({"brief": "newsletter"}))),
        ("AgreementListUserAgreements", jane()),
        (
            "AgreementCancel",
            with(jane(), json!({"brief": "newsletter"})),
        ),
        ("AgreementRevokeAll", json!({"brief": "newsletter"})),
    ] {
        let (status, answer) = app.call(command, &support, None, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {answer}");
    }
    // A consent clerk: consent only; by e-mail only if it may see the e-mail.
    app.grant(
        "clerk",
        "clerk-consent",
        json!({"Effect": "Allow", "Action": ["Agreement*"], "Resource": ["users.consent"]}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    let jane_token = app.root("UserGet", jane()).await.1["token"].clone();
    let by_token = json!({"mode": "token", "identity": jane_token});
    let (status, answer) = app
        .call(
            "AgreementGet",
            &clerk,
            None,
            with(by_token, json!({"brief": "newsletter"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for (mode, identity) in [("email", "jane@example.com"), ("login", "jane")] {
        let (status, _) = app
            .call(
                "AgreementGet",
                &clerk,
                None,
                json!({"mode": mode, "identity": identity, "brief": "newsletter"}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a lookup by a field it may not see"
        );
    }
    // Denied one user's consent: revoking everyone's is refused, and nothing is revoked.
    let (status, _) = app
        .root(
            "GroupCreate",
            json!({"groupname": "vips", "grouptype": "team"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.root("RoleCreate", json!({"rolename": "vip"})).await;
    let (status, answer) = app
        .root(
            "GroupAddUser",
            json!({"mode": "login", "identity": "vip", "groupname": "vips", "rolename": "vip"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    app.grant(
        "clerk",
        "clerk-not-vips",
        json!({"Effect": "Deny",
               "Action": ["AgreementRevokeAll", "AgreementCancel", "LegalBasisDelete"],
               "Resource": ["${target_group_members:role/vip}.consent"]}),
    )
    .await;
    let (status, answer) = app
        .call(
            "AgreementRevokeAll",
            &clerk,
            None,
            json!({"brief": "newsletter"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let vip = json!({"mode": "login", "identity": "vip"});
    assert_eq!(status_of(&app, vip.clone(), "newsletter").await, "yes");
    assert_eq!(status_of(&app, jane(), "newsletter").await, "yes");
    let (status, _) = app
        .call(
            "AgreementCancel",
            &clerk,
            None,
            with(vip.clone(), json!({"brief": "newsletter"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nor withdrawn by accepting "no": that is a withdrawal, held to AgreementCancel's rules.
    let vip_token = app.root("UserGet", vip.clone()).await.1["token"].clone();
    let (status, _) = app
        .call(
            "AgreementAccept",
            &clerk,
            None,
            json!({"mode": "token", "identity": vip_token, "brief": "newsletter", "status": "no"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(status_of(&app, vip.clone(), "newsletter").await, "yes");
    // Deleting the basis revokes the same agreements: refused as well, the basis kept.
    app.grant(
        "clerk",
        "clerk-bases",
        json!({"Effect": "Allow", "Action": ["LegalBasis*"], "Resource": ["users.consent"]}),
    )
    .await;
    let (status, answer) = app
        .call(
            "LegalBasisDelete",
            &clerk,
            None,
            json!({"brief": "newsletter"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(listed_bases(&app)
        .await
        .contains(&("newsletter".to_owned(), "active".to_owned())));
    // Root revokes everyone's.
    let (status, _) = app
        .root("AgreementRevokeAll", json!({"brief": "newsletter"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(status_of(&app, vip, "newsletter").await, "revoked");
    assert_eq!(status_of(&app, jane(), "newsletter").await, "revoked");
}

#[tokio::test]
async fn processing_activities_are_renamed_linked_and_unlinked_as_listed() {
    let app = TestApp::spawn().await;
    basis(&app, json!({"brief": "newsletter"})).await;
    basis(
        &app,
        json!({"brief": "contract-terms", "basistype": "contract"}),
    )
    .await;
    let listed = |body: Value| -> Vec<(String, String, Vec<String>)> {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["activity"].as_str().unwrap().to_owned(),
                    r["title"].as_str().unwrap().to_owned(),
                    r["briefs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|b| b.as_str().unwrap().to_owned())
                        .collect(),
                )
            })
            .collect()
    };
    let (status, _) = app
        .root("ProcessingActivityCreate", json!({"activity": "Mailing"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .root("ProcessingActivityCreate", json!({"activity": "mailing"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, answer) = app
        .root("ProcessingActivityCreate", json!({"activity": "m"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid activity"));
    for brief in ["newsletter", "contract-terms", "newsletter"] {
        let (status, _) = app
            .root(
                "ProcessingActivityLinkLegalBasis",
                json!({"activity": "mailing", "brief": brief}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = app
        .root(
            "ProcessingActivityLinkLegalBasis",
            json!({"activity": "mailing", "brief": "absent"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app
        .root("ProcessingActivityListActivities", json!({}))
        .await;
    assert_eq!(
        listed(list.clone()),
        vec![(
            "mailing".to_owned(),
            "mailing".to_owned(),
            vec!["contract-terms".to_owned(), "newsletter".to_owned()]
        )]
    );
    assert_eq!(list["rows"][0]["legalbasis"], "contract-terms,newsletter");
    let (status, _) = app
        .root(
            "ProcessingActivityUpdate",
            json!({"activity": "mailing", "newactivity": "emailing", "title": "E-mailing"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.root(
        "ProcessingActivityUnlinkLegalBasis",
        json!({"activity": "emailing", "brief": "newsletter"}),
    )
    .await;
    // Renaming a basis shows in the activity's list.
    app.root(
        "LegalBasisUpdate",
        json!({"brief": "contract-terms", "newbrief": "terms"}),
    )
    .await;
    let (_, list) = app
        .root("ProcessingActivityListActivities", json!({}))
        .await;
    assert_eq!(
        listed(list),
        vec![(
            "emailing".to_owned(),
            "E-mailing".to_owned(),
            vec!["terms".to_owned()]
        )]
    );
    let (status, _) = app
        .root("ProcessingActivityDelete", json!({"activity": "mailing"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .root("ProcessingActivityDelete", json!({"activity": "emailing"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app
        .root("ProcessingActivityListActivities", json!({}))
        .await;
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn another_tenant_sees_none_of_a_tenants_consent() {
    let app = TestApp::spawn().await;
    let (_, acme) = app.create_tenant("acme").await;
    let acme_call = |command: &'static str, body: Value| {
        let acme = acme.clone();
        let app = &app;
        async move { app.call(command, &acme, Some("acme"), body).await }
    };
    let (status, _) = acme_call("LegalBasisCreate", json!({"brief": "acme-news"})).await;
    assert_eq!(status, StatusCode::OK);
    acme_call(
        "ProcessingActivityCreate",
        json!({"activity": "acme-mailing"}),
    )
    .await;
    acme_call(
        "UserCreate",
        json!({"profile": {"login": "jane", "email": "jane@acme.test"}}),
    )
    .await;
    let (status, _) = acme_call(
        "AgreementAccept",
        json!({"mode": "login", "identity": "jane", "brief": "acme-news", "referencecode": "acme-ref"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    acme_call(
        "AgreementAccept",
        json!({"mode": "email", "identity": "waiting@acme.test", "brief": "acme-news"}),
    )
    .await;
    // The default tenant: nothing listed, the same names free, no agreement reachable.
    assert!(listed_bases(&app).await.is_empty());
    let (_, activities) = app
        .root("ProcessingActivityListActivities", json!({}))
        .await;
    assert_eq!(activities["total"], 0);
    app.create_user(json!({"login": "jane", "email": "waiting@acme.test"}))
        .await;
    basis(&app, json!({"brief": "acme-news"})).await;
    let (status, list) = app.root("AgreementListUserAgreements", jane()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["total"], 0,
        "acme's waiting consent is not linked here: {list}"
    );
    for (command, body) in [
        ("AgreementRevokeAll", json!({"brief": "acme-news"})),
        ("LegalBasisDelete", json!({"brief": "acme-news"})),
    ] {
        app.root(command, body).await;
    }
    // Acme's is untouched, and acme's token is refused in the default tenant.
    let (_, got) = acme_call(
        "AgreementGet",
        json!({"mode": "login", "identity": "jane", "brief": "acme-news"}),
    )
    .await;
    assert_eq!(got["agreement"]["status"], "yes", "{got}");
    assert_eq!(got["agreement"]["referencecode"], "acme-ref");
    let (status, _) = app
        .call("LegalBasisListAgreements", &acme, None, json!({}))
        .await;
    assert!(status.is_client_error());
}

#[tokio::test]
async fn withdrawals_revocations_and_expiries_call_the_tenants_webhook_with_no_personal_data() {
    let app = TestApp::spawn_with(TestOptions {
        sweep_interval: Duration::from_millis(300),
        ..TestOptions::default()
    })
    .await;
    let receiver = WebhookReceiver::start(0).await;
    let secret = "consent-webhook-secret-0123456789abcdef";
    let (status, answer) = app
        .root(
            "TenantUpdate",
            json!({"webhook": {"url": receiver.url, "secret": secret}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    basis(&app, json!({"brief": "newsletter", "usercontrol": true})).await;
    basis(&app, json!({"brief": "health-programme"})).await;
    let jane_token = app
        .create_user(json!({"login": "jane", "email": "jane.hook@example.com"}))
        .await;
    let john_token = app
        .create_user(json!({"login": "john", "email": "john.hook@example.com"}))
        .await;
    let john = json!({"mode": "login", "identity": "john"});
    let accept = |user: Value, brief: &str, extra: Value| {
        with(
            with(
                user,
                json!({"brief": brief, "referencecode": "hook-ref-99"}),
            ),
            extra,
        )
    };
    // Accepting tells nothing; withdrawing does (the user's own token, under user control).
    app.root("AgreementAccept", accept(jane(), "newsletter", json!({})))
        .await;
    let user = app.user_xtoken("login", "jane").await;
    let (status, answer) = app
        .call(
            "AgreementCancel",
            &user,
            None,
            with(jane(), json!({"brief": "newsletter"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Revoked by the tenant, and by forget-me.
    app.root(
        "AgreementAccept",
        accept(john.clone(), "newsletter", json!({})),
    )
    .await;
    app.root("AgreementRevokeAll", json!({"brief": "newsletter"}))
        .await;
    app.root(
        "AgreementAccept",
        accept(john.clone(), "health-programme", json!({})),
    )
    .await;
    app.root("UserDelete", john.clone()).await;
    // Expired at its final time, by the sweeper.
    let (status, answer) = app
        .root(
            "AgreementAccept",
            accept(jane(), "health-programme", json!({"finaltime": "1s"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let deliveries = receiver.deliveries(4).await;
    let mut seen: Vec<(String, String, String)> = Vec::new();
    for (signature, body) in &deliveries {
        assert_eq!(signature, &signed(secret, body), "signed");
        for personal in ["jane.hook", "john.hook", "hook-ref-99", "jane", "john"] {
            assert!(!body.contains(personal), "{body}");
        }
        let body: Value = serde_json::from_str(body).unwrap();
        assert!(body["time"].is_u64());
        seen.push((
            body["event"].as_str().unwrap().to_owned(),
            body["brief"].as_str().unwrap().to_owned(),
            body["usertoken"].as_str().unwrap().to_owned(),
        ));
    }
    seen.sort();
    let mut expected = vec![
        (
            "AgreementWithdrawn".to_owned(),
            "newsletter".to_owned(),
            jane_token.clone(),
        ),
        (
            "AgreementRevoked".to_owned(),
            "newsletter".to_owned(),
            john_token.clone(),
        ),
        (
            "AgreementRevoked".to_owned(),
            "health-programme".to_owned(),
            john_token,
        ),
        (
            "AgreementExpired".to_owned(),
            "health-programme".to_owned(),
            jane_token,
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    let (_, got) = agreement(&app, jane(), "health-programme").await;
    assert_eq!(got["agreement"]["status"], "expired");
    let last = got["agreement"]["history"]
        .as_array()
        .unwrap()
        .last()
        .cloned();
    assert_eq!(last.unwrap()["event"], "AgreementExpired");
}

#[tokio::test]
async fn forget_me_revokes_a_users_agreements_and_leaves_none_of_their_sealed_parts_readable() {
    let app = TestApp::spawn().await;
    basis(&app, json!({"brief": "health-programme"})).await;
    basis(&app, json!({"brief": "newsletter"})).await;
    let token = app.create_user(json!({"login": "jane"})).await;
    for (brief, status) in [("health-programme", "yes"), ("newsletter", "no")] {
        let body = with(
            jane(),
            json!({"brief": brief, "status": status, "referencecode": "hiv-clinic-ref-42",
                   "lastmodifiedby": "nurse-ann", "agreementmethod": "clinic-intake-ann"}),
        );
        let (code, answer) = app.root("AgreementAccept", body).await;
        assert_eq!(code, StatusCode::OK, "{answer}");
    }
    let db = app.superuser().await;
    let sealed: Vec<Vec<u8>> = db
        .query(
            "SELECT sealed FROM agreements WHERE token = $1",
            &[&uuid::Uuid::parse_str(&token).unwrap()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(sealed.len(), 2);
    let (_, got) = agreement(&app, jane(), "health-programme").await;
    assert_eq!(
        got["agreement"]["history"][0]["after"]["agreementmethod"], "clinic-intake-ann",
        "the history shows the method while the user's key exists"
    );
    let (status, _) = app.root("UserDelete", jane()).await;
    assert_eq!(status, StatusCode::OK);
    let rows = db
        .query(
            "SELECT status, sealed IS NULL FROM agreements WHERE token = $1 ORDER BY id",
            &[&uuid::Uuid::parse_str(&token).unwrap()],
        )
        .await
        .unwrap();
    let after: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        after,
        vec![("revoked".to_owned(), true), ("no".to_owned(), true)],
        "the proof skeleton stays, the sealed parts go"
    );
    // The user's key is gone: a copy of the sealed parts kept elsewhere opens with nothing left.
    let key: Option<Vec<u8>> = db
        .query_one(
            "SELECT data_key FROM users WHERE token = $1",
            &[&uuid::Uuid::parse_str(&token).unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(key.is_none());
    // Nothing of it is answered any more; the trail keeps the revocation, without the values.
    let (status, _) = app
        .root(
            "AgreementGet",
            json!({"mode": "token", "identity": token, "brief": "health-programme"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, events) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "token", "identity": token, "limit": 100}),
        )
        .await;
    let mut revoked = None;
    for row in events["rows"].as_array().unwrap() {
        let (_, event) = app
            .root(
                "AuditGetEvent",
                json!({"auditeventuuid": row["auditeventuuid"]}),
            )
            .await;
        let text = event.to_string();
        assert!(!text.contains("hiv-clinic-ref-42"), "{text}");
        assert!(!text.contains("nurse-ann"), "{text}");
        assert!(!text.contains("clinic-intake-ann"), "{text}");
        if event["details"]["agreement"]["after"]["status"] == "revoked" {
            revoked = Some(event);
        }
    }
    let revoked = revoked.expect("the revocation by forget-me is in the trail");
    assert_eq!(revoked["eventtype"], "UserDelete");
}

#[tokio::test]
async fn a_consent_given_while_its_user_is_being_created_ends_up_linked_once() {
    let app = TestApp::spawn().await;
    basis(&app, json!({"brief": "newsletter"})).await;
    // Each round sends a UserCreate and an AgreementAccept for one new e-mail at the same moment:
    // whichever goes first, the user ends with the agreement and nothing waits.
    for round in 0..20 {
        let email = format!("racer{round}@example.com");
        let create = app
            .command("UserCreate")
            .header("X-Bunker-Token", &app.root_token)
            .json(&json!({"profile": {"email": email}}));
        let accept = app
            .command("AgreementAccept")
            .header("X-Bunker-Token", &app.root_token)
            .json(&json!({"mode": "email", "identity": email, "brief": "newsletter"}));
        let ((created, user), (accepted, answer)) =
            tokio::join!(bunker_tests::answer(create), bunker_tests::answer(accept));
        assert_eq!(created, StatusCode::OK, "{user}");
        assert_eq!(accepted, StatusCode::OK, "{answer}");
        let by_token = json!({"mode": "token", "identity": user["token"]});
        let (_, list) = app.root("AgreementListUserAgreements", by_token).await;
        assert_eq!(list["total"], 1, "round {round}: {list}");
    }
    let waiting: i64 = app
        .superuser()
        .await
        .query_one("SELECT count(*) FROM agreements WHERE token IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(waiting, 0);
}

#[tokio::test]
async fn a_consent_ends_only_as_its_rules_allow_whatever_the_way_and_a_lapse_is_an_expiry() {
    let app = TestApp::spawn().await;
    basis(&app, json!({"brief": "research"})).await;
    app.create_user(json!({"login": "jane"})).await;
    app.root(
        "AgreementAccept",
        with(jane(), json!({"brief": "research"})),
    )
    .await;
    // The user's own token may not end sooner what it may not withdraw.
    let user = app.user_xtoken("login", "jane").await;
    for extra in [
        json!({"finaltime": "1s"}),
        json!({"status": "pending"}),
        json!({"starttime": "2120-01-01"}),
    ] {
        let body = with(with(jane(), json!({"brief": "research"})), extra.clone());
        let (status, answer) = app.call("AgreementAccept", &user, None, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{extra}: {answer}");
    }
    // Extending it, or renewing it as it is, is no withdrawal.
    let body = with(jane(), json!({"brief": "research", "finaltime": "30d"}));
    let (status, answer) = app.call("AgreementAccept", &user, None, body).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a first final time ends it: {answer}"
    );
    app.root(
        "AgreementAccept",
        with(jane(), json!({"brief": "research", "finaltime": "30d"})),
    )
    .await;
    let body = with(jane(), json!({"brief": "research", "finaltime": "60d"}));
    let (status, answer) = app.call("AgreementAccept", &user, None, body).await;
    assert_eq!(status, StatusCode::OK, "later is allowed: {answer}");

    // Past its final time, a withdrawal finds it expired (recorded first, by Bunker).
    app.root(
        "AgreementAccept",
        with(jane(), json!({"brief": "research", "finaltime": "1s"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _) = app
        .root(
            "AgreementCancel",
            with(jane(), json!({"brief": "research"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, got) = agreement(&app, jane(), "research").await;
    let history = got["agreement"]["history"].as_array().unwrap();
    let tail: Vec<(Value, Value, Value)> = history[history.len() - 2..]
        .iter()
        .map(|h| {
            (
                h["event"].clone(),
                h["before"]["status"].clone(),
                h["after"]["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        tail,
        vec![
            (json!("AgreementExpired"), json!("yes"), json!("expired")),
            (json!("AgreementCancel"), json!("expired"), json!("expired")),
        ]
    );

    // An inactive basis takes a refusal (a withdrawal), not a consent.
    app.root(
        "AgreementAccept",
        with(jane(), json!({"brief": "research"})),
    )
    .await;
    app.root(
        "LegalBasisUpdate",
        json!({"brief": "research", "status": "inactive"}),
    )
    .await;
    let (status, answer) = app
        .root(
            "AgreementAccept",
            with(jane(), json!({"brief": "research", "status": "no"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(status_of(&app, jane(), "research").await, "no");

    // A role may not revoke consents waiting for their user (no policy can name them), nor, with a
    // grant on some users only, revoke all of a basis even when it has no agreement yet.
    basis(&app, json!({"brief": "offers"})).await;
    app.root(
        "AgreementAccept",
        json!({"mode": "email", "identity": "later@example.com", "brief": "offers"}),
    )
    .await;
    app.grant(
        "clerk",
        "clerk-all",
        json!({"Effect": "Allow", "Action": ["AgreementRevokeAll"], "Resource": ["users.consent"]}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    let (status, _) = app
        .call(
            "AgreementRevokeAll",
            &clerk,
            None,
            json!({"brief": "offers"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let later = json!({"mode": "email", "identity": "later@example.com"});
    assert_eq!(status_of(&app, later, "offers").await, "yes");
    app.grant(
        "vip-clerk",
        "vip-clerk",
        json!({"Effect": "Allow", "Action": ["AgreementRevokeAll"],
               "Resource": ["${target_group_members:role/vip}.consent"]}),
    )
    .await;
    basis(&app, json!({"brief": "empty"})).await;
    let vip_clerk = app.role_token("vip-clerk").await;
    let (status, _) = app
        .call(
            "AgreementRevokeAll",
            &vip_clerk,
            None,
            json!({"brief": "empty"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn consent_reads_racing_a_first_accept_or_a_forget_me_never_fail_and_never_wait_on_creates() {
    let app = TestApp::spawn().await;
    basis(&app, json!({"brief": "newsletter"})).await;
    let request = |command: &str, body: Value| {
        app.command(command)
            .header("X-Bunker-Token", &app.root_token)
            .json(&body)
    };
    // A user's first agreement makes its key while listings read: each answers, none is a 500.
    for round in 0..15 {
        let token = app
            .create_user(json!({"login": format!("reader{round}")}))
            .await;
        let user = json!({"mode": "token", "identity": token});
        let mut racing = tokio::task::JoinSet::new();
        racing.spawn(bunker_tests::answer(request(
            "AgreementAccept",
            with(
                user.clone(),
                json!({"brief": "newsletter", "referencecode": "r"}),
            ),
        )));
        for _ in 0..5 {
            racing.spawn(bunker_tests::answer(request(
                "AgreementListUserAgreements",
                user.clone(),
            )));
        }
        racing.spawn(bunker_tests::answer(request("UserDelete", user.clone())));
        for _ in 0..3 {
            racing.spawn(bunker_tests::answer(request(
                "AgreementGet",
                with(user.clone(), json!({"brief": "newsletter"})),
            )));
        }
        for (status, answer) in racing.join_all().await {
            assert!(
                status == StatusCode::OK || status == StatusCode::NOT_FOUND,
                "round {round}: {status} {answer}"
            );
        }
    }
    // Reading what waits for an e-mail takes no part in the ordering of creates: it answers while
    // another session holds the tenant's linking hold alone.
    app.root(
        "AgreementAccept",
        json!({"mode": "email", "identity": "waits@example.com", "brief": "newsletter"}),
    )
    .await;
    let holder = app.superuser().await;
    holder
        .batch_execute(
            "SELECT pg_advisory_lock(hashtextextended('bunker.consent.link.' || 1::bigint, 0))",
        )
        .await
        .unwrap();
    let read = request(
        "AgreementGet",
        json!({"mode": "email", "identity": "waits@example.com", "brief": "newsletter"}),
    );
    let (status, answer) = tokio::time::timeout(Duration::from_secs(5), bunker_tests::answer(read))
        .await
        .expect("answered while the hold is held");
    assert_eq!(status, StatusCode::OK, "{answer}");
    holder
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_revocation_of_many_consents_is_announced_in_one_go_not_five_a_tick() {
    let app = TestApp::spawn_with(TestOptions {
        webhook_interval: Duration::from_secs(3),
        ..TestOptions::default()
    })
    .await;
    let receiver = WebhookReceiver::start(0).await;
    app.root(
        "TenantUpdate",
        json!({"webhook": {"url": receiver.url, "secret": "s".repeat(40)}}),
    )
    .await;
    basis(&app, json!({"brief": "newsletter"})).await;
    let records: Vec<Value> = (0..30)
        .map(|i| json!({"profile": {"login": format!("many{i}")}}))
        .collect();
    let (status, created) = app
        .root("UserCreateBulk", json!({"records": records}))
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    for i in 0..30 {
        app.root(
            "AgreementAccept",
            json!({"mode": "login", "identity": format!("many{i}"), "brief": "newsletter"}),
        )
        .await;
    }
    app.root("AgreementRevokeAll", json!({"brief": "newsletter"}))
        .await;
    // The first delivery comes with a tick; the other 29 follow it at once, well before the next
    // tick (3 s later), instead of five a tick.
    let first = receiver.deliveries(1).await;
    assert!(!first.is_empty());
    let started = std::time::Instant::now();
    let all = receiver.deliveries(30).await;
    assert_eq!(all.len(), 30);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "drained in {:?}",
        started.elapsed()
    );
}
