//! Key management: recovery shares, SystemGenerateWrappingKey, wrapping-key rotation.

use bunker::http::app::Application;
use bunker_db::Database;
use bunker_tests::{
    answer, run_bunker, run_bunker_with_input, signed, StatusCode, TestApp, TestOptions,
    WebhookReceiver,
};
use serde_json::json;

/// Starts a second server on the same database with `wrapping_key`; returns why it refused, or
/// `None` if it started.
async fn start_with(app: &TestApp, wrapping_key: &str) -> Option<String> {
    let db = Database::connect(&app.database_url(), 2).await.unwrap();
    match Application::build(TestOptions::default().settings(wrapping_key), db).await {
        Ok(_) => None,
        Err(err) => Some(err.to_string()),
    }
}

fn shares(app: &TestApp, picks: [usize; 3]) -> serde_json::Value {
    json!({"key1": app.shares[picks[0]], "key2": app.shares[picks[1]], "key3": app.shares[picks[2]]})
}

#[tokio::test]
async fn three_shares_mint_a_new_wrapping_key_and_the_old_one_stops_working() {
    let app = TestApp::spawn().await;
    let (_, body) = app
        .root(
            "UserCreate",
            json!({"profile": {"login": "before", "n": 1}}),
        )
        .await;
    let token = body["token"].as_str().unwrap().to_owned();

    let (status, body) = app
        .root("SystemGenerateWrappingKey", shares(&app, [0, 2, 4]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_key = body["wrappingkey"].as_str().unwrap().to_owned();
    assert_eq!(new_key.len(), 64);
    assert_ne!(new_key, app.wrapping_key);

    let old = start_with(&app, &app.wrapping_key).await;
    assert!(old
        .unwrap()
        .contains("wrapping key does not open the master key"));
    assert_eq!(
        start_with(&app, &new_key).await,
        None,
        "the new key starts the server"
    );

    let (status, body) = app
        .root("UserGet", json!({"mode": "token", "identity": token}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the running server keeps working: {body}"
    );
    let (status, _) = app
        .root("SystemGenerateWrappingKey", shares(&app, [1, 3, 4]))
        .await;
    assert_eq!(status, StatusCode::OK, "other shares work too, and again");

    let db = app.superuser().await;
    let audited: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'SystemGenerateWrappingKey' AND tenant_id = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 2, "every key operation is audited");
}

#[tokio::test]
async fn bad_shares_are_refused_by_name_and_change_nothing() {
    let app = TestApp::spawn().await;
    let mut mistyped = shares(&app, [0, 1, 2]);
    let text = app.shares[1].clone();
    let last = if text.ends_with('a') { 'b' } else { 'a' };
    mistyped["key2"] = json!(format!("{}{last}", &text[..text.len() - 1]));
    let (status, body) = app.root("SystemGenerateWrappingKey", mistyped).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("key2"), "{body}");

    let mut short = shares(&app, [0, 1, 2]);
    short.as_object_mut().unwrap().remove("key3");
    let (status, body) = app.root("SystemGenerateWrappingKey", short).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "two shares: {body}");

    let other = TestApp::spawn().await;
    let (status, body) = app
        .root("SystemGenerateWrappingKey", shares(&other, [0, 1, 2]))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another installation's shares: {body}"
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("Master key mismatch"));

    let (_, acme) = app.create_tenant("acme").await;
    let (status, _) = app
        .call(
            "SystemGenerateWrappingKey",
            &acme,
            Some("acme"),
            shares(&app, [0, 1, 2]),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a tenant token");
    assert_eq!(
        start_with(&app, &app.wrapping_key).await,
        None,
        "the wrapping key is unchanged"
    );
}

/// The 64-hex-character key a command printed.
fn printed_key(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .expect("a new key is printed")
        .to_owned()
}

#[tokio::test]
async fn cli_rotates_the_wrapping_key_and_recovers_from_three_shares() {
    let app = TestApp::spawn().await;
    let (_, body) = app
        .root(
            "UserCreate",
            json!({"profile": {"email": "kept@keys.test"}}),
        )
        .await;
    assert!(body["token"].is_string());
    let url = app.database_url();

    let (ok, stdout, stderr) = run_bunker(
        &["keys", "status"],
        &[("BUNKER_DATABASE_URL", url.as_str())],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("master key v1: wrapped by local"),
        "{stdout}"
    );
    assert!(stdout.contains("recovery shares: yes"), "{stdout}");
    assert!(!stdout.contains(&app.wrapping_key));

    let env = [
        ("BUNKER_DATABASE_URL", url.as_str()),
        ("BUNKER_WRAPPING_KEY", app.wrapping_key.as_str()),
    ];
    let (ok, stdout, stderr) = run_bunker(&["keys", "rotate-wrapping"], &env).await;
    assert!(ok, "{stderr}");
    let rotated = printed_key(&stdout);
    assert!(
        start_with(&app, &app.wrapping_key).await.is_some(),
        "the old key is refused"
    );
    assert_eq!(start_with(&app, &rotated).await, None);
    let (ok, _, stderr) = run_bunker(&["keys", "rotate-wrapping"], &env).await;
    assert!(!ok, "the old key can no longer rotate");
    assert!(
        stderr.contains("wrapping key does not open the master key"),
        "{stderr}"
    );

    // Shares come on standard input (or from a file), never as arguments `ps` would show.
    let shares = |picks: &[usize]| -> String {
        picks
            .iter()
            .map(|&i| format!("{}\n", app.shares[i]))
            .collect()
    };
    let url_only = [("BUNKER_DATABASE_URL", url.as_str())];
    let recover = ["keys", "recover"];
    let (ok, _, stderr) = run_bunker_with_input(&recover, &url_only, &shares(&[0, 4])).await;
    assert!(!ok, "two shares do not recover");
    assert!(stderr.contains("3 recovery shares are needed"), "{stderr}");
    let (ok, stdout, stderr) =
        run_bunker_with_input(&recover, &url_only, &format!("\n  {}", shares(&[0, 3, 4]))).await;
    assert!(ok, "{stderr}");
    let recovered = printed_key(&stdout);
    assert!(start_with(&app, &rotated).await.is_some());
    assert_eq!(start_with(&app, &recovered).await, None);

    // A fresh server with the recovered key reads every record.
    let db = Database::connect(&url, 2).await.unwrap();
    let fresh = Application::build(TestOptions::default().settings(&recovered), db)
        .await
        .unwrap();
    let address = format!("http://{}", fresh.local_addr());
    tokio::spawn(fresh.run_until(std::future::pending()));
    let (status, body) = bunker_tests::answer(
        app.http
            .post(format!("{address}/v2/UserGet"))
            .header("X-Bunker-Token", &app.root_token)
            .json(&json!({"mode": "email", "identity": "kept@keys.test"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let operator_events: i64 = app
        .superuser()
        .await
        .query_one(
            "SELECT count(*) FROM audit_events WHERE actor_kind = 'operator' AND action IN ('KeysRotateWrapping', 'KeysRecover')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(operator_events, 2);
}

#[tokio::test]
async fn master_key_reencryption_under_concurrent_writes_loses_nothing_and_leaves_nothing_on_the_old_version(
) {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use bunker_keys::WrappingKey;
    use bunker_services::keys::wrapping::WrappingSource;
    use bunker_services::keys::{load_keyring, rotate_master, SharedKeyring};
    use bunker_services::Vault;

    let app = Arc::new(
        TestApp::spawn_with(TestOptions {
            pool_size: 8,
            // Slow on purpose: the server keeps sealing with version 1 while the re-encryption
            // runs, so stale values are rewritten while they are being re-sealed.
            key_refresh_interval: Duration::from_millis(1500),
            tenant_key_cache: Duration::from_secs(1),
            ..TestOptions::default()
        })
        .await,
    );
    for i in 0..40 {
        let (status, _) = app
            .root(
                "UserCreate",
                json!({"profile": {"email": format!("u{i}@rot.test"), "n": i}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // Sealed with the tenant's record key too: the webhook's secret, and a consent waiting for
    // its user.
    let receiver = WebhookReceiver::start(0).await;
    let secret = "rotation-webhook-secret-0123456789abcdef";
    let (status, body) = app
        .root(
            "TenantUpdate",
            json!({"webhook": {"url": receiver.url, "secret": secret}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.root("LegalBasisCreate", json!({"brief": "newsletter"}))
        .await;
    let waiting = json!({"mode": "email", "identity": "waiting@rot.test", "brief": "newsletter"});
    let (status, body) = app
        .root(
            "AgreementAccept",
            json!({"mode": "email", "identity": "waiting@rot.test", "brief": "newsletter",
                   "referencecode": "rot-ref"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // And a session that names no user.
    let (status, body) = app
        .root(
            "SessionUpsert",
            json!({"sessionuuid": "rot-session", "sessiondata": {"cart": "rot-cart"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let source = WrappingSource::Local(WrappingKey::from_hex(&app.wrapping_key).unwrap());
    // Re-encryption works as bunker_maintenance (the server's bunker_app may not rewrite audit).
    let db = Database::connect_maintenance(&app.database_url(), 4)
        .await
        .unwrap();
    let shares: Vec<(&str, &str)> = vec![
        ("a", &app.shares[0]),
        ("b", &app.shares[2]),
        ("c", &app.shares[3]),
    ];
    assert_eq!(rotate_master(&db, &source, &shares).await.unwrap(), 2);
    // The tenant's own key rotates too: its values are re-sealed under its version 2 (the master
    // key only wraps tenant keys, which the re-encryption re-wraps under master version 2).
    let (status, body) = app.root("TenantKeyRotate", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["versions"][0]["state"], "pending", "{body}");

    // Writers keep going while the re-encryption runs; each writer owns one field of each profile,
    // and they all work on ten hot users.
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4usize {
        let app = app.clone();
        writers.spawn(async move {
                let mut landed: HashMap<(usize, usize), i64> = HashMap::new();
                for k in 0..40i64 {
                    let user = (w * 3 + k as usize) % 10;
                    let (status, _) = app
                        .root("UserUpdate", json!({"mode": "email", "identity": format!("u{user}@rot.test"), "profile": {format!("w{w}"): k}}))
                        .await;
                    if status == StatusCode::OK {
                        landed.insert((user, w), k);
                    }
                    let (status, _) = app
                        .root("UserCreate", json!({"profile": {"email": format!("new{w}-{k}@rot.test")}}))
                        .await;
                    assert_eq!(status, StatusCode::OK);
                }
                landed
        });
    }
    let (keyring, _) = load_keyring(&db, &source).await.unwrap();
    let vault = Vault::new(
        db.clone(),
        SharedKeyring::new(keyring),
        TestOptions {
            tenant_key_cache: Duration::from_secs(1),
            ..TestOptions::default()
        }
        .settings(&app.wrapping_key)
        .vault,
        std::sync::Arc::new(bunker_services::metrics::ServiceMetrics::new().unwrap()),
    );
    // Link the trail as it is under version 1 (what is three seconds old: the writers' requests
    // take far less): re-sealing its details must leave the chain valid.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let linked = vault
        .extend_audit_chains(Duration::from_secs(3), &mut Default::default())
        .await;
    assert!(linked > 0);
    let report = vault
        .reencrypt_all(Duration::from_millis(500), &mut |_| {})
        .await
        .unwrap();
    assert!(report.resealed >= 40, "{report:?}");
    assert_eq!(report.retired, [1]);
    assert_eq!(report.tenant_keys_retired, 1, "{report:?}");
    let mut landed = HashMap::new();
    for written in writers.join_all().await {
        landed.extend(written);
    }
    assert!(!landed.is_empty());
    // The settle time was zero to force overlap, so writes may have sealed with version 1 after the
    // last pass; complete the protocol as `bunker keys reencrypt` does once servers have switched.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    vault
        .reencrypt_all(Duration::ZERO, &mut |_| {})
        .await
        .unwrap();

    let su = app.superuser().await;
    // Tenant key version 2 is 0x01000002 in a sealed value's header.
    let stale: i64 = su
        .query_one(
            "SELECT (SELECT count(*) FROM users WHERE record IS NOT NULL AND substring(record FROM 2 FOR 4) <> '\\x01000002')
                  + (SELECT count(*) FROM user_versions WHERE substring(record FROM 2 FOR 4) <> '\\x01000002')
                  + (SELECT count(*) FROM audit_events WHERE details IS NOT NULL AND substring(details FROM 2 FOR 4) <> '\\x01000002')
                  + (SELECT count(*) FROM agreements WHERE sealed IS NOT NULL AND substring(sealed FROM 2 FOR 4) <> '\\x01000002')
                  + (SELECT count(*) FROM tenants WHERE webhook_secret IS NOT NULL AND substring(webhook_secret FROM 2 FOR 4) <> '\\x01000002')
                  + (SELECT count(*) FROM sessions WHERE token IS NULL AND substring(record FROM 2 FOR 4) <> '\\x01000002')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stale, 0,
        "no value is left on tenant key version 1 or on a master-derived key"
    );
    let keys: Vec<(i32, String, Option<i32>, bool, i32)> = su
        .query(
            "SELECT version, wrapped_by, master_version, retired, length(wrapped)
               FROM tenant_keys WHERE tenant_id = 1 ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys[0].3 && keys[0].4 == 0,
        "version 1 retired and destroyed: {keys:?}"
    );
    assert_eq!(
        (keys[1].1.as_str(), keys[1].2, keys[1].3),
        ("master", Some(2), false),
        "version 2 re-wrapped under master key version 2"
    );
    let retired: bool = su
        .query_one(
            "SELECT retired_at IS NOT NULL FROM master_keys WHERE version = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(retired);
    let chain = vault
        .verify_audit_chain(
            bunker_db::TenantId::MAIN,
            bunker_services::audit::chain::VerifyOptions {
                // The writers' latest events are not linked yet, and need not be.
                stale_after: Duration::from_secs(3600),
                anchor: None,
            },
        )
        .await
        .unwrap();
    assert!(chain.verified > 0 && chain.findings.is_empty(), "{chain:?}");

    tokio::time::sleep(Duration::from_millis(1600)).await;
    for ((user, w), k) in &landed {
        let (status, body) = app
            .root(
                "UserGet",
                json!({"mode": "email", "identity": format!("u{user}@rot.test")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["profile"][format!("w{w}")],
            *k,
            "user {user}: writer {w}'s last update"
        );
        assert_eq!(body["profile"]["n"], *user as i64);
    }
    tokio::time::sleep(Duration::from_millis(1600)).await; // the server has loaded version 2
    for w in 0..4 {
        for k in 0..40 {
            let (status, _) = app
                .root(
                    "UserGet",
                    json!({"mode": "email", "identity": format!("new{w}-{k}@rot.test")}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "new{w}-{k}");
        }
    }
    let (status, body) = app
        .root("SessionGet", json!({"sessionuuid": "rot-session"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessiondata"]["cart"], "rot-cart");
    // The waiting consent opens, links, and its withdrawal reaches the webhook, signed with the
    // secret as re-sealed.
    let (status, body) = app.root("AgreementGet", waiting.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agreement"]["referencecode"], "rot-ref");
    let (status, _) = app
        .root(
            "UserCreate",
            json!({"profile": {"email": "waiting@rot.test"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.root("AgreementCancel", waiting).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deliveries = receiver.deliveries(1).await;
    assert_eq!(deliveries.len(), 1, "the webhook still delivers");
    let (signature, delivered) = &deliveries[0];
    assert_eq!(signature, &signed(secret, delivered));
    assert_eq!(
        start_with(&app, &app.wrapping_key).await,
        None,
        "a fresh server starts with versions 1 and 2"
    );
}

#[tokio::test]
async fn cli_rotates_the_master_key_and_reencrypts() {
    let app = TestApp::spawn().await;
    let (_, body) = app
        .root("UserCreate", json!({"profile": {"email": "cli@rot.test"}}))
        .await;
    assert!(body["token"].is_string());
    // The user's own key (wrapped by the record key) is re-wrapped too.
    let (status, _) = app
        .root(
            "AppdataCreate",
            json!({"mode": "email", "identity": "cli@rot.test", "appname": "shop", "appdata": {"size": "M"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let url = app.database_url();
    let env = [
        ("BUNKER_DATABASE_URL", url.as_str()),
        ("BUNKER_WRAPPING_KEY", app.wrapping_key.as_str()),
        ("BUNKER_KEY_REFRESH_SECONDS", "1"),
    ];
    let shares_file = std::env::temp_dir().join(format!("bunker-shares-{}", std::process::id()));
    std::fs::write(
        &shares_file,
        format!("{}\n{}\n", app.shares[0], app.shares[1]),
    )
    .unwrap();
    let file = shares_file.to_str().unwrap();
    let rotate = ["keys", "rotate-master", "--shares-file", file];
    {
        use std::os::unix::fs::PermissionsExt;
        let readable = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(&shares_file, readable).unwrap();
    }
    let (ok, _, stderr) = run_bunker(&rotate, &env).await;
    assert!(!ok, "a master-key rotation takes three shares");
    assert!(stderr.contains("3 recovery shares are needed"), "{stderr}");
    assert!(
        stderr.contains("may be read by others than its owner (mode 644)"),
        "{stderr}"
    );
    std::fs::write(
        &shares_file,
        format!("{}\n{}\n{}\n", app.shares[0], app.shares[1], app.shares[4]),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&shares_file, private).unwrap();
    }
    let (ok, stdout, stderr) = run_bunker(&rotate, &env).await;
    assert!(!stderr.contains("may be read by others"), "{stderr}");
    std::fs::remove_file(&shares_file).unwrap();
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Master key version 2 created"), "{stdout}");
    assert!(!stdout.contains("  "), "one line of prose: {stdout}");
    let (ok, stdout, stderr) = run_bunker(&["keys", "reencrypt"], &env).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("retired master key version(s): [1]"),
        "{stdout}"
    );
    let (_, status, _) = run_bunker(&["keys", "status"], &env).await;
    assert!(
        status.contains("master key v1") && status.contains(", retired"),
        "{status}"
    );
    assert!(
        status.contains("master key v2: wrapped by local"),
        "{status}"
    );
    assert!(
        status.contains("tenant 1 (default): v1 current (wrapped by the master key)"),
        "{status}"
    );
    assert!(!status.contains(&app.wrapping_key));
    assert_eq!(
        start_with(&app, &app.wrapping_key).await,
        None,
        "servers start with the rotated keys"
    );
    let db = app.superuser().await;
    let version: Vec<u8> = db
        .query_one(
            "SELECT substring(data_key FROM 2 FOR 4) FROM users WHERE data_key IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        version,
        (bunker_keys::TENANT_KEY_VERSIONS + 1).to_be_bytes(),
        "the user key is wrapped by the tenant's key, which the master rotation does not change"
    );
    let wrapped_by: Option<i32> = db
        .query_one(
            "SELECT master_version FROM tenant_keys WHERE tenant_id = 1 AND version = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        wrapped_by,
        Some(2),
        "the tenant's key is re-wrapped under version 2"
    );
    let (replica, _stop) = app.replica().await;
    let (status, body) = answer(
        app.http
            .post(format!("{replica}/v2/AppdataGet"))
            .header("X-Bunker-Token", &app.root_token)
            .json(&json!({"mode": "email", "identity": "cli@rot.test", "appname": "shop"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["appdata"], json!({"size": "M"}));
}

#[tokio::test]
async fn recovery_shares_are_never_taken_from_the_command_line() {
    let none: [(&str, &str); 0] = [];
    for command in ["recover", "rotate-master"] {
        let (ok, help, _) = run_bunker(&["keys", command, "--help"], &none).await;
        assert!(ok);
        assert!(help.contains("--shares-file <FILE>"), "{help}");
        assert!(!help.contains("--share "), "{help}");
        let (ok, _, stderr) = run_bunker(&["keys", command, "--share", "x"], &none).await;
        assert!(!ok, "{command} --share is refused");
        assert!(stderr.contains("unexpected argument"), "{stderr}");
    }
}
