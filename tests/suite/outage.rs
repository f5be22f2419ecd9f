//! The database going away under a request: the request answers 503 with the JSON envelope, and
//! whatever it was writing is not half-written. (A whole-cluster stop under load is measured by
//! `tests/fuzz/outage_under_load.py`.)

use std::time::Duration;

use bunker_tests::{StatusCode, TestApp};
use serde_json::json;

#[tokio::test]
async fn a_connection_lost_mid_request_is_a_503_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let su = app.superuser().await;
    // Hold the users table so that the create waits inside its transaction, holding its
    // connection, then kill that connection (not the sweeper's, which may be waiting too).
    su.batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let create = {
        let request = app
            .command("UserCreate")
            .header("X-Bunker-Token", &app.root_token)
            .json(&json!({"profile": {"login": "lost"}}));
        tokio::spawn(bunker_tests::answer(request))
    };
    let watcher = app.superuser().await;
    let mut killed = 0;
    for _ in 0..100 {
        killed = watcher
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'
                    AND query LIKE '%INSERT INTO users%'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        if killed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(killed, 1, "the create was waiting on the lock");
    let (status, body) = create.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["message"], "The database is unavailable");
    su.batch_execute("ROLLBACK").await.unwrap();
    let (status, _) = app
        .root("UserGet", json!({"mode": "login", "identity": "lost"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was written");
    let (status, _) = app
        .root("UserCreate", json!({"profile": {"login": "after"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "the pool recovers");
}
