//! Master key rows: the master key only ever appears here wrapped, by the wrapping source and by the
//! recovery key.

use tokio_postgres::Row;
use uuid::Uuid;

use crate::{Database, DbError, TenantTx};

/// A master key version as stored.
#[derive(Clone, Debug)]
pub struct StoredMasterKey {
    pub version: i32,
    /// Wrapped by the wrapping source.
    pub wrapped: Vec<u8>,
    /// `local` (a wrapping key) or `kms`.
    pub source: String,
    /// Wrapped by the recovery key, if the installation has recovery shares.
    pub recovery_wrapped: Option<Vec<u8>>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last (re-)wrapping.
    pub wrapped_at: i64,
    pub retired: bool,
}

/// A new master key version, wrapped twice.
#[derive(Clone, Debug)]
pub struct NewMasterKey {
    pub wrapped: Vec<u8>,
    pub source: &'static str,
    pub recovery_wrapped: Vec<u8>,
}

fn from_row(row: &Row) -> Result<StoredMasterKey, DbError> {
    Ok(StoredMasterKey {
        version: row.try_get("version")?,
        wrapped: row.try_get("wrapped")?,
        source: row.try_get("wrap_source")?,
        recovery_wrapped: row.try_get("recovery_wrapped")?,
        created_at: row.try_get("created")?,
        wrapped_at: row.try_get("wrapped_unix")?,
        retired: row.try_get("retired")?,
    })
}

pub(crate) const MASTER_KEY_COLUMNS: &str = "version, wrapped, wrap_source, recovery_wrapped,
     extract(epoch FROM created_at)::bigint AS created,
     extract(epoch FROM wrapped_at)::bigint AS wrapped_unix,
     retired_at IS NOT NULL AS retired";

impl Database {
    /// The installation's id (bound into KMS encryption contexts).
    pub async fn installation_id(&self) -> Result<Uuid, DbError> {
        let client = self.pool().get().await?;
        Ok(client
            .query_one("SELECT id FROM installation", &[])
            .await?
            .try_get(0)?)
    }

    /// Every master key version, oldest first.
    pub async fn master_keys(&self) -> Result<Vec<StoredMasterKey>, DbError> {
        let client = self.pool().get().await?;
        let sql = format!("SELECT {MASTER_KEY_COLUMNS} FROM master_keys ORDER BY version");
        client
            .query(&sql, &[])
            .await?
            .iter()
            .map(from_row)
            .collect()
    }
}

/// Stores a master key version wrapped anew (the key itself is unchanged). Returns whether the
/// version exists.
pub async fn rewrap(
    tx: &TenantTx<'_>,
    version: i32,
    wrapped: &[u8],
    source: &str,
) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "UPDATE master_keys SET wrapped = $2, wrap_source = $3, wrapped_at = now() WHERE version = $1",
            &[&version, &wrapped, &source],
        )
        .await?
        > 0)
}

/// Adds a master-key version (given only wrapped).
pub async fn insert_version(
    tx: &TenantTx<'_>,
    version: i32,
    key: &NewMasterKey,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO master_keys (version, wrapped, wrap_source, recovery_wrapped) VALUES ($1, $2, $3, $4)",
        &[&version, &key.wrapped, &key.source, &key.recovery_wrapped],
    )
    .await?;
    Ok(())
}

/// Marks a master-key version retired: nothing sealed with it remains.
pub async fn retire(tx: &TenantTx<'_>, version: i32) -> Result<(), DbError> {
    tx.execute(
        "UPDATE master_keys SET retired_at = now() WHERE version = $1 AND retired_at IS NULL",
        &[&version],
    )
    .await?;
    Ok(())
}
