//! How consents end: the webhook told of withdrawals, revocations and expiries; forget-me; a
//! lapse; and the races between a consent and its user's creation, a first accept, a forget-me.

use std::time::Duration;

use bunker_tests::{signed, StatusCode, TestApp, TestOptions, WebhookReceiver};
use serde_json::{json, Value};

use crate::consent::{agreement, basis, jane, status_of, with};

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
