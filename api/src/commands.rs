//! The `bunker` commands: init, migrate, serve (demo is in `demo.rs`).

use bunker_db::{Database, OwnerConnection};
use bunker_keys::{MasterKey, WrappingKey};
use bunker_tenancy::token::IssuedToken;
use secrecy::{ExposeSecret, SecretString};

use crate::app::Application;
use crate::config::Config;

/// A root token chosen by the operator must be at least this long.
const MIN_ROOT_TOKEN_LEN: usize = 16;

/// Where `init` gets the root token from.
pub enum RootToken {
    /// Generate a random one (printed once by the CLI).
    Generate,
    /// Use this value (`BUNKER_ROOT_TOKEN`, or `DEMO` for the demo).
    Given(SecretString),
}

/// Applies the migrations, then creates the main tenant, the root token and a random master key
/// (stored only wrapped by `wrapping`). Returns the token, so the caller can show a generated one
/// once. Refuses a database that was initialized before.
pub async fn init_database(
    url: &str,
    root: RootToken,
    wrapping: &WrappingKey,
) -> anyhow::Result<IssuedToken> {
    let mut owner = OwnerConnection::connect(url).await?;
    owner.migrate().await?;
    let token = match root {
        RootToken::Generate => IssuedToken::generate(),
        RootToken::Given(secret) => IssuedToken::from_secret(secret),
    };
    let wrapped = MasterKey::generate(1).wrap(wrapping)?;
    owner
        .initialize(token.id, token.hash().as_bytes(), &wrapped)
        .await?;
    Ok(token)
}

/// Applies pending migrations; with a wrapping key, also gives an installation initialized before
/// the vault existed its master key.
pub async fn migrate_database(url: &str, wrapping: Option<&WrappingKey>) -> anyhow::Result<usize> {
    let mut owner = OwnerConnection::connect(url).await?;
    let applied = owner.migrate().await?;
    if let Some(wrapping) = wrapping {
        if owner
            .ensure_master_key(&MasterKey::generate(1).wrap(wrapping)?)
            .await?
        {
            println!("A master key was created, wrapped by the wrapping key.");
        }
    }
    Ok(applied)
}

/// `bunker init`.
pub async fn init(config: &Config) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let root = match &config.root_token {
        Some(token) if token.expose_secret().chars().count() < MIN_ROOT_TOKEN_LEN => {
            anyhow::bail!("BUNKER_ROOT_TOKEN must be at least {MIN_ROOT_TOKEN_LEN} characters")
        }
        Some(token) => RootToken::Given(token.clone()),
        None => RootToken::Generate,
    };
    let from_env = matches!(root, RootToken::Given(_));
    let wrapping = config.require_wrapping_key()?;
    let token = init_database(url.expose_secret(), root, &wrapping).await?;
    println!("Bunker is initialized: migrations applied, tenant `default` created.");
    if from_env {
        println!("The root token is the one given in BUNKER_ROOT_TOKEN.");
    } else {
        println!(
            "Root token (shown only this once; Bunker keeps only its hash):\n\n    {}\n",
            token.secret.expose_secret()
        );
    }
    Ok(())
}

/// `bunker migrate`.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let applied = migrate_database(url.expose_secret(), config.wrapping_key()?.as_ref()).await?;
    println!("{applied} migration(s) applied; the schema is current.");
    Ok(())
}

/// `bunker serve`.
pub async fn serve(config: &Config) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let settings = config.server_settings(config.require_wrapping_key()?)?;
    let db = Database::connect(url.expose_secret(), config.pool_size).await?;
    let app = Application::build(settings, db).await?;
    tracing::info!(address = %app.local_addr(), "serving");
    app.run_until(shutdown_signal()).await?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
