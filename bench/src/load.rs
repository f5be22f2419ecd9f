//! The load generator: many concurrent keep-alive HTTP connections, each sending a distinct request
//! (numbered by a shared counter) for a fixed time; latencies of every request are kept.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What one measurement found.
#[derive(Clone, Debug)]
pub struct Measured {
    pub requests: usize,
    pub errors: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Sends `command` with the body `body(i)` (i = 0, 1, 2, ...) over `connections` connections for
/// `duration`.
pub async fn drive(
    address: &str,
    token: &str,
    command: &str,
    connections: usize,
    duration: Duration,
    body: Arc<dyn Fn(usize) -> Value + Send + Sync>,
) -> Measured {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap_or_default();
    let url = format!("{address}/v2/{command}");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (client, url, next, body) = (client.clone(), url.clone(), next.clone(), body.clone());
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let payload = serde_json::to_vec(&body(i)).unwrap_or_default();
                let sent = Instant::now();
                let ok = match client
                    .post(&url)
                    .header("X-Bunker-Token", &token)
                    .header("Content-Type", "application/json")
                    .body(payload)
                    .send()
                    .await
                {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        ok && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                latencies.push(sent.elapsed());
                errors += usize::from(!ok);
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((l, e)) = task.await {
            latencies.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Measured {
        requests: latencies.len(),
        errors,
        per_second: (latencies.len() - errors) as f64 / elapsed,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
    }
}
