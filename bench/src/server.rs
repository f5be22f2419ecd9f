//! `bunker serve` as a child process over the benchmark's cluster, so that its memory is its own.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cluster::BenchCluster;

pub struct Server {
    child: Child,
    pub address: String,
    pub root_token: String,
}

impl Server {
    /// Initializes database `bunker` and serves it on a free loopback port.
    pub async fn start(cluster: &BenchCluster) -> Result<Server, String> {
        Self::start_with(cluster, &[]).await
    }

    /// As [`Server::start`], with `extra` environment for `bunker serve` (overriding the rest).
    pub async fn start_with(
        cluster: &BenchCluster,
        extra: &[(&'static str, &str)],
    ) -> Result<Server, String> {
        cluster
            .connect("postgres")
            .await?
            .batch_execute("CREATE DATABASE bunker")
            .await
            .map_err(|e| e.to_string())?;
        let db = cluster.connect("bunker").await?;
        db.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
            .map_err(|e| e.to_string())?;
        const UNLIMITED: &str = "1000000000/s";
        let binary = bunker_tests::bunker_binary();
        let root_token = uuid_like();
        let wrapping: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let address = format!("127.0.0.1:{port}");
        let env = [
            (
                "BUNKER_DATABASE_URL",
                cluster.cluster.connection_string("bunker"),
            ),
            ("BUNKER_WRAPPING_KEY", wrapping),
            ("BUNKER_ROOT_TOKEN", root_token.clone()),
            ("BUNKER_LISTEN", address.clone()),
            ("BUNKER_LOG", "warn".to_owned()),
            // The limiters run (their cost is measured) but never refuse: the load is the point.
            ("BUNKER_RATE_TENANT", UNLIMITED.to_owned()),
            ("BUNKER_RATE_TOKEN", UNLIMITED.to_owned()),
            ("BUNKER_RATE_IP", UNLIMITED.to_owned()),
            ("BUNKER_RATE_COSTLY", UNLIMITED.to_owned()),
        ];
        let init = Command::new(&binary)
            .arg("init")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .map_err(|e| format!("bunker init: {e}"))?;
        if !init.status.success() {
            return Err(format!(
                "bunker init failed: {}",
                String::from_utf8_lossy(&init.stderr)
            ));
        }
        let child = Command::new(&binary)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("bunker serve: {e}"))?;
        let server = Server {
            child,
            address: format!("http://{address}"),
            root_token,
        };
        for _ in 0..300 {
            if reqwest::get(format!("{}/ready", server.address))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("bunker serve did not become ready".to_owned())
    }

    /// The statements that took PostgreSQL the most time in database `bunker`: (calls, mean µs,
    /// total ms, statement).
    pub async fn top_statements(
        cluster: &BenchCluster,
    ) -> Result<Vec<(i64, f64, f64, String)>, String> {
        let db = cluster.connect("bunker").await?;
        let rows = db
            .query(
                "SELECT calls, mean_exec_time * 1000, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g')
                   FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                  WHERE d.datname = 'bunker' ORDER BY total_exec_time DESC LIMIT 15",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's peak resident memory so far (VmHWM), in MiB.
    pub fn peak_memory_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uuid_like() -> String {
    // A random (version 4) UUID, as `bunker init` requires of a chosen root token.
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
