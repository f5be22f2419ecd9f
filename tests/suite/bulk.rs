//! Bulk commands behind the unlock gate.

use std::time::Duration;

use bunker_tests::{StatusCode, TestApp, TestOptions};
use serde_json::json;

async fn unlock(app: &TestApp, token: &str, tenant: Option<&str>) -> String {
    let (status, body) = app.call("BulkListUnlock", token, tenant, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["unlockuuid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn bulk_commands_refuse_a_missing_expired_or_foreign_unlock() {
    let app = TestApp::spawn_with(TestOptions {
        unlock_seconds: 1,
        ..TestOptions::default()
    })
    .await;
    let (_, acme) = app.create_tenant("acme").await;
    let (_, made) = app
        .root("TokenCreate", json!({"tokentype": "uint32", "record": "7"}))
        .await;
    let tokens = json!([made["tokenuuid"]]);

    let (status, _) = app.root("BulkListTokens", json!({"tokens": tokens})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no unlockuuid");
    for bogus in ["", "not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        let (status, body) = app
            .root(
                "BulkListTokens",
                json!({"unlockuuid": bogus, "tokens": tokens}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{bogus:?}");
        assert_eq!(
            body["message"],
            "The unlockuuid value was not found or is not valid"
        );
    }
    let foreign_tenant = unlock(&app, &acme, Some("acme")).await;
    let (status, _) = app
        .root(
            "BulkListTokens",
            json!({"unlockuuid": foreign_tenant, "tokens": tokens}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another tenant's unlock");
    let (status, _) = app
        .call(
            "BulkListTokens",
            &app.root_token,
            Some("acme"),
            json!({"unlockuuid": foreign_tenant, "tokens": tokens}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another token's unlock, even in its tenant"
    );

    let fresh = unlock(&app, &app.root_token, None).await;
    let (status, body) = app
        .root(
            "BulkListTokens",
            json!({"unlockuuid": fresh, "tokens": tokens}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .root(
            "BulkListTokens",
            json!({"unlockuuid": fresh, "tokens": tokens}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "reusable within its lifetime");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _) = app
        .root(
            "BulkListTokens",
            json!({"unlockuuid": fresh, "tokens": tokens}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "expired");
}

#[tokio::test]
async fn bulk_token_listing_and_deletion_are_audited_per_token() {
    let app = TestApp::spawn().await;
    let mut handles = Vec::new();
    for value in ["4111111111111111", "5555555555554444"] {
        let (_, made) = app
            .root(
                "TokenCreate",
                json!({"tokentype": "creditcard", "record": value}),
            )
            .await;
        handles.push(made["tokenbase"].as_str().unwrap().to_owned());
    }
    let key = unlock(&app, &app.root_token, None).await;
    let (status, body) = app
        .root(
            "BulkListTokens",
            json!({"unlockuuid": key, "tokens": [handles[0], handles[1], "no-such-token"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 2);
    assert_eq!(body["rows"][1]["record"], "5555555555554444");
    let (status, body) = app
        .root(
            "BulkDeleteTokens",
            json!({"unlockuuid": key, "tokens": handles}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["deleted"], 2);
    assert_eq!(
        app.root("TokenGet", json!({"token": handles[0]})).await.0,
        StatusCode::NOT_FOUND
    );
    let db = app.superuser().await;
    for (action, expected) in [
        ("BulkListTokens", 2i64),
        ("BulkDeleteTokens", 2),
        ("BulkListUnlock", 1),
    ] {
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM audit_events WHERE action = $1",
                &[&action],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, expected, "{action}");
    }
}

#[tokio::test]
async fn group_members_and_the_audit_trail_are_listed_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    app.root("RoleCreate", json!({"rolename": "child"})).await;
    app.root("GroupCreate", json!({"groupname": "family"}))
        .await;
    for i in 0..3 {
        let (status, _) = app
            .root("UserCreate", json!({"profile": {"login": format!("kid{i}"), "n": i}, "groupname": "family", "rolename": "child"}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let key = unlock(&app, &app.root_token, None).await;
    let (status, body) = app
        .root(
            "BulkListGroupUsers",
            json!({"unlockuuid": key, "groupname": "family", "offset": 1, "limit": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 3);
    assert_eq!(body["rows"][0]["profile"], json!({"login": "kid1", "n": 1}));
    assert_eq!(body["rows"][0]["rolename"], "child");
    let (status, _) = app
        .root(
            "BulkListGroupUsers",
            json!({"unlockuuid": key, "groupname": "nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let read: i64 = app
        .superuser()
        .await
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'BulkListGroupUsers'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(read, 1, "one event per user read");

    let (status, body) = app
        .root(
            "BulkListAllAuditEvents",
            json!({"unlockuuid": key, "limit": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rows"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["total"], 7,
        "RoleCreate, GroupCreate, 3 UserCreate, BulkListUnlock, BulkListGroupUsers"
    );
    assert_eq!(
        body["rows"][0]["eventtype"], "BulkListGroupUsers",
        "newest first"
    );
}
