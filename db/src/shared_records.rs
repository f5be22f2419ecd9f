//! Shared records: time-limited views of a user's data, reached by the holder of a uuid whose
//! SHA-256 alone is stored. Created in the user's tenant transaction; found by the public
//! SharedRecordGet through [`Database::shared_record_tenant`], the one look-up that runs with no
//! tenant set (see the capability policy in `migrations/V22__sessions_shared_records_files.sql`).

use uuid::Uuid;

use crate::{Database, DbError, TenantId, TenantTx};

/// A stored shared record.
#[derive(Clone, Debug)]
pub struct StoredSharedRecord {
    pub id: Uuid,
    pub token: Uuid,
    pub sealed: Vec<u8>,
}

/// Stores a shared record of `token` living `seconds`.
pub async fn insert(
    tx: &TenantTx<'_>,
    id: Uuid,
    record_hash: &[u8],
    token: Uuid,
    sealed: &[u8],
    seconds: i64,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO shared_records (tenant_id, id, record_hash, token, sealed, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::bigint))",
        &[&tx.tenant().0, &id, &record_hash, &token, &sealed, &seconds],
    )
    .await?;
    Ok(())
}

/// The live shared record with `record_hash` in the transaction's tenant.
pub async fn get(
    tx: &TenantTx<'_>,
    record_hash: &[u8],
) -> Result<Option<StoredSharedRecord>, DbError> {
    tx.query_opt(
        "SELECT id, token, sealed FROM shared_records WHERE record_hash = $1 AND expires_at > now()",
        &[&record_hash],
    )
    .await?
    .map(|row| {
        Ok(StoredSharedRecord {
            id: row.try_get(0)?,
            token: row.try_get(1)?,
            sealed: row.try_get(2)?,
        })
    })
    .transpose()
}

/// Deletes up to `limit` shared records past their final time; how many.
pub async fn purge_expired(tx: &TenantTx<'_>, limit: i64) -> Result<u64, DbError> {
    tx.execute(
        "DELETE FROM shared_records WHERE id IN (
             SELECT id FROM shared_records WHERE expires_at <= now()
              ORDER BY expires_at LIMIT $1)",
        &[&limit],
    )
    .await
}

impl Database {
    /// The tenant of the live shared record whose uuid hashes to `record_hash`, if any: read with
    /// no tenant set and `bunker.shared_record` set transaction-locally to the hash, so that the
    /// capability policy shows that one row and no other.
    pub async fn shared_record_tenant(
        &self,
        record_hash: &[u8; 32],
    ) -> Result<Option<TenantId>, DbError> {
        self.by_capability(
            "bunker.shared_record",
            "SELECT tenant_id FROM shared_records WHERE record_hash = $1 AND expires_at > now()",
            record_hash,
        )
        .await?
        .map(|row| Ok(TenantId(row.try_get(0)?)))
        .transpose()
    }
}

/// A user's live shared record as listed: its row id, what is sealed, and when it was made and
/// ends (Unix seconds).
#[derive(Clone, Debug)]
pub struct ListedSharedRecord {
    pub id: Uuid,
    pub sealed: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A user's live shared records, newest first, at most `limit`.
pub async fn of_user(
    tx: &TenantTx<'_>,
    token: Uuid,
    limit: i64,
) -> Result<Vec<ListedSharedRecord>, DbError> {
    tx.query(
        "SELECT id, sealed, extract(epoch FROM created_at)::bigint,
                extract(epoch FROM expires_at)::bigint
           FROM shared_records WHERE token = $1 AND expires_at > now()
          ORDER BY created_at DESC LIMIT $2",
        &[&token, &limit],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(ListedSharedRecord {
            id: row.try_get(0)?,
            sealed: row.try_get(1)?,
            created_at: row.try_get(2)?,
            expires_at: row.try_get(3)?,
        })
    })
    .collect()
}
