//! `bunker keys`: status, wrapping-key rotation, recovery from shares, master-key rotation and re-encryption.

use std::io::{IsTerminal, Read};
use std::path::Path;

use bunker_db::audit::Performer;
use bunker_db::Database;
use bunker_keys::{MasterKey, WrappingKey};
use bunker_services::access::Operation;
use bunker_services::keys::wrapping::WrappingSource;
use bunker_services::keys::Progress;
use bunker_services::keys::{
    load_keyring, load_masters, recover_masters, rewrap_masters, rotate_master, SharedKeyring,
};
use bunker_services::Vault;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::cli::config::Config;

/// Where `rotate-wrapping` and `recover` re-wrap the master key.
pub enum RewrapTarget {
    /// A new random wrapping key, printed once.
    NewLocalKey,
    /// A KMS key.
    Kms(String),
}

/// `bunker keys status`: versions, sources and dates; no secrets.
pub async fn keys_status(config: &Config) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let db = Database::connect(url.expose_secret(), 1).await?;
    println!("installation {}", db.installation_id().await?);
    for key in db.master_keys().await? {
        println!(
            "master key v{}: wrapped by {}, wrapped at {} (Unix), created at {} (Unix), recovery shares: {}{}",
            key.version,
            key.source,
            key.wrapped_at,
            key.created_at,
            if key.recovery_wrapped.is_some() { "yes" } else { "no" },
            if key.retired { ", retired" } else { "" },
        );
    }
    // Each tenant's own key, tenant by tenant under its row-level security.
    let tenants = db
        .in_tenant(bunker_db::TenantId::MAIN, |tx| {
            Box::pin(async move {
                Ok::<_, bunker_db::DbError>(
                    bunker_db::control::list_tenants(tx, 0, i64::MAX).await?.0,
                )
            })
        })
        .await?;
    for tenant in tenants {
        let rows = db
            .in_tenant(tenant.id, |tx| {
                Box::pin(async move { bunker_db::tenant_keys::all(tx).await })
            })
            .await?;
        let versions = bunker_services::keys::describe_tenant_keys(&rows);
        let shown: Vec<String> = versions
            .iter()
            .map(|v| {
                let by = match &v.kms_key_id {
                    Some(id) => format!("AWS KMS key {id}"),
                    None => "the master key".to_owned(),
                };
                format!("v{} {} (wrapped by {by})", v.version, v.state)
            })
            .collect();
        let derived = rows.is_empty() || rows.iter().any(|r| r.opens_master_derived);
        println!(
            "tenant {} ({}): {}{}",
            tenant.id.0,
            tenant.name,
            if shown.is_empty() {
                "no key of its own yet (run `bunker keys reencrypt`)".to_owned()
            } else {
                shown.join(", ")
            },
            if derived && !shown.is_empty() {
                "; values sealed before tenant keys remain (run `bunker keys reencrypt`)"
            } else {
                ""
            },
        );
    }
    Ok(())
}

/// `bunker keys rotate-wrapping`: opens the master key with the configured wrapping source and
/// re-wraps it under a new one. No data is re-encrypted.
pub async fn keys_rotate_wrapping(config: &Config, target: RewrapTarget) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let source = config.require_wrapping_source().await?;
    let db = Database::connect(url.expose_secret(), 1).await?;
    let (masters, installation) = load_masters(&db, &source).await?;
    rewrap(
        config,
        &db,
        &masters,
        installation,
        target,
        Operation::KeysRotateWrapping.audit_action(),
    )
    .await
}

/// `bunker keys recover`: recovers the master key from three recovery shares (when the wrapping key
/// is lost) and re-wraps it under a new wrapping source.
pub async fn keys_recover(
    config: &Config,
    shares: &[Zeroizing<String>],
    target: RewrapTarget,
) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let db = Database::connect(url.expose_secret(), 1).await?;
    let named = named_shares(shares);
    let refs: Vec<(&str, &str)> = named.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let masters = recover_masters(&db, &refs).await?;
    let installation = db.installation_id().await?;
    rewrap(
        config,
        &db,
        &masters,
        installation,
        target,
        Operation::KeysRecover.audit_action(),
    )
    .await
}

async fn rewrap(
    config: &Config,
    db: &Database,
    masters: &[MasterKey],
    installation: uuid::Uuid,
    target: RewrapTarget,
    action: &'static str,
) -> anyhow::Result<()> {
    let (source, done) = match target {
        RewrapTarget::NewLocalKey => {
            let key = WrappingKey::generate();
            let message = format!(
                "The master key is now wrapped by a new wrapping key (shown only this once):\n\n    {}\n\n\
                 Set it as BUNKER_WRAPPING_KEY (or in BUNKER_WRAPPING_KEY_FILE) before servers restart; \
                 the old key no longer opens the master key. Running servers keep working.",
                key.to_hex().as_str()
            );
            (WrappingSource::Local(key), Zeroizing::new(message))
        }
        RewrapTarget::Kms(key_id) => (
            kms_source(config, key_id).await?,
            Zeroizing::new(
                "The master key is now wrapped by the KMS key. Set BUNKER_KMS_KEY_ID (and unset \
                 BUNKER_WRAPPING_KEY) before servers restart."
                    .to_owned(),
            ),
        ),
    };
    rewrap_masters(
        db,
        masters,
        &source,
        installation,
        Performer::Operator,
        action,
    )
    .await?;
    println!("{}", done.as_str());
    Ok(())
}

#[cfg(feature = "kms")]
async fn kms_source(config: &Config, key_id: String) -> anyhow::Result<WrappingSource> {
    Ok(WrappingSource::Kms(
        bunker_services::keys::wrapping::kms::KmsWrapper::new(key_id, config.kms_endpoint.clone())
            .await,
    ))
}

#[cfg(not(feature = "kms"))]
async fn kms_source(_config: &Config, _key_id: String) -> anyhow::Result<WrappingSource> {
    Err(crate::cli::config::ConfigError::KmsUnavailable.into())
}

/// How many recovery shares a key ceremony takes.
const SHARES_NEEDED: usize = 3;

/// The recovery shares for a key ceremony: from `file` (one a line), or from standard input when
/// there is none or it is `-` (on a terminal, asked for one by one without echo). Never from the
/// command line, where `ps` and shell history would keep them. Blank lines are skipped.
pub fn read_shares(file: Option<&Path>) -> anyhow::Result<Vec<Zeroizing<String>>> {
    let from_lines = |text: &str| -> Vec<Zeroizing<String>> {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| Zeroizing::new(line.to_owned()))
            .collect()
    };
    match file {
        Some(path) if path != Path::new("-") => {
            warn_if_others_may_read(path);
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|err| {
                anyhow::anyhow!("cannot read the shares file {}: {err}", path.display())
            })?);
            Ok(from_lines(&text))
        }
        _ if std::io::stdin().is_terminal() => {
            let mut shares = Vec::with_capacity(SHARES_NEEDED);
            for i in 1..=SHARES_NEEDED {
                let share = Zeroizing::new(rpassword::prompt_password(format!(
                    "Recovery share {i} of {SHARES_NEEDED} (not shown): "
                ))?);
                if share.trim().is_empty() {
                    break;
                }
                shares.push(Zeroizing::new(share.trim().to_owned()));
            }
            Ok(shares)
        }
        _ => {
            let mut text = Zeroizing::new(String::new());
            std::io::stdin().read_to_string(&mut text)?;
            Ok(from_lines(&text))
        }
    }
}

/// Warns (on standard error) when users other than the file's owner may read the shares file.
fn warn_if_others_may_read(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "warning: the shares file {} may be read by others than its owner (mode {:o}): \
                 `chmod 600` it, and delete it when done",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
}

/// Names recovery shares `share 1`, `share 2`, ... in the order given.
fn named_shares(shares: &[Zeroizing<String>]) -> Vec<(String, &str)> {
    shares
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("share {}", i + 1), s.as_str()))
        .collect()
}

/// `bunker keys rotate-master`: a new master-key version, sealing new values from now on (servers
/// pick it up within BUNKER_KEY_REFRESH_SECONDS). Takes three recovery shares, so that the new
/// version can be recovered like the old one.
pub async fn keys_rotate_master(
    config: &Config,
    shares: &[Zeroizing<String>],
) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let source = config.require_wrapping_source().await?;
    let db = Database::connect(url.expose_secret(), 1).await?;
    let named = named_shares(shares);
    let refs: Vec<(&str, &str)> = named.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let version = rotate_master(&db, &source, &refs).await?;
    println!(
        "Master key version {version} created; servers seal with it within {} s. Run \
         `bunker keys reencrypt` to re-seal existing data and retire the old version.",
        config.key_refresh_seconds
    );
    Ok(())
}

/// `bunker keys reencrypt`: re-seals every value under the newest master-key version, online, then
/// retires the older versions.
pub async fn keys_reencrypt(config: &Config) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let source = config.require_wrapping_source().await?;
    let settings = config.server_settings(source)?;
    let db = Database::connect_maintenance(url.expose_secret(), 2).await?;
    let (keyring, _) = load_keyring(&db, &settings.wrapping).await?;
    let vault = Vault::new(
        db,
        SharedKeyring::new(keyring),
        settings.vault,
        std::sync::Arc::new(bunker_services::metrics::ServiceMetrics::new()?),
    );
    let settle = config.key_refresh_interval() * 2;
    println!(
        "Waiting {} s for every server to seal with master key version {}...",
        settle.as_secs(),
        vault.current_version()
    );
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut draw = |progress: Progress| match progress {
        Progress::Tenant { tenant, total } => bar = Some(progress_bar(tenant, total)),
        Progress::Resealed(done) => {
            if let Some(bar) = &bar {
                bar.inc(done as u64);
            }
        }
        Progress::TenantDone => {
            if let Some(bar) = bar.take() {
                bar.finish();
            }
        }
        Progress::TenantKeysPending { made, wait } => println!(
            "{made} tenant(s) given a key of their own; waiting {} s for every server to seal with \
             the new tenant key versions...",
            wait.as_secs()
        ),
    };
    let report = vault.reencrypt_all(settle, &mut draw).await?;
    println!(
        "{} value(s) re-sealed; retired master key version(s): {:?}; {} older tenant key \
         version(s) retired",
        report.resealed, report.retired, report.tenant_keys_retired
    );
    if !report.unavailable.is_empty() {
        let ids: Vec<String> = report.unavailable.iter().map(|t| t.0.to_string()).collect();
        anyhow::bail!(
            "tenant(s) {} left as they were: their keys are unavailable (their AWS KMS key \
             refuses, KMS is unreachable, or their key rows are missing); every other tenant is done. Run again once they \
             are available, or delete those tenants",
            ids.join(", ")
        );
    }
    Ok(())
}

/// A bar on standard error for re-sealing `tenant`'s `total` stale values.
fn progress_bar(tenant: bunker_db::TenantId, total: i64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(0));
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("tenant {msg}: [{bar:40}] {pos}/{len} re-sealed")
    {
        bar.set_style(style);
    }
    bar.set_message(tenant.to_string());
    bar
}
