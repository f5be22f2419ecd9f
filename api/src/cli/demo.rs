//! `bunker demo`: Bunker with no configuration at all, for trying it on one machine.
//!
//! Starts a private PostgreSQL cluster under `./bunker-data` (or `BUNKER_DATA_DIR`; under root,
//! in `/var/lib/bunker-demo` when the postgres user cannot enter it) with the machine's server
//! binaries, initializes it on the first run with the root token `DEMO` and a generated wrapping
//! key kept in the data directory (unless one is configured), serves, and stops the cluster
//! cleanly on Ctrl-C. The next run finds the same data.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::cluster::{find_bindir, LocalCluster, StopMode};
use bunker_db::{Database, OwnerConnection, SchemaStatus};
use bunker_keys::WrappingKey;
use bunker_services::keys::wrapping::WrappingSource;
use bunker_services::setup::{init_database, RootToken};
use secrecy::SecretString;

use crate::cli::config::Config;
use crate::cli::shutdown_listener;
use crate::http::app::Application;

/// The demo's fixed root token, as in Databunker's demo mode.
pub const DEMO_ROOT_TOKEN: &str = "DEMO";
const DEMO_DATABASE: &str = "bunker";
/// The demo's wrapping key file, inside the data directory.
const WRAPPING_KEY_FILE: &str = "wrapping.key";

/// Runs the demo until Ctrl-C.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    // From here on Ctrl-C stops the demo cleanly, even while PostgreSQL starts (it would otherwise
    // end this process and leave PostgreSQL running).
    let stop = shutdown_listener()?;
    let bindir = find_bindir(config.pg_bindir.as_deref())?;
    let (cluster, moved) = LocalCluster::for_data_dir(&config.data_dir, bindir)?;
    if moved {
        let data_dir = std::path::absolute(&config.data_dir)?;
        println!(
            "The postgres user cannot enter {}: PostgreSQL's files are kept in {} instead \
             (everything else stays in {0}).",
            data_dir.display(),
            cluster.root().display()
        );
    }
    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || {
        if !starting.is_initialized() {
            println!(
                "Creating a PostgreSQL cluster in {}",
                starting.data_dir().display()
            );
            starting.initdb()?;
        }
        starting.start()
    })
    .await??;
    let running = RunningCluster(Some(cluster.clone()));
    let served = serve(&cluster, config, stop).await;
    let stopped = tokio::task::spawn_blocking(move || running.stop()).await?;
    served?;
    stopped?;
    if moved {
        println!(
            "PostgreSQL stopped; its files stay in {}, the rest in {}",
            cluster.root().display(),
            config.data_dir.display()
        );
    } else {
        println!(
            "PostgreSQL stopped; the data stays in {}",
            config.data_dir.display()
        );
    }
    Ok(())
}

async fn serve(
    cluster: &LocalCluster,
    config: &Config,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    create_database(cluster).await?;
    let wrapping = match config.wrapping_source().await? {
        Some(source) => source,
        None => WrappingSource::Local(demo_wrapping_key(&config.data_dir)?),
    };
    let url = cluster.connection_string(DEMO_DATABASE);
    let status = OwnerConnection::connect(&url)
        .await?
        .schema_status()
        .await?;
    match status {
        SchemaStatus::Empty | SchemaStatus::Uninitialized => {
            let root = RootToken::Given(SecretString::from(DEMO_ROOT_TOKEN));
            init_database(&url, root, &wrapping).await?;
        }
        // Left by a newer Bunker, which this one can serve on: nothing to migrate.
        SchemaStatus::Newer { .. } => {}
        _ => {
            OwnerConnection::connect(&url).await?.migrate().await?;
        }
    }
    let mut settings = config.server_settings(wrapping)?;
    if settings.files.url.is_none() {
        // Files beside the cluster, in the data directory (sealed, as anywhere).
        let files = std::path::absolute(&config.data_dir)?.join("files");
        settings.files.url = Some(format!("file://{}", files.display()));
    }
    if settings.mail.smtp_url.is_none() && settings.mail.log_file.is_none() {
        // Login codes to a file beside the cluster, never to the log, so that a newcomer can sign in.
        settings.mail.log_file = Some(std::path::absolute(&config.data_dir)?.join("mail.log"));
    }
    let mail = match (&settings.mail.smtp_url, &settings.mail.log_file) {
        (Some(_), _) => "sent through BUNKER_SMTP_URL".to_owned(),
        (None, Some(path)) => format!("written to {}", path.display()),
        (None, None) => "not sent".to_owned(),
    };
    let db = Database::connect(&url, config.pool_size).await?;
    let app = Application::build(settings, db).await?;
    let address = app.local_addr();
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "\nWARNING: this is Bunker's demo mode, for trying Bunker only. The root token is the public \
         value DEMO and the database lives in {}. Do not put real personal data in it.\n",
        cluster.root().display()
    );
    println!(
        "Bunker is serving on {scheme}://{address} (API docs: {scheme}://{address}/docs). Try:\n"
    );
    println!(
        "    curl -s -X POST -H 'X-Bunker-Token: DEMO' {scheme}://{address}/v2/TenantCreate -d '{{\"tenantname\":\"acme\",\"tenantorg\":\"acme\"}}'\n"
    );
    println!("Login codes (UserPrelogin) are {mail}.\n");
    println!("Press Ctrl-C to stop.");
    app.run_until(stop).await?;
    Ok(())
}

/// Creates the demo's database on the first run.
async fn create_database(cluster: &LocalCluster) -> anyhow::Result<()> {
    let admin = OwnerConnection::connect(&cluster.connection_string("postgres")).await?;
    admin.create_database_if_missing(DEMO_DATABASE).await?;
    Ok(())
}

/// The demo's wrapping key: read from the data directory, or made on the first run and written there
/// readable by its owner only.
fn demo_wrapping_key(data_dir: &Path) -> anyhow::Result<WrappingKey> {
    let path = data_dir.join(WRAPPING_KEY_FILE);
    if path.exists() {
        return Ok(WrappingKey::from_file(&path)?);
    }
    let key = WrappingKey::generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(key.to_hex().as_bytes())?;
    Ok(key)
}

/// A started cluster that is stopped however the demo ends: by [`RunningCluster::stop`], or when
/// dropped, so an error or a panic that unwinds past it does not leave PostgreSQL running.
struct RunningCluster(Option<LocalCluster>);

impl RunningCluster {
    fn stop(mut self) -> Result<(), super::cluster::ClusterError> {
        match self.0.take() {
            Some(cluster) => cluster.stop(StopMode::Fast),
            None => Ok(()),
        }
    }
}

impl Drop for RunningCluster {
    fn drop(&mut self) {
        if let Some(cluster) = self.0.take() {
            if let Err(err) = cluster.stop(StopMode::Fast) {
                eprintln!("bunker: could not stop PostgreSQL: {err}");
            }
        }
    }
}
