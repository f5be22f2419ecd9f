//! `bunker token`: a tenant's access tokens from the command line (list, revoke, rotate), and the root token.

use bunker_db::audit::Performer;
use bunker_db::{Database, OwnerConnection};
use bunker_services::tenants::Tenants;
use bunker_tenancy::token::IssuedToken;
use secrecy::ExposeSecret;

use crate::cli::config::Config;

/// The tenant service over the configured database, for the `bunker token` commands.
async fn tenants(config: &Config) -> anyhow::Result<Tenants> {
    let url = config.require_database_url()?;
    let db = Database::connect(url.expose_secret(), 1).await?;
    Ok(Tenants::new(db))
}

/// `bunker token list`.
pub async fn token_list(config: &Config, tenant: &str) -> anyhow::Result<()> {
    let tenants = tenants(config).await?;
    let id = tenants.tenant_named(tenant).await?;
    for token in tenants.list_tokens_of(id, Performer::Operator).await? {
        let about = match (&token.role, token.user_token) {
            (Some(role), _) => format!(" role {role}"),
            (None, Some(user)) => format!(" user {user}"),
            (None, None) => String::new(),
        };
        let expiry = token
            .expires_at
            .map(|at| format!(", expires {at} (Unix)"))
            .unwrap_or_default();
        println!(
            "{} {}{about}, created {} (Unix){expiry}",
            token.id,
            token.kind.as_str(),
            token.created_at
        );
    }
    Ok(())
}

/// `bunker token revoke`.
pub async fn token_revoke(config: &Config, tenant: &str, id: uuid::Uuid) -> anyhow::Result<()> {
    let tenants = tenants(config).await?;
    let tenant_id = tenants.tenant_named(tenant).await?;
    tenants
        .revoke_token_of(tenant_id, id, Performer::Operator)
        .await?;
    println!("Token {id} of tenant {tenant} is revoked.");
    Ok(())
}

/// `bunker token rotate-admin`.
pub async fn token_rotate_admin(config: &Config, tenant: &str) -> anyhow::Result<()> {
    let tenants = tenants(config).await?;
    let id = tenants.tenant_named(tenant).await?;
    let token = tenants
        .rotate_admin_token_of(id, Performer::Operator)
        .await?;
    println!(
        "New admin token of tenant {tenant} (shown only this once; every earlier one is revoked):\n\n    {}",
        token.secret.expose_secret()
    );
    Ok(())
}

/// `bunker token rotate-root`: as the schema owner, the only role that may write the root token.
pub async fn token_rotate_root(config: &Config) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let token = IssuedToken::generate();
    OwnerConnection::connect(url.expose_secret())
        .await?
        .rotate_root(token.id, token.hash().as_bytes())
        .await?;
    println!(
        "New root token (shown only this once; the old one no longer works):\n\n    {}",
        token.secret.expose_secret()
    );
    Ok(())
}
