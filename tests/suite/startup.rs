//! The server refuses to start when it could not keep tenants apart, or on the wrong schema.

use bunker::http::app::Application;
use bunker_db::Database;
use bunker_keys::WrappingKey;
use bunker_tests::{cluster, fresh_database, TestApp, TestOptions};

/// Builds the server against `url` with `wrapping_key` and returns why it refused (panics if it
/// started).
async fn refusal_with(url: &str, wrapping_key: &str) -> String {
    let db = Database::connect(url, 2).await.expect("pool");
    match Application::build(TestOptions::default().settings(wrapping_key), db).await {
        Ok(_) => panic!("the server started"),
        Err(err) => err.to_string(),
    }
}

/// As [`refusal_with`], with some well-formed wrapping key.
async fn refusal(url: &str) -> String {
    refusal_with(url, &WrappingKey::generate().to_hex()).await
}

/// Creates a login role for this test's database, member of bunker_app, with extra attributes.
async fn login_role(app: &TestApp, suffix: &str, attributes: &str) -> String {
    let role = format!("{}_{suffix}", app.database);
    app.superuser()
        .await
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN {attributes}; GRANT bunker_app TO {role};"
        ))
        .await
        .unwrap();
    role
}

fn url_as(app: &TestApp, role: &str) -> String {
    format!("{} user={role}", app.database_url())
}

#[tokio::test]
async fn server_refuses_to_start_when_its_tenant_role_can_bypass_rls() {
    let app = TestApp::spawn().await;
    let role = login_role(&app, "leaky", "BYPASSRLS").await;
    let why = refusal(&url_as(&app, &role)).await;
    assert!(why.contains("BYPASSRLS"), "{why}");
    assert!(why.contains("refusing to serve"), "{why}");
}

#[tokio::test]
async fn server_refuses_to_start_when_its_tenant_role_owns_a_tenant_table() {
    let app = TestApp::spawn().await;
    let role = login_role(&app, "owner", "").await;
    app.superuser()
        .await
        .batch_execute(&format!("ALTER TABLE audit_events OWNER TO {role}"))
        .await
        .unwrap();
    let why = refusal(&url_as(&app, &role)).await;
    assert!(why.contains("owns"), "{why}");
    assert!(why.contains("audit_events"), "{why}");
}

#[tokio::test]
async fn server_refuses_to_serve_as_a_role_that_may_rewrite_the_audit_trail() {
    let app = TestApp::spawn().await;
    let role = login_role(&app, "rewriter", "").await;
    app.superuser()
        .await
        .batch_execute(&format!("GRANT bunker_maintenance TO {role}"))
        .await
        .unwrap();
    let why = refusal(&url_as(&app, &role)).await;
    assert!(why.contains("may change audit events"), "{why}");
    // TRUNCATE passes by row-level security; TRIGGER attaches code to others' writes.
    for (suffix, privilege, table) in [
        ("truncater", "TRUNCATE", "audit_chain"),
        ("wiper", "TRUNCATE", "users"),
        ("hooker", "TRIGGER", "audit_events"),
    ] {
        let role = login_role(&app, suffix, "").await;
        app.superuser()
            .await
            .batch_execute(&format!("GRANT {privilege} ON {table} TO {role}"))
            .await
            .unwrap();
        let why = refusal(&url_as(&app, &role)).await;
        assert!(
            why.contains("may TRUNCATE or add triggers to") && why.contains(table),
            "{privilege} on {table}: {why}"
        );
    }
}

#[tokio::test]
async fn server_refuses_a_role_that_can_become_one_that_could_get_around_it() {
    let app = TestApp::spawn().await;
    let su = app.superuser().await;
    // Not inherited (through a NOINHERIT role), but reachable with SET ROLE.
    let role = login_role(&app, "noinherit", "").await;
    let (middle, sweeper) = (
        format!("{}_middle", app.database),
        format!("{}_sweeper", app.database),
    );
    su.batch_execute(&format!(
        "CREATE ROLE {middle} NOINHERIT; CREATE ROLE {sweeper};
         GRANT TRUNCATE ON audit_events TO {sweeper};
         GRANT {sweeper} TO {middle}; GRANT {middle} TO {role}"
    ))
    .await
    .unwrap();
    let why = refusal(&url_as(&app, &role)).await;
    assert!(
        why.contains("may TRUNCATE or add triggers to audit_events through role"),
        "{why}"
    );
    // Attributes are never inherited: a role that may SET ROLE to one with BYPASSRLS.
    let role = login_role(&app, "climber", "").await;
    let bypass = format!("{}_bypass", app.database);
    su.batch_execute(&format!(
        "CREATE ROLE {bypass} BYPASSRLS; GRANT {bypass} TO {role}"
    ))
    .await
    .unwrap();
    let why = refusal(&url_as(&app, &role)).await;
    assert!(
        why.contains(&format!(
            "can act as {bypass}, which bypasses row-level security"
        )),
        "{why}"
    );
}

#[tokio::test]
async fn server_refuses_a_role_with_ways_around_row_level_security() {
    let app = TestApp::spawn().await;
    let su = app.superuser().await;
    for (suffix, attributes) in [("creator", "CREATEROLE"), ("replicator", "REPLICATION")] {
        let role = login_role(&app, suffix, attributes).await;
        let why = refusal(&url_as(&app, &role)).await;
        assert!(
            why.contains("may create roles, replicate the cluster"),
            "{attributes}: {why}"
        );
    }
    let role = login_role(&app, "filer", "").await;
    su.batch_execute(&format!("GRANT pg_read_server_files TO {role}"))
        .await
        .unwrap();
    let why = refusal(&url_as(&app, &role)).await;
    assert!(why.contains("the server's files or programs"), "{why}");

    // Objects that run with their owner's rights, or a policy that names no tenant.
    let role = login_role(&app, "reader", "").await;
    for (setup, named, undo) in [
        (
            format!("CREATE VIEW report_users AS SELECT * FROM users; GRANT SELECT ON report_users TO {role}"),
            "view report_users",
            "DROP VIEW report_users",
        ),
        (
            "CREATE FUNCTION count_users() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
             AS 'SELECT count(*) FROM users'"
                .to_owned(),
            "SECURITY DEFINER function public.count_users",
            "DROP FUNCTION count_users()",
        ),
        (
            format!("CREATE POLICY everyone ON users FOR SELECT TO {role} USING (true)"),
            "policy everyone on users",
            "DROP POLICY everyone ON users",
        ),
    ] {
        su.batch_execute(&setup).await.unwrap();
        let why = refusal(&url_as(&app, &role)).await;
        assert!(
            why.contains("can get around row-level security through") && why.contains(named),
            "{named}: {why}"
        );
        su.batch_execute(undo).await.unwrap();
    }
    // Owning the database (owners of a database own its schema public in PostgreSQL 15).
    su.batch_execute(&format!("ALTER DATABASE {} OWNER TO {role}", app.database))
        .await
        .unwrap();
    let why = refusal(&url_as(&app, &role)).await;
    assert!(why.contains("owning the database"), "{why}");
    su.batch_execute(&format!(
        "ALTER DATABASE {} OWNER TO postgres",
        app.database
    ))
    .await
    .unwrap();
    // A view that checks its invoker is fine, and so is an extension's view readable by all
    // (pg_stat_statements' shows each caller its own statements).
    su.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    su.batch_execute(&format!(
        "CREATE VIEW own_users WITH (security_invoker = true) AS SELECT * FROM users;
         GRANT SELECT ON own_users TO {role}"
    ))
    .await
    .unwrap();
    let why = refusal(&url_as(&app, &role)).await;
    assert!(!why.contains("get around"), "{why}");
}

#[tokio::test]
async fn the_check_covers_every_schema_of_the_search_path() {
    let app = TestApp::spawn().await;
    // A schema named after the role comes first in the default search path, and is empty.
    let role = login_role(&app, "shadowed", "").await;
    app.superuser()
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA {role}; GRANT USAGE ON SCHEMA {role} TO {role};
             ALTER TABLE users NO FORCE ROW LEVEL SECURITY"
        ))
        .await
        .unwrap();
    let why = refusal(&url_as(&app, &role)).await;
    assert!(
        why.contains("users does not FORCE ROW LEVEL SECURITY"),
        "{why}"
    );
}

#[tokio::test]
async fn server_refuses_a_tenant_table_without_forced_row_level_security() {
    let app = TestApp::spawn().await;
    app.superuser()
        .await
        .batch_execute("ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY")
        .await
        .unwrap();
    let why = refusal(&app.database_url()).await;
    assert!(why.contains("FORCE ROW LEVEL SECURITY"), "{why}");
}

#[tokio::test]
async fn the_serving_role_bunker_makes_is_a_member_of_bunker_app_only_and_serves() {
    let app = TestApp::spawn().await;
    let role = format!("{}_serve", app.database);
    let url = app.database_url();
    let (ok, stdout, stderr) = bunker_tests::run_bunker(
        &["serve-role", "create", "--name", &role],
        &[("BUNKER_DATABASE_URL", url.as_str())],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("password (shown only this once)"),
        "{stdout}"
    );
    let su = app.superuser().await;
    let row = su
        .query_one(
            "SELECT r.rolcanlogin, r.rolsuper, r.rolbypassrls, r.rolcreaterole,
                    array(SELECT g.rolname::text FROM pg_auth_members m
                            JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)
               FROM pg_roles r WHERE r.rolname = $1",
            &[&role],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2),
            row.get::<_, bool>(3)
        ),
        (true, false, false, false)
    );
    assert_eq!(row.get::<_, Vec<String>>(4), ["bunker_app"]);
    let db = Database::connect(&url_as(&app, &role), 2).await.unwrap();
    let server = Application::build(TestOptions::default().settings(&app.wrapping_key), db).await;
    assert!(server.is_ok(), "{:?}", server.err().map(|e| e.to_string()));
    // The serving role cannot rotate the root token, and is told whose URL can.
    let (ok, _, stderr) = bunker_tests::run_bunker(
        &["token", "rotate-root"],
        &[("BUNKER_DATABASE_URL", url_as(&app, &role).as_str())],
    )
    .await;
    assert!(!ok && stderr.contains("only the schema owner"), "{stderr}");
}

#[tokio::test]
async fn a_plain_login_role_of_bunker_app_serves() {
    let app = TestApp::spawn().await;
    let role = login_role(&app, "login", "").await;
    let db = Database::connect(&url_as(&app, &role), 2).await.unwrap();
    assert_eq!(db.role_mode(), bunker_db::RoleMode::LoginRole);
    let settings = TestOptions::default().settings(&app.wrapping_key);
    assert!(Application::build(settings, db).await.is_ok());
    let owner = Database::connect(&app.database_url(), 2).await.unwrap();
    assert_eq!(
        owner.role_mode(),
        bunker_db::RoleMode::SetRole,
        "the superuser is switched"
    );
}

#[tokio::test]
async fn server_refuses_an_uninitialized_or_outdated_schema_naming_the_command() {
    let database = fresh_database().await;
    let url = cluster().connection_string(&database);
    let why = refusal(&url).await;
    assert!(why.contains("bunker init"), "{why}");

    let app = TestApp::spawn().await;
    app.superuser()
        .await
        .batch_execute(
            "DELETE FROM refinery_schema_history WHERE version = (SELECT max(version) FROM refinery_schema_history)",
        )
        .await
        .unwrap();
    let why = refusal(&app.database_url()).await;
    assert!(why.contains("bunker migrate"), "{why}");
}

#[tokio::test]
async fn a_wrong_wrapping_key_stops_the_server() {
    let app = TestApp::spawn().await;
    let why = refusal(&app.database_url()).await;
    assert!(
        why.contains("wrapping key does not open the master key"),
        "{why}"
    );
    let db = Database::connect(&app.database_url(), 2).await.unwrap();
    let settings = TestOptions::default().settings(&app.wrapping_key);
    assert!(
        Application::build(settings, db).await.is_ok(),
        "the right key serves"
    );
}
