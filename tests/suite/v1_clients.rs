//! The Databunker OSS npm clients, unchanged, against `/v1`: tests/v1/clients.js drives
//! `@databunker/store` and `@databunker/session-store` (under express-session). Needs `node` and
//! `npm ci` in tests/v1, which `.ci/run` does; without them the test says so and passes only
//! outside CI.

use std::path::Path;

use bunker_tests::{StatusCode, TestApp};
use serde_json::json;

fn clients_ready(dir: &Path) -> bool {
    let ready = dir.join("node_modules/@databunker/store").is_dir()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the /v1 client test: install node and `npm ci` in tests/v1"
        );
        eprintln!("SKIPPED: the /v1 client test needs node and `npm ci` in tests/v1");
    }
    ready
}

#[tokio::test]
async fn the_oss_npm_clients_work_unchanged_against_v1() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("v1");
    if !clients_ready(&dir) {
        return;
    }
    let app = TestApp::spawn().await;
    let (status, made) = app
        .root(
            "LegalBasisCreate",
            json!({"brief": "newsletter", "basistype": "consent", "usercontrol": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let config = json!({"base": app.address, "token": app.root_token});
    let file = std::env::temp_dir().join(format!("bunker-v1-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, config.to_string()).unwrap();
    let run = tokio::process::Command::new("node")
        .arg(dir.join("clients.js"))
        .arg(&file)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the client run finishes in 2 minutes")
        .expect("node runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_file(&file);
    assert!(output.status.success(), "the client run failed:\n{said}");
    assert!(said.contains("v1 clients: ok"), "{said}");
}
