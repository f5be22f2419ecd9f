//! The `bunker` commands: init, migrate, serve, keys (demo is in `demo.rs`).

pub mod config;
pub mod demo;

use std::io::{IsTerminal, Read};
use std::path::Path;

use bunker_db::audit::Performer;
use bunker_db::{Database, OwnerConnection, RoleMode};
use bunker_keys::{recovery, MasterKey, WrappingKey};
use bunker_services::access::Operation;
use bunker_services::tenants::Tenants;
use bunker_tenancy::token::IssuedToken;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::cli::config::Config;
use crate::http::app::Application;
use bunker_services::keys::wrapping::WrappingSource;
use bunker_services::keys::Progress;
use bunker_services::keys::{
    load_keyring, load_masters, recover_masters, rewrap_masters, rotate_master, SharedKeyring,
};
use bunker_services::setup::{
    init_database, strong_enough, RootToken, MIN_ROOT_TOKEN_DISTINCT, MIN_ROOT_TOKEN_LEN,
};
use bunker_services::Vault;

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
    let vault = Vault::new(db, SharedKeyring::new(keyring), settings.vault);
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
    };
    let report = vault.reencrypt_all(settle, &mut draw).await?;
    println!(
        "{} value(s) re-sealed; retired master key version(s): {:?}",
        report.resealed, report.retired
    );
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
    let vault = Vault::new(db, SharedKeyring::new(keyring), settings.vault);
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
