//! The tenant commands, as in CONTRACT.md.

use bunker_tests::{tenant_tables, StatusCode, TestApp};
use serde_json::json;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn tenant_create_returns_an_id_and_a_token_stored_only_as_its_hash() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .root(
            "TenantCreate",
            json!({"tenantname": "acme", "tenantorg": "Acme Inc", "email": "ops@acme.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert!(body["tenantid"].as_i64().unwrap() > 1);
    let xtoken = body["xtoken"].as_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(xtoken).is_ok(),
        "xtoken {xtoken} is UUID-shaped"
    );

    let db = app.superuser().await;
    let hash = Sha256::digest(xtoken.as_bytes()).to_vec();
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM access_tokens WHERE token_hash = $1 AND kind = 'tenant_admin'",
            &[&hash],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1, "the token's SHA-256 is stored");
    let dump: String = db
        .query_one("SELECT string_agg(t::text, ' ') FROM access_tokens t", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains(xtoken), "the token itself is not stored");
    assert!(!dump.contains(&app.root_token), "nor is the root token");
}

#[tokio::test]
async fn duplicate_tenant_name_is_409() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme").await;
    let (status, body) = app
        .root(
            "TenantCreate",
            json!({"tenantname": "acme", "tenantorg": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body,
        json!({"status": "error", "message": "Duplicate tenant name"})
    );
    app.create_tenant("globex").await;
    let (status, _) = app
        .root(
            "TenantUpdate",
            json!({"tenantid": 2, "tenantname": "globex"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "renaming onto a taken name");
}

#[tokio::test]
async fn missing_fields_are_named_in_a_400() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .root("TenantCreate", json!({"tenantname": "acme"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Missing API request parameters: tenantorg");
    let (status, body) = app
        .root(
            "TenantCreate",
            json!({"tenantname": "acme", "tenantorg": null}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "null means absent");
    assert_eq!(body["message"], "Missing API request parameters: tenantorg");
    let (status, body) = app.root("TenantGet", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Missing API request parameters: tenantid");
}

#[tokio::test]
async fn tenant_admin_manages_only_its_own_tenant() {
    let app = TestApp::spawn().await;
    let (acme, token) = app.create_tenant("acme").await;
    let (globex, _) = app.create_tenant("globex").await;
    let acme_call = |command: &'static str, body: serde_json::Value| {
        let token = token.clone();
        let app = &app;
        async move { app.call(command, &token, Some("acme"), body).await }
    };

    let (status, body) = acme_call("TenantGet", json!({"tenantid": acme})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "ok", "tenantid": acme, "tenantname": "acme", "tenantorg": "acme org",
               "selfservice": {"user_change": false, "forget_me": false, "app_data_change": false},
               "webhookurl": null, "ratelimit": null})
    );
    let (status, _) = acme_call("TenantUpdate", json!({"tenantorg": "Acme Ltd"})).await;
    assert_eq!(status, StatusCode::OK);

    for (command, body) in [
        ("TenantGet", json!({"tenantid": globex})),
        (
            "TenantUpdate",
            json!({"tenantid": globex, "tenantorg": "taken over"}),
        ),
        (
            "TenantCreate",
            json!({"tenantname": "evil", "tenantorg": "x"}),
        ),
        ("TenantDelete", json!({"tenantid": acme})),
        ("TenantListTenants", json!({})),
    ] {
        let (status, answer) = acme_call(command, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {answer}");
        assert_eq!(answer["status"], "error");
    }
    let (_, body) = app.root("TenantGet", json!({"tenantid": globex})).await;
    assert_eq!(body["tenantorg"], "globex org", "globex untouched");
    let (_, body) = app.root("TenantGet", json!({"tenantid": acme})).await;
    assert_eq!(body["tenantorg"], "Acme Ltd");
}

#[tokio::test]
async fn renamed_tenant_answers_to_its_new_name_only() {
    let app = TestApp::spawn().await;
    let (acme, token) = app.create_tenant("acme").await;
    let (status, _) = app
        .call(
            "TenantUpdate",
            &token,
            Some("acme"),
            json!({"tenantname": "acme-new"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call(
            "TenantGet",
            &token,
            Some("acme-new"),
            json!({"tenantid": acme.to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "numeric string id accepted: {body}");
    assert_eq!(body["tenantname"], "acme-new");
    let (status, _) = app
        .call(
            "TenantListTenants",
            &app.root_token,
            Some("acme"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "old name is gone");
}

#[tokio::test]
async fn default_tenant_can_be_neither_renamed_nor_deleted() {
    let app = TestApp::spawn().await;
    let (status, _) = app
        .root("TenantUpdate", json!({"tenantid": 1, "tenantname": "main"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.root("TenantDelete", json!({"tenantid": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .root(
            "TenantUpdate",
            json!({"tenantid": 1, "tenantorg": "Main org"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "its org may change");
}

#[tokio::test]
async fn tenant_delete_removes_every_row_of_the_tenant_and_its_token() {
    let app = TestApp::spawn().await;
    let (acme, token) = app.create_tenant("acme").await;
    let (globex, _) = app.create_tenant("globex").await;
    // Give both tenants rows of their own in tenant tables.
    for _ in 0..3 {
        app.call(
            "TenantUpdate",
            &token,
            Some("acme"),
            json!({"tenantorg": "a"}),
        )
        .await;
        app.call(
            "TenantUpdate",
            &app.root_token,
            Some("globex"),
            json!({"tenantorg": "g"}),
        )
        .await;
    }
    let db = app.superuser().await;
    let tables = tenant_tables(&db).await;
    assert!(!tables.is_empty());
    let rows_of = |tenant: i64| {
        let db = &db;
        let tables = tables.clone();
        async move {
            let mut total = 0;
            for table in &tables {
                let n: i64 = db
                    .query_one(
                        &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
                        &[&tenant],
                    )
                    .await
                    .unwrap()
                    .get(0);
                total += n;
            }
            total
        }
    };
    assert!(rows_of(acme).await >= 3);
    // And a user with every kind of row a user has, and a token.
    let (status, _) = app
        .call(
            "UserCreate",
            &token,
            Some("acme"),
            json!({"profile": {"email": "someone@acme.test", "login": "someone", "name": "S"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            "TokenCreate",
            &token,
            Some("acme"),
            json!({"tokentype": "creditcard", "record": "4111111111111111", "unique": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let count = |table: &'static str| {
        let db = &db;
        async move {
            db.query_one(
                &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
                &[&acme],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    for table in [
        "users",
        "user_versions",
        "user_indexes",
        "user_search",
        "tokens",
    ] {
        assert!(count(table).await > 0, "{table} has rows of the tenant");
    }

    let (status, body) = app.root("TenantDelete", json!({"tenantid": acme})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"status": "ok"}));
    assert_eq!(
        rows_of(acme).await,
        0,
        "no row of the deleted tenant is left"
    );
    assert!(
        rows_of(globex).await >= 3,
        "the other tenant keeps its rows"
    );
    let tokens: i64 = db
        .query_one(
            "SELECT count(*) FROM access_tokens WHERE tenant_id = $1",
            &[&acme],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tokens, 0);
    let (status, _) = app
        .call("TenantGet", &token, Some("acme"), json!({"tenantid": acme}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "its token no longer works"
    );
    let (status, _) = app.root("TenantDelete", json!({"tenantid": acme})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleting it again");
}

#[tokio::test]
async fn tenant_list_pages_with_offset_limit_and_total() {
    let app = TestApp::spawn().await;
    for name in ["a1", "a2", "a3", "a4"] {
        app.create_tenant(name).await;
    }
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["tenantname"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, body) = app
        .root("TenantListTenants", json!({"offset": 1, "limit": 2}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 5);
    assert_eq!(names(&body), ["a1", "a2"]);
    let (_, body) = app
        .root("TenantListTenants", json!({"offset": "4", "limit": "2"}))
        .await;
    assert_eq!(names(&body), ["a4"]);
    for limit in [0, -5, 1000] {
        let (_, body) = app.root("TenantListTenants", json!({"limit": limit})).await;
        assert_eq!(names(&body).len(), 5, "limit {limit} means 100");
    }
    let (_, body) = app.root("TenantListTenants", json!({})).await;
    assert_eq!(
        body["rows"][0],
        json!({"tenantid": 1, "tenantname": "default", "tenantorg": "default"})
    );
    let (status, _) = app.root("TenantListTenants", json!({"offset": -1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn each_tenant_change_leaves_an_audit_event() {
    let app = TestApp::spawn().await;
    let (acme, token) = app.create_tenant("acme").await;
    app.call(
        "TenantUpdate",
        &token,
        Some("acme"),
        json!({"tenantorg": "x"}),
    )
    .await;
    let (doomed, _) = app.create_tenant("doomed").await;
    app.root("TenantDelete", json!({"tenantid": doomed})).await;

    let db = app.superuser().await;
    let events: Vec<(i64, String, String, String)> = db
        .query(
            "SELECT tenant_id, actor_kind, action, target FROM audit_events ORDER BY occurred_at, action",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let expected = vec![
        (
            1,
            "root".to_owned(),
            "TenantCreate".to_owned(),
            format!("tenant:{acme}"),
        ),
        (
            acme,
            "tenant_admin".to_owned(),
            "TenantUpdate".to_owned(),
            format!("tenant:{acme}"),
        ),
        (
            1,
            "root".to_owned(),
            "TenantCreate".to_owned(),
            format!("tenant:{doomed}"),
        ),
        (
            1,
            "root".to_owned(),
            "TenantDelete".to_owned(),
            format!("tenant:{doomed}"),
        ),
    ];
    assert_eq!(events, expected);
}

#[tokio::test]
async fn a_change_committed_while_its_tenant_is_deleted_leaves_nothing_behind() {
    let app = TestApp::spawn().await;
    let (acme, token) = app.create_tenant("acme").await;
    let (status, body) = app
        .call(
            "UserCreate",
            &token,
            Some("acme"),
            json!({"profile": {"login": "racer", "email": "r@acme.test"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A change of the user in flight: its row locked, a new version written, not yet committed
    // (what UserUpdate does between its UPDATE and its COMMIT).
    let mut changer = app.superuser().await;
    let change = changer.transaction().await.unwrap();
    change
        .batch_execute(&format!(
            "UPDATE users SET version = version + 1 WHERE tenant_id = {acme};
             INSERT INTO user_versions (tenant_id, token, version, record)
             SELECT tenant_id, token, version, record FROM users WHERE tenant_id = {acme};
             INSERT INTO user_search (tenant_id, token, field, grams)
             SELECT tenant_id, token, 'custom', '{{1,2}}' FROM users WHERE tenant_id = {acme};"
        ))
        .await
        .unwrap();
    let delete = {
        let request = app
            .command("TenantDelete")
            .header("X-Bunker-Token", &app.root_token)
            .json(&json!({"tenantid": acme}));
        tokio::spawn(bunker_tests::answer(request))
    };
    // Let the delete reach the lock the change holds, then commit the change.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    change.commit().await.unwrap();
    let (status, body) = delete.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let db = app.superuser().await;
    for table in ["users", "user_versions", "user_indexes", "user_search"] {
        let left: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
                &[&acme],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{table}: nothing of the deleted tenant is left");
    }
}

#[tokio::test]
async fn root_naming_another_tenant_still_runs_the_main_tenants_commands() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme").await;
    // Roles, policies and tenants live in the main tenant: asked for with X-Bunker-Tenant: acme,
    // they are done there (this closed the connection in debug builds before).
    for (command, body) in [
        ("RoleCreate", json!({"rolename": "clerk"})),
        (
            "TenantCreate",
            json!({"tenantname": "globex", "tenantorg": "Globex"}),
        ),
        ("TenantListTenants", json!({})),
    ] {
        let (status, answer) = app.call(command, &app.root_token, Some("acme"), body).await;
        assert_eq!(status, StatusCode::OK, "{command}: {answer}");
    }
    let (status, _) = app
        .root("XTokenCreateForRole", json!({"rolename": "clerk"}))
        .await;
    assert_eq!(status, StatusCode::OK, "the role is the main tenant's");
}
