//! User requests: changes a data subject asks for, which an admin or a DPO approves or cancels.

use bunker_tests::{signed, StatusCode, TestApp, WebhookReceiver};
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

#[tokio::test]
async fn a_tenants_self_service_settings_let_a_user_change_or_forget_its_own_record_directly() {
    let app = TestApp::spawn().await;
    app.create_user(json!({"login": "jane", "city": "Leeds"}))
        .await;
    app.create_user(json!({"login": "john"})).await;
    app.root(
        "AppdataCreate",
        with(jane(), json!({"appname": "shop", "appdata": {"size": "M"}})),
    )
    .await;
    let user = app.user_xtoken("login", "jane").await;
    let change = with(jane(), json!({"profile": {"city": "York"}}));
    let app_change = with(jane(), json!({"appname": "shop", "appdata": {"size": "L"}}));
    let (status, _) = app.call("UserUpdate", &user, None, change.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "off by default");
    let (_, body) = app.root("TenantGet", json!({"tenantid": 1})).await;
    assert_eq!(
        body["selfservice"],
        json!({"user_change": false, "forget_me": false, "app_data_change": false})
    );
    // Profile changes only.
    let (status, body) = app
        .root(
            "TenantUpdate",
            json!({"selfservice": {"user_change": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.call("UserUpdate", &user, None, change).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(profile(&app).await["city"], "York");
    let patch = with(
        jane(),
        json!({"patch": [{"op": "add", "path": "/zip", "value": "YO1"}]}),
    );
    assert_eq!(
        app.call("UserPatch", &user, None, patch).await.0,
        StatusCode::OK
    );
    // Still not another user's record, nor app data, nor forget-me.
    let other = json!({"mode": "login", "identity": "john", "profile": {"city": "Hull"}});
    assert_eq!(
        app.call("UserUpdate", &user, None, other).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = app
        .call("AppdataUpdate", &user, None, app_change.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.call("UserDelete", &user, None, jane()).await.0,
        StatusCode::FORBIDDEN
    );
    // App data, then forget-me; the other settings are kept.
    app.root(
        "TenantUpdate",
        json!({"selfservice": {"app_data_change": true, "forget_me": true}}),
    )
    .await;
    let (_, body) = app.root("TenantGet", json!({"tenantid": 1})).await;
    assert_eq!(
        body["selfservice"],
        json!({"user_change": true, "forget_me": true, "app_data_change": true})
    );
    let (status, body) = app.call("AppdataUpdate", &user, None, app_change).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.call("UserDelete", &user, None, jane()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.root("UserGet", jane()).await.0, StatusCode::NOT_FOUND);
    // Turned off again: refused again (for another user's own token).
    app.root(
        "TenantUpdate",
        json!({"selfservice": {"user_change": false}}),
    )
    .await;
    let john = app.user_xtoken("login", "john").await;
    let own = json!({"mode": "login", "identity": "john", "profile": {"city": "Hull"}});
    assert_eq!(
        app.call("UserUpdate", &john, None, own).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn nothing_is_stored_for_a_user_forgotten_while_the_request_waited() {
    for command in ["AppdataCreate", "UserUpdateRequest"] {
        let app = TestApp::spawn().await;
        let token = app.create_user(json!({"login": "jane"})).await;
        // Another transaction holds the user's row, as a forget-me in progress does.
        let mut db = app.superuser().await;
        let forget = db.transaction().await.unwrap();
        forget
            .execute(
                "SELECT 1 FROM users WHERE token = $1::text::uuid FOR UPDATE",
                &[&token],
            )
            .await
            .unwrap();
        let body = json!({"mode": "token", "identity": token, "appname": "shop",
                          "appdata": {"v": 1}, "profile": {"v": 1}});
        let request = app
            .command(command)
            .header("X-Bunker-Token", &app.root_token)
            .json(&body);
        let pending = tokio::spawn(bunker_tests::answer(request));
        // Until the request waits for the row.
        app.until_a_query_waits_for_a_lock().await;
        forget
            .execute(
                "UPDATE users SET record = NULL, data_key = NULL, forgotten_at = now()
                  WHERE token = $1::text::uuid",
                &[&token],
            )
            .await
            .unwrap();
        forget.commit().await.unwrap();
        let (status, body) = pending.await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND, "{command}: {body}");
        let left: i64 = db
            .query_one(
                "SELECT (SELECT count(*) FROM app_data) + (SELECT count(*) FROM app_data_versions)
                      + (SELECT count(*) FROM user_requests)
                      + (SELECT count(*) FROM users WHERE data_key IS NOT NULL)",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            left, 0,
            "{command}: nothing of a forgotten user may be stored"
        );
    }
}

#[tokio::test]
async fn a_role_may_decide_only_the_kinds_of_request_it_may_see_and_learns_nothing_of_others() {
    let app = TestApp::spawn().await;
    let token = app
        .create_user(json!({"login": "jane", "name": "Jane"}))
        .await;
    app.root(
        "AppdataCreate",
        with(jane(), json!({"appname": "shop", "appdata": {"size": "M"}})),
    )
    .await;
    let (_, body) = app
        .root(
            "AppdataUpdateRequest",
            with(jane(), json!({"appname": "shop", "appdata": {"size": "L"}})),
        )
        .await;
    let app_request = body["requestuuid"].clone();
    let (_, body) = app
        .root(
            "UserUpdateRequest",
            with(jane(), json!({"profile": {"name": "J"}})),
        )
        .await;
    let profile_request = body["requestuuid"].clone();
    app.root("UserRequestCancel", json!({"requestuuid": profile_request}))
        .await;
    // A role that sees one profile field: may decide no request (each needs what it touches).
    app.grant(
        "names",
        "names",
        json!({"Effect": "Allow", "Action": ["UserRequestGet", "UserRequestCancel", "UserRequestApprove", "UserRequestListUserRequests"],
               "Resource": ["users.profile.name"]}),
    )
    .await;
    let names = app.role_token("names").await;
    for command in ["UserRequestGet", "UserRequestCancel", "UserRequestApprove"] {
        for uuid in [&app_request, &profile_request] {
            let (status, body) = app
                .call(command, &names, None, json!({"requestuuid": uuid}))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{command} {uuid}: {body}");
        }
    }
    let by_token = json!({"mode": "token", "identity": token});
    let (status, _) = app
        .call(
            "UserRequestListUserRequests",
            &names,
            None,
            by_token.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A role that sees app data: the app-data request only; a closed profile request looks like
    // any it may not touch (not "closed").
    app.grant(
        "shop",
        "shop",
        json!({"Effect": "Allow", "Action": ["UserRequestApprove", "UserRequestListUserRequests"],
               "Resource": ["users.appdata"]}),
    )
    .await;
    let shop = app.role_token("shop").await;
    let (status, body) = app
        .call(
            "UserRequestApprove",
            &shop,
            None,
            json!({"requestuuid": profile_request}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, body) = app
        .call("UserRequestListUserRequests", &shop, None, by_token)
        .await;
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(body["rows"][0]["requesttype"], "change-app-data");
    let (status, body) = app
        .call(
            "UserRequestApprove",
            &shop,
            None,
            json!({"requestuuid": app_request}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app
        .root("AppdataGet", with(jane(), json!({"appname": "shop"})))
        .await;
    assert_eq!(body["appdata"], json!({"size": "L"}));
    // An app-data request for an app the user has no data for is refused when asked.
    let (status, _) = app
        .root(
            "AppdataUpdateRequest",
            with(jane(), json!({"appname": "none", "appdata": {"a": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn request_events_reach_the_tenants_webhook_signed_retried_and_never_holding_the_request() {
    let app = TestApp::spawn().await;
    let token = app
        .create_user(json!({"login": "jane", "city": "Leeds"}))
        .await;
    // A tenant admin may not point Bunker at this machine or a private network.
    let (_, acme) = app.create_tenant("acme").await;
    for url in [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "http://127.0.0.1:8080/hook",
    ] {
        let webhook = json!({"webhook": {"url": url, "secret": "s".repeat(40)}});
        let (status, body) = app.call("TenantUpdate", &acme, Some("acme"), webhook).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
    }
    let public =
        json!({"webhook": {"url": "https://hooks.example.com/bunker", "secret": "s".repeat(40)}});
    let (status, body) = app.call("TenantUpdate", &acme, Some("acme"), public).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Refused: not HTTPS (plain HTTP only to this machine), a short secret, no secret.
    for (webhook, rule) in [
        (
            json!({"url": "http://example.com/hook", "secret": "s".repeat(40)}),
            "https://",
        ),
        (
            json!({"url": "ftp://127.0.0.1/hook", "secret": "s".repeat(40)}),
            "https://",
        ),
        (
            json!({"url": "https://example.com/hook", "secret": "short"}),
            "32 to 256",
        ),
        (json!({"url": "https://example.com/hook"}), "webhook.secret"),
    ] {
        let (status, body) = app.root("TenantUpdate", json!({"webhook": webhook})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["message"].as_str().unwrap().contains(rule), "{body}");
    }
    // A TenantUpdate refused for another field sets no webhook either.
    let (status, _) = app
        .root(
            "TenantUpdate",
            json!({"tenantorg": "x".repeat(300), "webhook": {"url": "https://hooks.example.com/", "secret": "s".repeat(40)}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let db = app.superuser().await;
    let none: Option<String> = db
        .query_one(
            "SELECT webhook_url FROM tenants WHERE name = 'default'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(none.is_none(), "{none:?}");
    // A receiver that fails twice, then takes deliveries.
    let receiver = WebhookReceiver::start(2).await;
    let secret = "webhook-secret-for-the-test-0123456789";
    let (status, body) = app
        .root(
            "TenantUpdate",
            json!({"webhook": {"url": receiver.url, "secret": secret}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let user = app.user_xtoken("login", "jane").await;
    let (status, body) = app
        .call(
            "UserUpdateRequest",
            &user,
            None,
            with(jane(), json!({"profile": {"city": "York"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let uuid = body["requestuuid"].as_str().unwrap().to_owned();
    // The request was answered with its delivery only queued.
    let queued: i64 = db
        .query_one("SELECT count(*) FROM webhook_outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert!(queued <= 1);
    let deliveries = receiver.deliveries(3).await;
    assert_eq!(
        deliveries.len(),
        3,
        "two failures, then the delivery: {deliveries:?}"
    );
    for (signature, body) in &deliveries {
        assert_eq!(
            signature,
            &signed(secret, body),
            "signed with the tenant's secret"
        );
        let event: Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["event"], "UserRequestCreated");
        assert_eq!(event["usertoken"], token.as_str());
        assert_eq!(event["requestuuid"], uuid.as_str());
        assert!(
            !body.contains("York") && !body.contains("jane"),
            "no personal data: {body}"
        );
    }
    let (status, _) = app
        .root("UserRequestApprove", json!({"requestuuid": uuid}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let deliveries = receiver.deliveries(4).await;
    let last: Value = serde_json::from_str(&deliveries[3].1).unwrap();
    assert_eq!(last["event"], "UserRequestApproved");
    // (The receiver has it before the server has its answer and removes it.)
    let mut left: i64 = -1;
    for _ in 0..100 {
        left = db
            .query_one("SELECT count(*) FROM webhook_outbox", &[])
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "delivered deliveries leave the outbox");
    // TenantGet names the webhook, never its secret.
    let (_, tenant) = app.root("TenantGet", json!({"tenantid": 1})).await;
    assert_eq!(tenant["webhookurl"], receiver.url.as_str());
    assert!(!tenant.to_string().contains(secret));
    // The secret is stored sealed.
    let sealed: Vec<u8> = db
        .query_one(
            "SELECT webhook_secret FROM tenants WHERE name = 'default'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!sealed.windows(14).any(|w| w == &secret.as_bytes()[..14]));
    // With the receiver gone, requests are still answered; the delivery waits in the outbox.
    app.root(
        "TenantUpdate",
        json!({"webhook": {"url": "http://127.0.0.1:9/hook", "secret": secret}}),
    )
    .await;
    let (status, _) = app.call("UserDeleteRequest", &user, None, jane()).await;
    assert_eq!(status, StatusCode::OK);
    let mut waiting = 0;
    for _ in 0..150 {
        waiting = db
            .query_one("SELECT max(attempts) FROM webhook_outbox", &[])
            .await
            .unwrap()
            .get::<_, Option<i32>>(0)
            .unwrap_or(0);
        if waiting >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(waiting >= 1, "the failing delivery is retried later");
    // Removing the webhook stops deliveries: what was queued goes.
    let (status, _) = app
        .root("TenantUpdate", json!({"webhook": {"url": ""}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let queued: i64 = db
        .query_one("SELECT count(*) FROM webhook_outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 0);
}

#[tokio::test]
async fn a_decision_waits_for_the_users_row_before_it_holds_the_request() {
    // A new request of a user locks the user's row, then meets the open request; a decision must
    // take the same order (user, then request), or the two deadlock (each holding what the other
    // waits for). Here another transaction holds the user's row, as a new request in progress
    // does: the approval must wait for it without holding the request meanwhile.
    let app = TestApp::spawn().await;
    let token = app.create_user(json!({"login": "jane"})).await;
    let (_, body) = app
        .root(
            "UserUpdateRequest",
            with(jane(), json!({"profile": {"n": 1}})),
        )
        .await;
    let uuid = body["requestuuid"].as_str().unwrap().to_owned();
    let mut db = app.superuser().await;
    let holder = db.transaction().await.unwrap();
    holder
        .execute(
            "SELECT 1 FROM users WHERE token = $1::text::uuid FOR NO KEY UPDATE",
            &[&token],
        )
        .await
        .unwrap();
    let approve = app
        .command("UserRequestApprove")
        .header("X-Bunker-Token", &app.root_token)
        .json(&json!({"requestuuid": uuid}));
    let pending = tokio::spawn(bunker_tests::answer(approve));
    app.until_a_query_waits_for_a_lock().await;
    // The request is free while the approval waits.
    let free = holder
        .query(
            "SELECT 1 FROM user_requests WHERE uuid = $1::text::uuid FOR UPDATE NOWAIT",
            &[&uuid],
        )
        .await;
    assert!(
        free.is_ok(),
        "the approval holds the request while it waits for the user"
    );
    holder.rollback().await.unwrap();
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn one_tenants_silent_receiver_does_not_hold_another_tenants_deliveries() {
    let app = TestApp::spawn().await;
    let (a, a_token) = app.create_tenant("tenant-a").await;
    let (b, b_token) = app.create_tenant("tenant-b").await;
    // Tenant A's receiver takes connections and never answers (each attempt waits out the
    // delivery timeout, 5 s).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!(
        "http://127.0.0.1:{}/hook",
        silent.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let receiver = WebhookReceiver::start(0).await;
    let secret = "s".repeat(40);
    for (id, url) in [(a, &silent_url), (b, &receiver.url)] {
        let webhook = json!({"tenantid": id, "webhook": {"url": url, "secret": secret}});
        let (status, body) = app.root("TenantUpdate", webhook).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for (token, tenant) in [(&a_token, "tenant-a"), (&b_token, "tenant-b")] {
        let profile = json!({"profile": {"login": format!("someone-{tenant}")}});
        let (status, _) = app.call("UserCreate", token, Some(tenant), profile).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Several of A's first, so that B's would queue behind them if tenants went one by one.
    for n in 0..3 {
        let ask = json!({"mode": "login", "identity": "someone-tenant-a", "profile": {"n": n}});
        app.call("UserUpdateRequest", &a_token, Some("tenant-a"), ask)
            .await;
        let (_, open) = app
            .call(
                "UserRequestListUserRequests",
                &a_token,
                Some("tenant-a"),
                json!({"mode": "login", "identity": "someone-tenant-a"}),
            )
            .await;
        let uuid = open["rows"][0]["requestuuid"].clone();
        app.call(
            "UserRequestCancel",
            &a_token,
            Some("tenant-a"),
            json!({"requestuuid": uuid}),
        )
        .await;
    }
    let ask = json!({"mode": "login", "identity": "someone-tenant-b", "profile": {"n": 1}});
    let (status, _) = app
        .call("UserUpdateRequest", &b_token, Some("tenant-b"), ask)
        .await;
    assert_eq!(status, StatusCode::OK);
    // B's delivery arrives while A's first is still waiting for its answer.
    let started = std::time::Instant::now();
    let deliveries = receiver.deliveries(1).await;
    assert_eq!(deliveries.len(), 1, "tenant B's delivery did not arrive");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "tenant B's delivery waited {:?} behind tenant A's silent receiver",
        started.elapsed()
    );
    let event: Value = serde_json::from_str(&deliveries[0].1).unwrap();
    assert_eq!(event["event"], "UserRequestCreated");
}

#[tokio::test]
async fn a_patch_request_over_the_operation_limit_is_refused_not_kept() {
    let app = TestApp::spawn().await;
    let token = app.create_user(json!({"login": "jane"})).await;
    let operations = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"op": "add", "path": format!("/k{i}"), "value": i}))
            .collect()
    };
    let (status, body) = app
        .root(
            "UserPatchRequest",
            json!({"mode": "token", "identity": token, "patch": operations(101)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("at most 100"));
    let (status, body) = app
        .root(
            "UserRequestListUserRequests",
            json!({"mode": "token", "identity": token}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 0, "{body}");
    let (status, body) = app
        .root(
            "UserPatchRequest",
            json!({"mode": "token", "identity": token, "patch": operations(100)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
