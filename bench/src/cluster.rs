//! The benchmark's own PostgreSQL cluster: durable (fsync on, as in production), in a temporary
//! directory, stopped and removed when dropped.

use std::path::PathBuf;

use bunker::cli::cluster::{find_bindir, LocalCluster, StopMode};
use tokio_postgres::{Client, NoTls};

pub struct BenchCluster {
    pub cluster: LocalCluster,
    root: PathBuf,
}

impl BenchCluster {
    pub fn start() -> Result<Self, String> {
        let root = std::env::temp_dir().join(format!("bunker-bench-{}", std::process::id()));
        let bindir = find_bindir(
            std::env::var_os("BUNKER_PG_BINDIR")
                .map(PathBuf::from)
                .as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let cluster = LocalCluster::new(&root, bindir)
            .map_err(|e| e.to_string())?
            .durable()
            .with_setting("shared_preload_libraries", "pg_stat_statements");
        cluster.initdb().map_err(|e| e.to_string())?;
        cluster.start().map_err(|e| e.to_string())?;
        Ok(BenchCluster { cluster, root })
    }

    /// The socket directory, for pgbench's `-h`.
    pub fn socket_dir(&self) -> PathBuf {
        self.cluster.run_dir()
    }

    /// A superuser connection to `database`.
    pub async fn connect(&self, database: &str) -> Result<Client, String> {
        let url = self.cluster.connection_string(database);
        let (client, connection) = tokio_postgres::connect(&url, NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Settles `database` between figures: what one figure wrote is vacuumed, analyzed and
    /// checkpointed before the next starts, so that no figure pays for the one before it.
    pub async fn settle(&self, database: &str) -> Result<(), String> {
        let db = self.connect(database).await?;
        for statement in ["VACUUM ANALYZE", "CHECKPOINT"] {
            db.batch_execute(statement)
                .await
                .map_err(|e| format!("{statement}: {e}"))?;
        }
        Ok(())
    }
}

impl Drop for BenchCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop(StopMode::Immediate);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
