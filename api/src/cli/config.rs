//! Configuration: each command's settings, from the command line or the environment
//! (`BUNKER_*`), parsed by clap so that `bunker <command> --help` lists each variable the command
//! reads with its default. Secrets (the database URL, the wrapping key, the root token) are taken
//! from the environment only, never from the command line (see [`refuse_secrets_in_argv`]), and
//! held as `SecretString` so they never print. An empty variable counts as unset.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bunker_keys::{KeyError, WrappingKey};
use bunker_services::core::rate::Rate;
use bunker_services::core::Normalizer;
use bunker_services::files::FilesSettings;
use bunker_services::keys::wrapping::WrappingSource;
use bunker_services::VaultSettings;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use ipnet::IpNet;
use secrecy::SecretString;

use crate::http::app::ServerSettings;
use crate::http::limits::RateSettings;
use crate::http::mail::MailSettings;
use crate::http::tls::TlsFiles;

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_POOL_SIZE: usize = 16;
const DEFAULT_DATA_DIR: &str = "./bunker-data";
const DEFAULT_PHONE_REGION: &str = "GB";
const DEFAULT_USER_VERSIONS: usize = 10;
const DEFAULT_SWEEP_SECONDS: usize = 60;
const DEFAULT_KEY_REFRESH_SECONDS: usize = 30;
const DEFAULT_TENANT_KEY_CACHE_SECONDS: usize = 300;
const DEFAULT_XTOKEN_MAX_SECONDS: usize = 24 * 3600;
const DEFAULT_SHARED_RECORD_MAX_SECONDS: usize = 30 * 86_400;
const DEFAULT_RESTORE_WINDOW_SECONDS: usize = 30 * 86_400;
const DEFAULT_MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
const DEFAULT_AUDIT_CHAIN_SECONDS: usize = 10;
const DEFAULT_AUDIT_CHAIN_HORIZON_SECONDS: usize = 300;
const DEFAULT_RATE_TENANT: &str = "1000/s";
const DEFAULT_RATE_TOKEN: &str = "500/s";
const DEFAULT_RATE_IP: &str = "2000/s";
const DEFAULT_RATE_PUBLIC: &str = "10/s";
const DEFAULT_RATE_LOGIN: &str = "30/h";
const DEFAULT_RATE_COSTLY: &str = "20/s";

/// The arguments that carry secrets: accepted from the environment only.
const SECRET_ARGS: &[(&str, &str)] = &[
    ("database_url", "BUNKER_DATABASE_URL"),
    ("wrapping_key", "BUNKER_WRAPPING_KEY"),
    ("root_token", "BUNKER_ROOT_TOKEN"),
    ("smtp_url", "BUNKER_SMTP_URL"),
    ("sms_url", "BUNKER_SMS_URL"),
    ("sms_authorization", "BUNKER_SMS_AUTHORIZATION"),
    ("from_token", "BUNKER_IMPORT_FROM_TOKEN"),
    ("to_token", "BUNKER_IMPORT_TO_TOKEN"),
];

/// The database, for every command but `demo`.
#[derive(Args, Clone, Debug, Default)]
pub struct DatabaseArgs {
    /// PostgreSQL: the schema owner (or a superuser), or a login role that is a member of
    /// bunker_app; a URL or libpq `key=value` string, with sslmode and sslrootcert. From the
    /// environment only.
    #[arg(
        long,
        env = "BUNKER_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

/// What wraps the master key: one of a key, a key file or a KMS key.
#[derive(Args, Clone, Debug, Default)]
pub struct WrappingArgs {
    /// The 256-bit wrapping key, as 64 hex characters. From the environment only.
    #[arg(
        long,
        env = "BUNKER_WRAPPING_KEY",
        value_name = "HEX",
        hide_env_values = true
    )]
    pub wrapping_key: Option<String>,
    /// A file holding the wrapping key instead.
    #[arg(long, env = "BUNKER_WRAPPING_KEY_FILE", value_name = "FILE")]
    pub wrapping_key_file: Option<PathBuf>,
    /// Wrap with this AWS KMS key instead (id, ARN or alias).
    #[arg(long, env = "BUNKER_KMS_KEY_ID", value_name = "KEY")]
    pub kms_key_id: Option<String>,
    #[command(flatten)]
    pub kms: KmsArgs,
}

/// Where AWS KMS is reached.
#[derive(Args, Clone, Debug, Default)]
pub struct KmsArgs {
    /// Another KMS endpoint (a VPC endpoint, a test stand-in); credentials and region come from
    /// the standard AWS chain.
    #[arg(long, env = "BUNKER_KMS_ENDPOINT", value_name = "URL")]
    pub kms_endpoint: Option<String>,
}

/// How often servers look for a new master-key version.
#[derive(Args, Clone, Debug)]
pub struct RefreshArgs {
    /// Seconds between a server's looks for a new master-key version (`keys reencrypt` waits
    /// twice this before re-sealing).
    #[arg(long, env = "BUNKER_KEY_REFRESH_SECONDS", value_name = "SECONDS",
          default_value_t = DEFAULT_KEY_REFRESH_SECONDS, value_parser = positive("BUNKER_KEY_REFRESH_SECONDS"))]
    pub key_refresh_seconds: usize,
    /// Seconds a server keeps a tenant's unwrapped keys: a revoked tenant KMS key stops the
    /// tenant within this bound on every server (`keys reencrypt` waits it out, as servers do,
    /// before sealing with a new tenant key).
    #[arg(long, env = "BUNKER_TENANT_KEY_CACHE_SECONDS", value_name = "SECONDS",
          default_value_t = DEFAULT_TENANT_KEY_CACHE_SECONDS,
          value_parser = positive("BUNKER_TENANT_KEY_CACHE_SECONDS"))]
    pub tenant_key_cache_seconds: usize,
}

/// The HTTP server and the vault behind it.
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// Where to serve.
    #[arg(long, env = "BUNKER_LISTEN", value_name = "ADDRESS", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Comma-separated domains; the left-most label of a Host under one of them names the tenant.
    #[arg(long, env = "BUNKER_DOMAIN", value_name = "DOMAINS", value_delimiter = ',',
          value_parser = trimmed)]
    pub domain: Vec<String>,
    /// Larger request bodies get 413.
    #[arg(long, env = "BUNKER_MAX_BODY_BYTES", value_name = "BYTES",
          default_value_t = DEFAULT_MAX_BODY_BYTES, value_parser = positive("BUNKER_MAX_BODY_BYTES"))]
    pub max_body_bytes: usize,
    /// Database connections per server.
    #[arg(long, env = "BUNKER_DB_POOL_SIZE", value_name = "CONNECTIONS",
          default_value_t = DEFAULT_POOL_SIZE, value_parser = positive("BUNKER_DB_POOL_SIZE"))]
    pub db_pool_size: usize,
    /// How phone numbers without a country code are read (ISO 3166 code).
    #[arg(long, env = "BUNKER_PHONE_REGION", value_name = "REGION",
          default_value = DEFAULT_PHONE_REGION)]
    pub phone_region: String,
    /// Versions of a profile kept, the current one included.
    #[arg(long, env = "BUNKER_USER_VERSIONS", value_name = "VERSIONS",
          default_value_t = DEFAULT_USER_VERSIONS, value_parser = positive("BUNKER_USER_VERSIONS"))]
    pub user_versions: usize,
    /// Seconds between sweeps that forget expired users.
    #[arg(long, env = "BUNKER_SWEEP_SECONDS", value_name = "SECONDS",
          default_value_t = DEFAULT_SWEEP_SECONDS, value_parser = positive("BUNKER_SWEEP_SECONDS"))]
    pub sweep_seconds: usize,
    /// Whether BulkListUsers, BulkListAllUsers and UserSearch answer.
    #[arg(long, env = "BUNKER_LIST_USERS", value_name = "BOOL", default_value = "false",
          value_parser = boolean("BUNKER_LIST_USERS"), action = clap::ArgAction::Set)]
    pub list_users: bool,
    /// Whether a tenant's admin token may change its own tenant's key wrapping (its own AWS KMS
    /// key) and rotate its key; off: root only.
    #[arg(long, env = "BUNKER_TENANT_KEY_ADMIN", value_name = "BOOL", default_value = "false",
          value_parser = boolean("BUNKER_TENANT_KEY_ADMIN"), action = clap::ArgAction::Set)]
    pub tenant_key_admin: bool,
    /// The longest a role or user token lives, in seconds.
    #[arg(long, env = "BUNKER_XTOKEN_MAX_SECONDS", value_name = "SECONDS",
          default_value_t = DEFAULT_XTOKEN_MAX_SECONDS, value_parser = positive("BUNKER_XTOKEN_MAX_SECONDS"))]
    pub xtoken_max_seconds: usize,
    /// The longest a shared record lives, in seconds.
    #[arg(long, env = "BUNKER_SHARED_RECORD_MAX_SECONDS", value_name = "SECONDS",
          default_value_t = DEFAULT_SHARED_RECORD_MAX_SECONDS,
          value_parser = positive("BUNKER_SHARED_RECORD_MAX_SECONDS"))]
    pub shared_record_max_seconds: usize,
    /// How long a profile SystemDeleteUserProfiles removed can be restored, in seconds (its
    /// versions are kept that long; 0: not restorable).
    #[arg(long, env = "BUNKER_RESTORE_WINDOW_SECONDS", value_name = "SECONDS",
          default_value_t = DEFAULT_RESTORE_WINDOW_SECONDS,
          value_parser = seconds_up_to_a_century("BUNKER_RESTORE_WINDOW_SECONDS"))]
    pub restore_window_seconds: usize,
    /// Where files are stored: `file:///path` or `s3://bucket/prefix` (none: the file commands
    /// answer 503; `bunker demo` uses its data directory).
    #[arg(long, env = "BUNKER_FILES_URL", value_name = "URL")]
    pub files_url: Option<String>,
    /// The S3 endpoint, for an S3-compatible store or a local stand-in (default: AWS's).
    #[arg(long, env = "BUNKER_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Larger files get 413.
    #[arg(long, env = "BUNKER_MAX_FILE_BYTES", value_name = "BYTES",
          default_value_t = DEFAULT_MAX_FILE_BYTES, value_parser = positive("BUNKER_MAX_FILE_BYTES"))]
    pub max_file_bytes: usize,
    /// Requests per tenant per server, unless root gave the tenant its own (TenantUpdate
    /// `ratelimit`): COUNT/s, COUNT/min, COUNT/h or off.
    #[arg(long, env = "BUNKER_RATE_TENANT", value_name = "RATE", default_value = DEFAULT_RATE_TENANT,
          value_parser = rate("BUNKER_RATE_TENANT"))]
    pub rate_tenant: RateArg,
    /// Requests per access token per server.
    #[arg(long, env = "BUNKER_RATE_TOKEN", value_name = "RATE", default_value = DEFAULT_RATE_TOKEN,
          value_parser = rate("BUNKER_RATE_TOKEN"))]
    pub rate_token: RateArg,
    /// Requests per client address per server (health checks excepted).
    #[arg(long, env = "BUNKER_RATE_IP", value_name = "RATE", default_value = DEFAULT_RATE_IP,
          value_parser = rate("BUNKER_RATE_IP"))]
    pub rate_ip: RateArg,
    /// Requests per client address per server to the commands that need no token (UserPrelogin,
    /// UserLogin, CaptchaCreate, SharedRecordGet, TenantGetUIConf).
    #[arg(long, env = "BUNKER_RATE_PUBLIC", value_name = "RATE", default_value = DEFAULT_RATE_PUBLIC,
          value_parser = rate("BUNKER_RATE_PUBLIC"))]
    pub rate_public: RateArg,
    /// Sign-in attempts per client address per server: UserLogin (each code tried) and each token
    /// tried at the DPO portal's sign-in.
    #[arg(long, env = "BUNKER_RATE_LOGIN", value_name = "RATE", default_value = DEFAULT_RATE_LOGIN,
          value_parser = rate("BUNKER_RATE_LOGIN"))]
    pub rate_login: RateArg,
    /// Requests per access token per server to the costly commands (UserSearch, bulk, reports,
    /// statistics, cross-tenant profiles).
    #[arg(long, env = "BUNKER_RATE_COSTLY", value_name = "RATE", default_value = DEFAULT_RATE_COSTLY,
          value_parser = rate("BUNKER_RATE_COSTLY"))]
    pub rate_costly: RateArg,
    /// Comma-separated networks (CIDR) of the proxies whose X-Forwarded-For names the client.
    #[arg(long, env = "BUNKER_TRUSTED_PROXIES", value_name = "NETWORKS", value_delimiter = ',',
          value_parser = network)]
    pub trusted_proxies: Vec<NetworkArg>,
    /// The most database connections one tenant's requests may hold at once (default: three
    /// quarters of the pool, rounded up).
    #[arg(long, env = "BUNKER_TENANT_MAX_CONNECTIONS", value_name = "CONNECTIONS",
          value_parser = positive("BUNKER_TENANT_MAX_CONNECTIONS"))]
    pub tenant_max_connections: Option<usize>,
    /// Serve GET /metrics here instead of on the API's address.
    #[arg(long, env = "BUNKER_METRICS_LISTEN", value_name = "ADDRESS")]
    pub metrics_listen: Option<String>,
    /// Whether /metrics counts requests per tenant name (off: no tenant in any label).
    #[arg(long, env = "BUNKER_METRICS_PER_TENANT", value_name = "BOOL", default_value = "false",
          value_parser = boolean("BUNKER_METRICS_PER_TENANT"), action = clap::ArgAction::Set)]
    pub metrics_per_tenant: bool,
    /// Serve HTTPS with this PEM certificate chain (with BUNKER_TLS_KEY; reloaded on SIGHUP or
    /// when the file changes).
    #[arg(long, env = "BUNKER_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of BUNKER_TLS_CERT.
    #[arg(long, env = "BUNKER_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Send passwordless-login codes through this SMTP relay: smtps://user:password@host (or
    /// smtp://...?tls=required). From the environment only.
    #[arg(
        long,
        env = "BUNKER_SMTP_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,
    /// Append login-code e-mails to this file instead of sending them (bunker demo:
    /// bunker-data/mail.log).
    #[arg(long, env = "BUNKER_MAIL_LOG", value_name = "FILE")]
    pub mail_log: Option<PathBuf>,
    /// The From of login-code e-mails.
    #[arg(long, env = "BUNKER_MAIL_FROM", value_name = "ADDRESS",
          default_value = crate::http::mail::DEFAULT_FROM)]
    pub mail_from: Option<String>,
    /// Send passwordless-login codes by SMS: the gateway's URL, where {phone} and {message} are
    /// filled in; each code is a POST of {"phone","message"} to it. From the environment only.
    #[arg(
        long,
        env = "BUNKER_SMS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub sms_url: Option<String>,
    /// The Authorization header of each SMS gateway request (e.g. `Bearer ...`). From the
    /// environment only.
    #[arg(
        long,
        env = "BUNKER_SMS_AUTHORIZATION",
        value_name = "VALUE",
        hide_env_values = true
    )]
    pub sms_authorization: Option<String>,
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub refresh: RefreshArgs,
}

/// A rate limit setting (none: off).
#[derive(Clone, Copy, Debug)]
pub struct RateArg(pub Option<Rate>);

/// A trusted proxy network.
#[derive(Clone, Copy, Debug)]
pub struct NetworkArg(pub IpNet);

/// A parser of a rate (`COUNT/s`, `COUNT/min`, `COUNT/h`, `off`), whose error names `variable`.
fn rate(variable: &'static str) -> impl Fn(&str) -> Result<RateArg, String> + Clone {
    move |text| {
        Rate::parse(text)
            .map(RateArg)
            .map_err(|grammar| format!("{variable}: {grammar}"))
    }
}

/// A network in CIDR form, or one address.
fn network(text: &str) -> Result<NetworkArg, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(NetworkArg)
        .map_err(|_| {
            "BUNKER_TRUSTED_PROXIES: each entry is a network (10.0.0.0/8) or an address".to_owned()
        })
}

/// How the audit chain is linked (and so when `audit verify` expects an event linked).
#[derive(Args, Clone, Debug)]
pub struct ChainArgs {
    /// Seconds between rounds linking audit events into the verifiable chain.
    #[arg(long, env = "BUNKER_AUDIT_CHAIN_SECONDS", value_name = "SECONDS",
          default_value_t = DEFAULT_AUDIT_CHAIN_SECONDS, value_parser = positive("BUNKER_AUDIT_CHAIN_SECONDS"))]
    pub audit_chain_seconds: usize,
    /// How old an event must be, in seconds, to be linked (older than any request).
    #[arg(long, env = "BUNKER_AUDIT_CHAIN_HORIZON_SECONDS", value_name = "SECONDS",
          default_value_t = DEFAULT_AUDIT_CHAIN_HORIZON_SECONDS, value_parser = positive("BUNKER_AUDIT_CHAIN_HORIZON_SECONDS"))]
    pub audit_chain_horizon_seconds: usize,
}

/// Where `bunker demo` keeps its cluster and finds PostgreSQL.
#[derive(Args, Clone, Debug)]
pub struct DemoArgs {
    /// Where the demo keeps its PostgreSQL cluster and wrapping key.
    #[arg(long, env = "BUNKER_DATA_DIR", value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The directory of initdb and pg_ctl (searched for when unset).
    #[arg(long, env = "BUNKER_PG_BINDIR", value_name = "DIR")]
    pub pg_bindir: Option<PathBuf>,
}

/// What `bunker init` alone reads.
#[derive(Args, Clone, Debug, Default)]
pub struct InitArgs {
    /// Store this root token instead of generating one (a random v4 UUID, 32+ hex digits, or 32+
    /// varied characters; it is then not printed). From the environment only.
    #[arg(
        long,
        env = "BUNKER_ROOT_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub root_token: Option<String>,
}

/// The groups of settings a command reads; those it does not read keep their defaults.
#[derive(Default)]
pub struct Settings<'a> {
    pub database: Option<&'a DatabaseArgs>,
    pub wrapping: Option<&'a WrappingArgs>,
    pub server: Option<&'a ServerArgs>,
    pub refresh: Option<&'a RefreshArgs>,
    pub chain: Option<&'a ChainArgs>,
    pub kms: Option<&'a KmsArgs>,
    pub demo: Option<&'a DemoArgs>,
    pub init: Option<&'a InitArgs>,
}

/// Refuses a secret given on the command line (visible in `ps` and shell history): `matches` are
/// the parsed command line, down to its subcommand.
pub fn refuse_secrets_in_argv(matches: &ArgMatches) -> Result<(), ConfigError> {
    let mut leaf = matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    for (id, variable) in SECRET_ARGS {
        if leaf.ids().any(|known| known.as_str() == *id)
            && leaf.value_source(id) == Some(ValueSource::CommandLine)
        {
            return Err(ConfigError::SecretInArgv(variable));
        }
    }
    Ok(())
}

/// Prepares the `BUNKER_*` variables for clap: one that is empty or blank counts as unset (it is
/// removed); one that is not UTF-8 is refused by name. Call it first, before any thread starts.
pub fn prepare_variables() -> Result<(), ConfigError> {
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with("BUNKER_")) else {
            continue;
        };
        match value.to_str() {
            None => return Err(ConfigError::NotUtf8(name.to_owned())),
            Some(text) if text.trim().is_empty() => std::env::remove_var(name),
            Some(_) => {}
        }
    }
    Ok(())
}

/// A parser of positive whole numbers whose error names `variable` (clap names only the flag).
fn positive(variable: &'static str) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |text| {
        text.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{variable} must be a positive whole number"))
    }
}

/// A parser of a whole number of seconds from 0 to 100 years, whose error names `variable`.
fn seconds_up_to_a_century(
    variable: &'static str,
) -> impl Fn(&str) -> Result<usize, String> + Clone {
    const CENTURY: usize = 100 * 365 * 86_400 + 25 * 86_400;
    move |text| {
        text.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= CENTURY)
            .ok_or_else(|| {
                format!(
                    "{variable} must be a whole number of seconds, at most 100 years ({CENTURY})"
                )
            })
    }
}

/// A parser of true/false (on/off, yes/no, 1/0) whose error names `variable`.
fn boolean(variable: &'static str) -> impl Fn(&str) -> Result<bool, String> + Clone {
    move |text| match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(format!("{variable} must be true or false")),
    }
}

fn trimmed(text: &str) -> Result<String, String> {
    Ok(text.trim().to_owned())
}

/// Every setting Bunker reads, as the commands use them. README lists them.
pub struct Config {
    /// `BUNKER_DATABASE_URL`: the schema owner (or a superuser), or a login role member of bunker_app.
    pub database_url: Option<SecretString>,
    /// `BUNKER_LISTEN`: where to serve (default `127.0.0.1:3000`).
    pub listen: String,
    /// `BUNKER_DOMAIN`: comma-separated domains whose subdomains name tenants.
    pub domains: Vec<String>,
    /// `BUNKER_ROOT_TOKEN`: the root token `bunker init` stores, instead of a generated one.
    pub root_token: Option<SecretString>,
    /// `BUNKER_MAX_BODY_BYTES`: the request body limit (default 1 MiB).
    pub max_body_bytes: usize,
    /// `BUNKER_DB_POOL_SIZE`: database connections per server (default 16).
    pub pool_size: usize,
    /// `BUNKER_DATA_DIR`: where `bunker demo` keeps its PostgreSQL cluster (default `./bunker-data`).
    pub data_dir: PathBuf,
    /// `BUNKER_PG_BINDIR`: where `bunker demo` finds initdb and pg_ctl (default: searched).
    pub pg_bindir: Option<PathBuf>,
    /// `BUNKER_WRAPPING_KEY` (64 hex characters), `BUNKER_WRAPPING_KEY_FILE` or `BUNKER_KMS_KEY_ID`
    /// (with `BUNKER_KMS_ENDPOINT`): what wraps the master key.
    pub wrapping_key: Option<WrappingKeySource>,
    /// `BUNKER_KMS_ENDPOINT`: for a KMS key named on the command line (`--to-kms`) too.
    pub kms_endpoint: Option<String>,
    /// `BUNKER_PHONE_REGION`: how phone numbers without a country code are read (default `GB`).
    pub phone_region: String,
    /// `BUNKER_USER_VERSIONS`: versions of a profile kept, the current one included (default 10).
    pub versions_kept: usize,
    /// `BUNKER_SWEEP_SECONDS`: how often expired users are forgotten (default 60).
    pub sweep_seconds: usize,
    /// `BUNKER_KEY_REFRESH_SECONDS`: how often servers look for a new master-key version (default 30).
    pub key_refresh_seconds: usize,
    /// `BUNKER_TENANT_KEY_CACHE_SECONDS`: how long a tenant's unwrapped keys are kept (default 300).
    pub tenant_key_cache_seconds: usize,
    /// `BUNKER_TENANT_KEY_ADMIN`: whether tenant admins manage their own tenant's key (default off).
    pub tenant_key_admin: bool,
    /// `BUNKER_LIST_USERS`: whether BulkListUsers and BulkListAllUsers work (default off).
    pub list_users: bool,
    /// `BUNKER_XTOKEN_MAX_SECONDS`: the longest a role or user token may live (default 1 day).
    pub xtoken_max_seconds: usize,
    /// `BUNKER_SHARED_RECORD_MAX_SECONDS`: the longest a shared record lives (default 30 days).
    pub shared_record_max_seconds: usize,
    /// `BUNKER_RESTORE_WINDOW_SECONDS`: how long a profile removed by SystemDeleteUserProfiles can
    /// be restored (default 30 days; 0: not at all).
    pub restore_window_seconds: usize,
    /// `BUNKER_FILES_URL`: where files are stored (`file:///path`, `s3://bucket/prefix`).
    pub files_url: Option<String>,
    /// `BUNKER_S3_ENDPOINT`: the S3 endpoint (default: AWS's, by region).
    pub s3_endpoint: Option<String>,
    /// `BUNKER_MAX_FILE_BYTES`: the largest file (default 16 MiB).
    pub max_file_bytes: usize,
    /// `BUNKER_AUDIT_CHAIN_SECONDS`: how often audit events are linked into the chain (default 10).
    pub audit_chain_seconds: usize,
    /// `BUNKER_AUDIT_CHAIN_HORIZON_SECONDS`: how old an event must be to be linked (default 300).
    pub audit_chain_horizon_seconds: usize,
    /// `BUNKER_RATE_*` and `BUNKER_TRUSTED_PROXIES`: the rate limits.
    pub rates: RateSettings,
    /// `BUNKER_TENANT_MAX_CONNECTIONS`: one tenant's most connections (default 3/4 of the pool).
    pub tenant_max_connections: Option<usize>,
    /// `BUNKER_METRICS_LISTEN`: a separate address for /metrics.
    pub metrics_listen: Option<String>,
    /// `BUNKER_METRICS_PER_TENANT`: a request series per tenant name (default off).
    pub metrics_per_tenant: bool,
    /// `BUNKER_TLS_CERT` and `BUNKER_TLS_KEY`: HTTPS.
    pub tls: Option<TlsFiles>,
    /// `BUNKER_SMTP_URL`, `BUNKER_MAIL_LOG`, `BUNKER_MAIL_FROM`: how login codes are e-mailed.
    pub mail: MailSettings,
}

/// Where the wrapping key comes from.
pub enum WrappingKeySource {
    Value(SecretString),
    File(PathBuf),
    Kms {
        key_id: String,
        endpoint: Option<String>,
    },
}

/// A setting that is missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} must be {expected}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
    },
    #[error("set only one of BUNKER_WRAPPING_KEY, BUNKER_WRAPPING_KEY_FILE and BUNKER_KMS_KEY_ID")]
    TwoWrappingKeys,
    #[error("BUNKER_KMS_KEY_ID is set, but this bunker was built without the `kms` feature")]
    KmsUnavailable,
    #[error("{0}")]
    WrappingKey(#[from] KeyError),
    #[error("BUNKER_PHONE_REGION: {0}")]
    PhoneRegion(String),
    #[error(
        "give {0} in the environment, not on the command line (where ps and shell history keep it)"
    )]
    SecretInArgv(&'static str),
    #[error("{0} is not valid UTF-8")]
    NotUtf8(String),
    #[error("set both BUNKER_TLS_CERT and BUNKER_TLS_KEY, or neither")]
    TlsPair,
}

impl Config {
    /// The settings of a command: the groups it reads, the others at their defaults.
    pub fn from_settings(settings: Settings<'_>) -> Result<Self, ConfigError> {
        let mut config = Config {
            database_url: None,
            listen: DEFAULT_LISTEN.to_owned(),
            domains: Vec::new(),
            root_token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            pool_size: DEFAULT_POOL_SIZE,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            pg_bindir: None,
            wrapping_key: None,
            kms_endpoint: None,
            phone_region: DEFAULT_PHONE_REGION.to_owned(),
            versions_kept: DEFAULT_USER_VERSIONS,
            sweep_seconds: DEFAULT_SWEEP_SECONDS,
            key_refresh_seconds: DEFAULT_KEY_REFRESH_SECONDS,
            tenant_key_cache_seconds: DEFAULT_TENANT_KEY_CACHE_SECONDS,
            tenant_key_admin: false,
            list_users: false,
            xtoken_max_seconds: DEFAULT_XTOKEN_MAX_SECONDS,
            shared_record_max_seconds: DEFAULT_SHARED_RECORD_MAX_SECONDS,
            restore_window_seconds: DEFAULT_RESTORE_WINDOW_SECONDS,
            files_url: None,
            s3_endpoint: None,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            audit_chain_seconds: DEFAULT_AUDIT_CHAIN_SECONDS,
            audit_chain_horizon_seconds: DEFAULT_AUDIT_CHAIN_HORIZON_SECONDS,
            rates: RateSettings {
                tenant: Rate::parse(DEFAULT_RATE_TENANT).ok().flatten(),
                token: Rate::parse(DEFAULT_RATE_TOKEN).ok().flatten(),
                ip: Rate::parse(DEFAULT_RATE_IP).ok().flatten(),
                public: Rate::parse(DEFAULT_RATE_PUBLIC).ok().flatten(),
                login: Rate::parse(DEFAULT_RATE_LOGIN).ok().flatten(),
                costly: Rate::parse(DEFAULT_RATE_COSTLY).ok().flatten(),
                trusted_proxies: Vec::new(),
            },
            tenant_max_connections: None,
            metrics_listen: None,
            metrics_per_tenant: false,
            tls: None,
            mail: MailSettings::default(),
        };
        if let Some(db) = settings.database {
            config.database_url = db.database_url.clone().map(SecretString::from);
        }
        if let Some(kms) = settings.kms {
            config.kms_endpoint = kms.kms_endpoint.clone();
        }
        if let Some(wrapping) = settings.wrapping {
            config.kms_endpoint = wrapping.kms.kms_endpoint.clone();
            config.wrapping_key = match (
                &wrapping.wrapping_key,
                &wrapping.wrapping_key_file,
                &wrapping.kms_key_id,
            ) {
                (Some(value), None, None) => {
                    Some(WrappingKeySource::Value(SecretString::from(value.clone())))
                }
                (None, Some(path), None) => Some(WrappingKeySource::File(path.clone())),
                (None, None, Some(key_id)) => Some(WrappingKeySource::Kms {
                    key_id: key_id.clone(),
                    endpoint: wrapping.kms.kms_endpoint.clone(),
                }),
                (None, None, None) => None,
                _ => return Err(ConfigError::TwoWrappingKeys),
            };
        }
        if let Some(server) = settings.server {
            config.listen = server.listen.clone();
            config.domains = server
                .domain
                .iter()
                .filter(|d| !d.is_empty())
                .cloned()
                .collect();
            config.max_body_bytes = server.max_body_bytes;
            config.pool_size = server.db_pool_size;
            config.phone_region = server.phone_region.clone();
            config.versions_kept = server.user_versions;
            config.sweep_seconds = server.sweep_seconds;
            config.list_users = server.list_users;
            config.xtoken_max_seconds = server.xtoken_max_seconds;
            config.shared_record_max_seconds = server.shared_record_max_seconds;
            config.restore_window_seconds = server.restore_window_seconds;
            config.files_url = server.files_url.clone().filter(|u| !u.trim().is_empty());
            config.s3_endpoint = server.s3_endpoint.clone().filter(|u| !u.trim().is_empty());
            config.max_file_bytes = server.max_file_bytes;
            config.audit_chain_seconds = server.chain.audit_chain_seconds;
            config.audit_chain_horizon_seconds = server.chain.audit_chain_horizon_seconds;
            config.key_refresh_seconds = server.refresh.key_refresh_seconds;
            config.tenant_key_cache_seconds = server.refresh.tenant_key_cache_seconds;
            config.tenant_key_admin = server.tenant_key_admin;
            config.rates = RateSettings {
                tenant: server.rate_tenant.0,
                token: server.rate_token.0,
                ip: server.rate_ip.0,
                public: server.rate_public.0,
                login: server.rate_login.0,
                costly: server.rate_costly.0,
                trusted_proxies: server.trusted_proxies.iter().map(|n| n.0).collect(),
            };
            config.tenant_max_connections = server.tenant_max_connections;
            config.metrics_listen = server
                .metrics_listen
                .clone()
                .filter(|a| !a.trim().is_empty());
            config.metrics_per_tenant = server.metrics_per_tenant;
            let set = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
            config.tls = match (set(&server.tls_cert), set(&server.tls_key)) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                (None, None) => None,
                _ => return Err(ConfigError::TlsPair),
            };
            config.mail = MailSettings {
                smtp_url: server
                    .smtp_url
                    .clone()
                    .filter(|u| !u.trim().is_empty())
                    .map(SecretString::from),
                log_file: set(&server.mail_log),
                from: server.mail_from.clone().filter(|f| !f.trim().is_empty()),
                sms_url: server
                    .sms_url
                    .clone()
                    .filter(|u| !u.trim().is_empty())
                    .map(SecretString::from),
                sms_authorization: server
                    .sms_authorization
                    .clone()
                    .filter(|a| !a.trim().is_empty())
                    .map(SecretString::from),
            };
        }
        if let Some(chain) = settings.chain {
            config.audit_chain_seconds = chain.audit_chain_seconds;
            config.audit_chain_horizon_seconds = chain.audit_chain_horizon_seconds;
        }
        if let Some(refresh) = settings.refresh {
            config.key_refresh_seconds = refresh.key_refresh_seconds;
            config.tenant_key_cache_seconds = refresh.tenant_key_cache_seconds;
        }
        if let Some(demo) = settings.demo {
            config.data_dir = demo.data_dir.clone();
            config.pg_bindir = demo.pg_bindir.clone();
        }
        if let Some(init) = settings.init {
            config.root_token = init.root_token.clone().map(SecretString::from);
        }
        Ok(config)
    }

    /// The database URL, which every command but `demo` needs.
    pub fn require_database_url(&self) -> Result<&SecretString, ConfigError> {
        self.database_url
            .as_ref()
            .ok_or(ConfigError::Missing("BUNKER_DATABASE_URL"))
    }

    /// The wrapping source, which init, serve and the key commands need.
    pub async fn require_wrapping_source(&self) -> Result<WrappingSource, ConfigError> {
        self.wrapping_source().await?.ok_or(ConfigError::Missing(
            "BUNKER_WRAPPING_KEY (or BUNKER_WRAPPING_KEY_FILE, or BUNKER_KMS_KEY_ID)",
        ))
    }

    /// The wrapping source, if one is configured.
    pub async fn wrapping_source(&self) -> Result<Option<WrappingSource>, ConfigError> {
        use secrecy::ExposeSecret;
        Ok(match &self.wrapping_key {
            None => None,
            Some(WrappingKeySource::Value(hex)) => Some(WrappingSource::Local(
                WrappingKey::from_hex(hex.expose_secret())?,
            )),
            Some(WrappingKeySource::File(path)) => {
                Some(WrappingSource::Local(WrappingKey::from_file(path)?))
            }
            #[cfg(feature = "kms")]
            Some(WrappingKeySource::Kms { key_id, endpoint }) => Some(WrappingSource::Kms(
                bunker_services::keys::wrapping::kms::KmsWrapper::new(
                    key_id.clone(),
                    endpoint.clone(),
                )
                .await,
            )),
            #[cfg(not(feature = "kms"))]
            Some(WrappingKeySource::Kms { .. }) => return Err(ConfigError::KmsUnavailable),
        })
    }

    /// How often servers look for a new master-key version.
    pub fn key_refresh_interval(&self) -> Duration {
        Duration::from_secs(self.key_refresh_seconds as u64)
    }

    /// The settings of the HTTP server, with the source it unwraps the master key with.
    pub fn server_settings(&self, wrapping: WrappingSource) -> Result<ServerSettings, ConfigError> {
        Ok(ServerSettings {
            listen: self.listen.clone(),
            domains: self.domains.clone(),
            max_body_bytes: self.max_body_bytes,
            wrapping: Arc::new(wrapping),
            vault: VaultSettings {
                normalizer: Normalizer::new(&self.phone_region)
                    .map_err(ConfigError::PhoneRegion)?,
                versions_kept: i32::try_from(self.versions_kept).unwrap_or(i32::MAX),
                unlock_seconds: 60,
                list_users: self.list_users,
                xtoken_max_seconds: i64::try_from(self.xtoken_max_seconds).unwrap_or(i64::MAX),
                webhook_backoff: Duration::from_secs(1),
                shared_record_max_seconds: i64::try_from(self.shared_record_max_seconds)
                    .unwrap_or(i64::MAX),
                restore_window_seconds: i64::try_from(self.restore_window_seconds)
                    .unwrap_or(i64::MAX),
                tenant_key_cache: Duration::from_secs(self.tenant_key_cache_seconds as u64),
                tenant_key_admin: self.tenant_key_admin,
                kms_endpoint: self.kms_endpoint.clone(),
            },
            files: FilesSettings {
                url: self.files_url.clone(),
                s3_endpoint: self.s3_endpoint.clone(),
                max_file_bytes: self.max_file_bytes as u64,
                orphan_grace: bunker_services::files::ORPHAN_GRACE,
            },
            sweep_interval: Duration::from_secs(self.sweep_seconds as u64),
            webhook_interval: Duration::from_secs(1),
            key_refresh_interval: self.key_refresh_interval(),
            audit_chain_interval: Duration::from_secs(self.audit_chain_seconds.max(1) as u64),
            audit_chain_horizon: self.audit_chain_horizon(),
            rates: self.rates.clone(),
            tenant_max_connections: self.tenant_max_connections,
            metrics_listen: self.metrics_listen.clone(),
            metrics_per_tenant: self.metrics_per_tenant,
            tls: self.tls.clone(),
            mail: self.mail.clone(),
        })
    }

    /// How old an audit event must be before it is linked into the chain.
    pub fn audit_chain_horizon(&self) -> Duration {
        Duration::from_secs(self.audit_chain_horizon_seconds as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// What `serve` reads, parsed from flags (the same parsers as the environment's values).
    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        wrapping: WrappingArgs,
    }

    fn config(args: &[&str]) -> Result<Config, String> {
        let parsed = Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Config::from_settings(Settings {
            server: Some(&parsed.server),
            wrapping: Some(&parsed.wrapping),
            ..Settings::default()
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_apply_when_unset() {
        let c = config(&[]).ok();
        let c = c.as_ref();
        assert_eq!(c.map(|c| c.listen.as_str()), Some("127.0.0.1:3000"));
        assert_eq!(c.map(|c| c.max_body_bytes), Some(1024 * 1024));
        assert!(c.is_some_and(|c| c.domains.is_empty() && c.database_url.is_none()));
    }

    #[test]
    fn domains_are_comma_separated() {
        let c = config(&["--domain", "a.example.com, b.example.com"]).ok();
        assert_eq!(
            c.map(|c| c.domains),
            Some(vec!["a.example.com".to_owned(), "b.example.com".to_owned()])
        );
    }

    #[test]
    fn malformed_numbers_are_refused() {
        assert!(config(&["--max-body-bytes", "lots"]).is_err());
        assert!(config(&["--db-pool-size", "0"]).is_err());
        assert!(config(&["--user-versions", "none"]).is_err());
        assert!(config(&["--list-users", "maybe"]).is_err());
        assert!(config(&["--list-users", "true"]).is_ok_and(|c| c.list_users));
        assert!(config(&[]).is_ok_and(|c| !c.list_users));
    }

    #[tokio::test]
    async fn wrapping_key_comes_from_one_place_and_must_be_well_formed() {
        let hex = "0f".repeat(32);
        let both = config(&["--wrapping-key", &hex, "--wrapping-key-file", "/k"]);
        assert!(both.is_err_and(|e| e.contains("set only one")));
        let key_and_kms = config(&["--wrapping-key", &hex, "--kms-key-id", "alias/x"]);
        assert!(key_and_kms.is_err_and(|e| e.contains("set only one")));
        let c = config(&["--wrapping-key", &hex]).unwrap();
        assert_eq!(c.require_wrapping_source().await.unwrap().kind(), "local");
        let c = config(&["--wrapping-key", "abc"]).unwrap();
        assert!(c.require_wrapping_source().await.is_err());
        assert!(config(&[])
            .unwrap()
            .require_wrapping_source()
            .await
            .is_err());
        let bad_region = config(&["--phone-region", "XX"]).unwrap();
        let local = WrappingSource::Local(WrappingKey::generate());
        assert!(bad_region.server_settings(local).is_err());
    }
}
