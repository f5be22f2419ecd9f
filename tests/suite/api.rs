//! The HTTP surface: envelope, body handling, docs and health routes.

use bunker_tests::{answer, StatusCode, TestApp, TestOptions};
use serde_json::{json, Value};

#[tokio::test]
async fn every_routed_command_has_an_authorization_class_and_every_classed_one_is_routed() {
    use bunker_services::access::Command;
    let app = TestApp::spawn().await;
    let routed = app.routed_operations().await;
    assert!(routed.len() >= 48, "{routed:?}");
    for (name, operation_id) in &routed {
        let command = Command::from_name(name).unwrap_or_else(|| {
            panic!(
                "the routed command {name} has no authorization class: add it to \
                 api/services/src/access/command.rs"
            )
        });
        assert_eq!(
            operation_id.as_deref(),
            Some(command.operation_id()),
            "{name}: its operation id in the OpenAPI document is the Command list's"
        );
    }
    for command in Command::ALL {
        assert!(
            routed.iter().any(|(name, _)| name == command.name()),
            "{} is classed but not routed",
            command.name()
        );
    }
    for command in Command::PLANNED {
        assert!(
            !routed.iter().any(|(name, _)| name == command.name()),
            "{} is routed: move it to the routed commands, with its class",
            command.name()
        );
    }
}

#[tokio::test]
async fn openapi_json_lists_the_tenant_commands() {
    let app = TestApp::spawn().await;
    let spec: Value = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["servers"][0]["url"], "/v2");
    for command in [
        "TenantCreate",
        "TenantGet",
        "TenantUpdate",
        "TenantDelete",
        "TenantListTenants",
    ] {
        let operation = &spec["paths"][format!("/{command}")]["post"];
        assert!(operation.is_object(), "{command} is listed");
        assert_eq!(
            operation["security"][0]["BunkerToken"],
            json!([]),
            "{command} needs a token"
        );
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["BunkerToken"]["name"],
        "X-Bunker-Token"
    );
    let docs = app
        .http
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let page = docs.text().await.unwrap();
    assert!(
        page.contains("swagger") && page.contains("/TenantCreate"),
        "the docs page carries the spec"
    );
}

#[tokio::test]
async fn health_and_ready_answer_ok() {
    let app = TestApp::spawn().await;
    for path in ["health", "ready", "status"] {
        let (status, body) = answer(app.http.get(format!("{}/{path}", app.address))).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, json!({"status": "ok"}));
    }
}

#[tokio::test]
async fn ready_fails_when_the_schema_falls_behind() {
    let app = TestApp::spawn().await;
    app.superuser()
        .await
        .batch_execute("DELETE FROM refinery_schema_history WHERE version = (SELECT max(version) FROM refinery_schema_history)")
        .await
        .unwrap();
    let (status, body) = answer(app.http.get(format!("{}/ready", app.address))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "error");
}

#[tokio::test]
async fn an_empty_body_means_an_empty_object_whatever_the_content_type() {
    let app = TestApp::spawn().await;
    let (status, body) = answer(
        app.command("TenantListTenants")
            .header("X-Bunker-Token", &app.root_token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "no body: {body}");
    assert_eq!(body["total"], 1);
    // curl -d sends a JSON body labelled as a form.
    let (status, body) = answer(
        app.command("TenantCreate")
            .header("X-Bunker-Token", &app.root_token)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(r#"{"tenantname":"acme","tenantorg":"acme"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn bad_bodies_get_a_json_400_that_never_echoes_them() {
    let app = TestApp::spawn().await;
    let secret = "jane.doe@example.com";
    for raw in [
        format!(r#"{{"tenantname":"{secret}""#),
        format!(r#"["{secret}"]"#),
        format!(r#""{secret}""#),
        format!(r#"{{"tenantname":["{secret}"],"tenantorg":"x"}}"#),
        format!(r#"{{"tenantname":"acme","tenantorg":{{"a":"{secret}"}}}}"#),
    ] {
        let (status, body) = answer(
            app.command("TenantCreate")
                .header("X-Bunker-Token", &app.root_token)
                .body(raw.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}: {body}");
        assert_eq!(body["status"], "error");
        assert!(
            !body.to_string().contains("jane"),
            "{body} echoes the input"
        );
    }
    let (status, _) = app.root("TenantListTenants", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.root("TenantListTenants", json!({})).await;
    assert_eq!(list["total"], 1, "nothing was written");
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let app = TestApp::spawn_with(TestOptions {
        max_body_bytes: 256,
        ..TestOptions::default()
    })
    .await;
    let (status, body) = app
        .root(
            "TenantCreate",
            json!({"tenantname": "acme", "tenantorg": "x".repeat(300)}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["status"], "error");
    let (status, _) = app
        .root(
            "TenantCreate",
            json!({"tenantname": "acme", "tenantorg": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "under the limit");
}

#[tokio::test]
async fn unknown_commands_and_wrong_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    let (status, body) = app.root("NoSuchCommand", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"status": "error", "message": "The API request was not found"})
    );
    let (status, body) = answer(app.http.get(format!("{}/v2/TenantGet", app.address))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["status"], "error");
    let (status, body) = answer(app.http.get(format!("{}/nowhere", app.address))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"status": "error", "message": "endpoint is missing"})
    );
}
