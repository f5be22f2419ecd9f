//! Bunker's benchmarks, against the real server over a throwaway PostgreSQL cluster.
//!
//! - `bench run [--quick] [--json PATH]`: raw PostgreSQL baselines (pgbench) and Bunker's commands
//!   in one run on one cluster, as one table with each figure's ratio to its baseline and target
//!   (`--quick`: a smoke run of well under a minute; `--only TEXT`: only the commands whose label
//!   contains TEXT or one of its comma-separated parts, for profiling some of them; `--seconds N`: how long each figure runs).
//! - `bench search [USERS] [QUERIES]`: UserSearch latency at USERS users.
//! - `bench flood [SECONDS]`: one tenant at 10 times its quota while another reads steadily: the
//!   victim's p99 flooded against quiet (see `flood`).

mod baseline;
mod cluster;
mod cpu;
mod flood;
mod load;
mod run;
mod search;
mod server;

use std::path::PathBuf;

#[tokio::main]
async fn main() {
    bunker_services::webhooks::install_tls_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => {
            let value = |flag: &str| {
                args.iter()
                    .position(|a| a == flag)
                    .and_then(|i| args.get(i + 1))
                    .cloned()
            };
            let options = run::Options {
                quick: args.iter().any(|a| a == "--quick"),
                only: value("--only"),
                seconds: value("--seconds").and_then(|s| s.parse().ok()),
            };
            let json = value("--json")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("bench-results.json"));
            if let Err(err) = run::run(&options, &json).await {
                eprintln!("bench run failed: {err}");
                std::process::exit(1);
            }
        }
        Some("search") => {
            let users = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
            let queries = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
            search::run(users, queries).await;
        }
        Some("flood") => {
            let seconds = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
            match flood::run(seconds).await {
                Ok(true) => {}
                Ok(false) => std::process::exit(1),
                Err(err) => {
                    eprintln!("bench flood failed: {err}");
                    std::process::exit(1);
                }
            }
        }
        _ => {
            eprintln!("usage: bench run [--quick] [--only TEXT] [--seconds N] [--json PATH] | bench search [USERS] [QUERIES] | bench flood [SECONDS]");
            std::process::exit(2);
        }
    }
}
