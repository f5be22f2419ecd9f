//! Key administration: loading the master keys at start, recovering them from Shamir shares,
//! re-wrapping them under a new wrapping source, and rotating the master key. Shared by
//! `SystemGenerateWrappingKey` and the `bunker keys` commands. Every operation is audited in the
//! main tenant's trail.

mod reencrypt;
mod tenant;
pub mod wrapping;

pub use reencrypt::{Progress, ReencryptReport};
pub use tenant::{describe as describe_tenant_keys, TenantKeyStatus, TenantKeyVersion, WrapWith};

pub use crate::core::SharedKeyring;
use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::keys::{self, NewMasterKey, StoredMasterKey};
use bunker_db::{Database, DbError, TenantId};
use bunker_keys::{recovery, KeyError, Keyring, MasterKey, WrapPurpose};
use uuid::Uuid;

use crate::access::Operation;
use crate::keys::wrapping::{WrapError, WrappingSource};

/// Why a key operation failed. Never contains key material or shares.
#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    #[error("the database has no master key: run `bunker init`")]
    NoMasterKey,
    #[error("this installation has no recovery shares")]
    NoRecovery,
    #[error("Master key mismatch: the shares do not open this installation's master key")]
    Mismatch,
    #[error(transparent)]
    Shares(KeyError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Wrap(#[from] WrapError),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl SharedKeyring {
    /// Loads the master keys again if their versions changed (a rotation by another process).
    pub async fn refresh(
        &self,
        db: &Database,
        source: &WrappingSource,
    ) -> Result<bool, KeyAdminError> {
        let rows = held_rows(db).await?;
        let versions: Vec<i32> = rows.iter().rev().map(|r| r.version).collect();
        if versions == self.get().versions() {
            return Ok(false);
        }
        let installation = db.installation_id().await?;
        let mut masters = Vec::with_capacity(rows.len());
        for row in &rows {
            masters.push(
                source
                    .unwrap(row.version, &row.wrapped, &row.source, installation)
                    .await?,
            );
        }
        self.set(Keyring::new(masters)?);
        Ok(true)
    }
}

/// The master key rows a server holds: every version not retired, and version 1, whose derived
/// keys the blind indexes keep.
async fn held_rows(db: &Database) -> Result<Vec<StoredMasterKey>, KeyAdminError> {
    let rows: Vec<StoredMasterKey> = db.master_keys().await?;
    let first = rows.first().map(|r| r.version);
    let held: Vec<StoredMasterKey> = rows
        .into_iter()
        .filter(|r| !r.retired || Some(r.version) == first)
        .collect();
    if held.is_empty() {
        return Err(KeyAdminError::NoMasterKey);
    }
    Ok(held)
}

/// Unwraps the held master keys with the configured source; returns them with the installation id.
pub async fn load_masters(
    db: &Database,
    source: &WrappingSource,
) -> Result<(Vec<MasterKey>, Uuid), KeyAdminError> {
    let installation = db.installation_id().await?;
    let mut masters = Vec::new();
    for row in held_rows(db).await? {
        masters.push(
            source
                .unwrap(row.version, &row.wrapped, &row.source, installation)
                .await?,
        );
    }
    Ok((masters, installation))
}

/// The keyring of the held master keys.
pub async fn load_keyring(
    db: &Database,
    source: &WrappingSource,
) -> Result<(Keyring, Uuid), KeyAdminError> {
    let (masters, installation) = load_masters(db, source).await?;
    Ok((Keyring::new(masters)?, installation))
}

/// Recovers the held master keys from three (or more) named recovery shares.
pub async fn recover_masters(
    db: &Database,
    shares: &[(&str, &str)],
) -> Result<Vec<MasterKey>, KeyAdminError> {
    let recovery_key = recovery::recover(shares).map_err(KeyAdminError::Shares)?;
    let mut masters = Vec::new();
    for row in held_rows(db).await? {
        let wrapped = row.recovery_wrapped.ok_or(KeyAdminError::NoRecovery)?;
        let master =
            MasterKey::unwrap_for(row.version, &wrapped, &recovery_key, WrapPurpose::Recovery)
                .map_err(|_| KeyAdminError::Mismatch)?;
        masters.push(master);
    }
    Ok(masters)
}

/// Re-wraps `masters` under `target` and records the event, in one transaction. No data key
/// changes: nothing is re-encrypted.
pub async fn rewrap_masters(
    db: &Database,
    masters: &[MasterKey],
    target: &WrappingSource,
    installation: Uuid,
    performer: Performer,
    action: &'static str,
) -> Result<(), KeyAdminError> {
    let mut wrapped = Vec::with_capacity(masters.len());
    for master in masters {
        wrapped.push((master.version(), target.wrap(master, installation).await?));
    }
    let source = target.kind();
    db.in_tenant(TenantId::MAIN, move |tx| {
        Box::pin(async move {
            for (version, bytes) in &wrapped {
                if !keys::rewrap(tx, *version, bytes, source).await? {
                    return Err(KeyAdminError::NoMasterKey);
                }
            }
            let versions: Vec<String> = wrapped.iter().map(|(v, _)| format!("v{v}")).collect();
            let event = AuditEvent::about(
                performer,
                action,
                format!("master-keys:{}:{source}", versions.join(",")),
            );
            audit::record(tx, &event).await?;
            Ok(())
        })
    })
    .await
}

/// Adds a new master-key version, wrapped by `source` and by the recovery key rebuilt from
/// `shares` (which must open the current version). New values are sealed with it from then on;
/// `bunker keys reencrypt` moves existing ones.
pub async fn rotate_master(
    db: &Database,
    source: &WrappingSource,
    shares: &[(&str, &str)],
) -> Result<i32, KeyAdminError> {
    let recovery_key = recovery::recover(shares).map_err(KeyAdminError::Shares)?;
    let (masters, installation) = load_masters(db, source).await?;
    let current = masters
        .iter()
        .max_by_key(|m| m.version())
        .ok_or(KeyAdminError::NoMasterKey)?;
    let rows = held_rows(db).await?;
    let current_row = rows
        .iter()
        .find(|r| r.version == current.version())
        .ok_or(KeyAdminError::NoMasterKey)?;
    let recovery_wrapped = current_row
        .recovery_wrapped
        .as_ref()
        .ok_or(KeyAdminError::NoRecovery)?;
    let recovered = MasterKey::unwrap_for(
        current.version(),
        recovery_wrapped,
        &recovery_key,
        WrapPurpose::Recovery,
    )
    .map_err(|_| KeyAdminError::Mismatch)?;
    if !recovered.same_as(current) {
        return Err(KeyAdminError::Mismatch);
    }
    let all_versions = db.master_keys().await?;
    let version = all_versions.iter().map(|r| r.version).max().unwrap_or(0) + 1;
    let master = MasterKey::generate(version);
    let new_key = NewMasterKey {
        wrapped: source.wrap(&master, installation).await?,
        source: source.kind(),
        recovery_wrapped: master.wrap_for(&recovery_key, WrapPurpose::Recovery)?,
    };
    db.in_tenant(TenantId::MAIN, move |tx| {
        Box::pin(async move {
            keys::insert_version(tx, version, &new_key).await?;
            let event = AuditEvent::about(
                Performer::Operator,
                Operation::KeysRotateMaster.audit_action(),
                format!("master-key:v{version}"),
            );
            audit::record(tx, &event).await?;
            Ok::<_, KeyAdminError>(())
        })
    })
    .await?;
    Ok(version)
}
