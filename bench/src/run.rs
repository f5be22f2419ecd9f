//! `bench run`: raw baselines, then Bunker's commands, on one durable cluster in one run; one table
//! with each figure's ratio to its baseline and the target, and the same as JSON.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::baseline::{self, Baseline};
use crate::cluster::BenchCluster;
use crate::cpu::{per_record, Sampler};
use crate::load::{drive, Measured};
use crate::server::Server;

/// Concurrent connections, for pgbench and for the load generator alike.
const CONNECTIONS: usize = 16;

/// What a Bunker figure is compared with.
#[derive(Clone, Copy)]
enum Against {
    InsertOne,
    InsertBatch,
    PointRead,
}

/// One Bunker figure with its baseline and the CPU it took per record: (bunker, postgres,
/// load generator), in microseconds.
struct Row<'a> {
    case: &'a Case,
    measured: Measured,
    base_name: &'static str,
    base: f64,
    cpu: [f64; 3],
}

struct Case {
    command: &'static str,
    label: &'static str,
    /// Records each request carries (bulk commands: 100).
    records: usize,
    against: Against,
    /// The least ratio to the baseline that meets the target, if there is one.
    target: Option<f64>,
    body: Arc<dyn Fn(usize) -> Value + Send + Sync>,
}

/// What `bench run` was asked for.
pub struct Options {
    /// A smoke run: short figures, few preloaded records.
    pub quick: bool,
    /// Only the commands whose label contains this, or one of these comma-separated parts (the
    /// baselines always run).
    pub only: Option<String>,
    /// How long each figure runs (default 10 s, `--quick` 2 s).
    pub seconds: Option<u64>,
}

pub async fn run(options: &Options, json_path: &Path) -> Result<(), String> {
    let quick = options.quick;
    let seconds: u64 = options.seconds.unwrap_or(if quick { 2 } else { 10 });
    let preload: usize = if quick { 1_000 } else { 10_000 };
    let cluster = BenchCluster::start()?;
    baseline::prepare(&cluster).await?;
    let scratch = std::env::temp_dir().join(format!("bunker-bench-scripts-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    cluster.settle("baseline").await?;
    let insert_one = baseline::pgbench(
        &cluster,
        baseline::INSERT_ONE,
        CONNECTIONS,
        seconds,
        &scratch,
    )?;
    cluster.settle("baseline").await?;
    let insert_batch = baseline::pgbench(
        &cluster,
        baseline::INSERT_BATCH,
        CONNECTIONS,
        seconds,
        &scratch,
    )?;
    cluster.settle("baseline").await?;
    let point_read = baseline::pgbench(
        &cluster,
        baseline::POINT_READ,
        CONNECTIONS,
        seconds,
        &scratch,
    )?;
    let _ = std::fs::remove_dir_all(&scratch);

    let server = Server::start(&cluster).await?;
    let (users, tokens) = preload_data(&server, preload).await?;
    preload_sessions(&server, SESSIONS).await?;
    let users = Arc::new(users);
    let tokens = Arc::new(tokens);
    let pick = |len: usize, i: usize| (i.wrapping_mul(7919)) % len.max(1);
    let cases = {
        let (u1, u2, t1) = (users.clone(), users.clone(), tokens.clone());
        vec![
            Case {
                command: "UserCreate",
                label: "UserCreate",
                records: 1,
                against: Against::InsertOne,
                target: Some(0.75),
                body: Arc::new(|i| json!({"profile": profile(1_000_000 + i)})),
            },
            Case {
                command: "UserCreateBulk",
                label: "UserCreateBulk (100/call)",
                records: 100,
                against: Against::InsertBatch,
                target: Some(0.40),
                body: Arc::new(|i| {
                    let records: Vec<Value> = (0..100)
                        .map(|k| json!({"profile": profile(20_000_000 + i * 100 + k)}))
                        .collect();
                    json!({"records": records})
                }),
            },
            Case {
                command: "UserGet",
                label: "UserGet by token",
                records: 1,
                against: Against::PointRead,
                target: Some(0.70),
                body: Arc::new(
                    move |i| json!({"mode": "token", "identity": u1[pick(u1.len(), i)]}),
                ),
            },
            Case {
                command: "UserGet",
                label: "UserGet by email",
                records: 1,
                against: Against::PointRead,
                target: Some(0.70),
                body: Arc::new(
                    move |i| json!({"mode": "email", "identity": email(pick(u2.len(), i))}),
                ),
            },
            // The session-store's pattern: one upsert per request of the application, over a set
            // of live sessions (replaced, not added), half of them linked to a user.
            Case {
                command: "SessionUpsert",
                label: "SessionUpsert",
                records: 1,
                against: Against::InsertOne,
                target: None,
                body: Arc::new(move |i| session(i % SESSIONS, i)),
            },
            Case {
                command: "SessionGet",
                label: "SessionGet",
                records: 1,
                against: Against::PointRead,
                target: None,
                body: Arc::new(move |i| json!({"sessionuuid": session_id(pick(SESSIONS, i))})),
            },
            Case {
                command: "TokenCreate",
                label: "TokenCreate (card)",
                records: 1,
                against: Against::InsertOne,
                target: None,
                body: Arc::new(
                    |i| json!({"tokentype": "creditcard", "record": card(1_000_000 + i)}),
                ),
            },
            Case {
                command: "TokenCreateBulk",
                label: "TokenCreateBulk (100/call)",
                records: 100,
                against: Against::InsertBatch,
                target: Some(0.40),
                body: Arc::new(|i| {
                    let records: Vec<Value> = (0..100)
                        .map(|k| json!({"tokentype": "creditcard", "record": card(20_000_000 + i * 100 + k)}))
                        .collect();
                    json!({"records": records})
                }),
            },
            Case {
                command: "TokenGet",
                label: "TokenGet",
                records: 1,
                against: Against::PointRead,
                target: None,
                body: Arc::new(move |i| json!({"token": t1[pick(t1.len(), i)]})),
            },
        ]
    };

    let mut rows = Vec::new();
    let chosen = cases.iter().filter(|case| {
        options
            .only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|part| case.label.contains(part.trim())))
    });
    for case in chosen {
        cluster.settle("bunker").await?;
        let sampler = Sampler::start(Some(server.pid()));
        let measured = drive(
            &server.address,
            &server.root_token,
            case.command,
            CONNECTIONS,
            Duration::from_secs(seconds),
            case.body.clone(),
        )
        .await;
        let cpu = per_record(sampler.stop(), (measured.requests * case.records) as f64);
        let (base_name, base): (&str, f64) = match case.against {
            Against::InsertOne => ("raw 1-row insert", insert_one.tps),
            Against::InsertBatch => ("raw 100-row insert", insert_batch.tps * 100.0),
            Against::PointRead => ("raw point read", point_read.tps),
        };
        rows.push(Row {
            case,
            measured,
            base_name,
            base,
            cpu,
        });
    }
    let memory = server.peak_memory_mib();
    if !quick {
        println!("PostgreSQL's statements by total time (database bunker, whole run):");
        for (calls, mean_us, total_ms, query) in Server::top_statements(&cluster).await? {
            let query: String = query.chars().take(110).collect();
            println!("{calls:>9} calls {mean_us:>8.1} µs {total_ms:>9.0} ms  {query}");
        }
    }
    print_table(
        &rows,
        [&insert_one, &insert_batch, &point_read],
        memory,
        quick,
    );
    write_json(
        json_path,
        &rows,
        [&insert_one, &insert_batch, &point_read],
        memory,
        quick,
        seconds,
    )
}

fn profile(i: usize) -> Value {
    json!({
        "login": format!("user{i}"),
        "email": email(i),
        "phone": format!("+4479{:08}", i % 100_000_000),
        "name": format!("User {i}"),
        "address": {"street": format!("{} High Street", i % 500), "city": "London", "postcode": "SW1A 1AA"},
        "dob": "1990-01-01",
    })
}

fn email(i: usize) -> String {
    format!("user{i}@bench.example")
}

/// A 16-digit Luhn-valid card number made from `i`.
fn card(i: usize) -> String {
    let body = format!("4{:014}", i % 100_000_000_000_000);
    let sum: u32 = body
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(k, d)| {
            if k % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// Users and tokens to read back: (user tokens, token uuids).
async fn preload_data(server: &Server, count: usize) -> Result<(Vec<String>, Vec<String>), String> {
    let client = reqwest::Client::new();
    let mut users = Vec::with_capacity(count);
    let mut tokens = Vec::with_capacity(count);
    for start in (0..count).step_by(500) {
        let people = (start..start + 500).map(|i| json!({"profile": profile(i)}));
        users.extend(create_many(&client, server, "UserCreateBulk", people, "token").await?);
        let cards =
            (start..start + 500).map(|i| json!({"tokentype": "creditcard", "record": card(i)}));
        tokens.extend(create_many(&client, server, "TokenCreateBulk", cards, "tokenuuid").await?);
    }
    Ok((users, tokens))
}

/// Live sessions the session figures work over.
const SESSIONS: usize = 1_000;

fn session_id(n: usize) -> String {
    format!("s%3Abench-session-{n:06}")
}

/// SessionUpsert's body for session `n` at its `write`-th write: even sessions name a preloaded
/// user (so they are sealed with that user's key), odd ones nobody.
fn session(n: usize, write: usize) -> Value {
    let mut data = json!({"cookie": {"maxAge": 86_400_000, "httpOnly": true}, "views": write});
    if n % 2 == 0 {
        data["email"] = json!(email(n));
    }
    json!({"sessionuuid": session_id(n), "sessiondata": data})
}

/// Stores the sessions the session figures work over.
async fn preload_sessions(server: &Server, count: usize) -> Result<(), String> {
    let client = reqwest::Client::new();
    for n in 0..count {
        let answer: Value = client
            .post(format!("{}/v2/SessionUpsert", server.address))
            .header("X-Bunker-Token", &server.root_token)
            .json(&session(n, 0))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if answer["status"] != "ok" {
            return Err(format!("preloading sessions: {answer}"));
        }
    }
    Ok(())
}

/// Sends `records` to a bulk create command; returns the `field` of each one created.
async fn create_many(
    client: &reqwest::Client,
    server: &Server,
    command: &str,
    records: impl Iterator<Item = Value>,
    field: &str,
) -> Result<Vec<String>, String> {
    let records: Vec<Value> = records.collect();
    let answer: Value = client
        .post(format!("{}/v2/{command}", server.address))
        .header("X-Bunker-Token", &server.root_token)
        .json(&json!({"records": records}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let created = answer["created"]
        .as_array()
        .ok_or_else(|| format!("preloading with {command}: {answer}"))?;
    Ok(created
        .iter()
        .filter_map(|c| c[field].as_str().map(str::to_owned))
        .collect())
}

fn print_table(rows: &[Row<'_>], baselines: [&Baseline; 3], memory: Option<f64>, quick: bool) {
    println!();
    println!(
        "Bunker vs raw PostgreSQL, {} connections, {} CPUs{}",
        CONNECTIONS,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if quick {
            " (--quick: smoke figures only)"
        } else {
            ""
        }
    );
    println!();
    println!("| operation | records/s | p50 ms | p99 ms | errors | baseline | baseline records/s | ratio | target | met |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, b, unit) in [
        ("raw 1-row insert (pgbench)", baselines[0], 1.0),
        ("raw 100-row insert (pgbench)", baselines[1], 100.0),
        ("raw point read under RLS (pgbench)", baselines[2], 1.0),
    ] {
        println!(
            "| {name} | {:.0} | mean {:.2} | | | | | | | |",
            b.tps * unit,
            b.mean_ms
        );
    }
    for row in rows {
        let (case, m, base_name, base) = (row.case, &row.measured, row.base_name, row.base);
        let rate = m.per_second * case.records as f64;
        let ratio = rate / base;
        let (target, met) = match case.target {
            Some(t) => {
                let p50_ok = case.command != "UserGet" || m.p50_ms < 2.0;
                let extra = if case.command == "UserGet" {
                    ", p50 < 2 ms"
                } else {
                    ""
                };
                (
                    format!("≥ {:.0}%{extra}", t * 100.0),
                    if ratio >= t && p50_ok { "yes" } else { "no" },
                )
            }
            None => ("-".to_owned(), "-"),
        };
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {} | {:.0} | {:.0}% | {} | {} |",
            case.label,
            rate,
            m.p50_ms,
            m.p99_ms,
            m.errors,
            base_name,
            base,
            ratio * 100.0,
            target,
            met
        );
    }
    println!();
    println!("CPU per record, microseconds (2 CPUs shared by all three):");
    println!();
    println!("| operation | bunker | postgres | load generator |");
    println!("|---|---|---|---|");
    for (name, b, unit) in [
        ("raw 1-row insert (pgbench)", baselines[0], 1.0),
        ("raw 100-row insert (pgbench)", baselines[1], 100.0),
        ("raw point read under RLS (pgbench)", baselines[2], 1.0),
    ] {
        println!("| {name} | - | {:.0} | (pgbench) |", b.postgres_us / unit);
    }
    for row in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} |",
            row.case.label, row.cpu[0], row.cpu[1], row.cpu[2]
        );
    }
    if let Some(mib) = memory {
        println!();
        println!("bunker serve peak resident memory: {mib:.0} MiB");
    }
}

fn write_json(
    path: &Path,
    rows: &[Row<'_>],
    baselines: [&Baseline; 3],
    memory: Option<f64>,
    quick: bool,
    seconds: u64,
) -> Result<(), String> {
    let figures: Vec<Value> = rows
        .iter()
        .map(|row| {
            let (case, m, base_name, base) = (row.case, &row.measured, row.base_name, row.base);
            let rate = m.per_second * case.records as f64;
            json!({
                "operation": case.label, "command": case.command, "records_per_second": rate,
                "requests": m.requests, "errors": m.errors, "p50_ms": m.p50_ms, "p99_ms": m.p99_ms,
                "baseline": base_name, "baseline_records_per_second": base, "ratio": rate / base,
                "target_ratio": case.target,
                "cpu_us_per_record": {"bunker": row.cpu[0], "postgres": row.cpu[1], "load_generator": row.cpu[2]},
            })
        })
        .collect();
    let report = json!({
        "quick": quick,
        "seconds_per_figure": seconds,
        "connections": CONNECTIONS,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "baselines": {
            "insert_one": {"tps": baselines[0].tps, "mean_ms": baselines[0].mean_ms, "postgres_cpu_us": baselines[0].postgres_us},
            "insert_batch_100": {"tps": baselines[1].tps, "rows_per_second": baselines[1].tps * 100.0, "mean_ms": baselines[1].mean_ms, "postgres_cpu_us_per_row": baselines[1].postgres_us / 100.0},
            "point_read": {"tps": baselines[2].tps, "mean_ms": baselines[2].mean_ms, "postgres_cpu_us": baselines[2].postgres_us},
        },
        "figures": figures,
        "server_peak_memory_mib": memory,
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("written: {}", path.display());
    Ok(())
}
