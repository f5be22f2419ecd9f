//! The official `databunkerpro` Python SDK (PyPI; `.ci/run` installs it) against a real server:
//! app data, user requests and consent driven as a client drives them (tests/sdk/*.py).

use bunker_tests::{TestApp, TestOptions};

/// Runs `tests/sdk/<script>` against a fresh server; it prints `sdk: ok` when every check held.
async fn run(script: &str) {
    run_with(script, TestOptions::default()).await
}

/// As [`run`], against a server with these options.
async fn run_with(script: &str, options: TestOptions) {
    let app = TestApp::spawn_with(options).await;
    let script = format!("{}/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&app.address)
        .arg(&app.root_token)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'databunkerpro'"),
        "the SDK is not installed: python3 -m pip install databunkerpro==0.1.7"
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("sdk: ok"), "{stdout}");
}

#[tokio::test]
async fn the_python_sdk_drives_app_data_and_user_requests() {
    run("requests_and_app_data.py").await;
}

#[tokio::test]
async fn the_python_sdk_drives_legal_bases_agreements_and_processing_activities() {
    run("consent.py").await;
}

#[tokio::test]
async fn the_python_sdk_drives_sessions_shared_records_and_files() {
    let options = TestOptions {
        list_users: true,
        ..TestOptions::default()
    };
    run_with("sessions_shared_files.py", options).await;
}

#[tokio::test]
async fn the_python_sdk_drives_reports_statistics_and_cross_tenant_profiles() {
    let options = TestOptions {
        list_users: true,
        ..TestOptions::default()
    };
    run_with("system.py", options).await;
}

/// The OpenAPI document (tests/openapi/check.py): it validates (openapi-spec-validator), a client
/// generated from it (openapi-python-client) creates and reads a user in a tenant, and every example
/// in it is accepted. The tools come from PyPI into venvs of their own under the cache.
#[tokio::test]
async fn the_openapi_document_validates_drives_a_generated_client_and_its_examples_are_accepted() {
    let app = TestApp::spawn_with(TestOptions {
        list_users: true,
        ..TestOptions::default()
    })
    .await;
    let script = format!("{}/openapi/check.py", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg("--base-url")
        .arg(&app.address)
        .arg("--token")
        .arg(&app.root_token)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("all 3 steps passed"), "{stdout}");
}
