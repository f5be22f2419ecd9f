//! `bunker audit verify`: checking the audit chain.

use bunker_db::Database;
use bunker_services::keys::{load_keyring, SharedKeyring};
use bunker_services::Vault;
use secrecy::ExposeSecret;

use crate::cli::config::Config;

/// `bunker audit verify`: recomputes the audit chain of every tenant (or of `tenant`) and names
/// each event changed, deleted, inserted or moved in its linked part; fails if any is.
pub async fn audit_verify(
    config: &Config,
    tenant: Option<&str>,
    head: Option<&str>,
) -> anyhow::Result<()> {
    let anchor = match (head, tenant) {
        (None, _) => None,
        (Some(_), None) => anyhow::bail!("--head names a head of one tenant: give --tenant too"),
        (Some(head), Some(_)) => {
            let (position, mac) = head
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--head is POSITION:MAC, as the server logs it"))?;
            Some((
                position.trim().parse::<i64>()?,
                hex::decode(mac.trim())
                    .map_err(|_| anyhow::anyhow!("--head: MAC is hexadecimal"))?,
            ))
        }
    };
    // Events older than this must be linked: the horizon, two rounds of the task and a minute.
    let stale_after = config.audit_chain_horizon()
        + 2 * std::time::Duration::from_secs(config.audit_chain_seconds as u64)
        + std::time::Duration::from_secs(60);
    let options = bunker_services::audit::chain::VerifyOptions {
        stale_after,
        anchor,
    };
    let url = config.require_database_url()?;
    let source = config.require_wrapping_source().await?;
    let settings = config.server_settings(source)?;
    let db = Database::connect(url.expose_secret(), 1).await?;
    let (keyring, _) = load_keyring(&db, &settings.wrapping).await?;
    let tenants = match tenant {
        Some(name) => vec![db
            .tenant_by_name(name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no tenant is named {name}"))?],
        None => db.tenant_ids().await?,
    };
    let vault = Vault::new(
        db,
        SharedKeyring::new(keyring),
        settings.vault,
        std::sync::Arc::new(bunker_services::metrics::ServiceMetrics::new()?),
    );
    let mut problems = 0;
    for tenant in tenants {
        // A trail that cannot even be read (a column altered, say) fails that tenant, not the run.
        let report = match vault.verify_audit_chain(tenant, options.clone()).await {
            Ok(report) => report,
            Err(err) => {
                println!("tenant {tenant}: could not be verified: {err}");
                problems += 1;
                continue;
            }
        };
        let verdict = if report.findings.is_empty() {
            "verified".to_owned()
        } else {
            format!("{} problem(s)", report.findings.len())
        };
        println!(
            "tenant {tenant}: {} linked event(s), {} newer than the last link: {verdict}",
            report.verified, report.not_yet_linked
        );
        for finding in &report.findings {
            println!("  {finding}");
        }
        problems += report.findings.len();
    }
    if problems > 0 {
        anyhow::bail!("the audit trail does not verify: {problems} problem(s)");
    }
    Ok(())
}
