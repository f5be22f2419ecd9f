//! Key administration: loading the master key at start, recovering it from Shamir shares, and
//! re-wrapping it under a new wrapping source. Shared by `SystemGenerateWrappingKey` and the
//! `bunker keys` commands. A re-wrap changes no data key: records stay as they are.

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::keys::{self, StoredMasterKey};
use bunker_db::{Database, DbError, TenantId};
use bunker_keys::{recovery, KeyError, MasterKey, WrapPurpose};
use uuid::Uuid;

use crate::wrapping::{WrapError, WrappingSource};

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
    Wrap(#[from] WrapError),
    #[error(transparent)]
    Database(#[from] DbError),
}

/// The master key version new data is sealed with: the newest one not retired.
pub async fn current_master_row(db: &Database) -> Result<StoredMasterKey, KeyAdminError> {
    db.master_keys()
        .await?
        .into_iter()
        .rev()
        .find(|k| !k.retired)
        .ok_or(KeyAdminError::NoMasterKey)
}

/// Unwraps the current master key with the configured source; returns it with the installation id.
pub async fn load_master(
    db: &Database,
    source: &WrappingSource,
) -> Result<(MasterKey, Uuid), KeyAdminError> {
    let installation = db.installation_id().await?;
    let row = current_master_row(db).await?;
    let master = source
        .unwrap(row.version, &row.wrapped, &row.source, installation)
        .await?;
    Ok((master, installation))
}

/// Recovers the current master key from three (or more) named recovery shares.
pub async fn recover_master(
    db: &Database,
    shares: &[(&str, &str)],
) -> Result<MasterKey, KeyAdminError> {
    let recovery_key = recovery::recover(shares).map_err(KeyAdminError::Shares)?;
    let row = current_master_row(db).await?;
    let wrapped = row.recovery_wrapped.ok_or(KeyAdminError::NoRecovery)?;
    MasterKey::unwrap_for(row.version, &wrapped, &recovery_key, WrapPurpose::Recovery)
        .map_err(|_| KeyAdminError::Mismatch)
}

/// Re-wraps `master` under `target` and records the event in the main tenant's audit trail, in one
/// transaction.
pub async fn rewrap_master(
    db: &Database,
    master: &MasterKey,
    target: &WrappingSource,
    installation: Uuid,
    performer: Performer,
    action: &'static str,
) -> Result<(), KeyAdminError> {
    let wrapped = target.wrap(master, installation).await?;
    let source = target.kind();
    let version = master.version();
    db.in_tenant(TenantId::MAIN, move |tx| {
        Box::pin(async move {
            if !keys::rewrap(tx, version, &wrapped, source).await? {
                return Err(KeyAdminError::NoMasterKey);
            }
            let event = AuditEvent {
                actor: performer,
                action,
                target: format!("master-key:v{version}:{source}"),
                user_token: None,
                details: None,
            };
            audit::record(tx, &event).await?;
            Ok(())
        })
    })
    .await
}
