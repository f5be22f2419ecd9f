//! Consent: legal bases, agreements and processing activities; who may give, read and withdraw a
//! consent; consent before the user exists; tenants. How consents end (the webhook, forget-me,
//! lapses, races) is in `consent_lifecycle.rs`.

use std::time::Duration;

use bunker_tests::{StatusCode, TestApp};
use serde_json::{json, Value};

pub(crate) fn jane() -> Value {
    json!({"mode": "login", "identity": "jane"})
}

pub(crate) fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    base
}

pub(crate) async fn basis(app: &TestApp, body: Value) {
    let (status, answer) = app.root("LegalBasisCreate", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

pub(crate) async fn agreement(app: &TestApp, user: Value, brief: &str) -> (StatusCode, Value) {
    app.root("AgreementGet", with(user, json!({"brief": brief})))
        .await
}

pub(crate) async fn status_of(app: &TestApp, user: Value, brief: &str) -> String {
    let (status, body) = agreement(app, user, brief).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["agreement"]["status"].as_str().unwrap().to_owned()
}

pub(crate) async fn listed_bases(app: &TestApp) -> Vec<(String, String)> {
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
