//! The verifiable audit trail: events linked into a keyed chain in the background, by one server
//! at a time, and `bunker audit verify` naming each event changed, deleted, inserted or moved.

use std::time::Duration;

use bunker_tests::{run_bunker, TestApp, TestOptions};
use serde_json::json;
use tokio_postgres::Client;
use uuid::Uuid;

/// Waits until every event of the default tenant is linked.
pub(crate) async fn all_linked(db: &Client) {
    for _ in 0..200 {
        let row = db
            .query_one(
                "SELECT (SELECT count(*) FROM audit_events WHERE tenant_id = 1),
                        (SELECT count(*) FROM audit_chain WHERE tenant_id = 1)",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) == row.get::<_, i64>(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the events were not all linked");
}

/// The default tenant's linked events, in chain order.
async fn linked(db: &Client) -> Vec<Uuid> {
    db.query(
        "SELECT event_id FROM audit_chain WHERE tenant_id = 1 ORDER BY position",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn audit_verify_names_every_event_changed_deleted_inserted_or_moved() {
    let app = TestApp::spawn_with(TestOptions {
        audit_chain: (Duration::from_millis(200), Duration::ZERO),
        ..TestOptions::default()
    })
    .await;
    // A second server links too: each tenant is linked by one server at a time, each event once.
    let (_replica, _running) = app
        .replica_with(TestOptions {
            audit_chain: (Duration::from_millis(150), Duration::ZERO),
            ..TestOptions::default()
        })
        .await;
    for i in 0..8 {
        let user = app.create_user(json!({"login": format!("u{i}")})).await;
        app.root(
            "UserUpdate",
            json!({"mode": "token", "identity": user, "profile": {"n": i}}),
        )
        .await;
    }
    let db = app.superuser().await;
    all_linked(&db).await;
    let (ok, report) = verify_with(&app, &[]).await;
    assert!(ok, "an untouched trail verifies: {report}");
    assert!(report.contains(": verified"), "{report}");

    // Tamper as the owner would: one of each.
    let events = linked(&db).await;
    let [changed, deleted, before_insert, first, second] =
        [events[2], events[5], events[8], events[10], events[11]];
    db.execute(
        "UPDATE audit_events SET action = 'UserGet' WHERE id = $1",
        &[&changed],
    )
    .await
    .unwrap();
    db.execute("DELETE FROM audit_events WHERE id = $1", &[&deleted])
        .await
        .unwrap();
    let inserted = Uuid::new_v4();
    db.execute(
        "INSERT INTO audit_events (id, tenant_id, occurred_at, actor_kind, action, target)
         SELECT $1, 1, occurred_at, 'root', 'UserDelete', 'user' FROM audit_events WHERE id = $2",
        &[&inserted, &before_insert],
    )
    .await
    .unwrap();
    db.batch_execute(&format!(
        "UPDATE audit_events a SET occurred_at = b.occurred_at
           FROM (SELECT id, occurred_at FROM audit_events WHERE id IN ('{first}', '{second}')) b
          WHERE a.id IN ('{first}', '{second}') AND a.id <> b.id"
    ))
    .await
    .unwrap();

    let (ok, report) = verify_with(&app, &[]).await;
    assert!(!ok, "a tampered trail does not verify: {report}");
    for expected in [
        format!("event {changed} was changed after it was linked"),
        format!("event {deleted} was deleted after it was linked"),
        format!("event {inserted} was inserted into the linked part of the trail"),
        format!("events {first} and {second} are out of the order they were linked in"),
    ] {
        assert!(report.contains(&expected), "{expected}\nin\n{report}");
    }
    let linked_twice: i64 = db
        .query_one(
            "SELECT count(*) - count(DISTINCT event_id) FROM audit_chain",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(linked_twice, 0);
}

/// A vault over the app's database, to link and verify by hand (the app's own task links nothing
/// younger than five minutes).
pub(crate) async fn vault_of(app: &TestApp) -> bunker_services::Vault {
    use bunker_keys::WrappingKey;
    use bunker_services::keys::wrapping::WrappingSource;
    use bunker_services::keys::{load_keyring, SharedKeyring};

    let db = bunker_db::Database::connect(&app.database_url(), 2)
        .await
        .unwrap();
    let source = WrappingSource::Local(WrappingKey::from_hex(&app.wrapping_key).unwrap());
    let (keyring, _) = load_keyring(&db, &source).await.unwrap();
    bunker_services::Vault::new(
        db,
        SharedKeyring::new(keyring),
        TestOptions::default().settings(&app.wrapping_key).vault,
        std::sync::Arc::new(bunker_services::metrics::ServiceMetrics::new().unwrap()),
    )
}

/// `bunker audit verify --tenant default` with `extra` arguments: whether it passed, and what it said.
pub(crate) async fn verify_with(app: &TestApp, extra: &[&str]) -> (bool, String) {
    let url = app.database_url();
    let mut args = vec!["audit", "verify", "--tenant", "default"];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = run_bunker(
        &args,
        &[
            ("BUNKER_DATABASE_URL", url.as_str()),
            ("BUNKER_WRAPPING_KEY", app.wrapping_key.as_str()),
        ],
    )
    .await;
    (ok, format!("{stdout}{stderr}"))
}

#[tokio::test]
async fn a_cut_chain_is_not_extended_and_a_recorded_head_shows_the_cut() {
    use bunker_db::TenantId;
    use bunker_services::audit::chain::{Heads, VerifyOptions};

    let app = TestApp::spawn().await;
    for i in 0..6 {
        app.create_user(json!({"login": format!("c{i}")})).await;
    }
    let vault = vault_of(&app).await;
    let mut heads = Heads::new();
    assert!(vault.extend_audit_chains(Duration::ZERO, &mut heads).await >= 6);
    let (position, mac) = heads[&TenantId::MAIN].clone();
    let head = format!("{position}:{}", hex::encode(&mac));
    let (ok, report) = verify_with(&app, &["--head", &head]).await;
    assert!(ok, "the chain holds its head: {report}");

    // The owner cuts the tail: the last two events and their links.
    let db = app.superuser().await;
    db.execute(
        "WITH cut AS (DELETE FROM audit_chain WHERE tenant_id = 1 AND position > $1::bigint - 2
                      RETURNING event_id)
         DELETE FROM audit_events WHERE id IN (SELECT event_id FROM cut)",
        &[&position],
    )
    .await
    .unwrap();
    app.create_user(json!({"login": "after-the-cut"})).await;

    // A server that linked the head does not extend the chain over the cut...
    assert_eq!(
        vault.extend_audit_chains(Duration::ZERO, &mut heads).await,
        0
    );
    assert_eq!(heads[&TenantId::MAIN].0, position);
    // ... so the events since stay unlinked, which verification names once they are old enough.
    let report = vault
        .verify_audit_chain(
            TenantId::MAIN,
            VerifyOptions {
                stale_after: Duration::ZERO,
                anchor: None,
            },
        )
        .await
        .unwrap();
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.to_string().contains("old enough to be linked are not")),
        "{report:?}"
    );

    // A server that never saw the head (restarted) links on from the cut; the head kept outside
    // the database still shows it.
    assert!(
        vault
            .extend_audit_chains(Duration::ZERO, &mut Heads::new())
            .await
            > 0
    );
    let (ok, report) = verify_with(&app, &["--head", &head]).await;
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!("link {position} is not the head recorded for it")),
        "{report}"
    );
    let (ok, report) = verify_with(&app, &["--head", "1:zz"]).await;
    assert!(!ok && report.contains("MAC is hexadecimal"), "{report}");
    let (ok, _, stderr) = run_bunker(
        &["audit", "verify", "--head", &head],
        &[("BUNKER_DATABASE_URL", app.database_url().as_str())],
    )
    .await;
    assert!(!ok && stderr.contains("give --tenant too"), "{stderr}");
}

#[tokio::test]
async fn the_chain_and_the_main_trail_guard_themselves() {
    let app = TestApp::spawn().await;
    app.create_user(json!({"login": "g0"})).await;
    let (kept, _) = app.create_tenant("kept").await;
    let (removed, _) = app.create_tenant("removed").await;
    let (deleted, _) = app.create_tenant("deleted").await;
    let (status, _) = app.root("TenantDelete", json!({"tenantid": deleted})).await;
    assert_eq!(status, bunker_tests::StatusCode::OK);
    let vault = vault_of(&app).await;
    assert!(
        vault
            .extend_audit_chains(Duration::ZERO, &mut Default::default())
            .await
            > 0
    );
    let (ok, report) = verify_with(&app, &[]).await;
    assert!(ok, "{report}");

    let db = app.superuser().await;
    // The main tenant cannot be deleted, even by the owner.
    let err = db
        .execute("DELETE FROM tenants WHERE id = 1", &[])
        .await
        .unwrap_err();
    assert!(
        bunker_tests::pg_message(&err).contains("main tenant cannot be deleted"),
        "{err}"
    );
    // A link's position is positive: a link cannot be slipped in before the first.
    let err = db
        .execute(
            "INSERT INTO audit_chain (tenant_id, position, event_id, occurred_at, mac)
             SELECT 1, -1, gen_random_uuid(), now(), mac FROM audit_chain
              WHERE tenant_id = 1 AND position = 1",
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        bunker_tests::pg_message(&err).contains("audit_chain_position"),
        "{err}"
    );
    // A tenant removed behind TenantDelete's back, with its whole trail, is named; one deleted
    // through TenantDelete is not. And a link's time must be its event's.
    db.execute("DELETE FROM tenants WHERE id = $1", &[&removed])
        .await
        .unwrap();
    // A deletion dated in the future (never linked) does not account for it.
    db.execute(
        "INSERT INTO audit_events (id, tenant_id, occurred_at, actor_kind, action, target)
         VALUES (gen_random_uuid(), 1, '2999-01-01', 'root', 'TenantDelete', 'tenant:' || $1::bigint)",
        &[&removed],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE audit_chain SET occurred_at = occurred_at - interval '1 second'
          WHERE tenant_id = 1 AND position = 2",
        &[],
    )
    .await
    .unwrap();
    // A target no tenant id can be does not stop the check; a link slipped in below the first
    // (the owner dropping the constraint) is named.
    db.batch_execute(
        "INSERT INTO audit_events (id, tenant_id, occurred_at, actor_kind, action, target)
         VALUES (gen_random_uuid(), 1, now() - interval '1 hour', 'root', 'TenantCreate',
                 'tenant:99999999999999999999');
         ALTER TABLE audit_chain DROP CONSTRAINT audit_chain_position;
         WITH forged AS (
             INSERT INTO audit_events (id, tenant_id, occurred_at, actor_kind, action, target)
             VALUES (gen_random_uuid(), 1, now() - interval '1 hour', 'root', 'UserDelete', 'user')
             RETURNING id, occurred_at)
         INSERT INTO audit_chain (tenant_id, position, event_id, occurred_at, mac)
         SELECT 1, 0, id, occurred_at, decode(repeat('00', 32), 'hex') FROM forged",
    )
    .await
    .unwrap();
    let (ok, report) = verify_with(&app, &[]).await;
    assert!(!ok, "{report}");
    assert!(
        report.contains("the chain itself was altered at link 0"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "tenant {removed} was created and never deleted, yet it and its trail are gone"
        )),
        "{report}"
    );
    assert!(
        report.contains("the chain itself was altered at link 2"),
        "{report}"
    );
    assert!(
        report.contains("1 event(s) are dated in the future"),
        "{report}"
    );
    for id in [kept, deleted] {
        assert!(!report.contains(&format!("tenant {id} ")), "{report}");
    }
    // The serving role cannot date an event where no clock is.
    let mut as_app = app.app_role().await;
    let tx = as_app.transaction().await.unwrap();
    tx.execute("SELECT set_config('bunker.tenant_id', '1', true)", &[])
        .await
        .unwrap();
    let err = tx
        .execute(
            "INSERT INTO audit_events (id, tenant_id, occurred_at, actor_kind, action, target)
             VALUES (gen_random_uuid(), 1, '-infinity', 'root', 'UserGet', 'user')",
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        bunker_tests::pg_message(&err).contains("audit_events_time_finite"),
        "{err}"
    );
    drop(tx);
    let tx = as_app.transaction().await.unwrap();
    tx.execute("SELECT set_config('bunker.tenant_id', '1', true)", &[])
        .await
        .unwrap();
    let err = tx
        .execute(
            "INSERT INTO audit_chain (tenant_id, position, event_id, occurred_at, mac)
             VALUES (1, 1000000, gen_random_uuid(), '-infinity', decode(repeat('00', 32), 'hex'))",
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        bunker_tests::pg_message(&err).contains("audit_chain_time_finite"),
        "{err}"
    );
}

#[tokio::test]
async fn an_impossible_position_or_an_unreadable_event_is_reported_not_a_crash() {
    let app = TestApp::spawn().await;
    let (acme, acme_token) = app.create_tenant("acme").await;
    app.create_user(json!({"login": "p0"})).await;
    let (status, _) = app
        .call(
            "UserCreate",
            &acme_token,
            Some("acme"),
            json!({"profile": {"login": "p1"}}),
        )
        .await;
    assert_eq!(status, bunker_tests::StatusCode::OK);
    let vault = vault_of(&app).await;
    assert!(
        vault
            .extend_audit_chains(Duration::ZERO, &mut Default::default())
            .await
            > 0
    );
    let db = app.superuser().await;
    // The main tenant's last link moved to the last position there is.
    db.batch_execute(
        "UPDATE audit_chain SET position = 9223372036854775807
          WHERE tenant_id = 1 AND position = (SELECT max(position) FROM audit_chain WHERE tenant_id = 1)",
    )
    .await
    .unwrap();
    app.create_user(json!({"login": "p2"})).await;
    // The chainer does not go past it (and does not panic), nor stop linking other tenants.
    let (status, _) = app
        .call(
            "UserCreate",
            &acme_token,
            Some("acme"),
            json!({"profile": {"login": "p3"}}),
        )
        .await;
    assert_eq!(status, bunker_tests::StatusCode::OK);
    let linked = vault
        .extend_audit_chains(Duration::ZERO, &mut Default::default())
        .await;
    let acme_unlinked: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_events e WHERE tenant_id = $1
                AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)",
            &[&acme],
        )
        .await
        .unwrap()
        .get(0);
    assert!(linked > 0 && acme_unlinked == 0, "{linked} {acme_unlinked}");
    // An event of acme's that no longer reads (its schema altered by the owner) fails acme's
    // verification, not the whole run.
    db.batch_execute(&format!(
        "ALTER TABLE audit_events ALTER actor_kind DROP NOT NULL;
         UPDATE audit_events SET actor_kind = NULL
          WHERE id = (SELECT event_id FROM audit_chain WHERE tenant_id = {acme} AND position = 1)"
    ))
    .await
    .unwrap();
    let url = app.database_url();
    let (ok, stdout, stderr) = run_bunker(
        &["audit", "verify"],
        &[
            ("BUNKER_DATABASE_URL", url.as_str()),
            ("BUNKER_WRAPPING_KEY", app.wrapping_key.as_str()),
        ],
    )
    .await;
    assert!(!ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("tenant 1:") && stdout.contains("the chain itself was altered"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains(&format!("tenant {acme}: could not be verified")),
        "{stdout}{stderr}"
    );
}
