//! `bunker init` and `bunker migrate`: a new database (schema, master key, root token) and pending migrations.

use bunker_db::OwnerConnection;
use bunker_keys::recovery;
use bunker_services::setup::{
    init_database, strong_enough, RootToken, MIN_ROOT_TOKEN_DISTINCT, MIN_ROOT_TOKEN_LEN,
};
use secrecy::ExposeSecret;

use crate::cli::config::Config;

/// `bunker init`.
pub async fn init(config: &Config) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let root = match &config.root_token {
        Some(token) if !strong_enough(token.expose_secret()) => {
            anyhow::bail!(
                "BUNKER_ROOT_TOKEN must be a random (version 4) UUID, {MIN_ROOT_TOKEN_LEN} or more \
                 hex digits, or at least {MIN_ROOT_TOKEN_LEN} visible ASCII characters with at least \
                 {MIN_ROOT_TOKEN_DISTINCT} different ones, without runs or repeated patterns (some \
                 128 bits when random: `uuidgen -r`, `openssl rand -hex 16`, `openssl rand -base64 32`)"
            )
        }
        Some(token) => RootToken::Given(token.clone()),
        None => RootToken::Generate,
    };
    let from_env = matches!(root, RootToken::Given(_));
    let wrapping = config.require_wrapping_source().await?;
    let made = init_database(url.expose_secret(), root, &wrapping).await?;
    println!("Bunker is initialized: migrations applied, tenant `default` created.");
    if from_env {
        println!("The root token is the one given in BUNKER_ROOT_TOKEN.");
    } else {
        println!(
            "\nRoot token (shown only this once; Bunker keeps only its hash):\n\n    {}",
            made.root_token.secret.expose_secret()
        );
    }
    println!(
        "\nRecovery shares (shown only this once). Give each to a different person; any {} of the {} \
         recover the master key if the wrapping key is lost (`bunker keys recover`):\n",
        recovery::THRESHOLD,
        recovery::SHARE_COUNT
    );
    for (i, share) in made.shares.iter().enumerate() {
        println!("    share {}: {}", i + 1, share.as_str());
    }
    println!(
        "\nServe with a login role that is a member of bunker_app and nothing more: \
         `bunker serve-role create` makes one."
    );
    println!();
    Ok(())
}

/// `bunker migrate`.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let mut owner = OwnerConnection::connect(url.expose_secret()).await?;
    let applied = owner.migrate().await?;
    println!("{applied} migration(s) applied; the schema is current.");
    Ok(())
}
