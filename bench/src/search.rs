//! `bench search [USERS] [QUERIES]`: UserSearch latency in one tenant of
//! USERS users (default 100,000), over a throwaway PostgreSQL cluster and the real server. Users are
//! created with UserCreateBulk (1,000 per call); each query is an existing login with one typo
//! (a letter doubled, dropped or changed), so every query has one right answer. Prints the load
//! time, the latency percentiles and how often the right user came first.

use std::time::{Duration, Instant};

use bunker_tests::{StatusCode, TestApp};
use rand::{Rng, RngExt};
use serde_json::{json, Value};

const BATCH: usize = 1000;

const FIRST: &[&str] = &[
    "john", "jane", "alex", "maria", "wei", "fatima", "ivan", "olga", "kofi", "aiko", "liam",
    "noah", "emma", "sofia", "omar", "lucas", "mia", "yusuf", "elena", "raj",
];
const LAST: &[&str] = &[
    "doe", "smith", "garcia", "chen", "khan", "ivanova", "mensah", "tanaka", "murphy", "rossi",
    "muller", "silva", "nowak", "haddad", "kim", "patel", "novak", "berg", "costa", "lopez",
];

/// A distinct, realistic login for user `i`: `johndoe123`.
fn login(i: usize) -> String {
    let first = FIRST[i % FIRST.len()];
    let last = LAST[(i / FIRST.len()) % LAST.len()];
    format!("{first}{last}{}", i / (FIRST.len() * LAST.len()))
}

fn profile(i: usize) -> Value {
    let login = login(i);
    json!({
        "login": login,
        "email": format!("{login}@example.com"),
        "phone": format!("+447911{:06}", i % 1_000_000),
        "name": format!("{} {}", FIRST[i % FIRST.len()], LAST[(i / FIRST.len()) % LAST.len()]),
        "address": {"city": "London", "street": format!("{} High Street", i % 300)},
    })
}

/// One typo: a letter doubled, dropped or changed.
fn misspell(word: &str, rng: &mut impl Rng) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let at = rng.random_range(1..chars.len() - 1);
    match rng.random_range(0..3) {
        0 => chars.insert(at, chars[at]),
        1 => {
            chars.remove(at);
        }
        _ => chars[at] = if chars[at] == 'x' { 'q' } else { 'x' },
    }
    chars.into_iter().collect()
}

/// Loads `users` users and measures `queries` one-typo searches.
pub async fn run(users: usize, queries: usize) {
    let app = TestApp::spawn().await;
    let started = Instant::now();
    for start in (0..users).step_by(BATCH) {
        let records: Vec<Value> = (start..(start + BATCH).min(users))
            .map(|i| json!({"profile": profile(i)}))
            .collect();
        let (status, body) = app
            .root("UserCreateBulk", json!({"records": records}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let load = started.elapsed();
    println!(
        "loaded {users} users in {:.1} s ({:.0} users/s)",
        load.as_secs_f64(),
        users as f64 / load.as_secs_f64()
    );

    let mut rng = rand::rng();
    let mut latencies = Vec::with_capacity(queries);
    let mut first = 0;
    let mut found = 0;
    let mut unlock = String::new();
    let mut unlocked_at = Instant::now() - Duration::from_secs(3600);
    for _ in 0..queries {
        if unlocked_at.elapsed() > Duration::from_secs(50) {
            let (_, body) = app.root("BulkListUnlock", json!({})).await;
            unlock = body["unlockuuid"].as_str().unwrap_or_default().to_owned();
            unlocked_at = Instant::now();
        }
        let target = login(rng.random_range(0..users));
        let query = misspell(&target, &mut rng);
        let sent = Instant::now();
        let (status, body) = app
            .root(
                "UserSearch",
                json!({"identity": query, "unlockuuid": unlock}),
            )
            .await;
        latencies.push(sent.elapsed());
        assert_eq!(status, StatusCode::OK, "{body}");
        let logins: Vec<&str> = body["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r["profile"]["login"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        first += usize::from(logins.first() == Some(&target.as_str()));
        found += usize::from(logins.contains(&target.as_str()));
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "UserSearch over {users} users, {queries} one-typo queries: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(at(0.50)),
        ms(at(0.90)),
        ms(at(0.99)),
        ms(latencies[latencies.len() - 1]),
    );
    println!("right user first: {first}/{queries}; among the matches: {found}/{queries}");
}
