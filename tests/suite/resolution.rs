//! Which tenant a request is for, and who may act in it.

use bunker_tests::{answer, StatusCode, TestApp};
use serde_json::json;

/// Runs TenantUpdate without `tenantid` (so it targets the request's tenant) with a marker org, and
/// returns the name of the tenant whose org changed.
async fn tenant_of(app: &TestApp, request: reqwest::RequestBuilder) -> String {
    let marker = format!("marker-{}", uuid::Uuid::new_v4());
    let (status, body) = answer(request.json(&json!({"tenantorg": marker}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = app.root("TenantListTenants", json!({"limit": 100})).await;
    let rows = list["rows"].as_array().expect("rows");
    let row = rows
        .iter()
        .find(|r| r["tenantorg"] == marker.as_str())
        .expect("one tenant got the marker");
    row["tenantname"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn tenant_comes_from_the_header() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme").await;
    let request = app
        .command("TenantUpdate")
        .header("X-Bunker-Token", &app.root_token)
        .header("X-Bunker-Tenant", "acme")
        .header("Host", "globex.bunker.test");
    assert_eq!(tenant_of(&app, request).await, "acme");
}

#[tokio::test]
async fn tenant_comes_from_the_subdomain_without_a_header() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme-corp").await;
    let request = app
        .command("TenantUpdate")
        .header("X-Bunker-Token", &app.root_token)
        .header("Host", "acme-corp.bunker.test:8443");
    assert_eq!(tenant_of(&app, request).await, "acme-corp");
}

#[tokio::test]
async fn tenant_is_default_without_header_or_known_domain() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme").await;
    for host in ["localhost", "acme.elsewhere.test", "bunker.test"] {
        let request = app
            .command("TenantUpdate")
            .header("X-Bunker-Token", &app.root_token)
            .header("Host", host);
        assert_eq!(tenant_of(&app, request).await, "default", "Host {host}");
    }
}

#[tokio::test]
async fn invalid_tenant_names_are_refused_with_400() {
    let app = TestApp::spawn().await;
    let long = "a".repeat(64);
    for name in [
        "Acme",
        "acme_corp",
        "-acme",
        "acme-",
        "",
        "ac.me",
        long.as_str(),
    ] {
        let (status, body) = app
            .call("TenantListTenants", &app.root_token, Some(name), json!({}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "header {name:?}: {body}");
        assert_eq!(body["status"], "error");
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("Invalid tenant name"));
    }
    let (status, _) = answer(
        app.command("TenantListTenants")
            .header("X-Bunker-Token", &app.root_token)
            .header("Host", "acme_corp.bunker.test"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "subdomain acme_corp");
    for name in ["Acme", "acme_corp", "x-"] {
        let (status, _) = app
            .root(
                "TenantCreate",
                json!({"tenantname": name, "tenantorg": "o"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "TenantCreate {name}");
    }
}

/// A tenant's token is not found in another tenant (access tokens are under row-level security):
/// the same 401 as an unknown token, whether or not that tenant exists.
#[tokio::test]
async fn tenant_token_is_refused_on_another_tenant() {
    let app = TestApp::spawn().await;
    let (acme_id, acme_token) = app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    let get_acme = json!({"tenantid": acme_id});

    let (status, _) = app
        .call("TenantGet", &acme_token, Some("acme"), get_acme.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "in its own tenant");

    for other in ["globex", "default", "no-such-tenant"] {
        let (status, body) = app
            .call("TenantGet", &acme_token, Some(other), get_acme.clone())
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "header {other}: {body}");
        assert_eq!(body["status"], "error");
    }
    let (status, _) = answer(
        app.command("TenantGet")
            .header("X-Bunker-Token", &acme_token)
            .header("Host", "globex.bunker.test")
            .json(&get_acme),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "subdomain globex");
    let (status, _) = answer(
        app.command("TenantGet")
            .header("X-Bunker-Token", &acme_token)
            .json(&get_acme),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no tenant named: default");
}

#[tokio::test]
async fn root_token_works_in_every_tenant() {
    let app = TestApp::spawn().await;
    let (acme_id, _) = app.create_tenant("acme").await;
    for tenant in [None, Some("acme"), Some("default")] {
        let (status, body) = app
            .call(
                "TenantGet",
                &app.root_token,
                tenant,
                json!({"tenantid": acme_id}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tenant:?}: {body}");
        assert_eq!(body["tenantname"], "acme");
    }
}

#[tokio::test]
async fn missing_or_unknown_token_is_401_and_unknown_tenant_is_404() {
    let app = TestApp::spawn().await;
    let (status, body) = answer(app.command("TenantListTenants")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], "error");
    for token in ["", "DEMO", "00000000-0000-0000-0000-000000000000"] {
        let (status, body) = app.call("TenantListTenants", token, None, json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
    }
    let (status, body) = app
        .call(
            "TenantListTenants",
            &app.root_token,
            Some("ghost"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["status"], "error");
}
