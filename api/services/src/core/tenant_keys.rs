//! Each tenant's keys, held in memory for a bounded time: unwrapped from their rows (by the master
//! key, or by the tenant's own AWS KMS key) on first use, kept for `BUNKER_TENANT_KEY_CACHE_SECONDS`
//! (five minutes by default), then dropped, which zeroizes them. So a tenant whose KMS key is
//! disabled or whose grant is revoked stops being served within that bound on every server, with
//! a 503 naming the cause, and is served again once KMS answers. A failed load is remembered for a
//! few seconds, so that a refused tenant's requests do not each call KMS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bunker_db::tenant_keys::{StoredTenantKey, Wrapping};
use bunker_db::{Database, TenantId};
use bunker_keys::{Keyring, TenantKey, TenantKeys};
use uuid::Uuid;

use crate::metrics::ServiceMetrics;

/// How long a failed load is remembered before the next request tries again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(3);

/// Why a tenant's keys cannot be had now. Shown to callers (no key material, no KMS text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// KMS answered no: the key is disabled, pending deletion or unknown, or access was revoked.
    KmsRefused,
    /// KMS could not be reached in time.
    KmsUnreachable,
    /// The tenant's key is wrapped by KMS, and this build or server has no KMS client.
    NoKms,
    /// The tenant had keys of its own and its key rows are gone (restored without them).
    Missing,
}

impl Unavailable {
    pub fn describe(self) -> &'static str {
        match self {
            Unavailable::KmsRefused => {
                "the tenant's AWS KMS key refused to decrypt them (the key is disabled, pending \
                 deletion or unknown, or Bunker's access to it was revoked)"
            }
            Unavailable::KmsUnreachable => "AWS KMS could not be reached",
            Unavailable::NoKms => "they are wrapped by AWS KMS, which this server cannot use",
            Unavailable::Missing => {
                "the tenant's key rows are missing from the database (restored without them?)"
            }
        }
    }
}

/// Why loading failed.
#[derive(Debug)]
pub(crate) enum LoadError {
    Unavailable(Unavailable),
    Database(bunker_db::DbError),
    Keys(bunker_keys::KeyError),
}

enum Entry {
    Ready {
        keys: Arc<TenantKeys>,
        until: Instant,
    },
    Failed {
        cause: Unavailable,
        until: Instant,
    },
}

/// What loads and caches the tenants' keys; cheap to clone (shared).
#[derive(Clone)]
pub struct TenantKeyCache {
    inner: Arc<Inner>,
}

struct Inner {
    entries: RwLock<HashMap<i64, Entry>>,
    /// One load at a time per tenant: the others wait for it instead of calling KMS too.
    loading: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    lifetime: Duration,
    kms: Kms,
}

/// The client for tenants' KMS keys, made on first use (most installations never need it).
pub(crate) struct Kms {
    endpoint: Option<String>,
    #[cfg(feature = "kms")]
    client: tokio::sync::OnceCell<crate::keys::wrapping::kms::TenantKms>,
}

impl Kms {
    #[cfg(feature = "kms")]
    pub(crate) async fn client(&self) -> Option<&crate::keys::wrapping::kms::TenantKms> {
        Some(
            self.client
                .get_or_init(|| crate::keys::wrapping::kms::TenantKms::new(self.endpoint.clone()))
                .await,
        )
    }
}

/// The encryption context a tenant key version is wrapped under by KMS: KMS refuses to decrypt it
/// under any other installation, tenant or version (and CloudTrail shows which tenant asked).
pub(crate) fn kms_context(
    installation: Uuid,
    tenant: TenantId,
    version: i32,
) -> Vec<(&'static str, String)> {
    vec![
        ("bunker:installation", installation.to_string()),
        ("bunker:tenant", tenant.0.to_string()),
        ("bunker:tenant-key-version", version.to_string()),
    ]
}

/// Drops expired entries every few seconds while the cache is in use anywhere.
pub(crate) fn spawn_eviction(cache: &TenantKeyCache) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let every =
        (cache.inner.lifetime / 4).clamp(Duration::from_millis(250), Duration::from_secs(15));
    let weak = Arc::downgrade(&cache.inner);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match weak.upgrade() {
                Some(inner) => TenantKeyCache { inner }.evict_expired(),
                None => break,
            }
        }
    });
}

impl TenantKeyCache {
    /// A cache keeping keys for `lifetime`, with KMS (if needed) at `kms_endpoint`.
    pub fn new(lifetime: Duration, kms_endpoint: Option<String>) -> Self {
        TenantKeyCache {
            inner: Arc::new(Inner {
                entries: RwLock::new(HashMap::new()),
                loading: Mutex::new(HashMap::new()),
                lifetime,
                kms: Kms {
                    endpoint: kms_endpoint,
                    #[cfg(feature = "kms")]
                    client: tokio::sync::OnceCell::new(),
                },
            }),
        }
    }

    /// How long keys are kept.
    pub fn lifetime(&self) -> Duration {
        self.inner.lifetime
    }

    pub(crate) fn kms(&self) -> &Kms {
        &self.inner.kms
    }

    /// The cached answer for `tenant`, if it is still fresh.
    fn cached(&self, tenant: TenantId) -> Option<Result<Arc<TenantKeys>, Unavailable>> {
        let entries = self.inner.entries.read().ok()?;
        let now = Instant::now();
        match entries.get(&tenant.0)? {
            Entry::Ready { keys, until } if *until > now => Some(Ok(keys.clone())),
            Entry::Failed { cause, until } if *until > now => Some(Err(*cause)),
            _ => None,
        }
    }

    /// Forgets `tenant`'s keys (after this server changed them), so the next use loads them.
    pub fn forget(&self, tenant: TenantId) {
        if let Ok(mut entries) = self.inner.entries.write() {
            entries.remove(&tenant.0);
        }
    }

    /// Drops every entry past its time (zeroizing the keys once the last request holding them
    /// ends). Run periodically, so that keys do not outlive their bound on an idle server.
    pub fn evict_expired(&self) {
        let now = Instant::now();
        if let Ok(mut entries) = self.inner.entries.write() {
            entries.retain(|_, entry| match entry {
                Entry::Ready { until, .. } | Entry::Failed { until, .. } => *until > now,
            });
        }
    }

    /// `tenant`'s keys: from the cache, or loaded (one load per tenant at a time).
    pub(crate) async fn get(
        &self,
        tenant: TenantId,
        db: &Database,
        keyring: &Keyring,
        metrics: &ServiceMetrics,
    ) -> Result<Arc<TenantKeys>, LoadError> {
        if let Some(cached) = self.cached(tenant) {
            return cached.map_err(LoadError::Unavailable);
        }
        let gate = {
            let mut loading = self
                .inner
                .loading
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            loading.entry(tenant.0).or_default().clone()
        };
        let _one_load = gate.lock().await;
        if let Some(cached) = self.cached(tenant) {
            return cached.map_err(LoadError::Unavailable);
        }
        // Kept from before the rows are read, however long KMS then takes.
        let now = Instant::now();
        let loaded = self.load(tenant, db, keyring, metrics).await;
        let (entry, answer) = match loaded {
            Ok((keys, valid_for)) => {
                metrics.tenant_key_loads.with_label_values(&["ok"]).inc();
                let keys = Arc::new(keys);
                (
                    Entry::Ready {
                        keys: keys.clone(),
                        until: now + valid_for,
                    },
                    Ok(keys),
                )
            }
            Err(LoadError::Unavailable(cause)) => {
                metrics
                    .tenant_key_loads
                    .with_label_values(&["unavailable"])
                    .inc();
                (
                    Entry::Failed {
                        cause,
                        until: now + RETRY_AFTER_FAILURE.min(self.inner.lifetime),
                    },
                    Err(LoadError::Unavailable(cause)),
                )
            }
            Err(other) => {
                metrics
                    .tenant_key_loads
                    .with_label_values(&["failed"])
                    .inc();
                return Err(other);
            }
        };
        if let Ok(mut entries) = self.inner.entries.write() {
            entries.insert(tenant.0, entry);
        }
        answer
    }

    /// Reads and unwraps `tenant`'s held key versions; how long the result may be kept.
    async fn load(
        &self,
        tenant: TenantId,
        db: &Database,
        keyring: &Keyring,
        metrics: &ServiceMetrics,
    ) -> Result<(TenantKeys, Duration), LoadError> {
        let (rows, own_keys) = db
            .held_tenant_keys(tenant)
            .await
            .map_err(LoadError::Database)?;
        let lifetime = self.inner.lifetime;
        if rows.is_empty() {
            if own_keys {
                // Its key rows are gone (a restore without them): never master-derived keys.
                return Err(LoadError::Unavailable(Unavailable::Missing));
            }
            // A tenant made before tenant keys, not yet given one by `bunker keys reencrypt`.
            return Ok((keyring.tenant_keys(tenant.0), lifetime));
        }
        let installation = if rows.iter().any(|r| matches!(r.wrapping, Wrapping::Kms(_))) {
            Some(db.installation_id().await.map_err(LoadError::Database)?)
        } else {
            None
        };
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            keys.push(
                self.unwrap_row(tenant, row, keyring, installation, metrics)
                    .await?,
            );
        }
        assemble(tenant, &rows, &keys, keyring, lifetime)
    }

    /// One version in clear.
    pub(crate) async fn unwrap_row(
        &self,
        tenant: TenantId,
        row: &StoredTenantKey,
        keyring: &Keyring,
        installation: Option<Uuid>,
        metrics: &ServiceMetrics,
    ) -> Result<TenantKey, LoadError> {
        match &row.wrapping {
            Wrapping::Master(version) => {
                let master = keyring
                    .master(*version)
                    .ok_or(LoadError::Keys(bunker_keys::KeyError::WrongWrappingKey))?;
                TenantKey::unwrap(row.version, &row.wrapped, master, tenant.0)
                    .map_err(LoadError::Keys)
            }
            Wrapping::Kms(key_id) => {
                let installation =
                    installation.ok_or(LoadError::Unavailable(Unavailable::NoKms))?;
                self.kms_unwrap(tenant, row, key_id, installation, metrics)
                    .await
            }
        }
    }

    #[cfg(feature = "kms")]
    async fn kms_unwrap(
        &self,
        tenant: TenantId,
        row: &StoredTenantKey,
        key_id: &str,
        installation: Uuid,
        metrics: &ServiceMetrics,
    ) -> Result<TenantKey, LoadError> {
        use crate::keys::wrapping::kms::KmsFailure;
        let client = self
            .inner
            .kms
            .client()
            .await
            .ok_or(LoadError::Unavailable(Unavailable::NoKms))?;
        let context = kms_context(installation, tenant, row.version);
        match client.decrypt(key_id, &row.wrapped, &context).await {
            Ok(plain) => {
                metrics
                    .kms_requests
                    .with_label_values(&["decrypt", "ok"])
                    .inc();
                TenantKey::from_unwrapped(row.version, &plain).map_err(LoadError::Keys)
            }
            Err(failure) => {
                let (outcome, cause) = match failure {
                    KmsFailure::Refused(_) => ("refused", Unavailable::KmsRefused),
                    KmsFailure::Unreachable(_) => ("unreachable", Unavailable::KmsUnreachable),
                };
                metrics
                    .kms_requests
                    .with_label_values(&["decrypt", outcome])
                    .inc();
                tracing::warn!(tenant = tenant.0, version = row.version, error = %failure,
                    "a tenant's key could not be unwrapped by AWS KMS");
                Err(LoadError::Unavailable(cause))
            }
        }
    }

    #[cfg(not(feature = "kms"))]
    async fn kms_unwrap(
        &self,
        _tenant: TenantId,
        _row: &StoredTenantKey,
        _key_id: &str,
        _installation: Uuid,
        _metrics: &ServiceMetrics,
    ) -> Result<TenantKey, LoadError> {
        Err(LoadError::Unavailable(Unavailable::NoKms))
    }
}

/// The tenant's keys from its unwrapped versions (`keys[i]` is `rows[i]`'s, newest first): sealing
/// with the newest version already active, opening with all of them (and with the master-derived
/// keys while the tenant may still have values sealed with those). Kept until a pending version
/// becomes active, if that comes first.
fn assemble(
    tenant: TenantId,
    rows: &[StoredTenantKey],
    keys: &[TenantKey],
    keyring: &Keyring,
    lifetime: Duration,
) -> Result<(TenantKeys, Duration), LoadError> {
    let legacy = rows
        .iter()
        .any(|r| r.opens_master_derived)
        .then_some(keyring);
    let pending_in = rows
        .iter()
        .filter(|r| r.active_in_ms > 0)
        .map(|r| Duration::from_millis(r.active_in_ms.unsigned_abs()))
        .min();
    let valid_for = pending_in.map_or(lifetime, |due| due.min(lifetime));
    let current = rows.iter().position(|r| r.active_in_ms <= 0);
    let tenant_keys = match current.and_then(|at| keys.get(at)) {
        Some(current) => {
            let others: Vec<&TenantKey> = keys
                .iter()
                .filter(|k| k.version() != current.version())
                .collect();
            TenantKeys::from_tenant_key(tenant.0, current, &others, legacy)
        }
        // Only a version not yet active: the tenant still seals with the master-derived keys,
        // and already opens what a server that sees the version active seals.
        None => {
            let opening: Vec<&TenantKey> = keys.iter().collect();
            TenantKeys::master_derived_opening(keyring, tenant.0, &opening)
        }
    };
    Ok((tenant_keys, valid_for))
}
