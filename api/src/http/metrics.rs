//! `GET /metrics`: Prometheus text, without authentication, on the API's address or on a separate
//! one (`BUNKER_METRICS_LISTEN`, which takes it off the API's).
//!
//! The series the contract names (`http_requests_total{method,path,status}`,
//! `http_request_duration_seconds{method,path}`, `http_requests_in_flight`, the `process_*` ones),
//! where `path` is a route the server answers (`/v2/UserCreate`) or `other`, never a path a client
//! made up; then Bunker's own: rate-limit refusals by kind, the pool, the read-event group commit,
//! webhook deliveries, sweeps and the master-key version. No label holds a tenant's name or id,
//! unless `BUNKER_METRICS_PER_TENANT` asks for `bunker_tenant_requests_total{tenant}`.

use std::sync::Arc;

use bunker_services::metrics::{ServiceMetrics, DELAY_BUCKETS};
use bunker_services::Vault;
use poem::web::Data;
use poem::{handler, IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, TextEncoder,
};

use crate::http::app::AppState;

/// The HTTP layer's series, in the vault's registry.
pub struct HttpMetrics {
    services: Arc<ServiceMetrics>,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub in_flight: IntGauge,
    pub rate_limited: IntCounterVec,
    /// `bunker_tenant_requests_total{tenant}`, when asked for.
    pub per_tenant: Option<IntCounterVec>,
    pool: IntGaugeVec,
    pool_waiting: IntGauge,
    key_version: IntGauge,
}

impl HttpMetrics {
    /// Registers the series in `vault`'s registry, with the process's (CPU, memory, start time).
    pub fn new(vault: &Vault, per_tenant: bool) -> prometheus::Result<Self> {
        let services = vault.metrics().clone();
        let registry = &services.registry;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "Requests answered, by method, route and status",
            ),
            &["method", "path", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer, by method and route",
            )
            .buckets(DELAY_BUCKETS.to_vec()),
            &["method", "path"],
        )?;
        let in_flight = IntGauge::new("http_requests_in_flight", "Requests being answered")?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "bunker_rate_limited_total",
                "Requests refused with 429, by the kind of limit (tenant, token, ip, public, costly)",
            ),
            &["kind"],
        )?;
        let per_tenant = match per_tenant {
            true => Some(IntCounterVec::new(
                Opts::new(
                    "bunker_tenant_requests_total",
                    "Authenticated requests by tenant name (BUNKER_METRICS_PER_TENANT)",
                ),
                &["tenant"],
            )?),
            false => None,
        };
        let pool = IntGaugeVec::new(
            Opts::new(
                "bunker_db_pool_connections",
                "Database connections: the pool's most (max), open (open) and idle (idle)",
            ),
            &["state"],
        )?;
        let pool_waiting = IntGauge::new(
            "bunker_db_pool_waiting",
            "Requests waiting for a database connection",
        )?;
        let key_version = IntGauge::new(
            "bunker_master_key_version",
            "The master-key version new data is sealed with",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        if let Some(per_tenant) = &per_tenant {
            registry.register(Box::new(per_tenant.clone()))?;
        }
        registry.register(Box::new(pool.clone()))?;
        registry.register(Box::new(pool_waiting.clone()))?;
        registry.register(Box::new(key_version.clone()))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(HttpMetrics {
            services,
            requests,
            duration,
            in_flight,
            rate_limited,
            per_tenant,
            pool,
            pool_waiting,
            key_version,
        })
    }

    /// Every series as Prometheus text, the gauges read now.
    pub fn render(&self, state: &AppState) -> Result<String, prometheus::Error> {
        let pool = state.db.pool_status();
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.pool
            .with_label_values(&["max"])
            .set(gauge(pool.max_size));
        self.pool.with_label_values(&["open"]).set(gauge(pool.size));
        self.pool.with_label_values(&["idle"]).set(gauge(pool.idle));
        self.pool_waiting.set(gauge(pool.waiting));
        self.key_version
            .set(i64::from(state.vault.current_version()));
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.services.registry.gather(), &mut text)?;
        String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// `GET /metrics`.
#[handler]
pub fn metrics(state: Data<&Arc<AppState>>) -> Response {
    match state.metrics.render(&state) {
        Ok(text) => text
            .with_content_type("text/plain; version=0.0.4; charset=utf-8")
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "metrics could not be rendered");
            crate::http::error::ApiError::internal().into_response()
        }
    }
}
