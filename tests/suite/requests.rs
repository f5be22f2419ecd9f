//! User requests: changes a data subject asks for, which an admin or a DPO approves or cancels.

use bunker_tests::{StatusCode, TestApp};
use serde_json::{json, Value};

fn jane() -> Value {
    json!({"mode": "login", "identity": "jane"})
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(map), Value::Object(more)) = (base.as_object_mut(), extra) {
        map.extend(more);
    }
    base
}

async fn profile(app: &TestApp) -> Value {
    let (status, body) = app.root("UserGet", jane()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["profile"].clone()
}

#[tokio::test]
async fn a_request_changes_nothing_until_approved_and_then_exactly_its_change() {
    let app = TestApp::spawn().await;
    app.create_user(json!({"login": "jane", "name": "Jane", "city": "Leeds"}))
        .await;
    let user = app.user_xtoken("login", "jane").await;
    // The user's own token may not change the record directly...
    let (status, _) = app
        .call(
            "UserUpdate",
            &user,
            None,
            with(jane(), json!({"profile": {"city": "York"}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // ... but may ask.
    let ask = with(jane(), json!({"profile": {"city": "York", "name": null}}));
    let (status, body) = app
        .call("UserUpdateRequest", &user, None, ask.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let uuid = body["requestuuid"].as_str().unwrap().to_owned();
    assert_eq!(
        profile(&app).await,
        json!({"login": "jane", "name": "Jane", "city": "Leeds"}),
        "nothing changes until approved"
    );
    // Asking again answers the open request.
    let (_, again) = app.call("UserUpdateRequest", &user, None, ask).await;
    assert_eq!(again["requestuuid"], uuid.as_str());
    // The DPO sees what is stored and what is proposed.
    let (status, body) = app
        .root("UserRequestGet", json!({"requestuuid": uuid}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let request = &body["request"];
    assert_eq!(request["requesttype"], "change-profile");
    assert_eq!(request["status"], "open");
    assert_eq!(request["change"], json!({"city": "York", "name": null}));
    assert_eq!(request["original"]["city"], "Leeds");
    // The user lists its requests; so does root.
    let (status, body) = app
        .call("UserRequestListUserRequests", &user, None, jane())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 1);
    assert_eq!(body["rows"][0]["requestuuid"], uuid.as_str());
    // The user may not approve its own request.
    let (status, _) = app
        .call(
            "UserRequestApprove",
            &user,
            None,
            json!({"requestuuid": uuid}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .root("UserRequestApprove", json!({"requestuuid": uuid}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        profile(&app).await,
        json!({"login": "jane", "city": "York"})
    );
    // Closed: neither approved nor cancelled again.
    for command in ["UserRequestApprove", "UserRequestCancel"] {
        let (status, body) = app.root(command, json!({"requestuuid": uuid})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{command}: {body}");
        assert_eq!(body["message"], "This user request is closed");
    }
    let (_, body) = app
        .root("UserRequestGet", json!({"requestuuid": uuid}))
        .await;
    assert_eq!(body["request"]["status"], "approved");
    assert!(body["request"]["decisiontime"].as_i64().unwrap() > 0);
    // A new request may be opened now that the first is closed.
    let (_, body) = app
        .call(
            "UserPatchRequest",
            &user,
            None,
            with(
                jane(),
                json!({"patch": [{"op": "replace", "path": "/city", "value": "Hull"}]}),
            ),
        )
        .await;
    let patch = body["requestuuid"].as_str().unwrap().to_owned();
    assert_ne!(patch, uuid);
    let (status, body) = app
        .root("UserRequestApprove", json!({"requestuuid": patch}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(profile(&app).await["city"], "Hull");
    // Every step is in the user's trail.
    let (_, events) = app
        .root("AuditListUserEvents", with(jane(), json!({"limit": 100})))
        .await;
    let kinds: Vec<&str> = events["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["eventtype"].as_str())
        .collect();
    for kind in [
        "UserUpdateRequest",
        "UserRequestGet",
        "UserRequestApprove",
        "UserPatchRequest",
    ] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
}

#[tokio::test]
async fn a_cancelled_request_leaves_the_record_as_it_was_and_keeps_its_reason() {
    let app = TestApp::spawn().await;
    app.create_user(json!({"login": "jane", "city": "Leeds"}))
        .await;
    let (_, body) = app
        .root(
            "UserUpdateRequest",
            with(jane(), json!({"profile": {"city": "York"}})),
        )
        .await;
    let uuid = body["requestuuid"].as_str().unwrap().to_owned();
    let (status, body) = app
        .root(
            "UserRequestCancel",
            json!({"requestuuid": uuid, "reason": "not the account holder"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(profile(&app).await["city"], "Leeds");
    let (_, body) = app
        .root("UserRequestGet", json!({"requestuuid": uuid}))
        .await;
    assert_eq!(body["request"]["status"], "cancelled");
    assert_eq!(body["request"]["reason"], "not the account holder");
    let (status, _) = app
        .root("UserRequestApprove", json!({"requestuuid": uuid}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(profile(&app).await["city"], "Leeds");
    // The reason is sealed, not stored in clear.
    let db = app.superuser().await;
    let reason: Vec<u8> = db
        .query_one("SELECT reason FROM user_requests", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!reason.windows(7).any(|w| w == b"account"));
}

#[tokio::test]
async fn an_approval_that_has_become_invalid_is_refused_and_the_request_stays_open() {
    let app = TestApp::spawn().await;
    app.create_user(json!({"login": "jane"})).await;
    let (_, body) = app
        .root(
            "UserUpdateRequest",
            with(jane(), json!({"profile": {"email": "shared@example.com"}})),
        )
        .await;
    let uuid = body["requestuuid"].as_str().unwrap().to_owned();
    // Meanwhile someone else took the address.
    app.create_user(json!({"login": "john", "email": "shared@example.com"}))
        .await;
    let (status, body) = app
        .root("UserRequestApprove", json!({"requestuuid": uuid}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["message"], "Duplicate index: email");
    let (_, body) = app
        .root("UserRequestGet", json!({"requestuuid": uuid}))
        .await;
    assert_eq!(body["request"]["status"], "open");
    assert!(profile(&app).await.get("email").is_none());
    // A bad patch is refused when asked for, not kept.
    let (status, body) = app
        .root(
            "UserPatchRequest",
            with(jane(), json!({"patch": [{"op": "jump"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn forget_me_and_app_data_requests_apply_when_approved() {
    let app = TestApp::spawn().await;
    let token = app.create_user(json!({"login": "jane"})).await;
    app.root(
        "AppdataCreate",
        with(jane(), json!({"appname": "shop", "appdata": {"size": "M"}})),
    )
    .await;
    let user = app.user_xtoken("login", "jane").await;
    let (status, body) = app
        .call(
            "AppdataUpdateRequest",
            &user,
            None,
            with(jane(), json!({"appname": "shop", "appdata": {"size": "L"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let change = body["requestuuid"].as_str().unwrap().to_owned();
    let (_, body) = app
        .root("UserRequestGet", json!({"requestuuid": change}))
        .await;
    assert_eq!(body["request"]["requesttype"], "change-app-data");
    assert_eq!(body["request"]["app"], "shop");
    assert_eq!(body["request"]["original"], json!({"size": "M"}));
    let (_, body) = app
        .root("AppdataGet", with(jane(), json!({"appname": "shop"})))
        .await;
    assert_eq!(body["appdata"], json!({"size": "M"}), "not before approval");
    let (status, body) = app
        .root("UserRequestApprove", json!({"requestuuid": change}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app
        .root("AppdataGet", with(jane(), json!({"appname": "shop"})))
        .await;
    assert_eq!(body["appdata"], json!({"size": "L"}));
    // Forget-me, asked by the user and approved; another open request is cancelled with it.
    let (_, body) = app
        .call(
            "UserUpdateRequest",
            &user,
            None,
            with(jane(), json!({"profile": {"x": 1}})),
        )
        .await;
    let pending = body["requestuuid"].as_str().unwrap().to_owned();
    let (status, body) = app.call("UserDeleteRequest", &user, None, jane()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let forget = body["requestuuid"].as_str().unwrap().to_owned();
    assert_eq!(
        app.root("UserGet", jane()).await.0,
        StatusCode::OK,
        "not before approval"
    );
    let (status, body) = app
        .root("UserRequestApprove", json!({"requestuuid": forget}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.root("UserGet", jane()).await.0, StatusCode::NOT_FOUND);
    let db = app.superuser().await;
    let rows = db
        .query(
            "SELECT uuid::text, status, change IS NULL AND metadata IS NULL FROM user_requests
              WHERE token = $1::text::uuid",
            &[&token],
        )
        .await
        .unwrap();
    for row in &rows {
        let (uuid, status, emptied): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        assert!(emptied, "{uuid} keeps a sealed change");
        let expected = if uuid == pending {
            "cancelled"
        } else {
            "approved"
        };
        assert_eq!(status, expected, "{uuid}");
    }
}

#[tokio::test]
async fn requests_are_listed_behind_an_unlock_and_decided_by_a_dpo_a_policy_allows() {
    let app = TestApp::spawn().await;
    app.create_user(json!({"login": "jane", "city": "Leeds"}))
        .await;
    app.create_user(json!({"login": "john"})).await;
    let (_, a) = app
        .root(
            "UserUpdateRequest",
            with(jane(), json!({"profile": {"city": "York"}})),
        )
        .await;
    let (_, b) = app
        .root(
            "UserDeleteRequest",
            json!({"mode": "login", "identity": "john"}),
        )
        .await;
    app.root(
        "UserRequestCancel",
        json!({"requestuuid": b["requestuuid"]}),
    )
    .await;
    let unlock = app.unlock_for(&app.root_token).await;
    let (status, body) = app
        .root(
            "BulkListAllUserRequests",
            json!({"unlockuuid": unlock, "status": "open"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 1);
    assert_eq!(body["rows"][0]["requestuuid"], a["requestuuid"]);
    let (_, body) = app
        .root("BulkListAllUserRequests", json!({"unlockuuid": unlock}))
        .await;
    assert_eq!(body["total"], 2);
    let (status, _) = app
        .root(
            "BulkListAllUserRequests",
            json!({"unlockuuid": unlock, "status": "maybe"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A DPO role: may read and approve requests, nothing else.
    app.grant(
        "dpo",
        "dpo-requests",
        json!({"Effect": "Allow", "Action": ["UserRequestGet", "UserRequestApprove", "UserRequestCancel"],
               "Resource": ["users.profile"]}),
    )
    .await;
    let dpo = app.role_token("dpo").await;
    let (status, _) = app.call("UserGet", &dpo, None, jane()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .call(
            "UserRequestApprove",
            &dpo,
            None,
            json!({"requestuuid": a["requestuuid"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(profile(&app).await["city"], "York");
    // A role without it gets the same refusal for a request that exists and for one that does not.
    app.grant(
        "clerk",
        "clerk-reads",
        json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["users.profile"]}),
    )
    .await;
    let clerk = app.role_token("clerk").await;
    let (_, open) = app
        .root(
            "UserUpdateRequest",
            with(jane(), json!({"profile": {"city": "Hull"}})),
        )
        .await;
    for uuid in [
        open["requestuuid"].clone(),
        json!(uuid::Uuid::new_v4().to_string()),
    ] {
        for command in ["UserRequestGet", "UserRequestApprove", "UserRequestCancel"] {
            let (status, body) = app
                .call(command, &clerk, None, json!({"requestuuid": uuid}))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {body}");
            assert_eq!(body["message"], "API access denied");
        }
    }
    assert_eq!(profile(&app).await["city"], "York");
    let (status, _) = app
        .root(
            "UserRequestGet",
            json!({"requestuuid": uuid::Uuid::new_v4().to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .root("UserRequestGet", json!({"requestuuid": "nope"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn another_tenant_reaches_no_request() {
    let app = TestApp::spawn().await;
    app.create_user(json!({"login": "jane", "city": "Leeds"}))
        .await;
    let (_, body) = app
        .root(
            "UserUpdateRequest",
            with(jane(), json!({"profile": {"city": "York"}})),
        )
        .await;
    let uuid = body["requestuuid"].clone();
    let (_, acme) = app.create_tenant("acme").await;
    for command in ["UserRequestGet", "UserRequestApprove", "UserRequestCancel"] {
        let (status, body) = app
            .call(command, &acme, Some("acme"), json!({"requestuuid": uuid}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{command}: {body}");
    }
    let (status, _) = app
        .call("UserRequestGet", &acme, None, json!({"requestuuid": uuid}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, body) = app
        .root("UserRequestGet", json!({"requestuuid": uuid}))
        .await;
    assert_eq!(body["request"]["status"], "open");
    assert_eq!(profile(&app).await["city"], "Leeds");
}
