//! The official `databunkerpro` Python SDK (PyPI; `.ci/run` installs it) against a real server:
//! app data and user requests driven as a client drives them (tests/sdk/*.py).

use bunker_tests::TestApp;

#[tokio::test]
async fn the_python_sdk_drives_app_data_and_user_requests() {
    let app = TestApp::spawn().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/requests_and_app_data.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
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
