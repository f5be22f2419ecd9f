//! Building and running the HTTP server.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bunker_db::{Database, DbError};
use bunker_services::tenants::Tenants;
use bunker_tenancy::{Tenancy, TenantResolver};
use poem::endpoint::BoxEndpoint;
use poem::listener::TcpAcceptor;
use poem::{
    get, Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Response, Route, Server,
};
use poem_openapi::OpenApiService;

use crate::http::error::envelope;
use crate::http::listener::EnvelopeAcceptor;
use crate::http::ops;
use crate::v2::appdata::AppdataApi;
use crate::v2::audit::AuditApi;
use crate::v2::bulk::BulkApi;
use crate::v2::consent::ConsentApi;
use crate::v2::files::FileApi;
use crate::v2::groups::GroupApi;
use crate::v2::login::LoginApi;
use crate::v2::policies::PolicyApi;
use crate::v2::requests::RequestApi;
use crate::v2::sessions::SessionApi;
use crate::v2::system::SystemApi;
use crate::v2::tenants::{AccessTokenApi, TenantApi};
use crate::v2::tokens::TokenApi;
use crate::v2::users::UserApi;
use crate::v2::xtokens::XTokenApi;
use bunker_services::audit::chain::spawn_chainer;
use bunker_services::files::{FileStore, Files, FilesSettings, StoreConfigError};
use bunker_services::keys::wrapping::WrappingSource;
use bunker_services::keys::{load_keyring, KeyAdminError, SharedKeyring};
use bunker_services::sweeper::spawn_sweeper;
use bunker_services::webhooks::spawn_webhooks;
use bunker_services::{Vault, VaultSettings};

/// Shared by every request.
pub struct AppState {
    pub keys: KeyService,
    pub db: Database,
    pub tenancy: Tenancy,
    pub tenants: Tenants,
    pub vault: Vault,
    /// Request bodies over this many bytes are refused with 413.
    pub max_body_bytes: usize,
    /// FileCreate's body limit: room for the largest file in base64.
    pub max_file_body_bytes: usize,
}

/// What the server holds for key administration (`SystemGenerateWrappingKey`).
#[derive(Clone)]
pub struct KeyService {
    pub db: Database,
    pub keyring: SharedKeyring,
    pub installation: uuid::Uuid,
}

/// What the server needs beyond its database.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Address to listen on, e.g. `127.0.0.1:3000` (port 0 picks a free port).
    pub listen: String,
    /// Domains whose subdomains name tenants (`BUNKER_DOMAIN`).
    pub domains: Vec<String>,
    /// The request body limit (`BUNKER_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Where files are stored, and the largest.
    pub files: FilesSettings,
    /// Opens the master key (`BUNKER_WRAPPING_KEY[_FILE]` or `BUNKER_KMS_KEY_ID`).
    pub wrapping: Arc<WrappingSource>,
    pub vault: VaultSettings,
    /// How often expired users are forgotten (`BUNKER_SWEEP_SECONDS`).
    pub sweep_interval: Duration,
    /// How often due webhook deliveries are posted (1 s).
    pub webhook_interval: Duration,
    /// How often audit events are linked into the chain (`BUNKER_AUDIT_CHAIN_SECONDS`).
    pub audit_chain_interval: Duration,
    /// How old an event must be to be linked (`BUNKER_AUDIT_CHAIN_HORIZON_SECONDS`).
    pub audit_chain_horizon: Duration,
    /// How often the server looks for a new master-key version (`BUNKER_KEY_REFRESH_SECONDS`).
    pub key_refresh_interval: Duration,
}

/// Why the server would not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("refusing to serve: {0}")]
    Keys(#[from] KeyAdminError),
    #[error("refusing to serve: {0}")]
    Files(#[from] StoreConfigError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
}

/// A server that is bound and checked, ready to run.
pub struct Application {
    acceptor: EnvelopeAcceptor,
    local_addr: SocketAddr,
    endpoint: BoxEndpoint<'static>,
    vault: Vault,
    sweep_interval: Duration,
    webhook_interval: Duration,
    chain: (Duration, Duration),
    refresher: KeyRefresher,
}

/// Picks up master-key versions added by `bunker keys rotate-master` in another process.
struct KeyRefresher {
    keyring: SharedKeyring,
    db: Database,
    source: Arc<WrappingSource>,
    every: Duration,
}

impl KeyRefresher {
    fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.keyring.refresh(&self.db, &self.source).await {
                    Ok(true) => tracing::info!("new master-key version loaded"),
                    Ok(false) => {}
                    Err(err) => tracing::warn!(error = %err, "master-key refresh failed"),
                }
            }
        })
    }
}

impl Application {
    /// Checks the database (schema current, tenant role unable to bypass row-level security), opens
    /// the master key with the wrapping key, and binds the listening socket. Refuses to build
    /// otherwise, saying why.
    pub async fn build(settings: ServerSettings, db: Database) -> Result<Self, StartError> {
        db.schema_status().await?.require_ready()?;
        db.check_posture().await?;
        let (keyring, installation) = load_keyring(&db, &settings.wrapping).await?;
        let keyring = SharedKeyring::new(keyring);
        let files = match &settings.files.url {
            Some(url) => Some(Files {
                store: FileStore::open(url, settings.files.s3_endpoint.as_deref())?,
                max_bytes: settings.files.max_file_bytes,
                orphan_grace: settings.files.orphan_grace,
            }),
            None => None,
        };
        let vault =
            Vault::new(db.clone(), keyring.clone(), settings.vault.clone()).with_files(files);
        let listen_error = |source| StartError::Listen {
            address: settings.listen.clone(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(&settings.listen)
            .await
            .map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let acceptor = EnvelopeAcceptor(TcpAcceptor::from_tokio(listener).map_err(listen_error)?);
        let tenancy = Tenancy::new(db.clone(), TenantResolver::new(&settings.domains));
        let tenants = Tenants::new(db.clone());
        let state_db = db.clone();
        let state = Arc::new(AppState {
            keys: KeyService {
                db: db.clone(),
                keyring: keyring.clone(),
                installation,
            },
            db,
            tenancy,
            tenants,
            vault: vault.clone(),
            max_body_bytes: settings.max_body_bytes,
            // Base64 is 4 characters per 3 bytes; the rest of the body is small.
            max_file_body_bytes: settings.max_body_bytes.max(
                usize::try_from(settings.files.max_file_bytes.div_ceil(3) * 4)
                    .unwrap_or(usize::MAX)
                    .saturating_add(64 * 1024),
            ),
        });
        Ok(Application {
            acceptor,
            local_addr,
            endpoint: routes(state),
            vault,
            sweep_interval: settings.sweep_interval,
            webhook_interval: settings.webhook_interval,
            chain: (settings.audit_chain_interval, settings.audit_chain_horizon),
            refresher: KeyRefresher {
                keyring,
                db: state_db,
                source: settings.wrapping.clone(),
                every: settings.key_refresh_interval,
            },
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves (and sweeps expired users) until `shutdown` completes, then lets requests in flight
    /// finish (up to 10 s).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (every, horizon) = self.chain;
        let chainer = spawn_chainer(self.vault.clone(), every, horizon);
        let webhooks = spawn_webhooks(self.vault.clone(), self.webhook_interval);
        let sweeper = spawn_sweeper(self.vault, self.sweep_interval);
        let refresher = self.refresher.spawn();
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.endpoint, shutdown, Some(Duration::from_secs(10)))
            .await;
        sweeper.abort();
        webhooks.abort();
        chainer.abort();
        refresher.abort();
        served
    }
}

/// The `/v2` command groups.
pub type V2 = (
    TenantApi,
    AccessTokenApi,
    UserApi,
    AppdataApi,
    RequestApi,
    ConsentApi,
    SessionApi,
    FileApi,
    GroupApi,
    PolicyApi,
    TokenApi,
    BulkApi,
    AuditApi,
    SystemApi,
    (XTokenApi, LoginApi),
);

/// The OpenAPI service describing `/v2`, generated from the code.
pub fn openapi(tenants: Tenants, vault: Vault, keys: KeyService) -> OpenApiService<V2, ()> {
    let api = (
        TenantApi {
            tenants: tenants.clone(),
            vault: vault.clone(),
        },
        AccessTokenApi { tenants },
        UserApi {
            vault: vault.clone(),
        },
        AppdataApi {
            vault: vault.clone(),
        },
        RequestApi {
            vault: vault.clone(),
        },
        ConsentApi {
            vault: vault.clone(),
        },
        SessionApi {
            vault: vault.clone(),
        },
        FileApi {
            vault: vault.clone(),
        },
        GroupApi {
            vault: vault.clone(),
        },
        PolicyApi {
            vault: vault.clone(),
        },
        TokenApi {
            vault: vault.clone(),
        },
        BulkApi {
            vault: vault.clone(),
        },
        AuditApi {
            vault: vault.clone(),
        },
        SystemApi {
            keys,
            vault: vault.clone(),
        },
        (XTokenApi { vault }, LoginApi),
    );
    OpenApiService::new(api, "Bunker", env!("CARGO_PKG_VERSION"))
        .description(
            "A multi-tenant vault for personal data speaking the Databunker Pro /v2 API. Every \
             command is POST /v2/<Command> with a JSON body; every answer is a JSON object with \
             `status`. Choose the tenant with the X-Bunker-Tenant header (else the Host's \
             subdomain, else `default`).",
        )
        .server("/v2")
}

/// Every route of the server.
pub fn routes(state: Arc<AppState>) -> BoxEndpoint<'static> {
    let api = openapi(
        state.tenants.clone(),
        state.vault.clone(),
        state.keys.clone(),
    );
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let known = Arc::new(KnownRoutes::new());
    Route::new()
        .nest(
            "/v2",
            api.into_endpoint()
                .catch_all_error(|err| envelope(err, true))
                // Room for the transaction a request's authentication opens (bunker_db::session).
                .around(|next, req| async move { bunker_db::session::scope(next.call(req)).await }),
        )
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/health", get(ops::health))
        .at("/status", get(ops::health))
        .at("/ready", get(ops::ready))
        .catch_all_error(|err| envelope(err, false))
        .data(state)
        .around(move |next, req| log_request(next, req, known.clone()))
        .boxed()
}

/// The paths the server answers, so that a log line names a route, never a path a client made up.
struct KnownRoutes(HashSet<String>);

impl KnownRoutes {
    /// The routes: the operational ones and every command's (a test holds the command list to the
    /// routed commands).
    fn new() -> Self {
        let mut paths: HashSet<String> = ["/health", "/status", "/ready", "/openapi.json"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        paths.extend(
            bunker_services::access::Command::ALL
                .iter()
                .map(|command| format!("/v2/{}", command.name())),
        );
        KnownRoutes(paths)
    }

    fn name<'a>(&self, path: &'a str) -> &'a str {
        if self.0.contains(path) {
            path
        } else if path == "/docs" || path.starts_with("/docs/") {
            "/docs"
        } else {
            "other"
        }
    }
}

/// Logs method, route, status and time of every request: never bodies, headers or query strings.
async fn log_request<E: Endpoint>(
    next: E,
    req: Request,
    known: Arc<KnownRoutes>,
) -> poem::Result<Response> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let response = next.call(req).await?.into_response();
    tracing::info!(
        %method,
        route = known.name(&path),
        status = response.status().as_u16(),
        millis = started.elapsed().as_millis() as u64,
        "request"
    );
    Ok(response)
}
