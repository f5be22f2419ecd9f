//! The `bunker` binary.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use bunker::config::Config;
use bunker::{commands, demo};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system allocator: a request allocates and frees many small buffers
/// (JSON, sealed records, rows), and glibc's malloc/free took 12% of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bunker: a multi-tenant vault for personal data, speaking the Databunker Pro /v2 API.
///
/// Configuration comes from the environment: BUNKER_DATABASE_URL, BUNKER_WRAPPING_KEY (or
/// BUNKER_WRAPPING_KEY_FILE, or BUNKER_KMS_KEY_ID with BUNKER_KMS_ENDPOINT), BUNKER_LISTEN,
/// BUNKER_DOMAIN, BUNKER_ROOT_TOKEN, BUNKER_MAX_BODY_BYTES, BUNKER_DB_POOL_SIZE,
/// BUNKER_PHONE_REGION, BUNKER_USER_VERSIONS, BUNKER_SWEEP_SECONDS, BUNKER_KEY_REFRESH_SECONDS,
/// BUNKER_LIST_USERS, BUNKER_XTOKEN_MAX_SECONDS, BUNKER_DATA_DIR, BUNKER_PG_BINDIR, BUNKER_LOG (see
/// README).
#[derive(Parser)]
#[command(name = "bunker", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations, create the `default` tenant and the root token (printed once).
    Init,
    /// Apply pending migrations.
    Migrate,
    /// Serve the API (refuses an uninitialized or out-of-date database).
    Serve,
    /// Try Bunker with no set-up: a private PostgreSQL under ./bunker-data, root token DEMO.
    Demo,
    /// Key management: status, wrapping-key and master-key rotation, re-encryption, recovery.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Access tokens: list a tenant's, revoke one, rotate a tenant's admin token or the root token.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The audit trail: `verify` recomputes its chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The login role `serve` should use in production.
    #[command(subcommand)]
    ServeRole(ServeRoleCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute each tenant's audit chain; name every event changed, deleted, inserted or moved
    /// before its last link, and fail if there is one.
    Verify {
        /// One tenant (by name) instead of all.
        #[arg(long)]
        tenant: Option<String>,
        /// A head the server logged earlier (`POSITION:MAC`, "audit chain extended"), kept outside
        /// the database: the chain must still hold it (with --tenant).
        #[arg(long)]
        head: Option<String>,
    },
}

#[derive(Subcommand)]
enum ServeRoleCommand {
    /// Create a login role that is a member of bunker_app only (with the owner's URL; its password
    /// is printed once).
    Create {
        #[arg(long, default_value = "bunker_serve")]
        name: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// A tenant's access tokens: ids, kinds, expiry (never their values).
    List {
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Revoke one access token of a tenant, at once on every server.
    Revoke {
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The token's id, as `bunker token list` shows it.
        id: uuid::Uuid,
    },
    /// A new admin token for a tenant (printed once); every earlier one is revoked.
    RotateAdmin {
        #[arg(long)]
        tenant: String,
    },
    /// A new root token (printed once); the old one stops working at once. Needs the owner's URL.
    RotateRoot,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Master key versions, their wrapping source and dates (no secrets).
    Status,
    /// Re-wrap the master key under a new wrapping key (printed once) or a KMS key.
    RotateWrapping {
        /// Wrap with this KMS key instead of a new local key.
        #[arg(long)]
        to_kms: Option<String>,
    },
    /// Add a new master-key version for new writes (a key ceremony: takes 3 recovery shares).
    RotateMaster {
        /// A file holding three recovery shares printed by `bunker init`, one a line; without it
        /// (or with `-`) they are read from standard input, asked for without echo on a terminal.
        /// Never on the command line, where `ps` and shell history would keep them.
        #[arg(long, value_name = "FILE")]
        shares_file: Option<PathBuf>,
    },
    /// Re-seal all data under the newest master-key version, online, and retire older versions.
    Reencrypt,
    /// Recover the master key from 3 recovery shares and re-wrap it (when the wrapping key is lost).
    Recover {
        /// A file holding three recovery shares, one a line; without it (or with `-`), standard
        /// input, asked for without echo on a terminal.
        #[arg(long, value_name = "FILE")]
        shares_file: Option<PathBuf>,
        /// Wrap with this KMS key instead of a new local key.
        #[arg(long)]
        to_kms: Option<String>,
    },
}

fn target(to_kms: Option<String>) -> commands::RewrapTarget {
    match to_kms {
        Some(key_id) => commands::RewrapTarget::Kms(key_id),
        None => commands::RewrapTarget::NewLocalKey,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = Config::from_env()
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                match cli.command {
                    Command::Init => commands::init(&config).await,
                    Command::Migrate => commands::migrate(&config).await,
                    Command::Serve => commands::serve(&config).await,
                    Command::Demo => demo::run(&config).await,
                    Command::Keys(KeysCommand::Status) => commands::keys_status(&config).await,
                    Command::Keys(KeysCommand::RotateWrapping { to_kms }) => {
                        commands::keys_rotate_wrapping(&config, target(to_kms)).await
                    }
                    Command::Keys(KeysCommand::RotateMaster { shares_file }) => {
                        let shares = commands::read_shares(shares_file.as_deref())?;
                        commands::keys_rotate_master(&config, &shares).await
                    }
                    Command::Keys(KeysCommand::Reencrypt) => {
                        commands::keys_reencrypt(&config).await
                    }
                    Command::Keys(KeysCommand::Recover {
                        shares_file,
                        to_kms,
                    }) => {
                        let shares = commands::read_shares(shares_file.as_deref())?;
                        commands::keys_recover(&config, &shares, target(to_kms)).await
                    }
                    Command::Token(TokenCommand::List { tenant }) => {
                        commands::token_list(&config, &tenant).await
                    }
                    Command::Token(TokenCommand::Revoke { tenant, id }) => {
                        commands::token_revoke(&config, &tenant, id).await
                    }
                    Command::Token(TokenCommand::RotateAdmin { tenant }) => {
                        commands::token_rotate_admin(&config, &tenant).await
                    }
                    Command::Token(TokenCommand::RotateRoot) => {
                        commands::token_rotate_root(&config).await
                    }
                    Command::Audit(AuditCommand::Verify { tenant, head }) => {
                        commands::audit_verify(&config, tenant.as_deref(), head.as_deref()).await
                    }
                    Command::ServeRole(ServeRoleCommand::Create { name }) => {
                        commands::serve_role_create(&config, &name).await
                    }
                }
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bunker: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by BUNKER_LOG (default `info`). The database driver is held to
/// warnings whatever the filter says: at debug level it would log query parameters.
fn init_logging() {
    let filter = std::env::var("BUNKER_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("tokio_postgres=warn".parse().unwrap_or_default());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
