//! Tokens: sealed values behind random handles. Values arrive sealed; this module never sees one.

use std::time::SystemTime;

use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A token to insert.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub uuid: Uuid,
    pub base: String,
    pub token_type: &'static str,
    pub record: Vec<u8>,
    /// Keyed hash of the value, for `unique` tokens.
    pub value_hash: Option<[u8; 32]>,
    pub sliding_seconds: Option<i64>,
    pub final_at: Option<SystemTime>,
}

/// A token as stored.
#[derive(Clone, Debug)]
pub struct StoredToken {
    pub uuid: Uuid,
    pub base: String,
    pub token_type: String,
    pub record: Vec<u8>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// Whether it has expired (and awaits the sweeper).
    pub expired: bool,
    /// Whether each read renews its expiry.
    pub sliding: bool,
}

/// Inserts tokens with their handles and uniqueness rows, in one statement, and returns the ones
/// inserted: a token whose format-preserving handle is already taken in the tenant (or by another
/// token of the same call) is left out with all its rows, so that the caller draws it again. Two
/// `unique` tokens for one value are a [`DbError::UniqueViolation`] on a `token_unique_*`
/// constraint (named after the partition's index).
pub async fn insert_tokens(tx: &TenantTx<'_>, tokens: &[NewToken]) -> Result<Vec<Uuid>, DbError> {
    let tenant = tx.tenant().0;
    let uuids: Vec<Uuid> = tokens.iter().map(|t| t.uuid).collect();
    let bases: Vec<&str> = tokens.iter().map(|t| t.base.as_str()).collect();
    let types: Vec<&str> = tokens.iter().map(|t| t.token_type).collect();
    let records: Vec<&[u8]> = tokens.iter().map(|t| t.record.as_slice()).collect();
    let hashes: Vec<Option<&[u8]>> = tokens
        .iter()
        .map(|t| t.value_hash.as_ref().map(|h| h.as_slice()))
        .collect();
    let sliding: Vec<Option<i64>> = tokens.iter().map(|t| t.sliding_seconds).collect();
    let finals: Vec<Option<SystemTime>> = tokens.iter().map(|t| t.final_at).collect();
    tx.query(
        "WITH handles AS (
             INSERT INTO token_handles (tenant_id, token_base, token_uuid)
             SELECT $1, h.base, h.uuid FROM UNNEST($3::text[], $2::uuid[]) AS h(base, uuid)
             ON CONFLICT DO NOTHING
             RETURNING token_uuid
         ), new_tokens AS (
             INSERT INTO tokens (tenant_id, token_uuid, token_base, token_type, record, value_hash,
                                 sliding_seconds, final_at, expires_at)
             SELECT $1, t.uuid, t.base, t.type, t.record, t.hash, t.sliding, t.final_at,
                    LEAST(t.final_at, now() + make_interval(secs => t.sliding))
               FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::bytea[], $6::bytea[], $7::bigint[], $8::timestamptz[])
                    AS t(uuid, base, type, record, hash, sliding, final_at)
              WHERE t.uuid IN (SELECT token_uuid FROM handles)
         ), unique_values AS (
             INSERT INTO token_unique (tenant_id, value_hash, token_uuid)
             SELECT $1, u.hash, u.uuid FROM UNNEST($6::bytea[], $2::uuid[]) AS u(hash, uuid)
              WHERE u.hash IS NOT NULL AND u.uuid IN (SELECT token_uuid FROM handles)
         )
         SELECT token_uuid FROM handles",
        &[&tenant, &uuids, &bases, &types, &records, &hashes, &sliding, &finals],
    )
    .await?
    .iter()
    .map(|row| Ok(row.try_get(0)?))
    .collect()
}

const TOKEN_COLUMNS: &str = "t.token_uuid, t.token_base, t.token_type, t.record,
     extract(epoch FROM t.expires_at)::bigint AS expires, COALESCE(t.expires_at <= now(), false) AS expired,
     t.sliding_seconds IS NOT NULL AS sliding";

fn from_row(row: &tokio_postgres::Row) -> Result<StoredToken, DbError> {
    Ok(StoredToken {
        uuid: row.try_get(0)?,
        base: row.try_get(1)?,
        token_type: row.try_get(2)?,
        record: row.try_get(3)?,
        expires_at: row.try_get(4)?,
        expired: row.try_get(5)?,
        sliding: row.try_get(6)?,
    })
}

/// The `unique` tokens already made for these value hashes: (hash, token).
pub async fn find_unique(
    tx: &TenantTx<'_>,
    hashes: &[&[u8]],
) -> Result<Vec<(Vec<u8>, StoredToken)>, DbError> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS}, u.value_hash FROM token_unique u
           JOIN tokens t ON t.token_uuid = u.token_uuid
          WHERE u.value_hash = ANY ($1)"
    );
    tx.query(&sql, &[&hashes])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(7)?, from_row(row)?)))
        .collect()
}

/// Restarts the expiry of tokens with new times (a `unique` token requested again).
pub async fn restart_expiry(
    tx: &TenantTx<'_>,
    uuids: &[Uuid],
    sliding_seconds: Option<i64>,
    final_at: Option<SystemTime>,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE tokens SET sliding_seconds = $2::bigint, final_at = $3::timestamptz,
                expires_at = LEAST($3::timestamptz, now() + make_interval(secs => $2::bigint))
          WHERE token_uuid = ANY ($1)",
        &[&uuids, &sliding_seconds, &final_at],
    )
    .await?;
    Ok(())
}

/// A token by its UUID (if `uuid` is given) or by its format-preserving handle.
pub async fn get(
    tx: &TenantTx<'_>,
    uuid: Option<Uuid>,
    base: &str,
) -> Result<Option<StoredToken>, DbError> {
    if let Some(uuid) = uuid {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.token_uuid = $1");
        if let Some(row) = tx.query_opt(&sql, &[&uuid]).await? {
            return Ok(Some(from_row(&row)?));
        }
    }
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM token_handles h
           JOIN tokens t ON t.token_uuid = h.token_uuid WHERE h.token_base = $1"
    );
    tx.query_opt(&sql, &[&base])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Renews a sliding expiry on access; returns the new expiry (Unix seconds), if any.
pub async fn renew(tx: &TenantTx<'_>, uuid: Uuid) -> Result<Option<i64>, DbError> {
    let row = tx
        .query_opt(
            "UPDATE tokens SET expires_at = LEAST(final_at, now() + make_interval(secs => sliding_seconds))
              WHERE token_uuid = $1 AND sliding_seconds IS NOT NULL
          RETURNING extract(epoch FROM expires_at)::bigint",
            &[&uuid],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?.flatten())
}

/// Deletes tokens and both of their handles. Returns how many tokens there were.
pub async fn delete(tx: &TenantTx<'_>, uuids: &[Uuid]) -> Result<u64, DbError> {
    tx.execute(
        "DELETE FROM token_handles WHERE token_uuid = ANY ($1)",
        &[&uuids],
    )
    .await?;
    tx.execute(
        "DELETE FROM token_unique WHERE token_uuid = ANY ($1)",
        &[&uuids],
    )
    .await?;
    tx.execute("DELETE FROM tokens WHERE token_uuid = ANY ($1)", &[&uuids])
        .await
}

/// Up to `limit` expired tokens, locked for this transaction.
pub async fn lock_expired(tx: &TenantTx<'_>, limit: i64) -> Result<Vec<Uuid>, DbError> {
    tx.query(
        "SELECT token_uuid FROM tokens WHERE expires_at <= now()
          ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        &[&limit],
    )
    .await?
    .iter()
    .map(|row| Ok(row.try_get(0)?))
    .collect()
}
