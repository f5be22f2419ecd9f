//! The lifecycle of access tokens: a tenant's tokens listed (never their values), one revoked,
//! an admin or the root token rotated; each takes effect at once on every server.

use bunker_tests::{answer, run_bunker, StatusCode, TestApp};
use serde_json::{json, Value};

async fn call_at(
    app: &TestApp,
    address: &str,
    command: &str,
    token: &str,
    tenant: &str,
) -> (StatusCode, Value) {
    answer(
        app.http
            .post(format!("{address}/v2/{command}"))
            .header("X-Bunker-Token", token)
            .header("X-Bunker-Tenant", tenant)
            .json(&json!({})),
    )
    .await
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once_on_every_server() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("acme").await;
    app.root("RoleCreate", json!({"rolename": "clerk"})).await;
    let (_, role) = app
        .call(
            "XTokenCreateForRole",
            &admin,
            Some("acme"),
            json!({"rolename": "clerk"}),
        )
        .await;
    let role = role["xtoken"].as_str().unwrap().to_owned();
    let (status, listed) = app
        .call("TenantListTokens", &admin, Some("acme"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let kinds: Vec<&str> = listed["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["tenant_admin", "role"]);
    assert_eq!(listed["rows"][1]["rolename"], "clerk");
    for secret in [&admin, &role] {
        assert!(
            !listed.to_string().contains(secret.as_str()),
            "no token value is listed"
        );
    }
    let (status, _) = app
        .call("TenantListTokens", &role, Some("acme"), json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins only");

    // A second server process over the same database.
    let (replica, _running) = app.server_process().await;
    let (status, _) = call_at(&app, &replica, "GroupListAllGroups", &role, "acme").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "known on the replica (no policy allows it)"
    );
    let (status, body) = app
        .call(
            "TenantRevokeToken",
            &admin,
            Some("acme"),
            json!({"tokenid": listed["rows"][1]["tokenid"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = call_at(&app, &replica, "GroupListAllGroups", &role, "acme").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked on the replica at once"
    );
    let (status, _) = app
        .call(
            "TenantRevokeToken",
            &admin,
            Some("acme"),
            json!({"tokenid": uuid::Uuid::new_v4().to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rotating_an_admin_token_revokes_the_old_one() {
    let app = TestApp::spawn().await;
    let (_, old) = app.create_tenant("acme").await;
    let (status, body) = app
        .call("TenantRotateToken", &old, Some("acme"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["xtoken"].as_str().unwrap();
    let (status, _) = app
        .call("TenantListTokens", new, Some("acme"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call("TenantListTokens", &old, Some("acme"), json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Root rotates any tenant's admin token, named by the tenant header.
    let (status, body) = app
        .call(
            "TenantRotateToken",
            &app.root_token,
            Some("acme"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .call("TenantListTokens", new, Some("acme"), json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The default tenant's administrator is the root token: no admin token is made for it.
    let (status, body) = app
        .call(
            "TenantRotateToken",
            &app.root_token,
            Some("default"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("rotate-root"),
        "{body}"
    );
    let (ok, _, stderr) = run_bunker(
        &["token", "rotate-admin", "--tenant", "default"],
        &[("BUNKER_DATABASE_URL", app.database_url().as_str())],
    )
    .await;
    assert!(!ok && stderr.contains("rotate-root"), "{stderr}");
}

#[tokio::test]
async fn the_command_line_lists_revokes_and_rotates_tokens() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("acme").await;
    let url = app.database_url();
    let env = [("BUNKER_DATABASE_URL", url.as_str())];
    let (ok, listed, stderr) = run_bunker(&["token", "list", "--tenant", "acme"], &env).await;
    assert!(ok, "{stderr}");
    assert!(
        listed.contains("tenant_admin") && !listed.contains(&admin),
        "{listed}"
    );
    let id = listed.split_whitespace().next().unwrap().to_owned();
    let (ok, _, stderr) = run_bunker(&["token", "revoke", "--tenant", "acme", &id], &env).await;
    assert!(ok, "{stderr}");
    let (status, _) = app
        .call("TenantListTokens", &admin, Some("acme"), json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked from the command line"
    );

    let (ok, printed, stderr) = run_bunker(&["token", "rotate-root"], &env).await;
    assert!(ok, "{stderr}");
    let new_root = printed.split_whitespace().last().unwrap();
    let (status, _) = app
        .call("TenantListTenants", new_root, None, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "the new root token works");
    let (status, _) = app.root("TenantListTenants", json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old one no longer does"
    );
    let (_, trail) = app.call("BulkListUnlock", new_root, None, json!({})).await;
    let (_, events) = app
        .call(
            "BulkListAllAuditEvents",
            new_root,
            None,
            json!({"unlockuuid": trail["unlockuuid"], "limit": 100}),
        )
        .await;
    assert!(events.to_string().contains("RootTokenRotate"), "{events}");
}
