//! A tenant's own key (see `bunker_keys::TenantKey`): what wraps it (the master key, or an AWS KMS
//! key the tenant owns), its rotation, and giving one to a tenant made before tenant keys existed.
//! Root may do all of it in any tenant; a tenant's admin in its own tenant when the operator allows
//! it (`BUNKER_TENANT_KEY_ADMIN`). Every change is audited in the tenant's trail.

use std::time::Duration;

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::tenant_keys::{self, NewTenantKey, StoredTenantKey, Wrapping};
use bunker_db::TenantId;
use bunker_keys::{Keyring, TenantKey};
use bunker_tenancy::Caller;

use crate::access::{Command, Operation};
#[cfg(feature = "kms")]
use crate::core::tenant_keys::kms_context;
use crate::core::tenant_keys::Unavailable;
use crate::core::{Vault, VaultError};

/// How much later than one cache lifetime a new version becomes the one sealed with: every server
/// has loaded it by then.
const ACTIVATION_MARGIN: Duration = Duration::from_secs(2);

/// The longest KMS key id or ARN accepted (an alias ARN is well under it).
const MAX_KMS_KEY_ID: usize = 2048;

/// One version of a tenant's key, as shown (never the key).
#[derive(Clone, Debug)]
pub struct TenantKeyVersion {
    pub version: i32,
    /// `master` or `kms`.
    pub wrapping: &'static str,
    /// The KMS key, when a KMS key wraps it.
    pub kms_key_id: Option<String>,
    /// `current` (sealed with), `pending` (sealed with once every server has it), `held` (opens
    /// older values) or `retired` (destroyed).
    pub state: &'static str,
    /// Unix seconds.
    pub created_at: i64,
}

/// What a tenant's key is now.
#[derive(Clone, Debug)]
pub struct TenantKeyStatus {
    pub versions: Vec<TenantKeyVersion>,
    /// Values of the tenant may still be sealed with the keys once derived from the master key
    /// (until `bunker keys reencrypt` has re-sealed them).
    pub master_derived_values: bool,
    /// How long servers keep the tenant's keys unwrapped.
    pub cache_seconds: u64,
}

/// What should wrap a tenant's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WrapWith {
    Master,
    Kms(String),
}

impl WrapWith {
    /// `master`, or a KMS key id, ARN or alias (checked for shape only; KMS says whether it works).
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("master") {
            return Ok(WrapWith::Master);
        }
        let shaped = !text.is_empty()
            && text.len() <= MAX_KMS_KEY_ID
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:/.".contains(&b));
        if shaped {
            Ok(WrapWith::Kms(text.to_owned()))
        } else {
            Err(VaultError::BadRequest(
                "kmskeyid must be an AWS KMS key id, key ARN or alias (letters, digits and - _ : / .), or \"master\""
                    .to_owned(),
            ))
        }
    }
}

/// The versions as shown (`bunker keys status`, TenantKeyGet).
pub fn describe(rows: &[StoredTenantKey]) -> Vec<TenantKeyVersion> {
    let current = rows
        .iter()
        .filter(|r| !r.retired && r.active_in_ms <= 0)
        .map(|r| r.version)
        .max();
    rows.iter()
        .map(|row| TenantKeyVersion {
            version: row.version,
            wrapping: row.wrapping.kind(),
            kms_key_id: match &row.wrapping {
                Wrapping::Kms(id) => Some(id.clone()),
                Wrapping::Master(_) => None,
            },
            state: if row.retired {
                "retired"
            } else if row.active_in_ms > 0 {
                "pending"
            } else if Some(row.version) == current {
                "current"
            } else {
                "held"
            },
            created_at: row.created_at,
        })
        .collect()
}

/// The refusal of a key change for a tenant that has no key of its own yet.
fn no_key_yet() -> VaultError {
    VaultError::BadRequest(
        "This tenant has no key of its own yet: run `bunker keys reencrypt` once to give every \
         tenant made before tenant keys its own"
            .to_owned(),
    )
}

/// Locks the transaction's tenant (every change of its keys takes that lock first, as TenantDelete
/// does) and then its held versions, newest first.
async fn lock_keys(tx: &bunker_db::TenantTx<'_>) -> Result<Vec<StoredTenantKey>, VaultError> {
    if tenant_keys::lock_tenant(tx).await?.is_none() {
        return Err(VaultError::TenantNotFound);
    }
    Ok(tenant_keys::lock_held(tx).await?)
}

impl Vault {
    /// Whether `caller` may change its tenant's key: root, or the tenant's admin if allowed.
    fn may_manage_key(&self, caller: &Caller) -> Result<(), VaultError> {
        if caller.is_root() || (caller.is_admin() && self.settings.tenant_key_admin) {
            Ok(())
        } else if caller.is_admin() {
            Err(VaultError::Forbidden(
                "Only the root token may change a tenant's key on this server (BUNKER_TENANT_KEY_ADMIN)",
            ))
        } else {
            Err(VaultError::Forbidden(
                "Only an admin token may manage a tenant's key",
            ))
        }
    }

    /// The caller's tenant's key versions and what wraps each (any admin of the tenant).
    pub async fn tenant_key_status(&self, caller: &Caller) -> Result<TenantKeyStatus, VaultError> {
        if !caller.is_admin() {
            return Err(VaultError::Forbidden(
                "Only an admin token may manage a tenant's key",
            ));
        }
        let cache_seconds = self.tenant_keys.lifetime().as_secs();
        let rows = self
            .db
            .in_tenant(caller.tenant.id, |tx| {
                Box::pin(async move { Ok::<_, VaultError>(tenant_keys::all(tx).await?) })
            })
            .await?;
        Ok(TenantKeyStatus {
            master_derived_values: rows.is_empty() || rows.iter().any(|r| r.opens_master_derived),
            versions: describe(&rows),
            cache_seconds,
        })
    }

    /// One version in clear (KMS asked if a KMS key wraps it).
    async fn unwrap_version(
        &self,
        tenant: TenantId,
        row: &StoredTenantKey,
        keyring: &Keyring,
    ) -> Result<TenantKey, VaultError> {
        let installation = match row.wrapping {
            Wrapping::Kms(_) => Some(self.db.installation_id().await?),
            Wrapping::Master(_) => None,
        };
        Ok(self
            .tenant_keys
            .unwrap_row(tenant, row, keyring, installation, &self.metrics)
            .await?)
    }

    /// `key` wrapped as `with` says. For a KMS key, the wrapping is opened again and compared
    /// before it is returned: a key Bunker may encrypt with but not decrypt with is refused.
    async fn wrap_version(
        &self,
        tenant: TenantId,
        key: &TenantKey,
        with: &WrapWith,
        keyring: &Keyring,
    ) -> Result<(Vec<u8>, Wrapping), VaultError> {
        match with {
            WrapWith::Master => {
                let master = keyring.current();
                Ok((
                    key.wrap(master, tenant.0)?,
                    Wrapping::Master(master.version()),
                ))
            }
            WrapWith::Kms(key_id) => {
                let installation = self.db.installation_id().await?;
                let (wrapped, arn) = self
                    .kms_round_trip(tenant, key, key_id, installation)
                    .await?;
                Ok((wrapped, Wrapping::Kms(arn)))
            }
        }
    }

    #[cfg(feature = "kms")]
    async fn kms_round_trip(
        &self,
        tenant: TenantId,
        key: &TenantKey,
        key_id: &str,
        installation: uuid::Uuid,
    ) -> Result<(Vec<u8>, String), VaultError> {
        use crate::keys::wrapping::kms::KmsFailure;
        let client = self
            .tenant_keys
            .kms()
            .client()
            .await
            .ok_or(VaultError::TenantKeysUnavailable(Unavailable::NoKms))?;
        let context = kms_context(installation, tenant, key.version());
        let counted = |operation: &str, outcome: &Result<(), &KmsFailure>| {
            let outcome = match outcome {
                Ok(()) => "ok",
                Err(KmsFailure::Refused(_)) => "refused",
                Err(KmsFailure::Unreachable(_)) => "unreachable",
            };
            self.metrics
                .kms_requests
                .with_label_values(&[operation, outcome])
                .inc();
        };
        let refused = |failure: &KmsFailure| {
            tracing::warn!(tenant = tenant.0, error = %failure, "a tenant's KMS key could not be used");
            match failure {
                KmsFailure::Refused(_) => VaultError::BadRequest(
                    "AWS KMS refused to encrypt or decrypt with this key: it must be an enabled \
                     symmetric key whose key policy or grant lets Bunker's role use kms:Encrypt \
                     and kms:Decrypt; nothing was changed"
                        .to_owned(),
                ),
                KmsFailure::Unreachable(_) => {
                    VaultError::TenantKeysUnavailable(Unavailable::KmsUnreachable)
                }
            }
        };
        // An alias or key id is kept as the key's ARN: re-pointing the alias later does not move
        // the tenant's key to another KMS key.
        let arn = match client.key_arn(key_id).await {
            Ok(arn) => arn,
            Err(failure) => {
                counted("describe", &Err(&failure));
                return Err(refused(&failure));
            }
        };
        let key_id = arn.as_str();
        let wrapped = match client
            .encrypt(key_id, key.expose_for_wrapping(), &context)
            .await
        {
            Ok(wrapped) => {
                counted("encrypt", &Ok(()));
                wrapped
            }
            Err(failure) => {
                counted("encrypt", &Err(&failure));
                return Err(refused(&failure));
            }
        };
        match client.decrypt(key_id, &wrapped, &context).await {
            Ok(plain) => {
                counted("decrypt", &Ok(()));
                let back = TenantKey::from_unwrapped(key.version(), &plain)?;
                if !back.same_as(key) {
                    return Err(VaultError::BadRequest(
                        "AWS KMS gave back another key than it was given; nothing was changed"
                            .to_owned(),
                    ));
                }
                Ok((wrapped, arn))
            }
            Err(failure) => {
                counted("decrypt", &Err(&failure));
                Err(refused(&failure))
            }
        }
    }

    #[cfg(not(feature = "kms"))]
    async fn kms_round_trip(
        &self,
        _tenant: TenantId,
        _key: &TenantKey,
        _key_id: &str,
        _installation: uuid::Uuid,
    ) -> Result<(Vec<u8>, String), VaultError> {
        Err(VaultError::TenantKeysUnavailable(Unavailable::NoKms))
    }

    /// Wraps every held version of the caller's tenant's key as `with` says: a KMS key the tenant
    /// owns, or the master key again. The new wrapping is checked to work first; the old one is
    /// replaced in one transaction (no copy under the previous wrapping stays in the live
    /// database). Other servers keep the keys they hold until their cache lifetime ends.
    pub async fn set_tenant_key_wrapping(
        &self,
        caller: &Caller,
        with: WrapWith,
    ) -> Result<TenantKeyStatus, VaultError> {
        self.may_manage_key(caller)?;
        let tenant = caller.tenant.id;
        let keyring = self.keyring.get();
        let rows = self.held_rows(tenant).await?;
        if rows.is_empty() {
            return Err(no_key_yet());
        }
        let mut rewrapped = Vec::with_capacity(rows.len());
        for row in &rows {
            let key = self.unwrap_version(tenant, row, &keyring).await?;
            let (wrapped, wrapping) = self.wrap_version(tenant, &key, &with, &keyring).await?;
            rewrapped.push((row.version, row.wrapped.clone(), wrapped, wrapping));
        }
        let actor = Performer::Token(caller.actor());
        // As stored: an alias is named by the key's ARN it resolved to.
        let target = match rewrapped.first().map(|r| &r.3) {
            Some(Wrapping::Kms(arn)) => format!("tenant-key:kms:{arn}"),
            _ => "tenant-key:master".to_owned(),
        };
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let held = lock_keys(tx).await?;
                    for (version, before, wrapped, wrapping) in &rewrapped {
                        let unchanged = held
                            .iter()
                            .any(|r| r.version == *version && &r.wrapped == before);
                        if !unchanged {
                            return Err(VaultError::KeyConflict);
                        }
                        tenant_keys::rewrap(tx, *version, wrapped, wrapping).await?;
                    }
                    if held.len() != rewrapped.len() {
                        return Err(VaultError::KeyConflict);
                    }
                    let event = AuditEvent::about(
                        actor,
                        Command::TenantKeySetWrapping.audit_action(),
                        target,
                    );
                    audit::record(tx, &event).await?;
                    Ok::<_, VaultError>(())
                })
            })
            .await?;
        self.tenant_keys.forget(tenant);
        self.tenant_key_status(caller).await
    }

    /// Adds the next version of the caller's tenant's key (same lookup keys, a new root), wrapped
    /// as the newest version is. It is sealed with once every server has loaded it (one cache
    /// lifetime); `bunker keys reencrypt` then re-seals what older versions sealed and retires them.
    pub async fn rotate_tenant_key(&self, caller: &Caller) -> Result<TenantKeyStatus, VaultError> {
        self.may_manage_key(caller)?;
        let tenant = caller.tenant.id;
        let keyring = self.keyring.get();
        let rows = self.held_rows(tenant).await?;
        let Some(newest) = rows.first() else {
            return Err(no_key_yet());
        };
        if newest.active_in_ms > 0 {
            return Err(VaultError::BadRequest(format!(
                "Version {} of this tenant's key is not in use yet (within {} s); rotate again after",
                newest.version,
                newest.active_in_ms.saturating_add(999) / 1000
            )));
        }
        let with = match &newest.wrapping {
            Wrapping::Master(_) => WrapWith::Master,
            Wrapping::Kms(id) => WrapWith::Kms(id.clone()),
        };
        let next = self
            .unwrap_version(tenant, newest, &keyring)
            .await?
            .rotated();
        let (wrapped, wrapping) = self.wrap_version(tenant, &next, &with, &keyring).await?;
        let new = NewTenantKey {
            version: next.version(),
            wrapped,
            wrapping,
            active_in_seconds: self.activation_delay_seconds().await?,
            opens_master_derived: newest.opens_master_derived,
        };
        let actor = Performer::Token(caller.actor());
        let (read_version, read_wrapped) = (newest.version, newest.wrapped.clone());
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    // The newest version must be as it was read: a change of wrapping (or another
                    // rotation) meanwhile would leave the new version wrapped as it no longer is.
                    let held = lock_keys(tx).await?;
                    let unchanged = held
                        .first()
                        .is_some_and(|r| r.version == read_version && r.wrapped == read_wrapped);
                    if !unchanged || !tenant_keys::insert(tx, tx.tenant(), &new).await? {
                        return Err(VaultError::KeyConflict);
                    }
                    let event = AuditEvent::about(
                        actor,
                        Command::TenantKeyRotate.audit_action(),
                        format!("tenant-key:v{}", new.version),
                    );
                    audit::record(tx, &event).await?;
                    Ok::<_, VaultError>(())
                })
            })
            .await?;
        self.tenant_keys.forget(tenant);
        self.tenant_key_status(caller).await
    }

    /// Seconds from now until a new version is sealed with: the longest cache lifetime of any
    /// server of the installation (this one's included), and a margin.
    async fn activation_delay_seconds(&self) -> Result<i64, VaultError> {
        // What the servers registered (the command line's own setting is not a server's).
        let registered = self.db.tenant_key_cache_max().await?;
        let longest = if registered > 0 {
            registered
        } else {
            i64::try_from(self.tenant_keys.lifetime().as_secs()).unwrap_or(i64::MAX)
        };
        Ok(longest.saturating_add(i64::try_from(ACTIVATION_MARGIN.as_secs()).unwrap_or(0)))
    }

    /// Records this server's cache lifetime (at start), so that new versions wait for it.
    pub async fn register_tenant_key_cache(&self) -> Result<(), bunker_db::DbError> {
        let own = i64::try_from(self.tenant_keys.lifetime().as_secs()).unwrap_or(i64::MAX);
        self.db.register_tenant_key_cache(own).await?;
        Ok(())
    }

    async fn held_rows(&self, tenant: TenantId) -> Result<Vec<StoredTenantKey>, VaultError> {
        Ok(self.db.held_tenant_keys(tenant).await?.0)
    }

    /// Gives `tenant` its first key if it has none (a tenant made before tenant keys): a random
    /// root with the lookup keys it has always had, wrapped by the newest master key, sealed with
    /// one cache lifetime from now. Returns whether it made one.
    pub async fn ensure_tenant_key(&self, tenant: TenantId) -> Result<bool, VaultError> {
        let keyring = self.keyring.get();
        let key = TenantKey::for_existing_tenant(&keyring, tenant.0);
        let master = keyring.current();
        let first = NewTenantKey {
            version: key.version(),
            wrapped: key.wrap(master, tenant.0)?,
            wrapping: Wrapping::Master(master.version()),
            active_in_seconds: self.activation_delay_seconds().await?,
            opens_master_derived: true,
        };
        let made = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let Some(own_keys) = tenant_keys::lock_tenant(tx).await? else {
                        return Ok(false);
                    };
                    if !tenant_keys::all(tx).await?.is_empty() {
                        return Ok(false);
                    }
                    // Had keys and lost them (a restore without its key rows): refused, never
                    // given master-derived lookup keys.
                    if own_keys {
                        return Err(VaultError::TenantKeysUnavailable(Unavailable::Missing));
                    }
                    let made = tenant_keys::insert(tx, tx.tenant(), &first).await?;
                    if made {
                        let event = AuditEvent::about(
                            Performer::Operator,
                            Operation::TenantKeyCreated.audit_action(),
                            "tenant-key:v1".to_owned(),
                        );
                        audit::record(tx, &event).await?;
                    }
                    Ok::<_, VaultError>(made)
                })
            })
            .await?;
        self.tenant_keys.forget(tenant);
        Ok(made)
    }

    /// How long until every version of `tenant` is sealed with (zero: none pending).
    pub async fn pending_for(&self, tenant: TenantId) -> Result<Duration, VaultError> {
        let rows = self.held_rows(tenant).await?;
        Ok(rows
            .iter()
            .map(|r| Duration::from_millis(r.active_in_ms.max(0).unsigned_abs()))
            .max()
            .unwrap_or_default())
    }

    /// After re-sealing `tenant`: re-wraps versions wrapped by an older master key with the newest,
    /// and, if nothing of the tenant is sealed with anything older than its current version, stops
    /// loading the master-derived keys for it and retires (destroys) its older versions.
    pub async fn finish_tenant_keys(&self, tenant: TenantId) -> Result<Vec<i32>, VaultError> {
        let keyring = self.keyring.get();
        let keys = self.keys(tenant).await?;
        let current = keys.records.current_version();
        let Some(current_tenant_version) = current.checked_sub(bunker_keys::TENANT_KEY_VERSIONS)
        else {
            return Ok(Vec::new());
        };
        let rows = self.held_rows(tenant).await?;
        let mut rewraps = Vec::new();
        for row in &rows {
            if let Wrapping::Master(version) = row.wrapping {
                if version != keyring.current().version() {
                    let key = self.unwrap_version(tenant, row, &keyring).await?;
                    let (wrapped, wrapping) = self
                        .wrap_version(tenant, &key, &WrapWith::Master, &keyring)
                        .await?;
                    rewraps.push((row.version, row.wrapped.clone(), wrapped, wrapping));
                }
            }
        }
        let retired = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let held = lock_keys(tx).await?;
                    for (version, before, wrapped, wrapping) in &rewraps {
                        if held
                            .iter()
                            .any(|r| r.version == *version && &r.wrapped == before)
                        {
                            tenant_keys::rewrap(tx, *version, wrapped, wrapping).await?;
                        }
                    }
                    if bunker_db::reseal::count_stale(tx, current).await? > 0 {
                        return Ok(Vec::new());
                    }
                    tenant_keys::forget_master_derived(tx).await?;
                    let retired = tenant_keys::retire_older(tx, current_tenant_version).await?;
                    for version in &retired {
                        let event = AuditEvent::about(
                            Performer::Operator,
                            Operation::TenantKeyRetired.audit_action(),
                            format!("tenant-key:v{version}"),
                        );
                        audit::record(tx, &event).await?;
                    }
                    Ok::<_, VaultError>(retired)
                })
            })
            .await?;
        self.tenant_keys.forget(tenant);
        Ok(retired)
    }

    /// Whether any tenant still depends on a master-key version older than `current`: a held
    /// version wrapped by one, values of the tenant still under master-derived keys, or no key of
    /// its own yet (such an older version must then not be retired).
    pub async fn tenant_keys_under_older_master(&self, current: i32) -> Result<bool, VaultError> {
        for tenant in self.db.tenant_ids().await? {
            let rows = self.held_rows(tenant).await?;
            if rows.is_empty()
                || rows.iter().any(|r| {
                    r.opens_master_derived
                        || matches!(r.wrapping, Wrapping::Master(v) if v != current)
                })
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
