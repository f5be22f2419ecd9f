//! `bunker serve` and `bunker serve-role create`: serving the API, the role it serves as, and stopping on a signal.

use bunker_db::{Database, OwnerConnection, RoleMode};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::cli::config::Config;
use crate::http::app::Application;

/// `bunker serve`.
pub async fn serve(config: &Config) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let settings = config.server_settings(config.require_wrapping_source().await?)?;
    let db = Database::connect(url.expose_secret(), config.pool_size).await?;
    if db.role_mode() == RoleMode::SetRole {
        tracing::warn!(
            "serving with the schema owner's (or a superuser's) URL, switched to bunker_app on each \
             connection: in production give BUNKER_DATABASE_URL a login role that is a member of \
             bunker_app only (`bunker serve-role create`)"
        );
    }
    let app = Application::build(settings, db).await?;
    tracing::info!(address = %app.local_addr(), "serving");
    app.run_until(shutdown_signal()).await?;
    Ok(())
}

/// `bunker serve-role create`: a login role for `serve`, a member of bunker_app and nothing more,
/// made with the owner's URL (which needs CREATEROLE); its password is printed once.
pub async fn serve_role_create(config: &Config, name: &str) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        anyhow::bail!("the role name must be 1 to 63 lowercase letters, digits or underscores");
    }
    let password = Zeroizing::new(hex::encode(rand::random::<[u8; 24]>()));
    OwnerConnection::connect(url.expose_secret())
        .await?
        .create_serving_role(name, &password)
        .await?;
    println!(
        "Login role {name} created, a member of bunker_app only. Its password (shown only this \
         once):\n\n    {}\n\nServe with it: BUNKER_DATABASE_URL=postgresql://{name}:<password>@<host>/<database>",
        password.as_str()
    );
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    match shutdown_listener() {
        Ok(signal) => signal.await,
        Err(_) => std::future::pending::<()>().await,
    }
}

/// Listens for Ctrl-C and SIGTERM from now on (a signal that comes before the returned future is
/// awaited is kept, not lost, and no longer ends the process at once); completes on either.
pub fn shutdown_listener() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    })
}
