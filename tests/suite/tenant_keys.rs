//! Per-tenant keys (issue 23): a tenant on its own AWS KMS key (through the real KMS client against
//! moto), stopped within the cache bound on two server processes when the key is disabled and served
//! again when it is enabled; TenantDelete's crypto-shredding against a dump taken before it; who may
//! change a tenant's key.

use std::time::{Duration, Instant};

use bunker_keys::{Label, TenantKey, TenantKeys, WrappingKey};
use bunker_services::keys::load_keyring;
use bunker_services::keys::wrapping::WrappingSource;
use bunker_tests::{
    answer, cluster, fresh_database, serve_process_with, KmsStandIn, StatusCode, TestApp,
    TestOptions,
};
use serde_json::{json, Value};

/// The cache lifetime of the servers these tests start.
const CACHE_SECONDS: u64 = 2;

async fn call(
    app: &TestApp,
    address: &str,
    token: &str,
    tenant: &str,
    command: &str,
    body: Value,
) -> (StatusCode, Value) {
    answer(
        app.http
            .post(format!("{address}/v2/{command}"))
            .header("X-Bunker-Token", token)
            .header("X-Bunker-Tenant", tenant)
            .json(&body),
    )
    .await
}

/// The environment of a `bunker serve` process reaching the stand-in for tenants' keys (the master
/// key stays wrapped by the app's local wrapping key).
fn kms_env(kms: &KmsStandIn) -> Vec<(String, String)> {
    kms.env("unused")
        .into_iter()
        .filter(|(name, _)| name != "BUNKER_KMS_KEY_ID")
        .chain([(
            "BUNKER_TENANT_KEY_CACHE_SECONDS".to_owned(),
            CACHE_SECONDS.to_string(),
        )])
        .collect()
}

/// Polls `UserGet` of `token` in `tenant` on `address` until it answers `want`; how long it took.
async fn until_status(
    app: &TestApp,
    address: &str,
    tenant: &str,
    token: &str,
    want: StatusCode,
    limit: Duration,
) -> (Duration, Value) {
    let started = Instant::now();
    loop {
        let (status, body) = call(
            app,
            address,
            &app.root_token,
            tenant,
            "UserGet",
            json!({"mode": "token", "identity": token}),
        )
        .await;
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status} {body}"
        );
        if status == want {
            return (started.elapsed(), body);
        }
        assert!(
            started.elapsed() < limit,
            "{address} still answers {status} after {limit:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_tenant_on_its_own_kms_key_stops_within_the_cache_bound_on_two_servers_and_comes_back() {
    let kms = KmsStandIn::start().await;
    let key_id = kms.create_key().await;
    let app = TestApp::spawn().await;
    app.create_tenant("byok").await;
    app.create_tenant("plain").await;
    let env = kms_env(&kms);
    let (a, _a) = serve_process_with(&app.database_url(), &app.wrapping_key, None, &env).await;
    let (b, _b) = serve_process_with(&app.database_url(), &app.wrapping_key, None, &env).await;
    let mut users = Vec::new();
    for tenant in ["byok", "plain"] {
        let (status, body) = call(
            &app,
            &a,
            &app.root_token,
            tenant,
            "UserCreate",
            json!({"profile": {"email": format!("jane@{tenant}.test"), "name": "Jane"}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        users.push(body["token"].as_str().unwrap().to_owned());
    }
    let (byok_user, plain_user) = (users[0].clone(), users[1].clone());

    // A key KMS does not know is refused and changes nothing.
    let (status, body) = call(
        &app,
        &a,
        &app.root_token,
        "byok",
        "TenantKeySetWrapping",
        json!({"kmskeyid": "00000000-0000-4000-8000-000000000000"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("nothing was changed"));
    // Named by an alias, the key is kept as its ARN (re-pointing the alias later moves nothing).
    kms.client()
        .create_alias()
        .alias_name("alias/byok")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    let (status, body) = call(
        &app,
        &a,
        &app.root_token,
        "byok",
        "TenantKeySetWrapping",
        json!({"kmskeyid": "alias/byok"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["versions"][0]["wrapping"], "kms", "{body}");
    let kept = body["versions"][0]["kmskeyid"].as_str().unwrap().to_owned();
    assert!(
        kept.starts_with("arn:aws:kms:") && kept.ends_with(&format!("key/{key_id}")),
        "{kept}"
    );
    assert_eq!(body["cacheseconds"], CACHE_SECONDS);
    // The live database keeps no copy of the key under the master key.
    let su = app.superuser().await;
    let by: Vec<String> = su
        .query(
            "SELECT wrapped_by FROM tenant_keys k JOIN tenants t ON t.id = k.tenant_id
              WHERE t.name = 'byok'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(by, ["kms"]);

    // Both servers serve the tenant (B loads its key through KMS), and writes work.
    for server in [&a, &b] {
        let (_, body) = until_status(
            &app,
            server,
            "byok",
            &byok_user,
            StatusCode::OK,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(body["profile"]["name"], "Jane");
    }
    let kms_client = kms.client();
    kms_client
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    let disabled_at = Instant::now();
    let bound = Duration::from_secs(CACHE_SECONDS) + Duration::from_millis(1500);
    for server in [&a, &b] {
        let (_, body) = until_status(
            &app,
            server,
            "byok",
            &byok_user,
            StatusCode::SERVICE_UNAVAILABLE,
            bound,
        )
        .await;
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("The tenant's keys are unavailable")
                && message.contains("AWS KMS key refused"),
            "{message}"
        );
        assert!(
            !message.contains(&key_id),
            "the key is not named to callers: {message}"
        );
    }
    assert!(
        disabled_at.elapsed() < bound,
        "both servers stopped within the cache bound: {:?}",
        disabled_at.elapsed()
    );
    // Writes stop too; the other tenant is served throughout.
    for server in [&a, &b] {
        let (status, body) = call(
            &app,
            server,
            &app.root_token,
            "byok",
            "UserCreate",
            json!({"profile": {"email": "late@byok.test"}}),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let (status, body) = call(
            &app,
            server,
            &app.root_token,
            "plain",
            "UserGet",
            json!({"mode": "token", "identity": plain_user}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let users_now: i64 = su
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users_now, 2, "the refused write wrote nothing");
    // A server's metrics count the KMS calls.
    let metrics = app
        .http
        .get(format!("{a}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("bunker_kms_requests_total{operation=\"decrypt\",outcome=\"refused\"}"),
        "{metrics}"
    );

    kms_client
        .enable_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    for server in [&a, &b] {
        let (took, body) = until_status(
            &app,
            server,
            "byok",
            &byok_user,
            StatusCode::OK,
            Duration::from_secs(6),
        )
        .await;
        assert_eq!(body["profile"]["name"], "Jane", "after {took:?}");
    }
    // Back to the master key, and the key rotates.
    let (status, body) = call(
        &app,
        &b,
        &app.root_token,
        "byok",
        "TenantKeySetWrapping",
        json!({"kmskeyid": "master"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["versions"][0]["wrapping"], "master");
    let (status, body) = call(
        &app,
        &b,
        &app.root_token,
        "byok",
        "TenantKeyRotate",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["versions"][0]["version"], 2);
    assert_eq!(body["versions"][0]["state"], "pending");
    assert_eq!(body["versions"][1]["state"], "current");
    kms_client
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(bound).await;
    until_status(
        &app,
        &a,
        "byok",
        &byok_user,
        StatusCode::OK,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn only_root_changes_a_tenants_key_unless_the_operator_lets_its_admin() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("acme").await;
    let (_, other_admin) = app.create_tenant("other").await;
    let (status, body) = call(
        &app,
        &app.address,
        &admin,
        "acme",
        "TenantKeyGet",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "an admin reads its own: {body}");
    assert_eq!(body["versions"][0]["state"], "current");
    assert_eq!(
        body["masterderived"], false,
        "a new tenant never uses master-derived keys"
    );
    for command in ["TenantKeyRotate", "TenantKeySetWrapping"] {
        let (status, body) = call(
            &app,
            &app.address,
            &admin,
            "acme",
            command,
            json!({"kmskeyid": "master"}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{command}: {body}");
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("BUNKER_TENANT_KEY_ADMIN"));
        // Another tenant's admin is refused at the door.
        let (status, _) = call(
            &app,
            &app.address,
            &other_admin,
            "acme",
            command,
            json!({"kmskeyid": "master"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{command}");
    }
    let (status, body) = app.root("RoleCreate", json!({"rolename": "reader"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let role = app.role_token("reader").await;
    let (status, _) = call(
        &app,
        &app.address,
        &role,
        "default",
        "TenantKeyGet",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for bad in [
        json!({"kmskeyid": ""}),
        json!({"kmskeyid": "key id with spaces"}),
        json!({}),
    ] {
        let (status, body) = app.root("TenantKeySetWrapping", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }

    let (allowing, _stop) = app
        .replica_with(TestOptions {
            tenant_key_admin: true,
            ..TestOptions::default()
        })
        .await;
    let (status, body) = call(
        &app,
        &allowing,
        &admin,
        "acme",
        "TenantKeyRotate",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["versions"][0]["state"], "pending");
    let (status, body) = call(
        &app,
        &allowing,
        &admin,
        "acme",
        "TenantKeyRotate",
        json!({}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "one pending version at a time: {body}"
    );
    let audited: i64 = app
        .superuser()
        .await
        .query_one(
            "SELECT count(*) FROM audit_events e JOIN tenants t ON t.id = e.tenant_id
              WHERE t.name = 'acme' AND e.action = 'TenantKeyRotate' AND e.target = 'tenant-key:v2'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1, "in the tenant's own trail");
}

/// Every sealed user record of `tenant` in the database `url` and its label's row (the token).
async fn sealed_records(url: &str, tenant: i64) -> Vec<(String, Vec<u8>)> {
    let client = bunker_tests::connect(url).await;
    client
        .query(
            "SELECT token::text, record FROM users WHERE tenant_id = $1 AND record IS NOT NULL",
            &[&tenant],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// How many of `records` (users of `tenant`) open with `keys`.
fn opened(keys: &TenantKeys, tenant: i64, records: &[(String, Vec<u8>)]) -> usize {
    records
        .iter()
        .filter(|(token, sealed)| {
            let label = Label {
                tenant,
                kind: "user",
                row: token,
            };
            keys.records.open(&label, sealed).is_ok()
        })
        .count()
}

/// Restores the dump at `path` into a new database of the run's cluster; its URL.
async fn restore(path: &std::path::Path) -> String {
    let database = fresh_database().await;
    let url = cluster().connection_string(&database);
    let output = std::process::Command::new(bunker_tests::pg_tool("pg_restore"))
        .args(["--no-owner", "--exit-on-error", "-d", &url])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    url
}

#[tokio::test]
async fn after_tenant_delete_a_dump_from_before_without_the_key_rows_opens_nothing_of_the_tenant() {
    let app = TestApp::spawn().await;
    let (gone, _) = app.create_tenant("gone").await;
    for i in 0..5 {
        let (status, body) = call(
            &app,
            &app.address,
            &app.root_token,
            "gone",
            "UserCreate",
            json!({"profile": {"email": format!("u{i}@gone.test"), "name": format!("Seeded {i}")}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    app.create_user(json!({"email": "stays@main.test"})).await;
    // The backup of the data, taken before the delete, keeps no key rows (they go to a separate,
    // shorter-kept store, or are not kept at all); and, as a control, a full one.
    let dir = std::env::temp_dir().join(format!("bunker-shred-{}", app.database));
    std::fs::create_dir_all(&dir).unwrap();
    let url = app.database_url();
    for (file, extra) in [
        ("data.dump", Some("--exclude-table-data=tenant_keys")),
        ("full.dump", None),
    ] {
        let mut dump = std::process::Command::new(bunker_tests::pg_tool("pg_dump"));
        dump.args(["-Fc", "-d", &url, "-f"]).arg(dir.join(file));
        if let Some(extra) = extra {
            dump.arg(extra);
        }
        let output = dump.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (status, body) = app.root("TenantDelete", json!({"tenantid": gone})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let left: i64 = app
        .superuser()
        .await
        .query_one(
            "SELECT count(*) FROM tenant_keys WHERE tenant_id = $1",
            &[&gone],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        left, 0,
        "the tenant's keys went in the same transaction as its rows"
    );

    let data = restore(&dir.join("data.dump")).await;
    let records = sealed_records(&data, gone).await;
    assert_eq!(
        records.len(),
        5,
        "the backup still holds the tenant's ciphertext"
    );
    // The attacker holds the restored database and the wrapping key, hence the master key.
    let source = WrappingSource::Local(WrappingKey::from_hex(&app.wrapping_key).unwrap());
    let restored = bunker_db::Database::connect(&data, 1).await.unwrap();
    let (keyring, _) = load_keyring(&restored, &source).await.unwrap();
    assert_eq!(
        opened(&keyring.tenant_keys(gone), gone, &records),
        0,
        "no key derived from the master key opens the tenant's values"
    );
    let plain = bunker_tests::connect(&data).await;
    let dumped_values: Vec<Vec<u8>> = plain
        .query(
            "SELECT record FROM users WHERE tenant_id = $1
             UNION ALL SELECT details FROM audit_events WHERE tenant_id = $1 AND details IS NOT NULL",
            &[&gone],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(dumped_values.len() > 5);
    for value in &dumped_values {
        assert!(
            !value.windows(6).any(|w| w == b"Seeded"),
            "nothing in clear"
        );
    }

    // The control: with its key rows, the same values open, so the test above could fail.
    let full = restore(&dir.join("full.dump")).await;
    let client = bunker_tests::connect(&full).await;
    let row = client
        .query_one(
            "SELECT wrapped, master_version FROM tenant_keys WHERE tenant_id = $1 AND version = 1",
            &[&gone],
        )
        .await
        .unwrap();
    let wrapped: Vec<u8> = row.get(0);
    let master_version: i32 = row.get(1);
    let key =
        TenantKey::unwrap(1, &wrapped, keyring.master(master_version).unwrap(), gone).unwrap();
    let keys = TenantKeys::from_tenant_key(gone, &key, &[], None);
    assert_eq!(opened(&keys, gone, &sealed_records(&full, gone).await), 5);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fixture: a database the previous release (9a9f911, before tenant keys) created and seeded.
fn fixture(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/previous-release")
        .join(file)
}

/// Everything the fixture's manifest says was seeded opens and is found, in every tenant, on
/// `address`; returns how many checks passed.
async fn check_manifest(http: &reqwest::Client, address: &str, manifest: &Value) -> usize {
    let root = manifest["root_token"].as_str().unwrap();
    let mut checks = 0;
    for tenant in manifest["tenants"].as_array().unwrap() {
        let name = tenant["name"].as_str().unwrap();
        let ask = |command: &str, body: Value| {
            answer(
                http.post(format!("{address}/v2/{command}"))
                    .header("X-Bunker-Token", root)
                    .header("X-Bunker-Tenant", name)
                    .json(&body),
            )
        };
        for user in tenant["users"].as_array().unwrap() {
            let token = user["token"].as_str().unwrap();
            let (status, body) = ask("UserGet", json!({"mode": "token", "identity": token})).await;
            assert_eq!(status, StatusCode::OK, "{name} {token}: {body}");
            assert_eq!(body["profile"], user["profile"], "{name} {token}");
            for mode in ["email", "phone", "login"] {
                let identity = user["profile"][mode].as_str().unwrap();
                let (status, body) =
                    ask("UserGet", json!({"mode": mode, "identity": identity})).await;
                assert_eq!(status, StatusCode::OK, "{name} by {mode}: {body}");
                assert_eq!(body["token"], token, "{name} by {mode}");
            }
            if let Some(retired) = user["retired_lookups"]["email"].as_str() {
                let (status, _) =
                    ask("UserGet", json!({"mode": "email", "identity": retired})).await;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "a replaced e-mail finds no one"
                );
                let (status, body) = ask(
                    "UserGet",
                    json!({"mode": "token", "identity": token, "version": 1}),
                )
                .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_eq!(
                    body["profile"], user["previous_profiles"][0],
                    "a kept version"
                );
            }
            let (status, body) = ask(
                "AuditListUserEvents",
                json!({"mode": "token", "identity": token}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(body["total"].as_i64().unwrap() >= 1, "{body}");
            checks += 1;
        }
        for token in tenant["tokens"].as_array().unwrap() {
            for handle in [&token["tokenuuid"], &token["tokenbase"]] {
                let (status, body) = ask("TokenGet", json!({"token": handle})).await;
                assert_eq!(status, StatusCode::OK, "{name} token {handle}: {body}");
                assert_eq!(body["record"], token["record"], "{name} token {handle}");
            }
            checks += 1;
        }
        for record in tenant["appdata"].as_array().unwrap() {
            let (status, body) = ask(
                "AppdataGet",
                json!({"mode": "token", "identity": record["user_token"], "appname": record["appname"]}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["appdata"], record["data"]);
            checks += 1;
        }
    }
    checks
}

/// How many sealed values of the whole database are under a master-key version (below the tenant
/// key versions), all tenants together (the superuser sees every row).
async fn master_sealed_values(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT (SELECT count(*) FROM users WHERE record IS NOT NULL AND substring(record FROM 2 FOR 4) < '\\x01000000')
                  + (SELECT count(*) FROM users WHERE data_key IS NOT NULL AND substring(data_key FROM 2 FOR 4) < '\\x01000000')
                  + (SELECT count(*) FROM user_versions WHERE substring(record FROM 2 FOR 4) < '\\x01000000')
                  + (SELECT count(*) FROM audit_events WHERE details IS NOT NULL AND substring(details FROM 2 FOR 4) < '\\x01000000')
                  + (SELECT count(*) FROM tokens WHERE substring(record FROM 2 FOR 4) < '\\x01000000')
                  + (SELECT count(*) FROM groups WHERE substring(sealed FROM 2 FOR 4) < '\\x01000000')",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_database_of_the_previous_release_moves_to_tenant_keys_online_and_everything_still_opens()
{
    // The cluster's roles (bunker_app, bunker_maintenance) exist once any database is initialized.
    let _roles = TestApp::spawn().await;
    let url = restore(&fixture("bunker.dump")).await;
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fixture("manifest.json")).unwrap()).unwrap();
    let wrapping = std::fs::read_to_string(fixture("wrapping-key.hex")).unwrap();
    let wrapping = wrapping.trim();
    let env = [
        ("BUNKER_DATABASE_URL", url.as_str()),
        ("BUNKER_WRAPPING_KEY", wrapping),
        ("BUNKER_KEY_REFRESH_SECONDS", "1"),
        ("BUNKER_TENANT_KEY_CACHE_SECONDS", "2"),
    ];
    let (ok, _, stderr) = bunker_tests::run_bunker(&["migrate"], &env).await;
    assert!(ok, "{stderr}");
    let (_, status, _) = bunker_tests::run_bunker(&["keys", "status"], &env).await;
    assert!(
        status.contains("tenant 2 (acme): no key of its own yet"),
        "{status}"
    );
    let server_env: Vec<(String, String)> =
        vec![("BUNKER_TENANT_KEY_CACHE_SECONDS".to_owned(), "2".to_owned())];
    let (address, _server) = serve_process_with(&url, wrapping, None, &server_env).await;
    let http = reqwest::Client::new();
    assert!(
        check_manifest(&http, &address, &manifest).await > 50,
        "the new release serves the old data as it is"
    );

    // A light load (reads by token and by e-mail, new users) while the tenants move to their keys.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, address, manifest, http) = (
            stop.clone(),
            address.clone(),
            manifest.clone(),
            http.clone(),
        );
        tokio::spawn(async move {
            let root = manifest["root_token"].as_str().unwrap().to_owned();
            let users = manifest["tenants"][0]["users"].as_array().unwrap().clone();
            let (mut requests, mut created) = (0usize, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let user = &users[requests % users.len()];
                let (status, body) = answer(
                    http.post(format!("{address}/v2/UserGet"))
                        .header("X-Bunker-Token", &root)
                        .json(&json!({"mode": "email", "identity": user["profile"]["email"]})),
                )
                .await;
                assert_eq!(status, StatusCode::OK, "under load: {body}");
                assert_eq!(body["profile"], user["profile"]);
                let email = format!("load{requests}@upgrade.test");
                let (status, body) = answer(
                    http.post(format!("{address}/v2/UserCreate"))
                        .header("X-Bunker-Token", &root)
                        .json(&json!({"profile": {"email": email, "n": requests}})),
                )
                .await;
                assert_eq!(status, StatusCode::OK, "under load: {body}");
                created.push((email, body["token"].as_str().unwrap().to_owned(), requests));
                requests += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            created
        })
    };
    let (ok, stdout, stderr) = bunker_tests::run_bunker(&["keys", "reencrypt"], &env).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("2 tenant(s) given a key of their own"),
        "{stdout}"
    );
    // Values the server sealed with the master-derived keys until the tenants' keys were in use
    // are re-sealed by the passes; a last run finds nothing left.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let created = load.await.unwrap();
    assert!(
        created.len() > 20,
        "the load ran throughout: {}",
        created.len()
    );
    let (ok, stdout, stderr) = bunker_tests::run_bunker(&["keys", "reencrypt"], &env).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("0 value(s) re-sealed"), "{stdout}");

    let su = bunker_tests::connect(&url).await;
    assert_eq!(
        master_sealed_values(&su).await,
        0,
        "nothing is left under master-derived keys"
    );
    let derived: i64 = su
        .query_one(
            "SELECT count(*) FROM tenant_keys WHERE opens_master_derived",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(derived, 0);
    let (_, status, _) = bunker_tests::run_bunker(&["keys", "status"], &env).await;
    assert!(
        status.contains("tenant 1 (default): v1 current (wrapped by the master key)")
            && status.contains("tenant 2 (acme): v1 current (wrapped by the master key)")
            && !status.contains("values sealed before tenant keys remain"),
        "{status}"
    );
    // A fresh server (no cache) opens everything, old and new, and finds every look-up.
    let (fresh, _fresh) = serve_process_with(&url, wrapping, None, &server_env).await;
    assert!(check_manifest(&http, &fresh, &manifest).await > 50);
    let root = manifest["root_token"].as_str().unwrap();
    for (email, token, n) in &created {
        let (status, body) = answer(
            http.post(format!("{fresh}/v2/UserGet"))
                .header("X-Bunker-Token", root)
                .json(&json!({"mode": "email", "identity": email})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["token"], token.as_str());
        assert_eq!(body["profile"]["n"], *n);
    }
    let (ok, stdout, stderr) = bunker_tests::run_bunker(&["audit", "verify"], &env).await;
    assert!(ok, "the audit chain still verifies: {stdout} {stderr}");
}

#[tokio::test]
async fn a_tenant_whose_kms_key_refuses_stops_only_itself_and_races_leave_one_wrapping() {
    let kms = KmsStandIn::start().await;
    let key_id = kms.create_key().await;
    // The race rounds use a key of their own, which stays enabled.
    let race_key = kms.create_key().await;
    // The in-process server keeps keys as briefly as the processes (a rotation waits for the
    // longest lifetime any server has).
    let app = TestApp::spawn_with(TestOptions {
        tenant_key_cache: Duration::from_secs(CACHE_SECONDS),
        ..TestOptions::default()
    })
    .await;
    app.create_tenant("byok").await;
    app.create_tenant("plain").await;
    let mut env = kms_env(&kms);
    env.push(("BUNKER_SWEEP_SECONDS".to_owned(), "1".to_owned()));
    let (a, _a) = serve_process_with(&app.database_url(), &app.wrapping_key, None, &env).await;
    let (b, _b) = serve_process_with(&app.database_url(), &app.wrapping_key, None, &env).await;

    // A change of wrapping racing a rotation: whichever wins, every held version of the tenant ends
    // wrapped the same way (a rotation never adds a version wrapped as the tenant no longer is).
    // The rotation starts a little later each round, so that some round lands it while the change
    // of wrapping talks to KMS (between its read and its write).
    for round in 0..24u64 {
        let name = format!("race{round}");
        app.create_tenant(&name).await;
        let wrap = call(
            &app,
            &a,
            &app.root_token,
            &name,
            "TenantKeySetWrapping",
            json!({"kmskeyid": race_key}),
        );
        let rotate = async {
            tokio::time::sleep(Duration::from_millis(round * 2)).await;
            call(
                &app,
                &b,
                &app.root_token,
                &name,
                "TenantKeyRotate",
                json!({}),
            )
            .await
        };
        let ((wrapped, wrap_body), (rotated, rotate_body)) = tokio::join!(wrap, rotate);
        for (status, body) in [(wrapped, &wrap_body), (rotated, &rotate_body)] {
            assert!(
                status == StatusCode::OK || status == StatusCode::CONFLICT,
                "{status} {body}"
            );
        }
        let (_, view) = call(&app, &a, &app.root_token, &name, "TenantKeyGet", json!({})).await;
        let wrappings: Vec<&Value> = view["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| &v["wrapping"])
            .collect();
        assert!(
            wrappings.iter().all(|w| *w == wrappings[0]),
            "round {round}: {wrapped} {rotated}: {view}"
        );
        if wrapped == StatusCode::OK {
            assert_eq!(wrappings[0], "kms", "{view}");
        }
    }

    // A rotation racing the tenant's deletion: one of them wins, neither answers a 500.
    for round in 0..12u64 {
        let name = format!("gone{round}");
        let (id, _) = app.create_tenant(&name).await;
        let rotate = async {
            tokio::time::sleep(Duration::from_millis(round)).await;
            call(
                &app,
                &b,
                &app.root_token,
                &name,
                "TenantKeyRotate",
                json!({}),
            )
            .await
        };
        let delete = call(
            &app,
            &a,
            &app.root_token,
            "default",
            "TenantDelete",
            json!({"tenantid": id}),
        );
        let ((rotated, body), (deleted, deleted_body)) = tokio::join!(rotate, delete);
        assert!(rotated.as_u16() < 500, "round {round}: {rotated} {body}");
        assert_eq!(deleted, StatusCode::OK, "round {round}: {deleted_body}");
    }

    // byok goes on the KMS key, then the key is disabled.
    let (status, body) = call(
        &app,
        &a,
        &app.root_token,
        "byok",
        "TenantKeySetWrapping",
        json!({"kmskeyid": key_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for tenant in ["byok", "plain"] {
        let (status, body) = call(
            &app,
            &a,
            &app.root_token,
            tenant,
            "UserCreate",
            json!({"profile": {"email": "dsar@example.com"}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = call(
        &app,
        &a,
        &app.root_token,
        "plain",
        "UserCreate",
        json!({"profile": {"email": "short@plain.test"}, "finaltime": "2s"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let short = body["token"].as_str().unwrap().to_owned();
    kms.client()
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(CACHE_SECONDS) + Duration::from_millis(500)).await;

    // The sweep still forgets the other tenant's expired user.
    let su = app.superuser().await;
    let started = Instant::now();
    loop {
        let forgotten: bool = su
            .query_one(
                "SELECT record IS NULL FROM users WHERE token = $1::text::uuid",
                &[&short],
            )
            .await
            .unwrap()
            .get(0);
        if forgotten {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the sweep stopped at the refused tenant"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A cross-tenant erasure refuses before changing anything.
    let (status, body) = call(
        &app,
        &a,
        &app.root_token,
        "default",
        "BulkListUnlock",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let unlock = body["unlockuuid"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &app,
        &a,
        &app.root_token,
        "default",
        "SystemDeleteUserProfiles",
        json!({"mode": "email", "identity": "dsar@example.com", "unlockuuid": unlock}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = call(
        &app,
        &a,
        &app.root_token,
        "plain",
        "UserGet",
        json!({"mode": "email", "identity": "dsar@example.com"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "nothing was removed anywhere: {body}"
    );

    // Re-encryption does every other tenant and names the one it left.
    let (status, body) = call(
        &app,
        &a,
        &app.root_token,
        "plain",
        "TenantKeyRotate",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = app.database_url();
    let mut cli_env: Vec<(String, String)> = env.clone();
    cli_env.push(("BUNKER_DATABASE_URL".to_owned(), url.clone()));
    cli_env.push(("BUNKER_WRAPPING_KEY".to_owned(), app.wrapping_key.clone()));
    cli_env.push(("BUNKER_KEY_REFRESH_SECONDS".to_owned(), "1".to_owned()));
    let (ok, stdout, stderr) = bunker_tests::run_bunker(&["keys", "reencrypt"], &cli_env).await;
    assert!(!ok, "{stdout}");
    let byok: i64 = su
        .query_one("SELECT id FROM tenants WHERE name = 'byok'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        stderr.contains(&format!("tenant(s) {byok} left as they were")),
        "{stderr}"
    );
    let plain_versions: Vec<(i32, bool)> = su
        .query(
            "SELECT k.version, k.retired FROM tenant_keys k JOIN tenants t ON t.id = k.tenant_id
              WHERE t.name = 'plain' ORDER BY k.version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        plain_versions,
        [(1, true), (2, false)],
        "the other tenant moved on"
    );
}

#[tokio::test]
async fn a_tenant_whose_key_rows_are_gone_is_refused_and_new_versions_wait_for_the_longest_cache() {
    let app = TestApp::spawn().await;
    let (acme, _) = app.create_tenant("acme").await;
    // A server keeping keys only a second: a rotation through it still waits for the in-process
    // server's five minutes, the longest any server of the installation has.
    let (short, _stop) = app
        .replica_with(TestOptions {
            tenant_key_cache: Duration::from_secs(1),
            ..TestOptions::default()
        })
        .await;
    let (status, body) = call(
        &app,
        &short,
        &app.root_token,
        "acme",
        "TenantKeyRotate",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let su = app.superuser().await;
    let wait: f64 = su
        .query_one(
            "SELECT extract(epoch FROM active_from - now())::float8 FROM tenant_keys
              WHERE tenant_id = $1 AND version = 2",
            &[&acme],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        wait > 290.0,
        "sealed with after the longest cache lifetime: {wait}"
    );
    // Its key rows deleted (a restore without them): refused, never served with other keys.
    su.execute("DELETE FROM tenant_keys WHERE tenant_id = $1", &[&acme])
        .await
        .unwrap();
    let (fresh, _stop2) = app.replica().await;
    let (status, body) = call(
        &app,
        &fresh,
        &app.root_token,
        "acme",
        "UserCreate",
        json!({"profile": {"email": "after@acme.test"}}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("key rows are missing"),
        "{body}"
    );
    let users: i64 = su
        .query_one("SELECT count(*) FROM users WHERE tenant_id = $1", &[&acme])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0);
    // Nor does re-encryption give it new keys (with lookup keys that find none of its users): it
    // is reported as left.
    let url = app.database_url();
    let env = [
        ("BUNKER_DATABASE_URL", url.as_str()),
        ("BUNKER_WRAPPING_KEY", app.wrapping_key.as_str()),
        ("BUNKER_KEY_REFRESH_SECONDS", "1"),
    ];
    let (ok, stdout, stderr) = bunker_tests::run_bunker(&["keys", "reencrypt"], &env).await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(&format!("tenant(s) {acme} left as they were")),
        "{stderr}"
    );
    let rows: i64 = su
        .query_one(
            "SELECT count(*) FROM tenant_keys WHERE tenant_id = $1",
            &[&acme],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}
