//! The portals in a real browser: tests/web/portal.mjs (playwright-core driving Debian's Chromium)
//! against a server seeded here. Needs `node`, `/usr/bin/chromium` and `npm ci` in tests/web, which
//! `.ci/run` installs; without them the test says so and passes only outside CI.

use std::path::Path;

use bunker_tests::{StatusCode, TestApp};
use serde_json::json;

use crate::login::{app_with_mail_file, captcha};

/// Whether the browser run can happen here; outside CI, a missing piece skips it (loudly).
fn browser_ready(web: &Path) -> bool {
    let ready = web.join("node_modules/playwright-core").is_dir()
        && Path::new("/usr/bin/chromium").exists()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the browser test: install node, chromium and `npm ci` in tests/web"
        );
        eprintln!(
            "SKIPPED: the browser test needs node, /usr/bin/chromium and `npm ci` in tests/web"
        );
    }
    ready
}

async fn root_ok(app: &TestApp, command: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, answer) = app.root(command, body).await;
    assert_eq!(status, StatusCode::OK, "{command}: {answer}");
    answer
}

#[tokio::test]
async fn the_portals_work_end_to_end_in_chromium() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    if !browser_ready(&web) {
        return;
    }
    let (app, mail) = app_with_mail_file().await;
    let jane = app
        .create_user(json!({"name": "Jane Doe", "email": "jane@example.com"}))
        .await;
    app.create_user(json!({"name": "Bob Roe", "email": "bob@example.com"}))
        .await;
    root_ok(
        &app,
        "LegalBasisCreate",
        json!({"brief": "newsletter", "basistype": "consent", "usercontrol": true,
               "shortdesc": "The monthly newsletter"}),
    )
    .await;
    root_ok(
        &app,
        "AgreementAccept",
        json!({"mode": "token", "identity": jane, "brief": "newsletter"}),
    )
    .await;
    root_ok(
        &app,
        "FileCreate",
        json!({"mode": "token", "identity": jane, "filename": "note.txt", "filedata": "aGVsbG8gamFuZQ=="}),
    )
    .await;
    app.grant(
        "support",
        "names-only",
        json!({"Effect": "Allow", "Action": ["UserGet", "BulkListUnlock", "AgreementListUserAgreements",
               "UserRequestListUserRequests", "AuditListUserEvents"],
               "Resource": ["users.profile.name"]}),
    )
    .await;
    let names_only = app.role_token("support").await;
    let mut captchas = Vec::new();
    for _ in 0..3 {
        let (id, answer) = captcha(&app, 1).await;
        captchas.push(json!({"id": id, "answer": answer}));
    }
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("portal-screenshots");
    let config = json!({
        "base": app.address,
        "mail": mail,
        "captchas": captchas,
        "root": app.root_token,
        "names_only": names_only,
        "jane": "jane@example.com",
        "jane_token": jane,
        "bob": "bob@example.com",
        "screenshots": screenshots,
    });
    let file = mail.with_file_name("portal-test.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let run = tokio::process::Command::new("node")
        .arg(web.join("portal.mjs"))
        .arg(&file)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser run finishes in 3 minutes")
        .expect("node runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the browser run failed:\n{said}");
    println!("{said}");
    for page in [
        "user-profile",
        "admin-request-diff",
        "admin-system",
        "admin-user-names-only",
    ] {
        assert!(
            screenshots.join(format!("{page}.png")).is_file(),
            "{page} screenshot"
        );
    }
}
