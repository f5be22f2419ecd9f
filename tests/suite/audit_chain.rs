//! The verifiable audit trail: events linked into a keyed chain in the background, by one server
//! at a time, and `bunker audit verify` naming each event changed, deleted, inserted or moved.

use std::time::Duration;

use bunker_tests::{run_bunker, TestApp, TestOptions};
use serde_json::json;
use tokio_postgres::Client;
use uuid::Uuid;

/// Waits until every event of the default tenant is linked.
async fn all_linked(db: &Client) {
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

async fn verify(app: &TestApp) -> (bool, String) {
    let url = app.database_url();
    let (ok, stdout, stderr) = run_bunker(
        &["audit", "verify", "--tenant", "default"],
        &[
            ("BUNKER_DATABASE_URL", url.as_str()),
            ("BUNKER_WRAPPING_KEY", app.wrapping_key.as_str()),
        ],
    )
    .await;
    (ok, format!("{stdout}{stderr}"))
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
    let (ok, report) = verify(&app).await;
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

    let (ok, report) = verify(&app).await;
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
