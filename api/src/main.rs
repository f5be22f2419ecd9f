//! The `bunker` binary.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use bunker::cli::config::{
    self, ChainArgs, Config, DatabaseArgs, DemoArgs, InitArgs, KmsArgs, RefreshArgs, ServerArgs,
    Settings, WrappingArgs,
};
use bunker::cli::{self as commands, demo};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system allocator: a request allocates and frees many small buffers
/// (JSON, sealed records, rows), and glibc's malloc/free took 12% of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bunker: a multi-tenant vault for personal data, speaking the Databunker Pro /v2 API.
///
/// Each command takes its settings from the environment (BUNKER_*) or from flags; `bunker
/// <command> --help` lists those it reads, with their defaults. Secrets (BUNKER_DATABASE_URL,
/// BUNKER_WRAPPING_KEY, BUNKER_ROOT_TOKEN) are taken from the environment only. An empty or blank
/// variable counts as unset.
#[derive(Parser)]
#[command(name = "bunker", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The log filter (`info`, `debug`, `bunker=debug,warn`, ...); logs go to stderr.
    #[arg(
        long,
        env = "BUNKER_LOG",
        value_name = "FILTER",
        default_value = "info",
        global = true
    )]
    log: String,
    /// How log lines are written: `text`, or `json` (one object per line, with the request id of
    /// the request a line belongs to).
    #[arg(long, env = "BUNKER_LOG_FORMAT", value_name = "FORMAT", default_value = "text",
          value_parser = ["text", "json"], global = true)]
    log_format: String,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations, create the `default` tenant and the root token (printed once).
    Init {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        wrapping: WrappingArgs,
        #[command(flatten)]
        init: InitArgs,
    },
    /// Apply pending migrations.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Serve the API (refuses an uninitialized or out-of-date database).
    Serve {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        wrapping: WrappingArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Try Bunker with no set-up: a private PostgreSQL under ./bunker-data, root token DEMO.
    Demo {
        #[command(flatten)]
        demo: DemoArgs,
        #[command(flatten)]
        wrapping: WrappingArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
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
    /// Copy a Databunker OSS server's legal bases, users, app records and agreements into Bunker,
    /// through its /v1 API (with list_users on) and Bunker's /v2. Prints counts only.
    ImportV1 {
        /// The OSS server.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The OSS server's root token. From the environment only.
        #[arg(long, env = "BUNKER_IMPORT_FROM_TOKEN", hide_env_values = true)]
        from_token: String,
        /// The Bunker server to copy into.
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:3000")]
        to: String,
        /// Bunker's root token, or the target tenant's admin token. From the environment only.
        #[arg(long, env = "BUNKER_IMPORT_TO_TOKEN", hide_env_values = true)]
        to_token: String,
        /// The tenant to copy into (default: `default`, root's; a tenant admin's token needs it).
        #[arg(long)]
        tenant: Option<String>,
        /// Users asked for per page of the OSS server's /v1/users.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=100))]
        page_size: u16,
    },
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
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        wrapping: WrappingArgs,
        #[command(flatten)]
        chain: ChainArgs,
    },
}

#[derive(Subcommand)]
enum ServeRoleCommand {
    /// Create a login role that is a member of bunker_app only (with the owner's URL; its password
    /// is printed once).
    Create {
        #[arg(long, default_value = "bunker_serve")]
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// A tenant's access tokens: ids, kinds, expiry (never their values).
    List {
        #[arg(long, default_value = "default")]
        tenant: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke one access token of a tenant, at once on every server.
    Revoke {
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The token's id, as `bunker token list` shows it.
        id: uuid::Uuid,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// A new admin token for a tenant (printed once); every earlier one is revoked.
    RotateAdmin {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// A new root token (printed once); the old one stops working at once. Needs the owner's URL.
    RotateRoot {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Master key versions, their wrapping source and dates (no secrets).
    Status {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Re-wrap the master key under a new wrapping key (printed once) or a KMS key.
    RotateWrapping {
        /// Wrap with this KMS key instead of a new local key.
        #[arg(long)]
        to_kms: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        wrapping: WrappingArgs,
    },
    /// Add a new master-key version for new writes (a key ceremony: takes 3 recovery shares).
    RotateMaster {
        /// A file holding three recovery shares printed by `bunker init`, one a line; without it
        /// (or with `-`) they are read from standard input, asked for without echo on a terminal.
        /// Never on the command line, where `ps` and shell history would keep them.
        #[arg(long, value_name = "FILE")]
        shares_file: Option<PathBuf>,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        wrapping: WrappingArgs,
        #[command(flatten)]
        refresh: RefreshArgs,
    },
    /// Re-seal all data under the newest master-key version, online, and retire older versions.
    Reencrypt {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        wrapping: WrappingArgs,
        #[command(flatten)]
        refresh: RefreshArgs,
    },
    /// Recover the master key from 3 recovery shares and re-wrap it (when the wrapping key is lost).
    Recover {
        /// A file holding three recovery shares, one a line; without it (or with `-`), standard
        /// input, asked for without echo on a terminal.
        #[arg(long, value_name = "FILE")]
        shares_file: Option<PathBuf>,
        /// Wrap with this KMS key instead of a new local key.
        #[arg(long)]
        to_kms: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        kms: KmsArgs,
    },
}

fn target(to_kms: Option<String>) -> commands::RewrapTarget {
    match to_kms {
        Some(key_id) => commands::RewrapTarget::Kms(key_id),
        None => commands::RewrapTarget::NewLocalKey,
    }
}

fn main() -> ExitCode {
    if let Err(err) = config::prepare_variables() {
        eprintln!("bunker: {err}");
        return ExitCode::FAILURE;
    }
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    init_logging(&cli.log, &cli.log_format);
    let result = config::refuse_secrets_in_argv(&matches)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(cli.command))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bunker: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` with the settings it reads.
async fn run(command: Command) -> anyhow::Result<()> {
    let db = |database| Settings {
        database: Some(database),
        ..Settings::default()
    };
    let keyed = |database, wrapping| Settings {
        database: Some(database),
        wrapping: Some(wrapping),
        ..Settings::default()
    };
    match &command {
        Command::Init {
            database,
            wrapping,
            init,
        } => {
            let config = Config::from_settings(Settings {
                init: Some(init),
                ..keyed(database, wrapping)
            })?;
            commands::init(&config).await
        }
        Command::Migrate { database } => {
            commands::migrate(&Config::from_settings(db(database))?).await
        }
        Command::Serve {
            database,
            wrapping,
            server,
        } => {
            let config = Config::from_settings(Settings {
                server: Some(server),
                ..keyed(database, wrapping)
            })?;
            commands::serve(&config).await
        }
        Command::Demo {
            demo,
            wrapping,
            server,
        } => {
            let config = Config::from_settings(Settings {
                demo: Some(demo),
                wrapping: Some(wrapping),
                server: Some(server),
                ..Settings::default()
            })?;
            demo::run(&config).await
        }
        Command::Keys(KeysCommand::Status { database }) => {
            commands::keys_status(&Config::from_settings(db(database))?).await
        }
        Command::Keys(KeysCommand::RotateWrapping {
            to_kms,
            database,
            wrapping,
        }) => {
            let config = Config::from_settings(keyed(database, wrapping))?;
            commands::keys_rotate_wrapping(&config, target(to_kms.clone())).await
        }
        Command::Keys(KeysCommand::RotateMaster {
            shares_file,
            database,
            wrapping,
            refresh,
        }) => {
            let config = Config::from_settings(Settings {
                refresh: Some(refresh),
                ..keyed(database, wrapping)
            })?;
            let shares = commands::read_shares(shares_file.as_deref())?;
            commands::keys_rotate_master(&config, &shares).await
        }
        Command::Keys(KeysCommand::Reencrypt {
            database,
            wrapping,
            refresh,
        }) => {
            let config = Config::from_settings(Settings {
                refresh: Some(refresh),
                ..keyed(database, wrapping)
            })?;
            commands::keys_reencrypt(&config).await
        }
        Command::Keys(KeysCommand::Recover {
            shares_file,
            to_kms,
            database,
            kms,
        }) => {
            let config = Config::from_settings(Settings {
                kms: Some(kms),
                ..db(database)
            })?;
            let shares = commands::read_shares(shares_file.as_deref())?;
            commands::keys_recover(&config, &shares, target(to_kms.clone())).await
        }
        Command::Token(TokenCommand::List { tenant, database }) => {
            commands::token_list(&Config::from_settings(db(database))?, tenant).await
        }
        Command::Token(TokenCommand::Revoke {
            tenant,
            id,
            database,
        }) => commands::token_revoke(&Config::from_settings(db(database))?, tenant, *id).await,
        Command::Token(TokenCommand::RotateAdmin { tenant, database }) => {
            commands::token_rotate_admin(&Config::from_settings(db(database))?, tenant).await
        }
        Command::Token(TokenCommand::RotateRoot { database }) => {
            commands::token_rotate_root(&Config::from_settings(db(database))?).await
        }
        Command::Audit(AuditCommand::Verify {
            tenant,
            head,
            database,
            wrapping,
            chain,
        }) => {
            let config = Config::from_settings(Settings {
                chain: Some(chain),
                ..keyed(database, wrapping)
            })?;
            commands::audit_verify(&config, tenant.as_deref(), head.as_deref()).await
        }
        Command::ServeRole(ServeRoleCommand::Create { name, database }) => {
            commands::serve_role_create(&Config::from_settings(db(database))?, name).await
        }
        Command::ImportV1 {
            from,
            from_token,
            to,
            to_token,
            tenant,
            page_size,
        } => {
            let done = bunker::cli::import_v1::import_v1(bunker::cli::import_v1::ImportV1 {
                from: from.clone(),
                from_token: from_token.clone(),
                to: to.clone(),
                to_token: to_token.clone(),
                tenant: tenant.clone(),
                page: usize::from(*page_size),
            })
            .await?;
            println!(
                "imported: {} legal bases, {} users ({} already there, left as they were), {} app records, {} agreements",
                done.legal_bases, done.users, done.users_skipped, done.app_records, done.agreements
            );
            Ok(())
        }
    }
}

/// Logs go to stderr, filtered by `filter` (BUNKER_LOG, default `info`). The database driver is
/// held to warnings whatever the filter says: at debug level it would log query parameters.
fn init_logging(filter: &str, format: &str) {
    let filter = EnvFilter::try_new(filter)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("tokio_postgres=warn".parse().unwrap_or_default());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        // The request's span (its id) on every line; the event's fields at the top level.
        logs.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
