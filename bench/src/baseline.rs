//! Raw PostgreSQL baselines with pgbench, shaped like Bunker's own transactions: as a role that is
//! not a superuser, against tables with forced row-level security, each transaction setting the
//! tenant with `set_config(..., true)`, as Bunker does.

use std::path::Path;
use std::process::Command;

use crate::cluster::BenchCluster;

/// Rows the point-read baseline reads from.
const READ_ROWS: u32 = 10_000;

/// One pgbench result.
#[derive(Clone, Copy, Debug)]
pub struct Baseline {
    /// Transactions per second.
    pub tps: f64,
    /// Mean latency (pgbench reports no percentiles without per-transaction logs).
    pub mean_ms: f64,
    /// PostgreSQL's CPU per transaction, in microseconds (pgbench's own is not counted).
    pub postgres_us: f64,
}

pub const INSERT_ONE: &str = "BEGIN;
SELECT set_config('bench.tenant_id', '1', true);
INSERT INTO rows_one (tenant_id, token, record)
     VALUES (1, gen_random_uuid(), decode(repeat(md5(random()::text), 10), 'hex'));
COMMIT;
";

pub const INSERT_BATCH: &str = "BEGIN;
SELECT set_config('bench.tenant_id', '1', true);
INSERT INTO rows_batch (tenant_id, token, record)
     SELECT 1, gen_random_uuid(), decode(repeat(md5(random()::text), 10), 'hex')
       FROM generate_series(1, 100);
COMMIT;
";

pub const POINT_READ: &str = "\\set i random(1, 10000)
BEGIN;
SELECT set_config('bench.tenant_id', '1', true);
SELECT record FROM reads WHERE lookup = sha256(('bench' || :i)::text::bytea);
COMMIT;
";

/// Creates the baseline database: three tables like Bunker's (tenant id, uuid, sealed-size record),
/// forced row-level security, a non-superuser login role, and rows to read.
pub async fn prepare(cluster: &BenchCluster) -> Result<(), String> {
    let admin = cluster.connect("postgres").await?;
    admin
        .batch_execute("CREATE DATABASE baseline")
        .await
        .map_err(|e| e.to_string())?;
    let db = cluster.connect("baseline").await?;
    let mut sql = String::from(
        "DO $$ BEGIN
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_app') THEN
                 CREATE ROLE bench_app LOGIN NOSUPERUSER NOBYPASSRLS;
             END IF;
         END $$;",
    );
    for table in ["rows_one", "rows_batch", "reads"] {
        sql.push_str(&format!(
            "CREATE TABLE {table} (tenant_id bigint NOT NULL, token uuid NOT NULL, lookup bytea,
                                   record bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                                   PRIMARY KEY (tenant_id, token));
             ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
             ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
             CREATE POLICY {table}_tenant ON {table}
                 USING (tenant_id = NULLIF(current_setting('bench.tenant_id', true), '')::bigint)
                 WITH CHECK (tenant_id = NULLIF(current_setting('bench.tenant_id', true), '')::bigint);
             GRANT SELECT, INSERT ON {table} TO bench_app;"
        ));
    }
    sql.push_str(&format!(
        "CREATE UNIQUE INDEX reads_lookup ON reads (tenant_id, lookup);
         INSERT INTO reads (tenant_id, token, lookup, record)
              SELECT 1, gen_random_uuid(), sha256(('bench' || i)::text::bytea),
                     decode(repeat(md5(random()::text), 10), 'hex')
                FROM generate_series(1, {READ_ROWS}) i;
         ANALYZE reads;"
    ));
    db.batch_execute(&sql).await.map_err(|e| e.to_string())
}

/// Runs one script for `seconds` with `clients` connections.
pub fn pgbench(
    cluster: &BenchCluster,
    script: &str,
    clients: usize,
    seconds: u64,
    scratch: &Path,
) -> Result<Baseline, String> {
    let file = scratch.join("script.sql");
    std::fs::write(&file, script).map_err(|e| e.to_string())?;
    let sampler = crate::cpu::Sampler::start(None);
    let output = Command::new(cluster.cluster.tool("pgbench"))
        .args(["-n", "-h"])
        .arg(cluster.socket_dir())
        .args(["-p", "5432", "-U", "bench_app", "-c"])
        .arg(clients.to_string())
        .args(["-j", "2", "-T"])
        .arg(seconds.to_string())
        .arg("-f")
        .arg(&file)
        .arg("baseline")
        .output()
        .map_err(|e| format!("pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let number = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .ok_or_else(|| format!("pgbench printed no `{prefix}`: {text}"))
    };
    let postgres = sampler.stop()[1];
    let tps = number("tps = ")?;
    Ok(Baseline {
        tps,
        mean_ms: number("latency average = ")?,
        postgres_us: postgres * 1e6 / (tps * seconds as f64).max(1.0),
    })
}
