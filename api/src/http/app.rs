//! Building and running the HTTP server.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bunker_db::{Database, DbError, SchemaStatus};
use bunker_services::access::Command;
use bunker_services::metrics::ServiceMetrics;
use bunker_services::tenants::Tenants;
use bunker_tenancy::{Tenancy, TenantResolver};
use poem::endpoint::BoxEndpoint;
use poem::http::HeaderValue;
use poem::listener::{AcceptorExt, BoxAcceptor, TcpAcceptor};
use poem::{
    get, Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Response, Route, Server,
};
use poem_openapi::OpenApiService;
use tracing::Instrument;
use uuid::Uuid;

use crate::http::error::{envelope, ApiError};
use crate::http::limits::{Limits, RateSettings};
use crate::http::listener::{ConnectionGuard, EnvelopeAcceptor};
use crate::http::mail::{MailError, MailSettings, Mailer};
use crate::http::metrics::{self, HttpMetrics};
use crate::http::ops;
use crate::http::spec;
use crate::http::tls::{TlsError, TlsFiles};
use crate::v2::appdata::AppdataApi;
use crate::v2::audit::AuditApi;
use crate::v2::bulk::BulkApi;
use crate::v2::consent::ConsentApi;
use crate::v2::expiration::ExpirationApi;
use crate::v2::files::FileApi;
use crate::v2::groups::GroupApi;
use crate::v2::login::LoginApi;
use crate::v2::policies::PolicyApi;
use crate::v2::requests::RequestApi;
use crate::v2::sessions::SessionApi;
use crate::v2::system::SystemApi;
use crate::v2::tenants::{AccessTokenApi, TenantApi, TenantKeyApi};
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
    pub limits: Arc<Limits>,
    pub metrics: Arc<HttpMetrics>,
    /// Sends login codes by e-mail, if configured.
    pub mailer: Option<Arc<Mailer>>,
    /// Sends login codes by SMS, if configured.
    pub sms: Option<Arc<crate::http::sms::SmsSender>>,
}

/// What the server holds for key administration (`SystemGenerateWrappingKey`).
#[derive(Clone)]
pub struct KeyService {
    pub db: Database,
    pub keyring: SharedKeyring,
    pub installation: uuid::Uuid,
    /// What wraps the master key: `a local wrapping key` or `AWS KMS` (never the key).
    pub wrapping: &'static str,
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
    /// The rate limits (`BUNKER_RATE_*`, `BUNKER_TRUSTED_PROXIES`).
    pub rates: RateSettings,
    /// The most connections one tenant's requests may hold (`BUNKER_TENANT_MAX_CONNECTIONS`;
    /// none: three quarters of the pool, rounded up).
    pub tenant_max_connections: Option<usize>,
    /// Where `GET /metrics` is served instead of the API's address (`BUNKER_METRICS_LISTEN`).
    pub metrics_listen: Option<String>,
    /// Whether `/metrics` has a series per tenant (`BUNKER_METRICS_PER_TENANT`).
    pub metrics_per_tenant: bool,
    /// HTTPS with this certificate and key (`BUNKER_TLS_CERT`, `BUNKER_TLS_KEY`).
    pub tls: Option<TlsFiles>,
    /// How login codes are sent (`BUNKER_SMTP_URL`, `BUNKER_MAIL_LOG`, `BUNKER_MAIL_FROM`,
    /// `BUNKER_SMS_URL`, `BUNKER_SMS_AUTHORIZATION`).
    pub mail: MailSettings,
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
    #[error("refusing to serve: {0}")]
    Tls(#[from] TlsError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("refusing to serve: {0}")]
    Mail(#[from] MailError),
}

/// A server that is bound and checked, ready to run.
pub struct Application {
    acceptor: BoxAcceptor,
    local_addr: SocketAddr,
    /// The separate metrics listener, if configured, with its address.
    metrics: Option<(BoxAcceptor, SocketAddr, BoxEndpoint<'static>)>,
    limits: Arc<Limits>,
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
        let cap = settings
            .tenant_max_connections
            .unwrap_or_else(|| (db.pool_status().max_size * 3).div_ceil(4));
        let db = db.with_tenant_cap(cap);
        let schema = db.schema_status().await?;
        schema.require_ready()?;
        if let SchemaStatus::Newer { applied, latest } = schema {
            tracing::warn!(
                applied,
                latest,
                "the database schema is newer than this binary knows, and says this binary may \
                 serve on it: serving (finish the upgrade, or keep this release only for a rollback)"
            );
        }
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
        let vault = Vault::new(
            db.clone(),
            keyring.clone(),
            settings.vault.clone(),
            Arc::new(ServiceMetrics::new()?),
        )
        .with_files(files);
        vault.register_tenant_key_cache().await?;
        let metrics = Arc::new(HttpMetrics::new(&vault, settings.metrics_per_tenant)?);
        let limits = Arc::new(Limits::new(
            settings.rates.clone(),
            metrics.rate_limited.clone(),
        ));
        let (tcp, local_addr) = bind(&settings.listen).await?;
        let https = settings.tls.is_some();
        let guard = ConnectionGuard::new(limits.clone());
        let acceptor = match settings.tls.clone() {
            Some(files) => EnvelopeAcceptor::new(tcp.rustls(files.watch()?), guard).boxed(),
            None => EnvelopeAcceptor::new(tcp, guard).boxed(),
        };
        let tenancy = Tenancy::new(db.clone(), TenantResolver::new(&settings.domains));
        let tenants = Tenants::new(db.clone()).with_keyring(keyring.clone());
        let state_db = db.clone();
        let state = Arc::new(AppState {
            keys: KeyService {
                db: db.clone(),
                keyring: keyring.clone(),
                installation,
                wrapping: settings.wrapping.describe(),
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
            limits: limits.clone(),
            mailer: Mailer::from_settings(&settings.mail)?,
            sms: crate::http::sms::SmsSender::from_settings(
                settings.mail.sms_url.as_ref(),
                settings.mail.sms_authorization.as_ref(),
            )?
            .map(Arc::new),
            metrics,
        });
        let separate_metrics = match &settings.metrics_listen {
            Some(address) => {
                let (tcp, at) = bind(address).await?;
                let endpoint = Route::new()
                    .at("/metrics", get(metrics::metrics))
                    .catch_all_error(|err| envelope(err, false))
                    .data(state.clone())
                    .boxed();
                let guard = ConnectionGuard::new(limits.clone());
                Some((EnvelopeAcceptor::new(tcp, guard).boxed(), at, endpoint))
            }
            None => None,
        };
        let options = RouteOptions {
            metrics_here: separate_metrics.is_none(),
            https,
        };
        Ok(Application {
            acceptor,
            local_addr,
            metrics: separate_metrics,
            limits,
            endpoint: routes(state, options),
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

    /// The separate address `/metrics` is served on, if one is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, at, _)| *at)
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
        let housekeeping = self.limits.spawn_housekeeping();
        let metrics = self.metrics.map(|(acceptor, _, endpoint)| {
            tokio::spawn(
                Server::new_with_acceptor(acceptor)
                    .idle_timeout(IDLE_TIMEOUT)
                    .run(endpoint),
            )
        });
        let served = Server::new_with_acceptor(self.acceptor)
            .idle_timeout(IDLE_TIMEOUT)
            .run_with_graceful_shutdown(self.endpoint, shutdown, Some(Duration::from_secs(10)))
            .await;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        housekeeping.abort();
        sweeper.abort();
        webhooks.abort();
        chainer.abort();
        refresher.abort();
        served
    }
}

/// The `/v2` command groups.
pub type V2 = (
    (TenantApi, TenantKeyApi),
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
    (XTokenApi, LoginApi, ExpirationApi),
);

/// The OpenAPI service describing `/v2`, generated from the code.
pub fn openapi(tenants: Tenants, vault: Vault, keys: KeyService) -> OpenApiService<V2, ()> {
    let api = (
        (
            TenantApi {
                tenants: tenants.clone(),
                vault: vault.clone(),
            },
            TenantKeyApi {
                vault: vault.clone(),
            },
        ),
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
        (
            XTokenApi {
                vault: vault.clone(),
            },
            LoginApi,
            ExpirationApi { vault },
        ),
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

/// A connection with nothing sent or received for this long is closed: one that never finishes
/// its request (or its TLS handshake) does not hold a socket for ever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the routes depend on beyond the state.
#[derive(Clone, Copy, Debug)]
pub struct RouteOptions {
    /// Whether `/metrics` is on the API's address (no separate one is configured).
    pub metrics_here: bool,
    /// Whether the server speaks HTTPS itself (answers then carry HSTS).
    pub https: bool,
}

/// Binds a TCP listener on `address`.
async fn bind(address: &str) -> Result<(TcpAcceptor, SocketAddr), StartError> {
    let listen_error = |source| StartError::Listen {
        address: address.to_owned(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(listen_error)?;
    let at = listener.local_addr().map_err(listen_error)?;
    Ok((TcpAcceptor::from_tokio(listener).map_err(listen_error)?, at))
}

/// Every route of the server.
pub fn routes(state: Arc<AppState>, options: RouteOptions) -> BoxEndpoint<'static> {
    let api = openapi(
        state.tenants.clone(),
        state.vault.clone(),
        state.keys.clone(),
    );
    // The document as served: poem-openapi's, refined (see `spec`); Swagger UI shows the same.
    let raw = api.spec();
    let refined = serde_json::to_string_pretty(&spec::refine(&raw)).unwrap_or_default();
    let docs_html = api.swagger_ui_html().replacen(&raw, &refined, 1);
    let spec = poem::endpoint::make_sync(move |_| {
        refined
            .clone()
            .with_content_type("application/json; charset=utf-8")
    });
    let docs = Route::new().at(
        "/",
        poem::endpoint::make_sync(move |_| poem::web::Html(docs_html.clone())),
    );
    let known = Arc::new(KnownRoutes::new(options.metrics_here));
    let v2: Arc<BoxEndpoint<'static>> = Arc::new(
        api.into_endpoint()
            .catch_all_error(|err| envelope(err, true))
            // Room for the transaction a request's authentication opens (bunker_db::session).
            .around(|next, req| async move { bunker_db::session::scope(next.call(req)).await })
            .boxed(),
    );
    let mut route = Route::new()
        .nest("/v2", v2.clone())
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/health", get(ops::health))
        .at("/status", get(ops::health))
        .at("/ready", get(ops::ready));
    if options.metrics_here {
        route = route.at("/metrics", get(metrics::metrics));
    }
    // /v1 and the portals call the same /v2 endpoint, in process.
    let route = crate::v1::mount(route, v2.clone(), options.metrics_here);
    let route = crate::web::mount(route, v2);
    let limits = state.limits.clone();
    let observed = state.clone();
    route
        .catch_all_error(|err| envelope(err, false))
        .around(move |next, req| limit_addresses(next, req, limits.clone()))
        .around(|next, req| async move {
            let portal = crate::web::portal_path(req.uri().path());
            let response = next.call(req).await?.into_response();
            Ok(match portal {
                true => crate::web::secure_headers(response),
                false => response,
            })
        })
        .data(state)
        .around(move |next, req| observe(next, req, known.clone(), observed.clone(), options.https))
        .boxed()
}

/// The limits by client address, before anything else is done for a request (the probes are
/// never limited: a load balancer's checks must not be refused).
async fn limit_addresses<E: Endpoint>(
    next: E,
    req: Request,
    limits: Arc<Limits>,
) -> poem::Result<Response> {
    let path = req.uri().path();
    if !matches!(path, "/health" | "/status" | "/ready") {
        let command = path
            .strip_prefix("/v2/")
            .and_then(Command::from_name)
            .or_else(|| crate::web::public_command(req.method(), path))
            .or_else(|| crate::v1::public_command(req.method(), path));
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let address = limits.client_address(peer, req.headers());
        if let Err(refusal) = limits.check_address(address, command) {
            return Ok(ApiError::too_many(&refusal).into_response());
        }
    }
    Ok(next.call(req).await?.into_response())
}

/// The paths the server answers, so that a log line or a metric names a route, never a path a
/// client made up.
struct KnownRoutes(HashSet<String>);

impl KnownRoutes {
    /// The routes: the operational ones and every command's (a test holds the command list to the
    /// routed commands).
    fn new(metrics_here: bool) -> Self {
        let mut paths: HashSet<String> = ["/health", "/status", "/ready", "/openapi.json"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        if metrics_here {
            paths.insert("/metrics".to_owned());
        }
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
        } else if let Some(route) = crate::web::route_name(path) {
            route
        } else if let Some(route) = crate::v1::route_name(path) {
            route
        } else {
            "other"
        }
    }
}

/// The longest `X-Request-Id` taken from a client.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The request's id: the client's `X-Request-Id` if it is a short token of letters, digits and
/// `-_.:`, else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| Uuid::new_v4().simple().to_string(), str::to_owned)
}

/// A method as a metric label and in the log: one of HTTP's, else `other` (a client may send any
/// token as a method; a label per made-up method would grow `/metrics` without bound).
fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Counts requests in flight while alive (a cancelled request is counted out too).
struct InFlight(prometheus::IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Every request: its id (returned in `X-Request-Id` and on every log line of the request), its
/// log line (method, route, status and time: never bodies, headers or query strings), its
/// metrics, and HSTS when the server speaks HTTPS.
async fn observe<E: Endpoint>(
    next: E,
    req: Request,
    known: Arc<KnownRoutes>,
    state: Arc<AppState>,
    https: bool,
) -> poem::Result<Response> {
    let id = request_id(&req);
    let span = tracing::info_span!("request", request_id = %id);
    async move {
        let method = method_label(req.method());
        let route = known.name(req.uri().path()).to_owned();
        let started = Instant::now();
        state.metrics.in_flight.inc();
        let in_flight = InFlight(state.metrics.in_flight.clone());
        let mut response = next.call(req).await?.into_response();
        drop(in_flight);
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        state
            .metrics
            .requests
            .with_label_values(&[method, &route, &status.to_string()])
            .inc();
        state
            .metrics
            .duration
            .with_label_values(&[method, &route])
            .observe(elapsed.as_secs_f64());
        tracing::info!(
            method,
            route,
            status,
            millis = elapsed.as_millis() as u64,
            "request"
        );
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&id) {
            headers.insert("x-request-id", value);
        }
        if https {
            headers.insert(
                "strict-transport-security",
                HeaderValue::from_static("max-age=31536000"),
            );
        }
        Ok(response)
    }
    .instrument(span)
    .await
}
