//! The benchmark's own PostgreSQL cluster: durable (fsync on, as in production), in a temporary
//! directory, stopped and removed when dropped.

use std::path::PathBuf;

use bunker_db::cluster::{find_bindir, LocalCluster, StopMode};

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
}

impl Drop for BenchCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop(StopMode::Immediate);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
