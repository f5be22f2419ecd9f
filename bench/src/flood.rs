//! `bench flood [SECONDS]`: one tenant floods the server at 10 times its quota while another reads
//! at a steady rate; the victim's latency is measured alone first, then during the flood, in one
//! run on one server.
//!
//! The noisy tenant gets a quota of [`QUOTA`] requests/s (TenantUpdate `ratelimit`, as root) and
//! sends UserCreate at 10 times that, open-loop (requests leave on a fixed schedule, however slow
//! the answers); the victim sends UserGet by token at [`VICTIM_RATE`]/s, open-loop too, for SECONDS
//! (default 20) alone and again during the flood, after a warm-up of both (3 s, its figures printed
//! apart: a flood from cold first pays for opening connections). Each tenant's requests come through a trusted
//! proxy (`X-Forwarded-For`, `BUNKER_TRUSTED_PROXIES=127.0.0.1/32`), as two clients behind a load
//! balancer would, so that the per-address limit sees two clients. Prints the noisy tenant's answers
//! by status (and how many 429s had Retry-After), the victim's p50/p99 quiet and flooded, and their
//! ratio; exits 1 if the victim's p99 under the flood is over twice its quiet p99, or if the noisy
//! tenant got no 429.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::cluster::BenchCluster;
use crate::server::Server;

/// The noisy tenant's quota, requests per second.
const QUOTA: u32 = 100;
/// The victim's steady read rate, requests per second.
const VICTIM_RATE: u32 = 100;
/// Users the victim reads.
const VICTIM_USERS: usize = 1000;

/// What one open-loop run saw.
struct Seen {
    statuses: BTreeMap<u16, usize>,
    /// 429s that carried Retry-After.
    retry_after: usize,
    failed: usize,
    latencies: Vec<Duration>,
    /// When each answered request was sent, from the run's start, with its latency.
    timeline: Vec<(Duration, Duration)>,
}

impl Seen {
    fn at(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted
            .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// Who sends: a tenant's token and header, from its own client address.
#[derive(Clone)]
struct Sender {
    client: reqwest::Client,
    url: String,
    token: String,
    tenant: String,
    address: String,
}

/// Sends `body(i)` to `command` at `rate` per second for `duration`, on schedule.
async fn open_loop(
    sender: &Sender,
    command: &str,
    rate: u32,
    duration: Duration,
    body: Arc<dyn Fn(usize) -> Value + Send + Sync>,
) -> Seen {
    let every = Duration::from_secs(1) / rate.max(1);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut running = JoinSet::new();
    let mut i = 0;
    while started.elapsed() < duration {
        ticks.tick().await;
        let s = sender.clone();
        let payload = body(i);
        let url = format!("{}/v2/{command}", s.url);
        i += 1;
        running.spawn(async move {
            let sent = Instant::now();
            let answer = s
                .client
                .post(url)
                .header("X-Bunker-Token", &s.token)
                .header("X-Bunker-Tenant", &s.tenant)
                .header("X-Forwarded-For", &s.address)
                .json(&payload)
                .send()
                .await;
            match answer {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry = response.headers().contains_key("retry-after");
                    let body = response.bytes().await;
                    let read = body.is_ok();

                    (
                        Some((status, retry && status == 429)),
                        read,
                        sent.elapsed(),
                        sent - started,
                    )
                }
                Err(_) => (None, false, sent.elapsed(), sent - started),
            }
        });
    }
    let mut seen = Seen {
        statuses: BTreeMap::new(),
        retry_after: 0,
        failed: 0,
        latencies: Vec::with_capacity(i),
        timeline: Vec::with_capacity(i),
    };
    while let Some(done) = running.join_next().await {
        match done {
            Ok((Some((status, retry)), true, took, at)) => {
                *seen.statuses.entry(status).or_default() += 1;
                seen.retry_after += usize::from(retry);
                seen.latencies.push(took);
                seen.timeline.push((at, took));
            }
            _ => seen.failed += 1,
        }
    }
    seen
}

async fn root(server: &Server, command: &str, body: Value) -> Result<Value, String> {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/v2/{command}", server.address))
        .header("X-Bunker-Token", &server.root_token)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    match answer["status"].as_str() {
        Some("ok") => Ok(answer),
        _ => Err(format!("{command}: {answer}")),
    }
}

pub async fn run(seconds: u64) -> Result<bool, String> {
    let cluster = BenchCluster::start()?;
    let quota = format!("{QUOTA}/s");
    let server = Server::start_with(
        &cluster,
        &[
            ("BUNKER_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("BUNKER_RATE_TOKEN", "off"),
            ("BUNKER_RATE_TENANT", "1000000/s"),
        ],
    )
    .await?;
    let noisy = root(
        &server,
        "TenantCreate",
        json!({"tenantname": "noisy", "tenantorg": "n"}),
    )
    .await?;
    let victim = root(
        &server,
        "TenantCreate",
        json!({"tenantname": "victim", "tenantorg": "v"}),
    )
    .await?;
    root(
        &server,
        "TenantUpdate",
        json!({"tenantid": noisy["tenantid"], "ratelimit": quota}),
    )
    .await?;
    let client = reqwest::Client::new();
    let sender = |answer: &Value, tenant: &str, address: &str| Sender {
        client: client.clone(),
        url: server.address.clone(),
        token: answer["xtoken"].as_str().unwrap_or_default().to_owned(),
        tenant: tenant.to_owned(),
        address: address.to_owned(),
    };
    let noisy = sender(&noisy, "noisy", "198.51.100.1");
    let victim = sender(&victim, "victim", "198.51.100.2");
    let mut tokens = Vec::with_capacity(VICTIM_USERS);
    for chunk in (0..VICTIM_USERS).collect::<Vec<_>>().chunks(500) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"profile": {"login": format!("victim{i}"), "name": "V"}}))
            .collect();
        let answer: Value = client
            .post(format!("{}/v2/UserCreateBulk", server.address))
            .header("X-Bunker-Token", &victim.token)
            .header("X-Bunker-Tenant", "victim")
            .json(&json!({"records": records}))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        for created in answer["created"].as_array().into_iter().flatten() {
            if let Some(token) = created["token"].as_str() {
                tokens.push(token.to_owned());
            }
        }
    }
    if tokens.is_empty() {
        return Err("the victim's users were not created".to_owned());
    }
    let tokens = Arc::new(tokens);
    let reads: Arc<dyn Fn(usize) -> Value + Send + Sync> = {
        let tokens = tokens.clone();
        Arc::new(
            move |i| json!({"mode": "token", "identity": tokens[i.wrapping_mul(7919) % tokens.len()]}),
        )
    };
    let factor: u32 = std::env::var("FLOOD_FACTOR")
        .ok()
        .and_then(|f| f.parse().ok())
        .unwrap_or(10);
    let noisy_command = std::env::var("FLOOD_COMMAND").unwrap_or_else(|_| "UserCreate".to_owned());
    let writes: Arc<dyn Fn(usize) -> Value + Send + Sync> = if noisy_command == "UserGet" {
        Arc::new(|_| json!({"mode": "login", "identity": "nobody"}))
    } else {
        // Distinct across the warm-up and the flood (both count from 0).
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        Arc::new(move |_| {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            json!({"profile": {"login": format!("noisy{n}")}})
        })
    };
    let duration = Duration::from_secs(seconds);
    // Warm up both (connections opened on both sides, statements prepared, the noisy tenant's
    // limiter made): the first fraction of a second of a flood from cold is a transient of its own
    // (connections being opened), reported apart from the steady figure below.
    let warm = {
        let (noisy, writes) = (noisy.clone(), writes.clone());
        let noisy_command = noisy_command.clone();
        tokio::spawn(async move {
            open_loop(
                &noisy,
                &noisy_command,
                QUOTA * factor,
                Duration::from_secs(3),
                writes,
            )
            .await
        })
    };
    let cold = open_loop(
        &victim,
        "UserGet",
        VICTIM_RATE,
        Duration::from_secs(3),
        reads.clone(),
    )
    .await;
    let _ = warm.await;
    println!(
        "warm-up (3 s, both tenants from cold): victim p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        cold.at(0.50),
        cold.at(0.99),
        cold.at(1.0)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let quiet = open_loop(&victim, "UserGet", VICTIM_RATE, duration, reads.clone()).await;
    // The victim again, while the noisy tenant floods at 10 times its quota.
    let flood = {
        let noisy = noisy.clone();
        tokio::spawn(async move {
            open_loop(&noisy, &noisy_command, QUOTA * factor, duration, writes).await
        })
    };
    let flooded = open_loop(&victim, "UserGet", VICTIM_RATE, duration, reads).await;
    let flood = flood.await.map_err(|e| e.to_string())?;

    let refused = flood.statuses.get(&429).copied().unwrap_or(0);
    println!("flood: the noisy tenant at {} requests/s (10 x its quota of {quota}) for {seconds} s, the victim reading at {VICTIM_RATE}/s", QUOTA * 10);
    println!(
        "noisy tenant: {} answers by status {:?}, {} of the {refused} 429s with Retry-After, {} without an answer",
        flood.latencies.len(),
        flood.statuses,
        flood.retry_after,
        flood.failed
    );
    for (name, seen) in [("quiet", &quiet), ("flooded", &flooded)] {
        println!(
            "victim {name:>7}: {} answers {:?}, p50 {:.2} ms, p99 {:.2} ms, {} without an answer",
            seen.latencies.len(),
            seen.statuses,
            seen.at(0.50),
            seen.at(0.99),
            seen.failed
        );
    }
    if std::env::var_os("FLOOD_DEBUG").is_some() {
        let mut slow = flooded.timeline.clone();
        slow.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
        for (at, took) in slow.iter().take(25) {
            println!(
                "  slow victim read sent at {:>7.3} s: {:.1} ms",
                at.as_secs_f64(),
                took.as_secs_f64() * 1000.0
            );
        }
    }
    let ratio = flooded.at(0.99) / quiet.at(0.99).max(0.001);
    let victim_ok = |seen: &Seen| seen.failed == 0 && seen.statuses.keys().all(|s| *s == 200);
    let passed = ratio <= 2.0
        && refused > 0
        && flood.retry_after == refused
        && victim_ok(&quiet)
        && victim_ok(&flooded);
    println!(
        "victim p99 flooded / quiet: {ratio:.2} (at most 2.00): {}",
        if passed { "pass" } else { "FAIL" }
    );
    Ok(passed)
}
