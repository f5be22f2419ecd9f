//! The encrypted user vault over the API: storage and lookups, uniqueness, isolation, changes,
//! versions, concurrency, forget-me, expiry, audit, and what is (not) in the database.

use std::time::Duration;

use bunker_tests::{StatusCode, TestApp, TestOptions};
use serde_json::{json, Value};

const JANE: &str = r#"{"email":"Jane.Doe@Example.com","phone":"07911 123456","login":"jdoe","custom":"CRM-0042","name":"Jane Doe","address":{"city":"Leeds"}}"#;

fn jane() -> Value {
    serde_json::from_str(JANE).unwrap()
}

/// Creates a user as root in the default tenant and returns its token.
async fn create(app: &TestApp, profile: Value) -> String {
    let (status, body) = app.root("UserCreate", json!({ "profile": profile })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn get(app: &TestApp, mode: &str, identity: &str) -> (StatusCode, Value) {
    app.root("UserGet", json!({"mode": mode, "identity": identity}))
        .await
}

#[tokio::test]
async fn a_profile_round_trips_by_every_mode() {
    let app = TestApp::spawn().await;
    let token = create(&app, jane()).await;
    assert!(uuid::Uuid::parse_str(&token).is_ok());
    for (mode, identity) in [
        ("token", token.as_str()),
        ("email", " jane.doe@EXAMPLE.com "),
        ("phone", "+44 7911 123456"),
        ("phone", "07911123456"),
        ("login", "jdoe"),
        ("custom", "CRM-0042"),
    ] {
        let (status, body) = get(&app, mode, identity).await;
        assert_eq!(status, StatusCode::OK, "{mode} {identity}: {body}");
        assert_eq!(body["token"], token.as_str());
        assert_eq!(body["profile"], jane(), "the profile comes back as stored");
        assert_eq!(body["version"], 1);
    }
    let (status, body) = get(&app, "login", "JDOE").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "logins are not case-folded");
    assert_eq!(
        body,
        json!({"status": "error", "message": "The user record was not found"})
    );
}

#[tokio::test]
async fn duplicate_indexed_values_are_refused_in_a_tenant_and_allowed_in_another() {
    let app = TestApp::spawn().await;
    let (_, acme) = app.create_tenant("acme").await;
    create(&app, jane()).await;
    for (field, value) in [
        ("email", json!("JANE.DOE@example.com")),
        ("login", json!("jdoe")),
        ("phone", json!("+447911123456")),
        ("custom", json!("CRM-0042")),
    ] {
        let mut profile = serde_json::Map::new();
        profile.insert(field.to_owned(), value.clone());
        let (status, body) = app.root("UserCreate", json!({ "profile": profile })).await;
        assert_eq!(status, StatusCode::CONFLICT, "{field}");
        assert_eq!(body["message"], format!("Duplicate index: {field}"));
        assert!(
            !body.to_string().contains(value.as_str().unwrap()),
            "the value is not echoed"
        );
    }
    let (status, body) = app
        .call(
            "UserCreate",
            &acme,
            Some("acme"),
            json!({"profile": jane()}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another tenant may hold the same values: {body}"
    );
}

#[tokio::test]
async fn another_tenant_cannot_read_a_user_by_any_mode() {
    let app = TestApp::spawn().await;
    let (_, acme) = app.create_tenant("acme").await;
    let token = create(&app, jane()).await;
    for (mode, identity) in [
        ("token", token.as_str()),
        ("email", "jane.doe@example.com"),
        ("phone", "07911123456"),
        ("login", "jdoe"),
        ("custom", "CRM-0042"),
    ] {
        let body = json!({"mode": mode, "identity": identity});
        let (status, answer) = app.call("UserGet", &acme, Some("acme"), body.clone()).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "acme's token, {mode}: {answer}"
        );
        let (status, _) = app
            .call("UserGet", &app.root_token, Some("acme"), body)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "root in acme, {mode}");
    }
}

#[tokio::test]
async fn update_merges_and_null_removes_a_field() {
    let app = TestApp::spawn().await;
    let token = create(&app, jane()).await;
    let (status, body) = app
        .root(
            "UserUpdate",
            json!({"mode": "login", "identity": "jdoe",
                   "profile": {"name": "Jane Smith", "custom": null, "address": {"zip": "LS1"}, "email": "jane@smith.example"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = get(&app, "token", &token).await;
    assert_eq!(
        body["profile"],
        json!({"email": "jane@smith.example", "phone": "07911 123456", "login": "jdoe", "name": "Jane Smith",
               "address": {"city": "Leeds", "zip": "LS1"}})
    );
    assert_eq!(body["version"], 2);
    assert_eq!(
        get(&app, "custom", "CRM-0042").await.0,
        StatusCode::NOT_FOUND,
        "removed key is unindexed"
    );
    assert_eq!(
        get(&app, "email", "jane.doe@example.com").await.0,
        StatusCode::NOT_FOUND,
        "old email"
    );
    assert_eq!(
        get(&app, "email", "JANE@smith.example").await.0,
        StatusCode::OK,
        "new email"
    );
}

#[tokio::test]
async fn patch_applies_rfc6902_operations_or_changes_nothing() {
    let app = TestApp::spawn().await;
    let token = create(&app, jane()).await;
    let (status, body) = app
        .root(
            "UserPatch",
            json!({"mode": "token", "identity": token, "patch": [
                {"op": "replace", "path": "/name", "value": "J. Doe"},
                {"op": "add", "path": "/tags", "value": ["vip"]},
                {"op": "remove", "path": "/address"},
                {"op": "move", "from": "/custom", "path": "/legacy"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = get(&app, "token", &token).await;
    assert_eq!(body["profile"]["name"], "J. Doe");
    assert_eq!(body["profile"]["tags"], json!(["vip"]));
    assert!(body["profile"].get("address").is_none());
    assert_eq!(body["profile"]["legacy"], "CRM-0042");

    let (status, answer) = app
        .root(
            "UserPatch",
            json!({"mode": "token", "identity": token, "patch": [
                {"op": "replace", "path": "/name", "value": "Changed"},
                {"op": "test", "path": "/login", "value": "someone-else"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(!answer.to_string().contains("someone-else"));
    let (_, after) = get(&app, "token", &token).await;
    assert_eq!(
        after["profile"]["name"], "J. Doe",
        "a failed patch changes nothing"
    );
    let (status, _) = app
        .root(
            "UserPatch",
            json!({"mode": "token", "identity": token, "patch": {"op": "add"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn versions_are_listed_readable_and_pruned() {
    let app = TestApp::spawn_with(TestOptions {
        versions_kept: 3,
        ..TestOptions::default()
    })
    .await;
    let token = create(&app, json!({"login": "v", "step": 1})).await;
    for step in 2..=4 {
        let (status, _) = app
            .root(
                "UserUpdate",
                json!({"mode": "login", "identity": "v", "profile": {"step": step}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = app
        .root(
            "UserListVersions",
            json!({"mode": "token", "identity": token}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let versions = body["versions"].as_array().unwrap();
    let numbers: Vec<i64> = versions
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 3, 4], "three kept, the oldest pruned");
    let digests: Vec<&str> = versions
        .iter()
        .map(|v| v["md5"].as_str().unwrap())
        .collect();
    assert!(digests.iter().all(|d| d.len() == 32));
    assert_ne!(digests[0], digests[1]);
    assert!(versions[0]["optime"].as_i64().unwrap() > 1_700_000_000);

    let (status, body) = app
        .root(
            "UserGet",
            json!({"mode": "token", "identity": token, "version": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["profile"], json!({"login": "v", "step": 2}));
    assert_eq!(body["version"], 2);
    let (status, _) = app
        .root(
            "UserGet",
            json!({"mode": "token", "identity": token, "version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "pruned");
}

#[tokio::test]
async fn concurrent_updates_all_land_or_get_a_clear_conflict() {
    let app = TestApp::spawn_with(TestOptions {
        pool_size: 8,
        ..TestOptions::default()
    })
    .await;
    let app = std::sync::Arc::new(app);
    let token = create(&app, json!({"login": "busy"})).await;
    let mut updates = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (app, token) = (app.clone(), token.clone());
        updates.spawn(async move {
            let body = json!({"mode": "token", "identity": token, "profile": {format!("f{i}"): i}});
            (i, app.root("UserUpdate", body).await)
        });
    }
    let results = updates.join_all().await;
    let (_, body) = get(&app, "token", &token).await;
    let mut landed = 0;
    for (i, (status, answer)) in results {
        match status {
            StatusCode::OK => {
                landed += 1;
                assert_eq!(
                    body["profile"][format!("f{i}")],
                    i,
                    "update {i} was answered ok but lost"
                );
            }
            StatusCode::CONFLICT => assert!(answer["message"].as_str().unwrap().contains("retry")),
            other => panic!("update {i}: {other} {answer}"),
        }
    }
    assert!(landed > 0);
    assert_eq!(body["version"], 1 + landed, "one version per landed update");
}

#[tokio::test]
async fn forget_me_makes_every_lookup_fail_and_keeps_the_token_reserved() {
    let app = TestApp::spawn().await;
    let token = create(&app, jane()).await;
    let (status, body) = app
        .root(
            "UserDelete",
            json!({"mode": "email", "identity": "jane.doe@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (mode, identity) in [
        ("token", token.as_str()),
        ("email", "jane.doe@example.com"),
        ("phone", "07911123456"),
        ("login", "jdoe"),
        ("custom", "CRM-0042"),
    ] {
        assert_eq!(
            get(&app, mode, identity).await.0,
            StatusCode::NOT_FOUND,
            "{mode}"
        );
    }
    let (status, _) = app
        .root(
            "UserListVersions",
            json!({"mode": "token", "identity": token}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .root("UserDelete", json!({"mode": "token", "identity": token}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "forgetting twice");

    let db = app.superuser().await;
    let uuid = uuid::Uuid::parse_str(&token).unwrap();
    let row = db
        .query_one(
            "SELECT record IS NULL, forgotten_at IS NOT NULL,
                    (SELECT count(*) FROM user_indexes WHERE token = $1),
                    (SELECT count(*) FROM user_versions WHERE token = $1)
               FROM users WHERE token = $1",
            &[&uuid],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the sealed record is gone");
    assert!(row.get::<_, bool>(1), "the token stays reserved");
    assert_eq!(row.get::<_, i64>(2), 0, "no index is left");
    assert_eq!(row.get::<_, i64>(3), 0, "no version is left");
    let again = create(&app, jane()).await;
    assert_ne!(
        again, token,
        "the values are free again; the token is not reused"
    );
}

#[tokio::test]
async fn bulk_create_and_delete_succeed_record_by_record() {
    let app = TestApp::spawn().await;
    app.create_user(json!({"login": "taken"})).await;
    let records = json!([
        {"profile": {"email": "a@bulk.test", "n": 1}},
        {"profile": {"email": "A@bulk.test", "n": 2}},
        {"profile": {"phone": "not a phone"}},
        {"profile": {"login": "taken", "email": "c@bulk.test"}},
        {"profile": ["not", "an", "object"]},
        {"profile": {"email": "d@bulk.test"}, "groupname": "no-such-group"},
        {"profile": {"email": "b@bulk.test", "n": 3}, "rolename": "parent"},
        {"profile": {"email": "b@bulk.test", "n": 4}}
    ]);
    let (status, body) = app
        .root(
            "UserCreateBulk",
            json!({"records": records, "finaltime": "30d"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let created = body["created"].as_array().unwrap();
    let profiles: Vec<&Value> = created.iter().map(|c| &c["profile"]).collect();
    assert_eq!(
        profiles,
        [
            &json!({"email": "a@bulk.test", "n": 1}),
            &json!({"email": "b@bulk.test", "n": 4})
        ],
        "each record created on its own, with its submitted profile"
    );
    let reasons: Vec<(&Value, &str)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (&e["profile"], e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                &json!({"email": "A@bulk.test", "n": 2}),
                "Duplicate index: email"
            ),
            (
                &json!({"phone": "not a phone"}),
                "The phone value is not a valid phone number"
            ),
            (
                &json!({"login": "taken", "email": "c@bulk.test"}),
                "Duplicate index: login"
            ),
            (
                &json!(["not", "an", "object"]),
                "records[4].profile must be a JSON object"
            ),
            (
                &json!({"email": "d@bulk.test"}),
                "The group record was not found"
            ),
            (
                &json!({"email": "b@bulk.test", "n": 3}),
                "A role needs a group: give groupname or groupid"
            ),
        ]
    );
    let (_, user) = get(&app, "email", "b@bulk.test").await;
    assert_eq!(user["token"], created[1]["token"]);
    assert_eq!(user["profile"]["n"], 4);
    assert!(user["finaltime"].as_i64().is_some(), "batch expiry applies");
    for (email, why) in [
        ("c@bulk.test", "a refused record leaves nothing of itself"),
        ("d@bulk.test", "nor does a refused membership"),
    ] {
        assert_eq!(
            get(&app, "email", email).await.0,
            StatusCode::NOT_FOUND,
            "{why}"
        );
    }
    let stored: i64 = app
        .superuser()
        .await
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 3, "taken, a and b: nothing else");

    let (status, body) = app
        .root(
            "UserDeleteBulk",
            json!({"users": [
                {"mode": "email", "identity": "a@bulk.test"},
                {"mode": "email", "identity": "nobody@bulk.test"},
                {"mode": "token", "identity": "not-a-token"},
                {"mode": "token", "identity": created[1]["token"]}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted_count"], 2);
    assert_eq!(
        body["errors"],
        json!([
            {"mode": "email", "identity": "nobody@bulk.test", "reason": "The user record was not found"},
            {"mode": "token", "identity": "not-a-token", "reason": "Bad UUID"}
        ])
    );
    for email in ["a@bulk.test", "b@bulk.test"] {
        assert_eq!(get(&app, "email", email).await.0, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn bad_user_requests_get_clear_400s() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            "UserGet",
            json!({"mode": "name", "identity": "x"}),
            "The mode parameter has an incorrect format",
        ),
        (
            "UserGet",
            json!({"mode": "token", "identity": "not-a-token"}),
            "Bad UUID",
        ),
        (
            "UserCreate",
            json!({"profile": ["x"]}),
            "profile must be a JSON object",
        ),
        (
            "UserCreate",
            json!({"profile": {"phone": "call me maybe"}}),
            "The phone value is not a valid phone number",
        ),
        (
            "UserCreate",
            json!({"profile": {"email": 42}}),
            "The email value must be a string",
        ),
        (
            "UserCreate",
            json!({"profile": {"a": 1}, "slidingtime": "soon"}),
            "slidingtime",
        ),
        (
            "UserCreate",
            json!({"profile": {"a": 1}, "rolename": "admin"}),
            "A role needs a group",
        ),
        (
            "UserGet",
            json!({"mode": "phone", "identity": "nope"}),
            "The phone value is not a valid phone number",
        ),
    ];
    for (command, body, message) in cases {
        let (status, answer) = app.root(command, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{command} {body}: {answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains(message),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn expiry_is_reported_and_expired_users_are_swept_with_audit() {
    let app = TestApp::spawn_with(TestOptions {
        sweep_interval: Duration::from_millis(300),
        ..TestOptions::default()
    })
    .await;
    let (status, body) = app
        .root(
            "UserCreate",
            json!({"profile": {"login": "kept"}, "slidingtime": "30d", "finaltime": "1y"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, kept) = get(&app, "login", "kept").await;
    assert_eq!(kept["slidingtime"], 30 * 86_400);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let final_at = kept["finaltime"].as_i64().unwrap();
    assert!((final_at - (now + 365 * 86_400)).abs() < 60, "{kept}");
    let expires = kept["expirationtime"].as_i64().unwrap();
    assert!(
        (expires - (now + 30 * 86_400)).abs() < 60,
        "sliding window from now: {kept}"
    );

    let (_, body) = app
        .root(
            "UserCreate",
            json!({"profile": {"login": "brief"}, "finaltime": "1s"}),
        )
        .await;
    let token = body["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(&app, "login", "brief").await.0, StatusCode::NOT_FOUND);
    let (_, events) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "token", "identity": token}),
        )
        .await;
    assert_eq!(events["rows"][0]["eventtype"], "UserExpired", "{events}");
    let db = app.superuser().await;
    let actor: String = db
        .query_one(
            "SELECT actor_kind FROM audit_events WHERE action = 'UserExpired'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(actor, "system");
    assert_eq!(
        get(&app, "login", "kept").await.0,
        StatusCode::OK,
        "others stay"
    );
}

#[tokio::test]
async fn each_user_operation_leaves_an_audit_event() {
    let app = TestApp::spawn().await;
    let metadata = json!({"ip": "198.51.100.7", "ticket": "T-1"});
    let (_, body) = app
        .root(
            "UserCreate",
            json!({"profile": {"login": "audited", "name": "A"}, "request_metadata": metadata}),
        )
        .await;
    let token = body["token"].as_str().unwrap().to_owned();
    let sel = json!({"mode": "login", "identity": "audited"});
    app.root("UserGet", sel.clone()).await;
    app.root(
        "UserUpdate",
        json!({"mode": "login", "identity": "audited", "profile": {"name": "B"}}),
    )
    .await;
    app.root("UserPatch", json!({"mode": "login", "identity": "audited", "patch": [{"op": "add", "path": "/x", "value": 1}]})).await;
    app.root("UserListVersions", sel.clone()).await;
    app.root("UserDelete", sel).await;

    let (status, body) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "token", "identity": token, "limit": 100}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let types = event_types(&body);
    assert_eq!(
        types,
        [
            "UserDelete",
            "UserListVersions",
            "UserPatch",
            "UserUpdate",
            "UserGet",
            "UserCreate"
        ]
    );
    assert_eq!(body["total"], 6);

    let create_event = body["rows"][5]["auditeventuuid"].as_str().unwrap();
    let (status, event) = app
        .root("AuditGetEvent", json!({"auditeventuuid": create_event}))
        .await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["eventtype"], "UserCreate");
    assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(event["details"]["request_metadata"], metadata);
    let mut fields: Vec<&str> = event["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["login", "name"], "field names, not values");

    let (status, _) = app
        .root(
            "AuditGetEvent",
            json!({"auditeventuuid": uuid::Uuid::new_v4().to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, acme) = app.create_tenant("acme").await;
    let (status, _) = app
        .call(
            "AuditGetEvent",
            &acme,
            Some("acme"),
            json!({"auditeventuuid": create_event}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's event");
}

#[tokio::test]
async fn a_sealed_record_moved_to_another_row_or_tenant_does_not_open() {
    let app = TestApp::spawn().await;
    let (acme_id, acme) = app.create_tenant("acme").await;
    let victim = create(&app, json!({"login": "victim", "secret": "v"})).await;
    let attacker = create(&app, json!({"login": "attacker"})).await;
    let (_, body) = app
        .call(
            "UserCreate",
            &acme,
            Some("acme"),
            json!({"profile": {"login": "other"}}),
        )
        .await;
    let other = body["token"].as_str().unwrap().to_owned();

    let db = app.superuser().await;
    let uuid = |t: &str| uuid::Uuid::parse_str(t).unwrap();
    db.execute(
        "UPDATE users SET record = (SELECT record FROM users WHERE token = $1) WHERE token = $2",
        &[&uuid(&victim), &uuid(&attacker)],
    )
    .await
    .unwrap();
    let (status, body) = get(&app, "token", &attacker).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["message"], "Failed to decrypt the user record");
    assert!(!body.to_string().contains("victim"));

    db.execute(
        "UPDATE users SET record = (SELECT record FROM users WHERE token = $1) WHERE token = $2 AND tenant_id = $3",
        &[&uuid(&victim), &uuid(&other), &acme_id],
    )
    .await
    .unwrap();
    let (status, _) = app
        .call(
            "UserGet",
            &acme,
            Some("acme"),
            json!({"mode": "token", "identity": other}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "across tenants");
    assert_eq!(
        get(&app, "token", &victim).await.0,
        StatusCode::OK,
        "the original still opens"
    );
}

#[tokio::test]
async fn when_the_audit_write_fails_the_request_fails_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"login": "kept", "name": "A"})).await;
    app.superuser()
        .await
        .batch_execute("REVOKE INSERT ON audit_events FROM bunker_app")
        .await
        .unwrap();
    let (status, body) = app
        .root("UserCreate", json!({"profile": {"login": "unaudited"}}))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["status"], "error");
    let (status, _) = app
        .root(
            "UserUpdate",
            json!({"mode": "token", "identity": token, "profile": {"name": "B"}}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _) = get(&app, "token", &token).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "an unaudited read is refused too"
    );

    app.superuser()
        .await
        .batch_execute("GRANT INSERT ON audit_events TO bunker_app")
        .await
        .unwrap();
    assert_eq!(
        get(&app, "login", "unaudited").await.0,
        StatusCode::NOT_FOUND,
        "the create left nothing"
    );
    let (_, body) = get(&app, "token", &token).await;
    assert_eq!(body["profile"]["name"], "A", "the update left nothing");
    assert_eq!(body["version"], 1);
}

#[tokio::test]
async fn a_users_audit_events_are_paged_newest_first() {
    let app = TestApp::spawn().await;
    let token = app.create_user(json!({"login": "paged"})).await;
    let sel = json!({"mode": "token", "identity": token});
    for _ in 0..12 {
        app.root("UserGet", sel.clone()).await;
    }
    let (_, first) = app.root("AuditListUserEvents", sel.clone()).await;
    assert_eq!(first["total"], 13);
    assert_eq!(first["rows"].as_array().unwrap().len(), 10, "10 by default");
    assert_eq!(first["rows"][0]["eventtype"], "UserGet");
    let (_, last) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "token", "identity": token, "offset": 10, "limit": 5}),
        )
        .await;
    // The first listing was itself audited: one event more.
    let types = event_types(&last);
    assert_eq!(
        types,
        ["UserGet", "UserGet", "UserGet", "UserCreate"],
        "the oldest last"
    );
    assert_eq!(last["total"], 14);
    let (_, newest) = app
        .root(
            "AuditListUserEvents",
            json!({"mode": "token", "identity": token, "limit": 1}),
        )
        .await;
    assert_eq!(newest["rows"][0]["eventtype"], "AuditListUserEvents");
}

#[tokio::test]
async fn a_lookup_by_an_indexed_field_uses_that_fields_index_even_in_a_generic_plan() {
    use bunker_db::users::{index_lookup_sql, INDEXED_FIELDS};

    let app = TestApp::spawn().await;
    let records: Vec<Value> = (0..500)
        .map(|i| {
            json!({"profile": {"email": format!("u{i}@example.com"), "phone": format!("+4479111{i:05}"),
                               "login": format!("user{i}"), "custom": format!("C-{i}")}})
        })
        .collect();
    let (status, body) = app
        .root("UserCreateBulk", json!({ "records": records }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.superuser()
        .await
        .batch_execute("ANALYZE")
        .await
        .unwrap();

    // After five executions PostgreSQL may switch a prepared statement to its generic plan; force
    // it, and read the plan as the server's role would get it.
    let mut db = app.app_role().await;
    db.batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    for field in INDEXED_FIELDS {
        let plan = generic_plan(&mut db, &index_lookup_sql(field).unwrap(), "'\\x00'").await;
        assert!(
            plan.contains(&format!("user_index_{field}")),
            "{field}:\n{plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{field}:\n{plan}");
    }
    // The form this replaced, with the field as a parameter, cannot use the partial indexes.
    let parameter = index_lookup_sql("email")
        .unwrap()
        .replace("field = 'email' AND hash = $1", "field = $2 AND hash = $1");
    let plan = generic_plan(&mut db, &parameter, "'\\x00', 'email'").await;
    assert!(!plan.contains("user_index_email"), "{plan}");
    assert!(index_lookup_sql("name").is_none());
}

/// The plan PostgreSQL makes for `sql` executed with `args`, in tenant 1.
async fn generic_plan(db: &mut tokio_postgres::Client, sql: &str, args: &str) -> String {
    let tx = db.transaction().await.unwrap();
    tx.batch_execute("SELECT set_config('bunker.tenant_id', '1', true)")
        .await
        .unwrap();
    tx.batch_execute(&format!("PREPARE lookup AS {sql}"))
        .await
        .unwrap();
    let lines: Vec<String> = tx
        .query(&format!("EXPLAIN EXECUTE lookup({args})"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    tx.batch_execute("DEALLOCATE lookup").await.unwrap();
    tx.rollback().await.unwrap();
    lines.join("\n")
}

/// The event types of an AuditListUserEvents answer, in order.
fn event_types(answer: &Value) -> Vec<&str> {
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["eventtype"].as_str().unwrap())
        .collect()
}
