//! Bunker's test kit. One throwaway PostgreSQL cluster per test run (started on first use, as the
//! `postgres` user when run as root), a fresh database per test, and the real server on port 0
//! driven over HTTP.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bunker::cli::cluster::{find_bindir, LocalCluster};
use bunker::http::app::{Application, ServerSettings};
use bunker::http::limits::RateSettings;
use bunker::http::mail::MailSettings;
use bunker::http::tls::TlsFiles;
use bunker_db::Database;
use bunker_keys::WrappingKey;
use bunker_services::core::Normalizer;
use bunker_services::files::FilesSettings;
use bunker_services::keys::wrapping::WrappingSource;
use bunker_services::setup::{init_database, RootToken};
use bunker_services::VaultSettings;
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls};

pub use reqwest::StatusCode;

static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// The run's cluster, started on first use. A watchdog process stops it and removes its files when
/// this process exits, however it exits.
pub fn cluster() -> &'static LocalCluster {
    CLUSTER.get_or_init(|| {
        // Before any HTTP client of the run is built.
        bunker_services::webhooks::install_tls_provider();
        let root = std::env::temp_dir().join(format!("bunker-test-{}", std::process::id()));
        let bindir = find_bindir(std::env::var_os("BUNKER_PG_BINDIR").map(PathBuf::from).as_deref())
            .expect("PostgreSQL server binaries");
        let cluster = LocalCluster::new(&root, bindir).expect("cluster");
        cluster.initdb().expect("initdb");
        cluster.start().expect("start PostgreSQL");
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{root}'",
            pid = std::process::id(),
            stop = cluster.stop_command_line(),
            root = root.display(),
        );
        // Deliberately never waited for: it must outlive this process.
        #[expect(clippy::zombie_processes, reason = "the watchdog outlives the test process")]
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cluster watchdog");
        cluster
    })
}

/// A PostgreSQL client program (`pg_dump`, `pg_restore`) of the run's cluster's version.
pub fn pg_tool(name: &str) -> PathBuf {
    find_bindir(
        std::env::var_os("BUNKER_PG_BINDIR")
            .map(PathBuf::from)
            .as_deref(),
    )
    .expect("PostgreSQL server binaries")
    .join(name)
}

/// Connects to `database` of the run's cluster as the superuser.
pub async fn superuser(database: &str) -> Client {
    connect(&cluster().connection_string(database)).await
}

/// Connects with a libpq connection string.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to the test cluster");
    tokio::spawn(connection);
    client
}

/// Creates an empty database and returns its name.
pub async fn fresh_database() -> String {
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, Ordering::SeqCst)
    );
    superuser("postgres")
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    name
}

/// How to start a test server.
#[derive(Clone, Debug)]
pub struct TestOptions {
    pub domains: Vec<String>,
    pub max_body_bytes: usize,
    pub pool_size: usize,
    pub versions_kept: i32,
    pub sweep_interval: Duration,
    /// How often and from what age audit events are linked (the chain).
    pub audit_chain: (Duration, Duration),
    pub key_refresh_interval: Duration,
    pub unlock_seconds: i64,
    /// `BUNKER_LIST_USERS` (off, as by default).
    pub list_users: bool,
    pub xtoken_max_seconds: i64,
    /// How often webhook deliveries are looked for.
    pub webhook_interval: Duration,
    /// Where files are stored (`file://...`, `s3://...`); none: a fresh folder of the app's.
    pub files_url: Option<String>,
    pub s3_endpoint: Option<String>,
    pub max_file_bytes: u64,
    pub orphan_grace: Duration,
    pub shared_record_max_seconds: i64,
    /// How long a profile SystemDeleteUserProfiles removed can be restored.
    pub restore_window_seconds: i64,
    /// How long a tenant's unwrapped keys are kept (`BUNKER_TENANT_KEY_CACHE_SECONDS`).
    pub tenant_key_cache: Duration,
    pub tenant_key_admin: bool,
    /// Where AWS KMS is reached for tenants' own keys.
    pub kms_endpoint: Option<String>,
    /// The rate limits (the server's defaults unless a test sets its own).
    pub rates: RateSettings,
    pub tenant_max_connections: Option<usize>,
    pub metrics_listen: Option<String>,
    pub metrics_per_tenant: bool,
    pub tls: Option<TlsFiles>,
    /// How login codes are e-mailed (none by default: passwordless login is off).
    pub mail: MailSettings,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            domains: vec!["bunker.test".to_owned()],
            max_body_bytes: 1024 * 1024,
            pool_size: 4,
            versions_kept: 10,
            sweep_interval: Duration::from_secs(3600),
            audit_chain: (Duration::from_secs(3600), Duration::from_secs(300)),
            key_refresh_interval: Duration::from_secs(3600),
            unlock_seconds: 60,
            list_users: false,
            xtoken_max_seconds: 24 * 3600,
            webhook_interval: Duration::from_millis(100),
            files_url: None,
            s3_endpoint: None,
            max_file_bytes: 16 * 1024 * 1024,
            orphan_grace: Duration::from_secs(3600),
            shared_record_max_seconds: 30 * 86_400,
            restore_window_seconds: 30 * 86_400,
            tenant_key_cache: Duration::from_secs(300),
            tenant_key_admin: false,
            kms_endpoint: None,
            rates: test_rates(),
            tenant_max_connections: None,
            metrics_listen: None,
            metrics_per_tenant: false,
            tls: None,
            mail: MailSettings::default(),
        }
    }
}

/// The rate limits of a test server: `bunker serve`'s defaults, but for the costly commands' and sign-ins'
/// (authorization tests send thousands of bulk and search requests in a second; the limits' own
/// tests set theirs).
fn test_rates() -> RateSettings {
    RateSettings {
        costly: None,
        // Login tests try more codes from 127.0.0.1 than one address may; portal.rs tests the limit.
        login: None,
        ..default_rates()
    }
}

/// The rate limits `bunker serve` applies when nothing is configured.
pub fn default_rates() -> RateSettings {
    bunker::cli::config::Config::from_settings(Default::default())
        .expect("defaults")
        .rates
}

impl TestOptions {
    /// Server settings on a free loopback port with this wrapping key (hexadecimal).
    pub fn settings(&self, wrapping_key: &str) -> ServerSettings {
        ServerSettings {
            listen: "127.0.0.1:0".to_owned(),
            domains: self.domains.clone(),
            max_body_bytes: self.max_body_bytes,
            wrapping: Arc::new(WrappingSource::Local(
                WrappingKey::from_hex(wrapping_key).expect("wrapping key"),
            )),
            vault: VaultSettings {
                normalizer: Normalizer::new("GB").expect("region"),
                versions_kept: self.versions_kept,
                unlock_seconds: self.unlock_seconds,
                list_users: self.list_users,
                xtoken_max_seconds: self.xtoken_max_seconds,
                webhook_backoff: Duration::from_millis(50),
                shared_record_max_seconds: self.shared_record_max_seconds,
                restore_window_seconds: self.restore_window_seconds,
                tenant_key_cache: self.tenant_key_cache,
                tenant_key_admin: self.tenant_key_admin,
                kms_endpoint: self.kms_endpoint.clone(),
            },
            files: FilesSettings {
                url: self.files_url.clone(),
                s3_endpoint: self.s3_endpoint.clone(),
                max_file_bytes: self.max_file_bytes,
                orphan_grace: self.orphan_grace,
            },
            sweep_interval: self.sweep_interval,
            webhook_interval: self.webhook_interval,
            audit_chain_interval: self.audit_chain.0,
            audit_chain_horizon: self.audit_chain.1,
            key_refresh_interval: self.key_refresh_interval,
            rates: self.rates.clone(),
            tenant_max_connections: self.tenant_max_connections,
            metrics_listen: self.metrics_listen.clone(),
            metrics_per_tenant: self.metrics_per_tenant,
            tls: self.tls.clone(),
            mail: self.mail.clone(),
        }
    }
}

/// A running server over its own initialized database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>` (`https://` when the options asked for TLS)
    pub address: String,
    /// Where `/metrics` is served, when the options named a separate address.
    pub metrics_address: Option<String>,
    pub root_token: String,
    /// The wrapping key this app's database was initialized with (hexadecimal).
    pub wrapping_key: String,
    /// The five recovery shares `bunker init` made.
    pub shares: Vec<String>,
    pub database: String,
    /// The server's own pool, to look at its connections.
    pub db: Database,
    /// Where the app stores files (a folder of its own unless the options named one).
    pub files_url: String,
    pub http: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(TestOptions::default()).await
    }

    pub async fn spawn_with(mut options: TestOptions) -> TestApp {
        let database = fresh_database().await;
        let files_url = options
            .files_url
            .get_or_insert_with(|| {
                let dir = std::env::temp_dir()
                    .join("bunker-test-files")
                    .join(&database);
                format!("file://{}", dir.display())
            })
            .clone();
        let url = cluster().connection_string(&database);
        let root_token = uuid::Uuid::new_v4().to_string();
        let wrapping = WrappingKey::generate();
        let wrapping_key = wrapping.to_hex().to_string();
        let root = RootToken::Given(SecretString::from(root_token.clone()));
        let made = init_database(&url, root, &WrappingSource::Local(wrapping))
            .await
            .expect("bunker init");
        let shares = made.shares.iter().map(|s| s.to_string()).collect();
        let db = Database::connect(&url, options.pool_size)
            .await
            .expect("pool");
        let app = Application::build(options.settings(&wrapping_key), db.clone())
            .await
            .expect("server builds");
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let address = format!("{scheme}://{}", app.local_addr());
        let metrics_address = app.metrics_addr().map(|at| format!("http://{at}"));
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        TestApp {
            address,
            metrics_address,
            root_token,
            wrapping_key,
            shares,
            database,
            db,
            http: reqwest::Client::new(),
            files_url,
            _shutdown: shutdown,
        }
    }

    /// Another server over this app's database (as a second replica would be): its address, and
    /// the handle that keeps it running.
    pub async fn replica(&self) -> (String, oneshot::Sender<()>) {
        self.replica_with(TestOptions::default()).await
    }

    /// As [`TestApp::replica`], with these options.
    pub async fn replica_with(&self, mut options: TestOptions) -> (String, oneshot::Sender<()>) {
        options
            .files_url
            .get_or_insert_with(|| self.files_url.clone());
        let db = Database::connect(&self.database_url(), 2)
            .await
            .expect("pool");
        let app = Application::build(options.settings(&self.wrapping_key), db)
            .await
            .expect("replica builds");
        let address = format!("http://{}", app.local_addr());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        (address, shutdown)
    }

    /// Another server over this app's database in a process of its own (`bunker serve`): its
    /// address, once it answers, and the child process (killed when dropped).
    pub async fn server_process(&self) -> (String, tokio::process::Child) {
        serve_process(&self.database_url(), &self.wrapping_key, None).await
    }

    /// Returns once some query of this run waits for a lock (a request blocked behind a row a test
    /// holds), or after 2 s.
    pub async fn until_a_query_waits_for_a_lock(&self) {
        let watch = self.superuser().await;
        for _ in 0..100 {
            let waiting: i64 = watch
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .expect("pg_stat_activity")
                .get(0);
            if waiting > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The commands `/openapi.json` routes (`UserGet`, ...).
    pub async fn routed_commands(&self) -> Vec<String> {
        self.routed_operations()
            .await
            .into_iter()
            .map(|(command, _)| command)
            .collect()
    }

    /// Each command `/openapi.json` routes, with its operation id (`None`: the document has none).
    pub async fn routed_operations(&self) -> Vec<(String, Option<String>)> {
        let spec: Value = self
            .http
            .get(format!("{}/openapi.json", self.address))
            .send()
            .await
            .expect("openapi.json")
            .json()
            .await
            .expect("openapi.json is JSON");
        spec["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .map(|(path, item)| {
                let id = item["post"]["operationId"].as_str().map(str::to_owned);
                (path.trim_start_matches('/').to_owned(), id)
            })
            .collect()
    }

    /// The libpq connection string of this test's database, as the superuser.
    pub fn database_url(&self) -> String {
        cluster().connection_string(&self.database)
    }

    /// A superuser connection to this test's database.
    pub async fn superuser(&self) -> Client {
        superuser(&self.database).await
    }

    /// A connection to this test's database working as `bunker_app`, as the server does.
    pub async fn app_role(&self) -> Client {
        let client = self.superuser().await;
        client
            .batch_execute("SET ROLE bunker_app")
            .await
            .expect("set role");
        client
    }

    /// A `POST /v2/<command>` with no headers set.
    pub fn command(&self, command: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/v2/{command}", self.address))
    }

    /// Sends `body` to `command` with `token` (and the tenant header if given); returns the status
    /// and the JSON answer.
    pub async fn call(
        &self,
        command: &str,
        token: &str,
        tenant: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut request = self
            .command(command)
            .header("X-Bunker-Token", token)
            .json(&body);
        if let Some(tenant) = tenant {
            request = request.header("X-Bunker-Tenant", tenant);
        }
        answer(request).await
    }

    /// Sends `body` to `command` as root in the default tenant.
    pub async fn root(&self, command: &str, body: Value) -> (StatusCode, Value) {
        self.call(command, &self.root_token, None, body).await
    }

    /// Stores a user profile as root in the default tenant; returns the user's token.
    pub async fn create_user(&self, profile: Value) -> String {
        let (status, body) = self
            .root("UserCreate", serde_json::json!({"profile": profile}))
            .await;
        assert_eq!(status, StatusCode::OK, "UserCreate: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Creates a tenant as root; returns its id and admin token.
    pub async fn create_tenant(&self, name: &str) -> (i64, String) {
        let (status, body) = self
            .root(
                "TenantCreate",
                serde_json::json!({"tenantname": name, "tenantorg": format!("{name} org")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "TenantCreate {name}: {body}");
        let id = body["tenantid"].as_i64().expect("tenantid");
        let token = body["xtoken"].as_str().expect("xtoken").to_owned();
        (id, token)
    }
}

/// Access control set-up, as root: roles, policies and the tokens held to them.
impl TestApp {
    /// Creates `role` (if it does not exist yet) and a policy `name` linked to it.
    pub async fn grant(&self, role: &str, name: &str, document: Value) {
        self.root("RoleCreate", serde_json::json!({"rolename": role}))
            .await;
        let (status, body) = self
            .root(
                "PolicyCreate",
                serde_json::json!({"policyname": name, "policy": document}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "PolicyCreate {name}: {body}");
        let (status, body) = self
            .root(
                "RoleLinkPolicy",
                serde_json::json!({"rolename": role, "policyname": name}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "RoleLinkPolicy {name}: {body}");
    }

    /// A role token for `role` in the default tenant.
    pub async fn role_token(&self, role: &str) -> String {
        let (status, body) = self
            .root("XTokenCreateForRole", serde_json::json!({"rolename": role}))
            .await;
        assert_eq!(status, StatusCode::OK, "XTokenCreateForRole: {body}");
        body["xtoken"].as_str().expect("xtoken").to_owned()
    }

    /// A user token for the user `mode`/`identity` names, in the default tenant.
    pub async fn user_xtoken(&self, mode: &str, identity: &str) -> String {
        let (status, body) = self
            .root(
                "XTokenCreateForUser",
                serde_json::json!({"mode": mode, "identity": identity}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "XTokenCreateForUser: {body}");
        body["xtoken"].as_str().expect("xtoken").to_owned()
    }

    /// A fresh bulk unlock for `token` in the default tenant.
    pub async fn unlock_for(&self, token: &str) -> String {
        let (status, body) = self
            .call("BulkListUnlock", token, None, serde_json::json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "BulkListUnlock: {body}");
        body["unlockuuid"].as_str().expect("unlockuuid").to_owned()
    }
}

/// Sends a request and returns its status and JSON body (every answer of Bunker's is JSON).
pub async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let text = response.text().await.expect("body read");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("answer is not JSON ({status}): {text}"));
    (status, body)
}

/// The tables that hold tenant data: every table (or partitioned table, not its partitions) with a
/// `tenant_id` column but the control plane.
pub async fn tenant_tables(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT c.relname::text FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = 'public'
                AND c.relname <> ALL ($1)
                AND EXISTS (SELECT 1 FROM pg_attribute a
                             WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
              ORDER BY 1",
            &[&bunker_db::CONTROL_PLANE_TABLES.to_vec()],
        )
        .await
        .expect("list tenant tables")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Runs the `bunker` binary with exactly `env` (plus PATH) and nothing on standard input; returns
/// success, stdout and stderr.
pub async fn run_bunker<K: AsRef<str>, V: AsRef<str>>(
    args: &[&str],
    env: &[(K, V)],
) -> (bool, String, String) {
    run_bunker_with_input(args, env, "").await
}

/// Runs the `bunker` binary as [`run_bunker`] does, with `input` on its standard input.
pub async fn run_bunker_with_input<K: AsRef<str>, V: AsRef<str>>(
    args: &[&str],
    env: &[(K, V)],
    input: &str,
) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(bunker_binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bunker");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("write stdin");
    drop(stdin);
    let output = child.wait_with_output().await.expect("bunker ran");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// The `bunker` binary of the running binary's profile. Built (or found current) by cargo on first
/// use, so that a test never drives a stale binary; `BUNKER_BINARY` names another instead (the
/// benchmark's A/B runs: `BENCHMARKS.md`).
pub fn bunker_binary() -> PathBuf {
    BINARY
        .get_or_init(|| {
            // Another build's binary, as given (the benchmark's A/B runs against the build before).
            if let Some(given) = std::env::var_os("BUNKER_BINARY") {
                return PathBuf::from(given);
            }
            // A test binary lives in `<target>/<profile>/deps`, a binary (the benchmarks) in
            // `<target>/<profile>`.
            let exe = std::env::current_exe().expect("test binary path");
            let dir = exe.parent().expect("binary directory");
            let profile_dir = if dir.ends_with("deps") {
                dir.parent().expect("target directory")
            } else {
                dir
            }
            .to_path_buf();
            let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let mut build = Command::new(cargo);
            // The whole workspace's features, as `cargo test --workspace` builds with: `-p bunker`
            // alone unifies fewer (reqwest's) and rebuilt half the dependency graph, a minute
            // and a half on two cores, in the middle of the run.
            build.args([
                "build",
                "--quiet",
                "--workspace",
                "--bin",
                "bunker",
                "--manifest-path",
                manifest,
            ]);
            if profile_dir.ends_with("release") {
                build.arg("--release");
            }
            if let Some(target) = profile_dir.parent() {
                build.env("CARGO_TARGET_DIR", target);
            }
            let status = build.status().expect("run cargo build");
            assert!(status.success(), "cargo build -p bunker failed");
            let binary = profile_dir.join("bunker");
            assert!(binary.is_file(), "{} is missing", binary.display());
            binary
        })
        .clone()
}

/// What PostgreSQL said, for assertions (a driver error only displays "db error").
pub fn pg_message(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|db| db.message().to_owned())
        .unwrap_or_else(|| err.to_string())
}

/// A local AWS KMS stand-in: `moto_server` (PyPI `moto[server]`) on a free loopback port, stopped
/// when dropped.
pub struct KmsStandIn {
    child: std::process::Child,
    pub endpoint: String,
}

impl KmsStandIn {
    pub async fn start() -> KmsStandIn {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]')");
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return KmsStandIn { child, endpoint };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("moto_server did not start");
    }

    /// A KMS client for the stand-in, with the fixed test credentials.
    pub fn client(&self) -> aws_sdk_kms::Client {
        let config = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .build();
        aws_sdk_kms::Client::from_conf(config)
    }

    /// Creates a symmetric key; returns its id.
    pub async fn create_key(&self) -> String {
        self.client()
            .create_key()
            .send()
            .await
            .expect("CreateKey")
            .key_metadata()
            .expect("key metadata")
            .key_id()
            .to_owned()
    }

    /// The environment a `bunker` process needs to use key `key_id` of the stand-in.
    pub fn env(&self, key_id: &str) -> Vec<(String, String)> {
        [
            ("BUNKER_KMS_KEY_ID", key_id),
            ("BUNKER_KMS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// The S3 side of the same stand-in (moto serves both).
impl KmsStandIn {
    /// Creates `bucket`.
    pub async fn create_bucket(&self, bucket: &str) {
        let status = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("CreateBucket")
            .status();
        assert!(status.is_success(), "CreateBucket: {status}");
    }

    /// Every object of `bucket` under `prefix`: its key and bytes.
    pub async fn objects(&self, bucket: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let http = reqwest::Client::new();
        let listing = http
            .get(format!(
                "{}/{bucket}?list-type=2&prefix={prefix}",
                self.endpoint
            ))
            .send()
            .await
            .expect("ListObjectsV2")
            .text()
            .await
            .expect("listing");
        let mut objects = Vec::new();
        for part in listing.split("<Key>").skip(1) {
            let key = part.split("</Key>").next().unwrap_or_default().to_owned();
            let bytes = http
                .get(format!("{}/{bucket}/{key}", self.endpoint))
                .send()
                .await
                .expect("GetObject")
                .bytes()
                .await
                .expect("object")
                .to_vec();
            objects.push((key, bytes));
        }
        objects
    }

    /// The environment a `bunker` process needs to keep its files in `bucket` under `prefix`.
    pub fn s3_env(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        [
            ("BUNKER_FILES_URL", format!("s3://{bucket}/{prefix}")),
            ("BUNKER_S3_ENDPOINT", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// Every file under `dir` (recursively): its path relative to `dir`, and its bytes.
pub fn files_under(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let name = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                found.push((name, bytes));
            }
        }
    }
    found.sort();
    found
}

impl Drop for KmsStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bunker serve` over `database_url` in a process of its own, on a free port: its address once
/// it is ready, and the child process (killed when dropped). With `log`, the server logs at debug
/// level into it; else its output is dropped.
pub async fn serve_process(
    database_url: &str,
    wrapping_hex: &str,
    log: Option<std::fs::File>,
) -> (String, tokio::process::Child) {
    serve_process_with(database_url, wrapping_hex, log, &[]).await
}

/// As [`serve_process`], with more environment for the process.
pub async fn serve_process_with(
    database_url: &str,
    wrapping_hex: &str,
    log: Option<std::fs::File>,
    env: &[(String, String)],
) -> (String, tokio::process::Child) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let mut command = tokio::process::Command::new(bunker_binary());
    command
        .arg("serve")
        .env("BUNKER_DATABASE_URL", database_url)
        .env("BUNKER_WRAPPING_KEY", wrapping_hex)
        .env("BUNKER_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .kill_on_drop(true);
    match log {
        Some(file) => command.env("BUNKER_LOG", "debug").stderr(file),
        None => command.stderr(Stdio::null()),
    };
    let child = command.spawn().expect("bunker serve starts");
    let address = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(answer) = http.get(format!("{address}/ready")).send().await {
            if answer.status() == StatusCode::OK {
                return (address, child);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("bunker serve did not become ready");
}

/// A local webhook receiver: answers 500 to the first `failures` deliveries, 200 after; keeps
/// each delivery's signature header and body.
pub struct WebhookReceiver {
    pub url: String,
    seen: std::sync::Arc<tokio::sync::Mutex<Vec<(String, String)>>>,
}

impl WebhookReceiver {
    pub async fn start(failures: usize) -> WebhookReceiver {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        );
        let seen = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let kept = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut data = Vec::new();
                let mut buffer = [0u8; 4096];
                // Headers, then as much body as Content-Length says.
                let (head, length) = loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        break (String::new(), 0);
                    }
                    data.extend_from_slice(&buffer[..n]);
                    if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..end]).to_string();
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        data.drain(..end + 4);
                        break (head, length);
                    }
                };
                while data.len() < length {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buffer[..n]);
                }
                let signature = head
                    .lines()
                    .find_map(|l| {
                        l.split_once(':')
                            .filter(|(k, _)| k.eq_ignore_ascii_case("x-bunker-signature"))
                            .map(|(_, v)| v.trim().to_owned())
                    })
                    .unwrap_or_default();
                let mut seen = kept.lock().await;
                seen.push((signature, String::from_utf8_lossy(&data).to_string()));
                let status = if seen.len() <= failures {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                drop(seen);
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        WebhookReceiver { url, seen }
    }

    /// The deliveries received, once there are at least `count` (or after 10 s).
    pub async fn deliveries(&self, count: usize) -> Vec<(String, String)> {
        for _ in 0..200 {
            if self.seen.lock().await.len() >= count {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.seen.lock().await.clone()
    }
}

/// The `X-Bunker-Signature` Bunker sends with `body` under `secret`.
pub fn signed(secret: &str, body: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A local SMTP receiver (plain SMTP, no TLS, no authentication): keeps each message's data.
pub struct SmtpReceiver {
    /// `smtp://127.0.0.1:<port>`, for `BUNKER_SMTP_URL`.
    pub url: String,
    messages: std::sync::Arc<tokio::sync::Mutex<Vec<String>>>,
}

impl SmtpReceiver {
    pub async fn start() -> SmtpReceiver {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let messages = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let kept = messages.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 receiver ESMTP\r\n").await;
                    let mut data: Option<String> = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(body) = data.as_mut() {
                            if line == "." {
                                kept.lock().await.push(std::mem::take(body));
                                data = None;
                                let _ = write.write_all(b"250 kept\r\n").await;
                            } else {
                                body.push_str(line.strip_prefix('.').unwrap_or(&line));
                                body.push('\n');
                            }
                            continue;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250 receiver\r\n",
                            "DATA" => {
                                data = Some(String::new());
                                b"354 go on\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                return;
                            }
                            _ => b"250 ok\r\n",
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        SmtpReceiver { url, messages }
    }

    /// The messages received, once there are at least `count` (or after 10 s).
    pub async fn messages(&self, count: usize) -> Vec<String> {
        for _ in 0..200 {
            if self.messages.lock().await.len() >= count {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.messages.lock().await.clone()
    }
}
