//! A private PostgreSQL cluster run from the machine's server binaries: the database of `bunker demo`
//! and of the test kit. It listens only on a Unix socket in its own directory, so it never clashes
//! with another server's port. PostgreSQL refuses to run as root, so under root the binaries run as
//! the `postgres` user (through `runuser`) and the cluster's directories belong to that user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Why a local cluster could not be set up, started or stopped.
#[derive(Debug, thiserror::Error)]
#[error("local PostgreSQL cluster: {0}")]
pub struct ClusterError(String);

/// The file in a data directory that names where its cluster is kept when the postgres user cannot
/// enter the data directory (see [`LocalCluster::for_data_dir`]).
pub const CLUSTER_POINTER: &str = "cluster-location";

/// The port number names the socket file (`.s.PGSQL.<port>`); nothing listens on TCP.
const SOCKET_PORT: u16 = 5432;

/// A PostgreSQL cluster kept under one directory: `pg/` (data), `run/` (socket and server log).
#[derive(Clone, Debug)]
pub struct LocalCluster {
    bindir: PathBuf,
    root: PathBuf,
    as_postgres: bool,
    durable: bool,
    settings: Vec<(String, String)>,
}

/// How quickly [`LocalCluster::stop`] stops the server.
#[derive(Clone, Copy, Debug)]
pub enum StopMode {
    /// Waits for clients to be disconnected and shuts down cleanly.
    Fast,
    /// Aborts at once (recovery runs at the next start): for throwaway clusters.
    Immediate,
}

impl LocalCluster {
    /// A cluster under `root`, run with the server binaries in `bindir` (see [`find_bindir`]).
    pub fn new(root: &Path, bindir: PathBuf) -> Result<Self, ClusterError> {
        let root = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| cluster_error("cannot read the current directory", e))?
                .join(root)
        };
        Ok(LocalCluster {
            bindir,
            root,
            as_postgres: running_as_root()?,
            durable: false,
            settings: Vec::new(),
        })
    }

    /// The cluster of the data directory `data_dir` (`bunker demo`'s): in `data_dir` itself, unless
    /// the binaries run as the `postgres` user (under root) and that user cannot enter `data_dir`
    /// (a clone under `/root`, a private temporary folder). Then the cluster goes under
    /// `/var/lib/bunker-demo`, named after `data_dir`'s path, and `data_dir` keeps a note of where
    /// ([`CLUSTER_POINTER`]), which later runs follow. Returns the cluster and whether it was moved.
    pub fn for_data_dir(data_dir: &Path, bindir: PathBuf) -> Result<(Self, bool), ClusterError> {
        let local = LocalCluster::new(data_dir, bindir)?;
        if !local.as_postgres {
            return Ok((local, false));
        }
        // Root changes the modes and owners of what it finds here: only root may have put it there.
        std::fs::create_dir_all(&local.root)
            .map_err(|e| cluster_error(&format!("cannot create {}", local.root.display()), e))?;
        only_root_may_change(&local.root)?;
        let pointer = local.root.join(CLUSTER_POINTER);
        if let Ok(recorded) = std::fs::read_to_string(&pointer) {
            let root = PathBuf::from(recorded.trim());
            let moved = moved_clusters_dir()?;
            if root.parent() != Some(moved.as_path())
                || root
                    .file_name()
                    .is_none_or(|name| name == "." || name == "..")
            {
                return Err(ClusterError(format!(
                    "{} names no folder of {}",
                    pointer.display(),
                    moved.display()
                )));
            }
            return Ok((LocalCluster { root, ..local }, true));
        }
        if local.is_initialized() || postgres_may_enter(&local.root)? {
            return Ok((local, false));
        }
        let moved = moved_clusters_dir()?;
        let name = cluster_name(&local.root)?;
        let mut root = moved.join(&name);
        // Taken (by the cluster of a data directory that was here before, say): another name.
        let mut attempt = 1;
        while root.exists() {
            attempt += 1;
            root = moved.join(format!("{name}-{attempt}"));
        }
        std::fs::write(&pointer, format!("{}\n", root.display()))
            .map_err(|e| cluster_error(&format!("cannot write {}", pointer.display()), e))?;
        Ok((LocalCluster { root, ..local }, true))
    }

    /// The directory holding the cluster (`pg/`, `run/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The same cluster, started with `fsync` on, as production runs: for benchmarks. Without it
    /// the cluster skips flushing to disk (fine for tests and the demo, not for measuring).
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// The same cluster, started with this server setting (`-c name=value`; a value of letters,
    /// digits and `_` only).
    pub fn with_setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("pg")
    }

    /// The directory holding the server's socket and log.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    /// Whether `initdb` has run here before.
    pub fn is_initialized(&self) -> bool {
        self.data_dir().join("PG_VERSION").is_file()
    }

    /// Creates the directories and runs `initdb` (superuser `postgres`, trust authentication: the
    /// socket directory is private to the cluster's owner).
    pub fn initdb(&self) -> Result<(), ClusterError> {
        self.prepare_dirs()?;
        let data = self.data_dir();
        self.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        )
        .map(drop)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) -> Result<(), ClusterError> {
        self.prepare_dirs()?;
        let run_dir = self.run_dir();
        let fsync = if self.durable { "on" } else { "off" };
        let mut options = format!(
            "-k {} -p {SOCKET_PORT} -c listen_addresses='' -c fsync={fsync}",
            run_dir.display()
        );
        for (name, value) in &self.settings {
            options.push_str(&format!(" -c {name}={value}"));
        }
        let log = run_dir.join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data_dir().as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-o".as_ref(),
                options.as_ref(),
                "start".as_ref(),
            ],
        )
        .map(drop)
    }

    /// Stops the server.
    pub fn stop(&self, mode: StopMode) -> Result<(), ClusterError> {
        let mode = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data_dir().as_os_str(),
                "-w".as_ref(),
                "-m".as_ref(),
                mode.as_ref(),
                "stop".as_ref(),
            ],
        )
        .map(drop)
    }

    /// The shell command that stops this cluster at once: for a watchdog that outlives its caller.
    pub fn stop_command_line(&self) -> String {
        let pg_ctl = self.bindir.join("pg_ctl");
        let base = format!(
            "'{}' -D '{}' -m immediate stop",
            pg_ctl.display(),
            self.data_dir().display()
        );
        if self.as_postgres {
            format!("runuser -u postgres -- {base}")
        } else {
            base
        }
    }

    /// A libpq connection string for `database` as the superuser `postgres`, over the socket.
    pub fn connection_string(&self, database: &str) -> String {
        format!(
            "host={} port={SOCKET_PORT} user=postgres dbname={database}",
            self.run_dir().display()
        )
    }

    /// The path of the server binary `tool` (e.g. `pg_dump`) next to the others.
    pub fn tool(&self, tool: &str) -> PathBuf {
        self.bindir.join(tool)
    }

    fn prepare_dirs(&self) -> Result<(), ClusterError> {
        for dir in [&self.root, &self.data_dir(), &self.run_dir()] {
            std::fs::create_dir_all(dir)
                .map_err(|e| cluster_error(&format!("cannot create {}", dir.display()), e))?;
        }
        // The postgres user must be able to reach its directories through the root one.
        set_mode(&self.root, 0o755)?;
        set_mode(&self.data_dir(), 0o700)?;
        set_mode(&self.run_dir(), 0o700)?;
        if self.as_postgres {
            for dir in [self.data_dir(), self.run_dir()] {
                let output = Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&dir)
                    .output()
                    .map_err(|e| cluster_error("cannot run chown", e))?;
                check(&output, "chown")?;
            }
            if !postgres_passes("-w", &self.run_dir())? {
                return Err(ClusterError(format!(
                    "the postgres user cannot reach {}: choose a data directory whose parents it may enter",
                    self.root.display()
                )));
            }
        }
        Ok(())
    }

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<Output, ClusterError> {
        let program = self.bindir.join(tool);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        // The server must not hold the caller's directory (it may not even be allowed to read it).
        command.args(args).current_dir(&self.root);
        let output = command
            .output()
            .map_err(|e| cluster_error(&format!("cannot run {}", program.display()), e))?;
        check(&output, tool)?;
        Ok(output)
    }
}

/// Finds the PostgreSQL server binaries: `explicit` if given, else `pg_config --bindir`, else the
/// newest `/usr/lib/postgresql/<version>/bin`, else the directory of an `initdb` on `PATH`.
pub fn find_bindir(explicit: Option<&Path>) -> Result<PathBuf, ClusterError> {
    if let Some(dir) = explicit {
        return if dir.join("initdb").is_file() {
            Ok(dir.to_path_buf())
        } else {
            Err(ClusterError(format!(
                "no initdb in {} (BUNKER_PG_BINDIR)",
                dir.display()
            )))
        };
    }
    let mut candidates = Vec::new();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        if output.status.success() {
            candidates.push(PathBuf::from(
                String::from_utf8_lossy(&output.stdout).trim(),
            ));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, e.path().join("bin")))
            })
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev().map(|(_, dir)| dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .ok_or_else(|| {
            ClusterError(
                "no PostgreSQL server binaries found (install the postgresql package, or set BUNKER_PG_BINDIR)"
                    .to_owned(),
            )
        })
}

/// Refuses `dir` unless only root (or the owner of the folder above, who ran the demo as root)
/// may change it: a real directory, owned by root or by its parent's owner, that no one else may
/// write to, in a folder no one else may rename it in (or a sticky one, like `/tmp`). Root is about
/// to change the modes and owners of what it holds, and follows the note it finds there.
fn only_root_may_change(dir: &Path) -> Result<(), ClusterError> {
    let unsafe_dir = || {
        ClusterError(format!(
            "{} could be changed by another user (it or the folder above is theirs, or writable by \
             others): run the demo from a folder of your own",
            dir.display()
        ))
    };
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| cluster_error(&format!("cannot read {}", dir.display()), e))?;
    let parent = match dir.parent() {
        Some(parent) => std::fs::metadata(parent)
            .map_err(|e| cluster_error(&format!("cannot read {}", parent.display()), e))?,
        None => meta.clone(),
    };
    let owner_ok = meta.uid() == 0 || meta.uid() == parent.uid();
    let parent_ok = parent.mode() & 0o022 == 0 || parent.mode() & 0o1000 != 0;
    if !meta.file_type().is_dir() || !owner_ok || meta.mode() & 0o022 != 0 || !parent_ok {
        return Err(unsafe_dir());
    }
    Ok(())
}

/// Whether the postgres user may enter `dir` (and so every directory above it).
fn postgres_may_enter(dir: &Path) -> Result<bool, ClusterError> {
    postgres_passes("-x", dir)
}

/// Whether `test <check> <path>` succeeds as the postgres user (`-x`: may enter, `-w`: may write).
fn postgres_passes(check: &str, path: &Path) -> Result<bool, ClusterError> {
    let status = Command::new("runuser")
        .args(["-u", "postgres", "--", "test", check])
        .arg(path)
        .status()
        .map_err(|e| cluster_error("cannot run runuser", e))?;
    Ok(status.success())
}

/// Where clusters go whose data directory the postgres user cannot enter: a folder of root's that
/// the postgres user may enter but not change (not the postgres user's home, where that user could
/// swap a folder for a link and have root change the permissions of whatever it points to).
const MOVED_CLUSTERS: &str = "/var/lib/bunker-demo";

/// [`MOVED_CLUSTERS`], made if missing, writable by root only; refused unless it is a real
/// directory of root's.
fn moved_clusters_dir() -> Result<PathBuf, ClusterError> {
    let dir = PathBuf::from(MOVED_CLUSTERS);
    std::fs::create_dir_all(&dir)
        .map_err(|e| cluster_error(&format!("cannot create {}", dir.display()), e))?;
    let meta = std::fs::symlink_metadata(&dir)
        .map_err(|e| cluster_error(&format!("cannot read {}", dir.display()), e))?;
    if !meta.file_type().is_dir() || meta.uid() != 0 {
        return Err(ClusterError(format!(
            "{} must be a directory of root's",
            dir.display()
        )));
    }
    set_mode(&dir, 0o755)?;
    Ok(dir)
}

/// A folder name for the cluster of `data_dir`: its last component and a digest of its whole
/// path, so that two data directories never share a cluster.
fn cluster_name(data_dir: &Path) -> Result<String, ClusterError> {
    use sha2::Digest;
    let path = std::fs::canonicalize(data_dir)
        .map_err(|e| cluster_error(&format!("cannot resolve {}", data_dir.display()), e))?;
    let digest = sha2::Sha256::digest(path.as_os_str().as_encoded_bytes());
    let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let last: String = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    Ok(format!("{last}-{short}"))
}

/// Whether this process runs as root (and so runs PostgreSQL as the postgres user).
pub fn running_as_root() -> Result<bool, ClusterError> {
    let meta = std::fs::metadata("/proc/self")
        .map_err(|e| cluster_error("cannot tell which user this process runs as", e))?;
    Ok(meta.uid() == 0)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ClusterError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| cluster_error(&format!("cannot set permissions of {}", path.display()), e))
}

fn check(output: &Output, tool: &str) -> Result<(), ClusterError> {
    if output.status.success() {
        return Ok(());
    }
    Err(ClusterError(format!(
        "{tool} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

fn cluster_error(what: &str, err: std::io::Error) -> ClusterError {
    ClusterError(format!("{what}: {err}"))
}
