//! UserSearch (fuzzy, behind an unlock) and the user listings BulkListUsers and BulkListAllUsers.

use bunker_tests::{StatusCode, TestApp, TestOptions};
use serde_json::json;

async fn unlock(app: &TestApp) -> String {
    let (status, body) = app.root("BulkListUnlock", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["unlockuuid"].as_str().unwrap().to_owned()
}

async fn search(app: &TestApp, unlock: &str, identity: &str) -> Vec<String> {
    let (status, body) = app
        .root(
            "UserSearch",
            json!({"identity": identity, "unlockuuid": unlock}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{identity}: {body}");
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["profile"]["login"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// A server whose listings (UserSearch among them) are on.
async fn listing_app() -> TestApp {
    TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await
}

#[tokio::test]
async fn a_misspelled_or_partial_value_finds_the_user() {
    let app = listing_app().await;
    app.create_user(json!({"login": "jdoe", "email": "john.doe@example.com", "phone": "+447911123456", "name": "John"})).await;
    app.create_user(
        json!({"login": "jane", "email": "jane@example.org", "phone": "+447911123457"}),
    )
    .await;
    app.create_user(
        json!({"login": "asmith", "email": "a.smith@example.net", "custom": "EMP-00042"}),
    )
    .await;
    let forgotten = app.create_user(json!({"login": "jdoe2"})).await;
    app.root(
        "UserDelete",
        json!({"mode": "token", "identity": forgotten}),
    )
    .await;
    let unlock = unlock(&app).await;

    assert_eq!(
        search(&app, &unlock, "jdoee").await,
        ["jdoe"],
        "jdoee finds jdoe"
    );
    assert_eq!(search(&app, &unlock, "JDOE").await, ["jdoe"], "any case");
    assert_eq!(
        search(&app, &unlock, "jhon.doe@example.com").await,
        ["jdoe"],
        "a typo in an email"
    );
    assert_eq!(
        search(&app, &unlock, "smith@example").await,
        ["asmith"],
        "part of an email"
    );
    assert_eq!(
        search(&app, &unlock, "emp-0042").await,
        ["asmith"],
        "a custom value"
    );
    assert_eq!(
        search(&app, &unlock, "07911 123457").await,
        ["jane", "jdoe"],
        "a phone in local form: exact first, one digit off next"
    );
    assert!(
        search(&app, &unlock, "zzzzzz").await.is_empty(),
        "nothing alike"
    );
    assert!(
        search(&app, &unlock, "x").await.is_empty(),
        "too short to search"
    );

    // Every user answered is audited; the search term itself is never stored.
    let db = app.superuser().await;
    let events: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'UserSearch'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 7);

    // Another tenant's search sees none of these users.
    let (_, acme) = app.create_tenant("acme").await;
    let (_, body) = app
        .call("BulkListUnlock", &acme, Some("acme"), json!({}))
        .await;
    let (status, body) = app
        .call(
            "UserSearch",
            &acme,
            Some("acme"),
            json!({"identity": "jdoe", "unlockuuid": body["unlockuuid"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rows"], json!([]));
}

#[tokio::test]
async fn listing_users_is_off_unless_configured() {
    let app = TestApp::spawn().await;
    let unlock = unlock(&app).await;
    let (status, body) = app
        .root("BulkListAllUsers", json!({"unlockuuid": unlock}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "BulkListAllUsers is disabled");
    let (status, body) = app
        .root(
            "BulkListUsers",
            json!({"unlockuuid": unlock, "users": [{"mode": "login", "identity": "x"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "BulkListUsers is disabled");
    // A search for a few letters lists users too.
    app.create_user(json!({"login": "jdoe"})).await;
    let (status, body) = app
        .root(
            "UserSearch",
            json!({"unlockuuid": unlock, "identity": "jdo"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "UserSearch is disabled");
}

#[tokio::test]
async fn users_are_listed_by_value_or_page_by_page() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    for i in 0..12 {
        app.create_user(
            json!({"login": format!("user{i:02}"), "email": format!("u{i}@example.com")}),
        )
        .await;
    }
    let unlock = unlock(&app).await;
    let (status, body) = app
        .root(
            "BulkListUsers",
            json!({"unlockuuid": unlock, "users": [
                {"mode": "email", "identity": "U3@example.com"},
                {"mode": "login", "identity": "user07"},
                {"mode": "login", "identity": "nobody"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 2, "unknown values are left out");
    assert_eq!(body["rows"][0]["profile"]["login"], "user03");
    assert_eq!(body["rows"][1]["profile"]["login"], "user07");
    for bad in [
        json!({"unlockuuid": unlock, "users": []}),
        json!({"unlockuuid": unlock, "users": [{"mode": "token", "identity": "x"}]}),
        json!({"unlockuuid": unlock, "users": [{"mode": "phone", "identity": "not a phone"}]}),
    ] {
        assert_eq!(
            app.root("BulkListUsers", bad).await.0,
            StatusCode::BAD_REQUEST
        );
    }

    let (status, body) = app
        .root(
            "BulkListAllUsers",
            json!({"unlockuuid": unlock, "offset": 10, "limit": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 12);
    let logins: Vec<&str> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["profile"]["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, ["user10", "user11"], "oldest first");
    let events: i64 = app
        .superuser()
        .await
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action IN ('BulkListUsers', 'BulkListAllUsers')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 4, "one event per user listed");
}

#[tokio::test]
async fn every_unlock_gated_command_refuses_a_missing_expired_or_foreign_unlock() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        unlock_seconds: 1,
        ..TestOptions::default()
    })
    .await;
    app.root("GroupCreate", json!({"groupname": "g"})).await;
    let (_, acme) = app.create_tenant("acme").await;
    let (_, foreign) = app
        .call("BulkListUnlock", &acme, Some("acme"), json!({}))
        .await;
    let foreign = foreign["unlockuuid"].as_str().unwrap().to_owned();
    let expired = unlock(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let commands = [
        (
            "BulkListUsers",
            json!({"users": [{"mode": "login", "identity": "x"}]}),
        ),
        ("BulkListAllUsers", json!({})),
        ("BulkListGroupUsers", json!({"groupname": "g"})),
        ("BulkListAllAuditEvents", json!({})),
        ("BulkListTokens", json!({"tokens": []})),
        ("BulkDeleteTokens", json!({"tokens": []})),
        ("UserSearch", json!({"identity": "jdoe"})),
    ];
    for (command, body) in commands {
        let (status, answer) = app.root(command, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{command} without: {answer}"
        );
        for (unlock, why) in [(&expired, "expired"), (&foreign, "another tenant's")] {
            let mut with = body.clone();
            with["unlockuuid"] = json!(unlock);
            let (status, answer) = app.root(command, with).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{command} with an {why} unlock"
            );
            assert_eq!(
                answer["message"],
                "The unlockuuid value was not found or is not valid"
            );
        }
        let mut with = body.clone();
        with["unlockuuid"] = json!(unlock(&app).await);
        assert_eq!(
            app.root(command, with).await.0,
            StatusCode::OK,
            "{command} with a fresh one"
        );
    }
}
