//! Several replicas: three `bunker serve` processes over one database, on nothing but different
//! ports, share what a deployment of several pods relies on.

use std::time::Duration;

use bunker_tests::{
    answer, run_bunker, serve_process_with, StatusCode, TestApp, TestOptions, WebhookReceiver,
};
use serde_json::{json, Value};

/// Three `bunker serve` processes over `app`'s database, each with `env` (and the child
/// processes, killed when dropped).
async fn three_replicas(
    app: &TestApp,
    env: &[(&str, &str)],
) -> Vec<(String, tokio::process::Child)> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(serve_process_with(&app.database_url(), &app.wrapping_key, None, &env).await);
    }
    replicas
}

async fn call(
    app: &TestApp,
    address: &str,
    command: &str,
    token: &str,
    tenant: &str,
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

#[tokio::test]
async fn a_token_revoked_through_one_replica_is_refused_by_the_others_at_once() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("acme").await;
    let replicas = three_replicas(&app, &[]).await;
    // Roles belong to the main tenant (root, no tenant header).
    let (status, role) = call(
        &app,
        &replicas[0].0,
        "RoleCreate",
        &app.root_token,
        "default",
        json!({"rolename": "clerk"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{role}");
    let (status, made) = call(
        &app,
        &replicas[1].0,
        "XTokenCreateForRole",
        &admin,
        "acme",
        json!({"rolename": "clerk"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let clerk = made["xtoken"].as_str().unwrap().to_owned();
    for (address, _) in &replicas {
        let (status, body) = call(
            &app,
            address,
            "GroupListAllGroups",
            &clerk,
            "acme",
            json!({}),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "known everywhere (no policy allows it): {body}"
        );
    }
    let (_, listed) = call(
        &app,
        &replicas[2].0,
        "TenantListTokens",
        &admin,
        "acme",
        json!({}),
    )
    .await;
    let id = listed["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "role")
        .expect("the role token")["tokenid"]
        .clone();
    let (status, body) = call(
        &app,
        &replicas[0].0,
        "TenantRevokeToken",
        &admin,
        "acme",
        json!({"tokenid": id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (address, _) in &replicas {
        let (status, _) = call(
            &app,
            address,
            "GroupListAllGroups",
            &clerk,
            "acme",
            json!({}),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "revoked on {address} at once"
        );
    }
    // The tenant's admin token, rotated through one, is refused by the others at once too.
    let (status, rotated) = call(
        &app,
        &replicas[1].0,
        "TenantRotateToken",
        &admin,
        "acme",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let fresh = rotated["xtoken"].as_str().unwrap();
    for (address, _) in &replicas {
        let (old, _) = call(&app, address, "TenantListTokens", &admin, "acme", json!({})).await;
        let (new, _) = call(&app, address, "TenantListTokens", fresh, "acme", json!({})).await;
        assert_eq!(
            (old, new),
            (StatusCode::UNAUTHORIZED, StatusCode::OK),
            "{address}"
        );
    }
}

#[tokio::test]
async fn a_master_key_rotation_is_picked_up_by_every_replica() {
    let app = TestApp::spawn().await;
    let replicas = three_replicas(&app, &[("BUNKER_KEY_REFRESH_SECONDS", "1")]).await;
    let before = app.create_user(json!({"login": "before"})).await;
    let url = app.database_url();
    let env = [
        ("BUNKER_DATABASE_URL", url.as_str()),
        ("BUNKER_WRAPPING_KEY", app.wrapping_key.as_str()),
    ];
    let shares =
        std::env::temp_dir().join(format!("bunker-replica-shares-{}", uuid::Uuid::new_v4()));
    std::fs::write(
        &shares,
        format!("{}\n{}\n{}\n", app.shares[0], app.shares[2], app.shares[4]),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shares, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (ok, stdout, stderr) = run_bunker(
        &[
            "keys",
            "rotate-master",
            "--shares-file",
            shares.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    std::fs::remove_file(&shares).ok();
    assert!(
        ok && stdout.contains("Master key version 2 created"),
        "{stdout} {stderr}"
    );
    // Within a few refreshes, every replica wraps a new tenant's key with version 2 (the master key
    // wraps tenant keys; values are sealed with those), and still opens what came before.
    let db = app.superuser().await;
    for (i, (address, _)) in replicas.iter().enumerate() {
        let mut version = None;
        for attempt in 0..50 {
            let name = format!("after{i}-{attempt}");
            let (status, made) = call(
                &app,
                address,
                "TenantCreate",
                &app.root_token,
                "default",
                json!({"tenantname": name, "tenantorg": "rotation"}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{made}");
            let id = made["tenantid"].as_i64().unwrap();
            version = db
                .query_one(
                    "SELECT master_version FROM tenant_keys WHERE tenant_id = $1",
                    &[&id],
                )
                .await
                .unwrap()
                .get(0);
            if version == Some(2) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(version, Some(2), "{address} wraps with the new master key");
        let (status, body) = call(
            &app,
            address,
            "UserGet",
            &app.root_token,
            "default",
            json!({"mode": "token", "identity": before}),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{address} opens the old one: {body}"
        );
    }
}

#[tokio::test]
async fn one_replica_at_a_time_sweeps_a_tenant() {
    let app = TestApp::spawn().await;
    let replicas = three_replicas(&app, &[("BUNKER_SWEEP_SECONDS", "1")]).await;
    // A lock held where every replica's sweep asks for it: none of them sweeps the tenant.
    let holder = app.superuser().await;
    holder
        .execute(
            "SELECT pg_advisory_lock(hashtextextended('bunker-sweep', 1))",
            &[],
        )
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for i in 0..6 {
        let (status, made) = call(
            &app,
            &replicas[i % 3].0,
            "UserCreate",
            &app.root_token,
            "default",
            json!({"profile": {"login": format!("short{i}")}, "finaltime": "1s"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{made}");
        tokens.push(uuid::Uuid::parse_str(made["token"].as_str().unwrap()).unwrap());
    }
    let live = "SELECT count(*) FROM users WHERE token = ANY($1) AND record IS NOT NULL";
    tokio::time::sleep(Duration::from_secs(4)).await;
    let kept: i64 = holder.query_one(live, &[&tokens]).await.unwrap().get(0);
    assert_eq!(
        kept, 6,
        "no replica swept while another held the tenant's sweep"
    );
    holder
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended('bunker-sweep', 1))",
            &[],
        )
        .await
        .unwrap();
    let mut left = kept;
    for _ in 0..40 {
        left = holder.query_one(live, &[&tokens]).await.unwrap().get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(left, 0, "swept once the lock was free");
    // Each expired user is forgotten once, by one replica.
    let expired: i64 = holder
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'UserExpired' AND user_token = ANY($1)",
            &[&tokens],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(expired, 6);
}

#[tokio::test]
async fn one_replica_at_a_time_links_a_tenants_audit_events_into_one_chain() {
    let app = TestApp::spawn().await;
    let replicas = three_replicas(
        &app,
        &[
            ("BUNKER_AUDIT_CHAIN_SECONDS", "1"),
            ("BUNKER_AUDIT_CHAIN_HORIZON_SECONDS", "1"),
        ],
    )
    .await;
    // The lock each replica's linking asks for, held here: none of them links the tenant.
    let holder = app.superuser().await;
    let lock = "SELECT pg_advisory_lock(hashtextextended('bunker-audit-chain', 1))";
    holder.execute(lock, &[]).await.unwrap();
    for i in 0..9 {
        let (status, made) = call(
            &app,
            &replicas[i % 3].0,
            "UserCreate",
            &app.root_token,
            "default",
            json!({"profile": {"login": format!("chained{i}")}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{made}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let chained = "SELECT count(*), count(DISTINCT event_id) FROM audit_chain WHERE tenant_id = 1";
    let row = holder.query_one(chained, &[]).await.unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        0,
        "no replica linked while another held the tenant's chain"
    );
    holder
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended('bunker-audit-chain', 1))",
            &[],
        )
        .await
        .unwrap();
    crate::audit_chain::all_linked(&holder).await;
    // One chain: every event once, at positions 1..n, and `bunker audit verify` holds it.
    let row = holder.query_one(chained, &[]).await.unwrap();
    let (links, events) = (row.get::<_, i64>(0), row.get::<_, i64>(1));
    assert!(links >= 9, "{links}");
    assert_eq!(links, events, "no event linked twice");
    let last: i64 = holder
        .query_one(
            "SELECT max(position) FROM audit_chain WHERE tenant_id = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(last, links, "no gap and no fork");
    let (ok, said) = crate::audit_chain::verify_with(&app, &[]).await;
    assert!(ok, "{said}");
}

#[tokio::test]
async fn each_webhook_delivery_is_sent_and_retried_by_one_replica() {
    // The test's own server delivers nothing: only the replicas do.
    let app = TestApp::spawn_with(TestOptions {
        webhook_interval: Duration::from_secs(3600),
        ..TestOptions::default()
    })
    .await;
    let replicas = three_replicas(&app, &[]).await;
    // Fails the first two deliveries, so that two are retried.
    let receiver = WebhookReceiver::start(2).await;
    let secret = "replica-webhook-secret-0123456789abcdef";
    let (status, body) = call(
        &app,
        &replicas[0].0,
        "TenantUpdate",
        &app.root_token,
        "default",
        json!({"webhook": {"url": receiver.url, "secret": secret}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut opened = Vec::new();
    for i in 0..6 {
        let login = format!("hooked{i}");
        app.create_user(json!({"login": login})).await;
        let xtoken = app.user_xtoken("login", &login).await;
        let (status, body) = call(
            &app,
            &replicas[i % 3].0,
            "UserUpdateRequest",
            &xtoken,
            "default",
            json!({"mode": "login", "identity": login, "profile": {"city": "York"}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        opened.push(body["requestuuid"].as_str().unwrap().to_owned());
    }
    let deliveries = receiver.deliveries(8).await;
    // Long enough for a second replica's copy or a third attempt to arrive, were there one.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let deliveries_after = receiver.deliveries(8).await;
    assert_eq!(
        deliveries.len(),
        8,
        "six events and two retries: {deliveries:?}"
    );
    assert_eq!(
        deliveries_after.len(),
        8,
        "and nothing more: {deliveries_after:?}"
    );
    let mut delivered: Vec<String> = deliveries[2..]
        .iter()
        .map(|(_, body)| {
            let event: Value = serde_json::from_str(body).unwrap();
            event["requestuuid"].as_str().unwrap().to_owned()
        })
        .collect();
    delivered.sort();
    opened.sort();
    assert_eq!(delivered, opened, "each event delivered once");
    let db = app.superuser().await;
    let left: i64 = db
        .query_one("SELECT count(*) FROM webhook_outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn rate_limits_are_each_replicas_and_a_tenants_quota_holds_on_all_at_once() {
    let app = TestApp::spawn().await;
    let (acme_id, acme) = app.create_tenant("acme").await;
    let replicas = three_replicas(&app, &[]).await;
    // Set through one replica, the quota is read by every replica at the tenant's next request.
    let (status, body) = call(
        &app,
        &replicas[0].0,
        "TenantUpdate",
        &app.root_token,
        "default",
        json!({"tenantid": acme_id, "ratelimit": "5/h"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // docs/operations.md: each replica admits the quota, so N replicas admit N times it.
    for (address, _) in &replicas {
        let mut admitted = 0;
        for n in 0..8 {
            let (status, body) = call(
                &app,
                address,
                "UserCreate",
                &acme,
                "acme",
                json!({"profile": {"login": format!("{}-{n}", address.rsplit(':').next().unwrap())}}),
            )
            .await;
            match status {
                StatusCode::OK => admitted += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    assert!(
                        body["message"].as_str().unwrap().contains("(5/h)"),
                        "{body}"
                    )
                }
                other => panic!("{other}: {body}"),
            }
        }
        assert_eq!(admitted, 5, "{address}");
    }
    let db = app.superuser().await;
    let made: i64 = db
        .query_one(
            "SELECT count(*) FROM users WHERE tenant_id = $1",
            &[&acme_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(made, 15, "three replicas, five each");
}

#[tokio::test]
async fn a_rolling_upgrade_keeps_the_previous_release_serving_unless_its_migration_says_not() {
    let app = TestApp::spawn().await;
    let replicas = three_replicas(&app, &[]).await;
    let db = app.superuser().await;
    // The next release's pre-upgrade Job applied a migration that only adds.
    db.batch_execute(
        "CREATE TABLE next_release_things (id bigint);
         INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
              VALUES (1000, 'next_release', now()::text, '0');",
    )
    .await
    .unwrap();
    let ready = |address: String| {
        let http = app.http.clone();
        async move { answer(http.get(format!("{address}/ready"))).await }
    };
    for (address, _) in &replicas {
        let (status, body) = ready(address.clone()).await;
        assert_eq!(status, StatusCode::OK, "{address} stays ready: {body}");
        let (status, body) = call(
            &app,
            address,
            "UserCreate",
            &app.root_token,
            "default",
            json!({"profile": {"login": format!("during-{}", address.rsplit(':').next().unwrap())}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{address} serves: {body}");
    }
    // A pod of this release started now (a restart, a rollback) serves too.
    let (restarted, _child) =
        serve_process_with(&app.database_url(), &app.wrapping_key, None, &[]).await;
    let (status, _) = ready(restarted.clone()).await;
    assert_eq!(status, StatusCode::OK);
    // A migration this release cannot serve on says so: every replica turns unready, and one
    // started now refuses, naming the cause.
    db.batch_execute("UPDATE schema_compatibility SET serves_from = 1000")
        .await
        .unwrap();
    for address in replicas.iter().map(|(a, _)| a).chain([&restarted]) {
        let (status, body) = ready(address.clone()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{address}: {body}");
        assert_eq!(body["message"], "The database schema is not current");
    }
    let url = app.database_url();
    let env = [
        ("BUNKER_DATABASE_URL", url.as_str()),
        ("BUNKER_WRAPPING_KEY", app.wrapping_key.as_str()),
        ("BUNKER_LISTEN", "127.0.0.1:0"),
    ];
    let refused = run_bunker(&["serve"], &env);
    let (ok, _, said) = tokio::time::timeout(Duration::from_secs(60), refused)
        .await
        .expect("bunker serve refuses, rather than serving");
    assert!(!ok);
    assert!(
        said.contains("newer than this binary knows") && said.contains("upgrade bunker"),
        "{said}"
    );
}
