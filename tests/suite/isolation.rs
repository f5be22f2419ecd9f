//! Row-level security: what `bunker_app` can see and write, with and without a tenant set.

use bunker_tests::{pg_message, tenant_tables, StatusCode, TestApp, TestOptions};
use serde_json::json;

/// Two tenants with rows in every tenant table: audit events, users, indexes and versions, ...,
/// consent.
async fn two_tenants_with_rows(app: &TestApp) -> (i64, i64) {
    let (a, a_token) = app.create_tenant("tenant-a").await;
    let (b, b_token) = app.create_tenant("tenant-b").await;
    for (token, tenant) in [(&a_token, "tenant-a"), (&b_token, "tenant-b")] {
        let (status, _) = app
            .call(
                "TenantUpdate",
                token,
                Some(tenant),
                json!({"tenantorg": "x"}),
            )
            .await;
        assert!(status.is_success());
        let profile =
            json!({"profile": {"email": format!("someone@{tenant}.test"), "name": "Someone"}});
        let (status, _) = app.call("UserCreate", token, Some(tenant), profile).await;
        assert!(status.is_success());
        let card = json!({"tokentype": "creditcard", "record": "4111111111111111", "unique": true});
        let (status, _) = app.call("TokenCreate", token, Some(tenant), card).await;
        assert!(status.is_success());
        let (status, _) = app
            .call("BulkListUnlock", token, Some(tenant), json!({}))
            .await;
        assert!(status.is_success());
        let group = json!({"groupname": format!("{tenant} family")});
        let (status, _) = app.call("GroupCreate", token, Some(tenant), group).await;
        assert!(status.is_success());
        let join = json!({"mode": "email", "identity": format!("someone@{tenant}.test"), "groupname": format!("{tenant} family")});
        let (status, _) = app.call("GroupAddUser", token, Some(tenant), join).await;
        assert!(status.is_success());
        let change = json!({"mode": "email", "identity": format!("someone@{tenant}.test"), "profile": {"name": "Else"}});
        let (status, _) = app.call("UserUpdate", token, Some(tenant), change).await;
        assert!(status.is_success());
        let appdata = json!({"mode": "email", "identity": format!("someone@{tenant}.test"), "appname": "shop", "appdata": {"size": "M"}});
        let (status, _) = app
            .call("AppdataCreate", token, Some(tenant), appdata)
            .await;
        assert!(status.is_success());
        // A webhook no one answers (root's: only root may name this machine): the request's
        // delivery stays in the outbox (retried).
        let id = if tenant == "tenant-a" { a } else { b };
        let webhook = json!({"tenantid": id, "webhook": {"url": "http://127.0.0.1:9/hook", "secret": "s".repeat(40)}});
        let (status, _) = app.root("TenantUpdate", webhook).await;
        assert!(status.is_success());
        let ask = json!({"mode": "email", "identity": format!("someone@{tenant}.test"), "profile": {"name": "Other"}});
        let (status, _) = app
            .call("UserUpdateRequest", token, Some(tenant), ask)
            .await;
        assert!(status.is_success());
        // Consent: a basis, an agreement, an activity linked to the basis.
        for (command, body) in [
            ("LegalBasisCreate", json!({"brief": "newsletter"})),
            (
                "AgreementAccept",
                json!({"mode": "email", "identity": format!("someone@{tenant}.test"), "brief": "newsletter"}),
            ),
            ("ProcessingActivityCreate", json!({"activity": "mailing"})),
            (
                "ProcessingActivityLinkLegalBasis",
                json!({"activity": "mailing", "brief": "newsletter"}),
            ),
            // A session, a shared record and a file of the user.
            (
                "SessionUpsert",
                json!({"sessionuuid": format!("s-{tenant}"),
                       "sessiondata": {"email": format!("someone@{tenant}.test")}}),
            ),
            (
                "SharedRecordCreate",
                json!({"mode": "email", "identity": format!("someone@{tenant}.test"), "fields": "name"}),
            ),
            (
                "FileCreate",
                json!({"mode": "email", "identity": format!("someone@{tenant}.test"),
                       "filename": "id.txt", "filedata": "aGk="}),
            ),
            // An expiration flow of the user (its link's capability reaches one row).
            (
                "UserExpirationStart",
                json!({"mode": "email", "identity": format!("someone@{tenant}.test"),
                       "finaltime": "30d"}),
            ),
        ] {
            let (status, answer) = app.call(command, token, Some(tenant), body).await;
            assert!(status.is_success(), "{command}: {answer}");
        }
    }
    // A link of each tenant's audit chain (the chaining task waits for events to age).
    app.superuser()
        .await
        .batch_execute(&format!(
            "INSERT INTO audit_chain (tenant_id, position, event_id, occurred_at, mac)
             SELECT DISTINCT ON (tenant_id) tenant_id, 1, id, occurred_at, decode(repeat('00', 32), 'hex')
               FROM audit_events WHERE tenant_id IN ({a}, {b}) ORDER BY tenant_id, occurred_at;
             -- A captcha and a login code (as CaptchaCreate and UserPrelogin keep them).
             INSERT INTO login_captchas (tenant_id, id_hash, answer_mac, expires_at)
             SELECT id, decode(repeat('01', 32), 'hex'), decode(repeat('02', 32), 'hex'), now() + interval '5 minutes'
               FROM tenants WHERE id IN ({a}, {b});
             INSERT INTO login_codes (tenant_id, token, code_mac, expires_at)
             SELECT DISTINCT ON (tenant_id) tenant_id, token, decode(repeat('03', 32), 'hex'), now() + interval '5 minutes'
               FROM users WHERE tenant_id IN ({a}, {b}) ORDER BY tenant_id, created_at;
             INSERT INTO portal_sessions (tenant_id, id_hash, kind, token_sealed, expires_at)
             SELECT id, decode(repeat('04', 32), 'hex'), 'admin', decode(repeat('05', 32), 'hex'), now() + interval '5 minutes'
               FROM tenants WHERE id IN ({a}, {b})"
        ))
        .await
        .unwrap();
    (a, b)
}

#[tokio::test]
async fn every_tenant_table_enables_and_forces_row_level_security_with_a_policy() {
    let app = TestApp::spawn().await;
    let db = app.superuser().await;
    let tables = tenant_tables(&db).await;
    for table in ["audit_events", "access_tokens"] {
        assert!(tables.contains(&table.to_owned()), "{table} in {tables:?}");
    }
    for table in &tables {
        let row = db
            .query_one(
                "SELECT c.relrowsecurity, c.relforcerowsecurity,
                        (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),
                        pg_get_userbyid(c.relowner)
                   FROM pg_class c WHERE c.relname = $1",
                &[table],
            )
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0), "{table}: ENABLE ROW LEVEL SECURITY");
        assert!(row.get::<_, bool>(1), "{table}: FORCE ROW LEVEL SECURITY");
        assert!(row.get::<_, i64>(2) >= 1, "{table}: a policy");
        assert_ne!(
            row.get::<_, String>(3),
            "bunker_app",
            "{table}: not owned by bunker_app"
        );
    }
}

#[tokio::test]
async fn with_no_tenant_set_bunker_app_reads_zero_rows_from_every_tenant_table() {
    let app = TestApp::spawn().await;
    two_tenants_with_rows(&app).await;
    let su = app.superuser().await;
    let as_app = app.app_role().await;
    for table in tenant_tables(&su).await {
        // Rows of a tenant (the root token, in access_tokens, belongs to none and is always found).
        let count = format!("SELECT count(*) FROM {table} WHERE tenant_id IS NOT NULL");
        let stored: i64 = su.query_one(&count, &[]).await.unwrap().get(0);
        assert!(stored > 0, "{table} has rows to hide");
        let seen: i64 = as_app.query_one(&count, &[]).await.unwrap().get(0);
        assert_eq!(seen, 0, "{table}: bunker_app sees nothing without a tenant");
        // The same once the setting has been used and reads '' rather than NULL.
        as_app
            .batch_execute("BEGIN; SELECT set_config('bunker.tenant_id', '2', true); COMMIT;")
            .await
            .unwrap();
        let seen: i64 = as_app.query_one(&count, &[]).await.unwrap().get(0);
        assert_eq!(seen, 0, "{table}: nothing after a tenant transaction ended");
    }
}

#[tokio::test]
async fn with_tenant_a_set_bunker_app_sees_only_a_and_cannot_write_for_b() {
    let app = TestApp::spawn().await;
    let (a, b) = two_tenants_with_rows(&app).await;
    let mut as_app = app.app_role().await;
    let tx = as_app.transaction().await.unwrap();
    tx.execute(
        "SELECT set_config('bunker.tenant_id', $1, true)",
        &[&a.to_string()],
    )
    .await
    .unwrap();
    let tenants: Vec<i64> = tx
        .query("SELECT DISTINCT tenant_id FROM audit_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tenants, vec![a]);
    let written = tx
        .execute(
            "INSERT INTO audit_events (id, tenant_id, actor_kind, actor_token_id, action, target)
             VALUES (gen_random_uuid(), $1, 'root', gen_random_uuid(), 'Forged', 'x')",
            &[&b],
        )
        .await;
    let err = written.expect_err("a row for tenant B is refused");
    let message = pg_message(&err);
    assert!(message.contains("row-level security"), "{message}");
}

#[tokio::test]
async fn bunker_app_cannot_change_or_remove_audit_events() {
    let app = TestApp::spawn().await;
    let (a, _) = two_tenants_with_rows(&app).await;
    let mut as_app = app.app_role().await;
    for statement in [
        "UPDATE audit_events SET action = 'x'",
        "UPDATE audit_events SET details = details",
        "DELETE FROM audit_events",
        "UPDATE user_versions SET record = record",
        "UPDATE audit_chain SET mac = mac",
        "DELETE FROM audit_chain",
    ] {
        let tx = as_app.transaction().await.unwrap();
        tx.execute(
            "SELECT set_config('bunker.tenant_id', $1, true)",
            &[&a.to_string()],
        )
        .await
        .unwrap();
        let err = tx.execute(statement, &[]).await.expect_err(statement);
        let message = pg_message(&err);
        assert!(
            message.contains("permission denied"),
            "{statement}: {message}"
        );
    }
}

#[tokio::test]
async fn a_pooled_connection_carries_no_tenant_after_a_request() {
    // One connection, so the request and the check below share it.
    let app = TestApp::spawn_with(TestOptions {
        pool_size: 1,
        ..TestOptions::default()
    })
    .await;
    let (_, token) = app.create_tenant("acme").await;
    let (status, _) = app
        .call(
            "TenantUpdate",
            &token,
            Some("acme"),
            json!({"tenantorg": "after"}),
        )
        .await;
    assert!(status.is_success());
    assert_eq!(app.db.idle_tenant_setting().await.unwrap(), None);
}

#[tokio::test]
async fn a_cancelled_or_failed_transaction_leaves_no_tenant_on_the_pooled_connection() {
    use bunker_db::{control, DbError, TenantId};

    let app = TestApp::spawn().await;
    let (acme, _) = app.create_tenant("acme").await;
    let acme = TenantId(acme);
    // A pool of one connection, of this test's own (the server's background work shares the
    // server's pool): whatever the cancelled and the failed work leave behind, the next user gets.
    let db = bunker_db::Database::connect(&app.database_url(), 1)
        .await
        .unwrap();

    // Cancelled inside its transaction, with the tenant set (a client that went away): the work
    // signals once its statement has run, and is dropped there.
    let (reached, cancel) = tokio::sync::oneshot::channel::<()>();
    let work = db.in_tenant(acme, |tx| {
        Box::pin(async move {
            control::get_tenant(tx, acme).await?;
            let _ = reached.send(());
            std::future::pending::<()>().await;
            Ok::<_, DbError>(())
        })
    });
    tokio::select! {
        _ = work => panic!("the work never ends by itself"),
        signal = cancel => signal.expect("the work ran its statement"),
    }
    assert_eq!(db.idle_tenant_setting().await.unwrap(), None);

    // Failed after a statement: rolled back, and the connection is clean.
    let failed = db
        .in_tenant(acme, |tx| {
            Box::pin(async move {
                control::get_tenant(tx, acme).await?;
                Err::<(), _>(DbError::Schema("the work failed".into()))
            })
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(db.idle_tenant_setting().await.unwrap(), None);

    // And the next request works.
    let found = db
        .in_tenant(acme, |tx| {
            Box::pin(async move { control::get_tenant(tx, acme).await })
        })
        .await
        .unwrap();
    assert_eq!(found.map(|t| t.name).as_deref(), Some("acme"));
}

#[tokio::test]
async fn a_refused_request_leaves_no_transaction_behind_on_its_connection() {
    // One connection: the transaction that authentication opens must be rolled back and the
    // connection returned whenever the request ends without using it, or the next request waits
    // for a connection until the pool gives up.
    let app = TestApp::spawn_with(TestOptions {
        pool_size: 1,
        ..TestOptions::default()
    })
    .await;
    let (_, acme) = app.create_tenant("acme").await;
    let (_, globex) = app.create_tenant("globex").await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        // Authenticated, then refused: a body that is not JSON, a missing field, another tenant.
        let status = app
            .command("UserCreate")
            .header("X-Bunker-Token", &acme)
            .header("X-Bunker-Tenant", "acme")
            .body("{not json")
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = app.call("UserCreate", &acme, Some("acme"), json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = app
            .call(
                "UserCreate",
                &acme,
                Some("globex"),
                json!({"profile": {"login": "x"}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = app
        .call(
            "UserCreate",
            &globex,
            Some("globex"),
            json!({"profile": {"login": "g"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "a request waited for the only connection"
    );
    assert_eq!(app.db.idle_tenant_setting().await.unwrap(), None);
    let (status, body) = app
        .call(
            "UserGet",
            &globex,
            Some("globex"),
            json!({"mode": "login", "identity": "g"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
