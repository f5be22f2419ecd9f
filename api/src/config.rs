//! Configuration, all of it from the environment (`BUNKER_*`). Secrets are held as `SecretString`
//! so they never print.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bunker_keys::{KeyError, WrappingKey};
use secrecy::SecretString;

use crate::app::ServerSettings;
use crate::vault::{Normalizer, VaultSettings};
use crate::wrapping::WrappingSource;

/// Every setting Bunker reads. README lists them.
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
    /// `BUNKER_PHONE_REGION`: how phone numbers without a country code are read (default `GB`).
    pub phone_region: String,
    /// `BUNKER_USER_VERSIONS`: versions of a profile kept, the current one included (default 10).
    pub versions_kept: usize,
    /// `BUNKER_SWEEP_SECONDS`: how often expired users are forgotten (default 60).
    pub sweep_seconds: usize,
    /// `BUNKER_KEY_REFRESH_SECONDS`: how often servers look for a new master-key version (default 30).
    pub key_refresh_seconds: usize,
    /// `BUNKER_LIST_USERS`: whether BulkListUsers and BulkListAllUsers work (default off).
    pub list_users: bool,
    /// `BUNKER_XTOKEN_MAX_SECONDS`: the longest a role or user token may live (default 1 day).
    pub xtoken_max_seconds: usize,
    /// `BUNKER_AUDIT_CHAIN_SECONDS`: how often audit events are linked into the chain (default 10).
    pub audit_chain_seconds: usize,
    /// `BUNKER_AUDIT_CHAIN_HORIZON_SECONDS`: how old an event must be to be linked (default 300).
    pub audit_chain_horizon_seconds: usize,
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
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests). Empty means unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let number = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(ConfigError::Invalid {
                        name,
                        expected: "a positive whole number",
                    }),
            }
        };
        Ok(Config {
            database_url: get("BUNKER_DATABASE_URL").map(SecretString::from),
            listen: get("BUNKER_LISTEN").unwrap_or_else(|| "127.0.0.1:3000".to_owned()),
            domains: get("BUNKER_DOMAIN")
                .map(|v| v.split(',').map(|d| d.trim().to_owned()).collect())
                .unwrap_or_default(),
            root_token: get("BUNKER_ROOT_TOKEN").map(SecretString::from),
            max_body_bytes: number("BUNKER_MAX_BODY_BYTES", 1024 * 1024)?,
            pool_size: number("BUNKER_DB_POOL_SIZE", 16)?,
            data_dir: get("BUNKER_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("bunker-data")),
            pg_bindir: get("BUNKER_PG_BINDIR").map(PathBuf::from),
            wrapping_key: match (
                get("BUNKER_WRAPPING_KEY"),
                get("BUNKER_WRAPPING_KEY_FILE"),
                get("BUNKER_KMS_KEY_ID"),
            ) {
                (Some(value), None, None) => {
                    Some(WrappingKeySource::Value(SecretString::from(value)))
                }
                (None, Some(path), None) => Some(WrappingKeySource::File(PathBuf::from(path))),
                (None, None, Some(key_id)) => Some(WrappingKeySource::Kms {
                    key_id,
                    endpoint: get("BUNKER_KMS_ENDPOINT"),
                }),
                (None, None, None) => None,
                _ => return Err(ConfigError::TwoWrappingKeys),
            },
            phone_region: get("BUNKER_PHONE_REGION").unwrap_or_else(|| "GB".to_owned()),
            versions_kept: number("BUNKER_USER_VERSIONS", 10)?,
            sweep_seconds: number("BUNKER_SWEEP_SECONDS", 60)?,
            key_refresh_seconds: number("BUNKER_KEY_REFRESH_SECONDS", 30)?,
            list_users: match get("BUNKER_LIST_USERS").map(|v| v.trim().to_ascii_lowercase()) {
                None => false,
                Some(v) if matches!(v.as_str(), "true" | "on" | "yes" | "1") => true,
                Some(v) if matches!(v.as_str(), "false" | "off" | "no" | "0") => false,
                Some(_) => {
                    return Err(ConfigError::Invalid {
                        name: "BUNKER_LIST_USERS",
                        expected: "true or false",
                    })
                }
            },
            xtoken_max_seconds: number("BUNKER_XTOKEN_MAX_SECONDS", 24 * 3600)?,
            audit_chain_seconds: number("BUNKER_AUDIT_CHAIN_SECONDS", 10)?,
            audit_chain_horizon_seconds: number("BUNKER_AUDIT_CHAIN_HORIZON_SECONDS", 300)?,
        })
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
                crate::wrapping::kms::KmsWrapper::new(key_id.clone(), endpoint.clone()).await,
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
            },
            sweep_interval: Duration::from_secs(self.sweep_seconds as u64),
            key_refresh_interval: self.key_refresh_interval(),
            audit_chain_interval: Duration::from_secs(self.audit_chain_seconds.max(1) as u64),
            audit_chain_horizon: self.audit_chain_horizon(),
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
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
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
        let c = config(&[("BUNKER_DOMAIN", "a.example.com, b.example.com")]).ok();
        assert_eq!(
            c.map(|c| c.domains),
            Some(vec!["a.example.com".to_owned(), "b.example.com".to_owned()])
        );
    }

    #[test]
    fn malformed_numbers_are_refused() {
        assert!(config(&[("BUNKER_MAX_BODY_BYTES", "lots")]).is_err());
        assert!(config(&[("BUNKER_DB_POOL_SIZE", "0")]).is_err());
        assert!(config(&[("BUNKER_USER_VERSIONS", "none")]).is_err());
        assert!(config(&[("BUNKER_LIST_USERS", "maybe")]).is_err());
        assert!(config(&[("BUNKER_LIST_USERS", "true")]).is_ok_and(|c| c.list_users));
        assert!(config(&[]).is_ok_and(|c| !c.list_users));
    }

    #[tokio::test]
    async fn wrapping_key_comes_from_one_place_and_must_be_well_formed() {
        let hex = "0f".repeat(32);
        let both = config(&[
            ("BUNKER_WRAPPING_KEY", &hex),
            ("BUNKER_WRAPPING_KEY_FILE", "/k"),
        ]);
        assert!(matches!(both, Err(ConfigError::TwoWrappingKeys)));
        let key_and_kms = config(&[
            ("BUNKER_WRAPPING_KEY", &hex),
            ("BUNKER_KMS_KEY_ID", "alias/x"),
        ]);
        assert!(matches!(key_and_kms, Err(ConfigError::TwoWrappingKeys)));
        let c = config(&[("BUNKER_WRAPPING_KEY", &hex)]).unwrap();
        assert_eq!(c.require_wrapping_source().await.unwrap().kind(), "local");
        let c = config(&[("BUNKER_WRAPPING_KEY", "abc")]).unwrap();
        assert!(c.require_wrapping_source().await.is_err());
        assert!(config(&[])
            .unwrap()
            .require_wrapping_source()
            .await
            .is_err());
        let bad_region = config(&[("BUNKER_PHONE_REGION", "XX")]).unwrap();
        let local = WrappingSource::Local(WrappingKey::generate());
        assert!(bad_region.server_settings(local).is_err());
    }
}
