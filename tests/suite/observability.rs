//! What operators watch: `/metrics` (Prometheus text, no token), request ids, JSON logs.

use bunker_keys::WrappingKey;
use bunker_services::keys::wrapping::WrappingSource;
use bunker_services::setup::{init_database, RootToken};
use bunker_tests::{cluster, fresh_database, serve_process_with, StatusCode, TestApp, TestOptions};
use serde_json::{json, Value};

/// The value of the series line `series` (name and labels, exactly) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(base: &str) -> (StatusCode, String) {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_move_with_traffic_and_name_no_tenant() {
    let app = TestApp::spawn().await;
    app.create_tenant("zebracorp").await;
    let created = r#"http_requests_total{method="POST",path="/v2/UserCreate",status="200"}"#;
    let (status, before) = scrape(&app.address).await;
    assert_eq!(status, StatusCode::OK);
    let token = app
        .create_user(json!({"email": "metrics@example.com"}))
        .await;
    app.create_user(json!({"email": "metrics2@example.com"}))
        .await;
    let (status, _) = app
        .root("UserGet", json!({"mode": "token", "identity": token}))
        .await;
    assert_eq!(status, StatusCode::OK);
    app.root("NoSuchCommand", json!({})).await;
    let (_, after) = scrape(&app.address).await;
    assert_eq!(
        value(&after, created).unwrap() - value(&before, created).unwrap_or(0.0),
        2.0,
        "{after}"
    );
    for series in [
        r#"http_request_duration_seconds_count{method="POST",path="/v2/UserGet"}"#,
        r#"http_requests_total{method="POST",path="other",status="404"}"#,
        "bunker_read_audit_batch_events_count",
        "bunker_read_audit_delay_seconds_count",
        r#"bunker_db_pool_connections{state="max"}"#,
        "bunker_master_key_version",
        "http_requests_in_flight",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
    ] {
        assert!(
            value(&after, series).is_some_and(|v| v >= 1.0),
            "{series} in {after}"
        );
    }
    assert!(!after.contains("zebracorp"), "a tenant name in a label");
    assert!(!after.contains("metrics@example.com"));
}

#[tokio::test]
async fn a_separate_metrics_address_takes_metrics_off_the_api_and_tenants_are_opt_in() {
    let app = TestApp::spawn_with(TestOptions {
        metrics_listen: Some("127.0.0.1:0".to_owned()),
        metrics_per_tenant: true,
        ..TestOptions::default()
    })
    .await;
    let (_, token) = app.create_tenant("zebracorp").await;
    app.call(
        "TenantGet",
        &token,
        Some("zebracorp"),
        json!({"tenantid": 2}),
    )
    .await;
    let (status, body) = scrape(&app.address).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "error"
    );
    let (status, text) = scrape(app.metrics_address.as_deref().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        value(&text, r#"bunker_tenant_requests_total{tenant="zebracorp"}"#) == Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_safe_one_is_kept() {
    let app = TestApp::spawn().await;
    let id = |response: &reqwest::Response| {
        response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let plain = app.command("TenantListTenants").send().await.unwrap();
    let generated = id(&plain).unwrap();
    assert_eq!(generated.len(), 32, "{generated}");
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
    for kept in ["abc-123", "trace:01J9.x_y", &"a".repeat(64)] {
        let response = app
            .command("TenantListTenants")
            .header("X-Request-Id", kept)
            .send()
            .await
            .unwrap();
        assert_eq!(id(&response).as_deref(), Some(kept));
    }
    for replaced in ["a b", "<script>", &"a".repeat(65), "jane@example.com", ""] {
        let response = app
            .command("TenantListTenants")
            .header("X-Request-Id", replaced)
            .send()
            .await
            .unwrap();
        let got = id(&response).unwrap();
        assert_ne!(got, replaced);
        assert_eq!(got.len(), 32);
    }
}

#[tokio::test]
async fn json_log_lines_carry_the_request_id_the_answer_returned() {
    let database = fresh_database().await;
    let url = cluster().connection_string(&database);
    let wrapping = WrappingKey::generate();
    let hex = wrapping.to_hex().to_string();
    let root = "root-token-for-the-json-log-test";
    init_database(
        &url,
        RootToken::Given(root.to_owned().into()),
        &WrappingSource::Local(wrapping),
    )
    .await
    .unwrap();
    let log_path = cluster()
        .run_dir()
        .with_file_name(format!("json-log-{database}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let env = [("BUNKER_LOG_FORMAT".to_owned(), "json".to_owned())];
    let (base, mut server) = serve_process_with(&url, &hex, Some(log), &env).await;
    let response = reqwest::Client::new()
        .post(format!("{base}/v2/UserCreate"))
        .header("X-Bunker-Token", root)
        .header("X-Request-Id", "req-json-log-1")
        .json(&json!({"profile": {"email": "json.log.person@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-request-id"].to_str().unwrap(),
        "req-json-log-1"
    );
    let refused = reqwest::Client::new()
        .post(format!("{base}/v2/UserGet"))
        .header("X-Bunker-Token", "not-a-token")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let refused_id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    server.kill().await.unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let of = |id: &str| {
        lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect::<Vec<_>>()
    };
    let created = of("req-json-log-1");
    assert!(
        created.iter().any(|l| l["message"] == "request"
            && l["route"] == "/v2/UserCreate"
            && l["status"] == 200),
        "{text}"
    );
    assert!(of(&refused_id).iter().any(|l| l["status"] == 401), "{text}");
    assert!(
        !text.contains("json.log.person"),
        "a personal value in the log"
    );
    assert!(!text.contains(root), "the token in the log");
}

#[tokio::test]
async fn a_made_up_method_is_counted_as_other_and_never_becomes_a_label() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("ZELDAQUOKKA{i}").as_bytes()).unwrap();
        let response = app
            .http
            .request(method, format!("{}/health", app.address))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
    }
    let (_, text) = scrape(&app.address).await;
    assert!(
        !text.contains("ZELDAQUOKKA"),
        "a client's method in a label"
    );
    assert!(
        value(
            &text,
            r#"http_requests_total{method="other",path="/health",status="405"}"#
        ) == Some(5.0),
        "{text}"
    );
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_connections_and_silent_ones_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let at = app.address.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..bunker::http::listener::MAX_CONNECTIONS_PER_ADDRESS {
        held.push(tokio::net::TcpStream::connect(&at).await.unwrap());
    }
    // One more from the same address is closed unanswered.
    let mut extra = tokio::net::TcpStream::connect(&at).await.unwrap();
    let _ = extra
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        extra.read_to_end(&mut answer),
    )
    .await
    .expect("closed, not left waiting");
    assert!(read.is_err() || answer.is_empty(), "answered past the cap");
    // A place given back is taken again.
    drop(held.pop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let health = reqwest::get(format!("{}/health", app.address))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // A connection that sends nothing is closed by the server (30 s without activity).
    let mut silent = held.pop().unwrap();
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(45), silent.read(&mut byte))
        .await
        .expect("a silent connection is closed within the idle timeout");
    assert!(matches!(closed, Ok(0) | Err(_)));
}
