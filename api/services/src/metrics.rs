//! What the services count for `GET /metrics`: the read-event group commit, webhook deliveries and
//! sweeps. Each vault has a registry of its own (the HTTP layer adds its series to it), so servers
//! in one process (the tests) do not share counts. No series has a tenant's name or id as a label.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

/// The services' series.
pub struct ServiceMetrics {
    pub registry: Registry,
    /// Read events per group commit.
    pub read_audit_batch: Histogram,
    /// How long a read waited in its tenant's queue before its batch was taken.
    pub read_audit_wait: Histogram,
    /// How long a read waited from queued to committed (the answer's delay for its audit).
    pub read_audit_delay: Histogram,
    /// Webhook deliveries by outcome: delivered, retried, abandoned.
    pub webhook_deliveries: IntCounterVec,
    /// Sweeper rounds by outcome: ok, failed.
    pub sweeper_runs: IntCounterVec,
    /// Calls to AWS KMS for tenants' own keys, by operation (encrypt, decrypt) and outcome (ok,
    /// refused, unreachable).
    pub kms_requests: IntCounterVec,
    /// Loads of a tenant's keys into the cache, by outcome (ok, unavailable, failed).
    pub tenant_key_loads: IntCounterVec,
}

/// Buckets for short delays, in seconds: 100 µs to 5 s.
pub const DELAY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

impl ServiceMetrics {
    /// The series, registered in a registry of their own (refused only if an option above were
    /// invalid: a test builds them).
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let histogram = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
            registry.register(Box::new(histogram.clone()))?;
            Ok::<_, prometheus::Error>(histogram)
        };
        let counters = |name: &str, help: &str, label: &str| {
            let counters = IntCounterVec::new(Opts::new(name, help), &[label])?;
            registry.register(Box::new(counters.clone()))?;
            Ok::<_, prometheus::Error>(counters)
        };
        Ok(ServiceMetrics {
            read_audit_batch: histogram(
                "bunker_read_audit_batch_events",
                "Read events written per group commit",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            )?,
            read_audit_wait: histogram(
                "bunker_read_audit_queue_seconds",
                "Time a read event waited in its tenant's queue before its batch was taken",
                DELAY_BUCKETS.to_vec(),
            )?,
            read_audit_delay: histogram(
                "bunker_read_audit_delay_seconds",
                "Time from a read event queued to committed",
                DELAY_BUCKETS.to_vec(),
            )?,
            webhook_deliveries: counters(
                "bunker_webhook_deliveries_total",
                "Webhook delivery attempts by outcome (delivered, retried, abandoned)",
                "outcome",
            )?,
            sweeper_runs: counters(
                "bunker_sweeper_runs_total",
                "Sweeper rounds by outcome (ok, failed)",
                "outcome",
            )?,
            kms_requests: {
                let counters = IntCounterVec::new(
                    Opts::new(
                        "bunker_kms_requests_total",
                        "Calls to AWS KMS for tenants' own keys by operation and outcome \
                         (ok, refused, unreachable)",
                    ),
                    &["operation", "outcome"],
                )?;
                registry.register(Box::new(counters.clone()))?;
                counters
            },
            tenant_key_loads: counters(
                "bunker_tenant_key_loads_total",
                "Loads of a tenant's keys into a server's cache by outcome (ok, unavailable, failed)",
                "outcome",
            )?,
            registry,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_series_are_valid_and_registered() {
        let metrics = super::ServiceMetrics::new().unwrap();
        metrics
            .webhook_deliveries
            .with_label_values(&["delivered"])
            .inc();
        metrics.sweeper_runs.with_label_values(&["ok"]).inc();
        metrics
            .kms_requests
            .with_label_values(&["decrypt", "ok"])
            .inc();
        metrics.tenant_key_loads.with_label_values(&["ok"]).inc();
        let names: Vec<String> = metrics
            .registry
            .gather()
            .iter()
            .map(|family| family.name().to_owned())
            .collect();
        assert_eq!(names.len(), 7, "{names:?}");
    }
}
