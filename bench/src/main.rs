//! Bunker's benchmarks, against the real server over a throwaway PostgreSQL cluster.
//!
//! - `bench run [--quick] [--json PATH]`: raw PostgreSQL baselines (pgbench) and Bunker's commands
//!   in one run on one cluster, as one table with each figure's ratio to its baseline and target
//!   (`--quick`: a smoke run of well under a minute).
//! - `bench search [USERS] [QUERIES]`: UserSearch latency at USERS users.

mod baseline;
mod cluster;
mod cpu;
mod load;
mod run;
mod search;
mod server;

use std::path::PathBuf;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => {
            let quick = args.iter().any(|a| a == "--quick");
            let json = args
                .iter()
                .position(|a| a == "--json")
                .and_then(|i| args.get(i + 1))
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("bench-results.json"));
            if let Err(err) = run::run(quick, &json).await {
                eprintln!("bench run failed: {err}");
                std::process::exit(1);
            }
        }
        Some("search") => {
            let users = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
            let queries = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
            search::run(users, queries).await;
        }
        _ => {
            eprintln!("usage: bench run [--quick] [--json PATH] | bench search [USERS] [QUERIES]");
            std::process::exit(2);
        }
    }
}
