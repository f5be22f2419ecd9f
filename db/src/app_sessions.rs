//! Applications' sessions (SessionUpsert, SessionGet, ...): free-form data under a caller-chosen id,
//! stored as a keyed hash. Not to be confused with [`crate::session`], a request's transaction.
//! Everything here runs in the caller's tenant transaction, under row-level security.

use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A stored session.
#[derive(Clone, Debug)]
pub struct StoredSession {
    pub hash: Vec<u8>,
    /// The linked user (its key seals `record`), or none (the tenant's record key does).
    pub token: Option<Uuid>,
    pub record: Vec<u8>,
    pub sliding_seconds: Option<i64>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// How long a session lives: a sliding window (renewed when read), a final time, or neither (then
/// `default_seconds` from this write).
#[derive(Clone, Copy, Debug)]
pub struct SessionExpiry {
    pub sliding_seconds: Option<i64>,
    /// Unix seconds.
    pub final_at: Option<i64>,
    pub default_seconds: i64,
}

const COLUMNS: &str = "session_hash, token, record, sliding_seconds,
                       extract(epoch FROM expires_at)::bigint AS expires_at";

fn from_row(row: &tokio_postgres::Row) -> Result<StoredSession, DbError> {
    Ok(StoredSession {
        hash: row.try_get(0)?,
        token: row.try_get(1)?,
        record: row.try_get(2)?,
        sliding_seconds: row.try_get(3)?,
        expires_at: row.try_get(4)?,
    })
}

/// The live session with `hash`, if any.
pub async fn get(tx: &TenantTx<'_>, hash: &[u8]) -> Result<Option<StoredSession>, DbError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM sessions WHERE session_hash = $1 AND expires_at > now()"),
        &[&hash],
    )
    .await?
    .map(|row| from_row(&row))
    .transpose()
}

/// The owner of the session with `hash`, if it is live (`Some(None)`: unlinked), with the session
/// held for the transaction: the row locked, and, whether or not there is one, a lock on the hash,
/// so that two upserts of one session (the second of which may find no row yet) follow one
/// another, and each decides on the session as the other left it.
pub async fn lock_owner(tx: &TenantTx<'_>, hash: &[u8]) -> Result<Option<Option<Uuid>>, DbError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('bunker.session.' || $1::bigint || '.'
                                                       || encode($2, 'hex'), 0))",
        &[&tx.tenant().0, &hash],
    )
    .await?;
    tx.query_opt(
        "SELECT token, expires_at > now() FROM sessions WHERE session_hash = $1 FOR UPDATE",
        &[&hash],
    )
    .await?
    .map(|row| {
        // An expired session waiting for the sweeper is no session: it is replaced like a new one.
        let live: bool = row.try_get(1)?;
        Ok(if live { Some(row.try_get(0)?) } else { None })
    })
    .transpose()
    .map(Option::flatten)
}

/// Creates or replaces the session with `hash`.
pub async fn upsert(
    tx: &TenantTx<'_>,
    hash: &[u8],
    token: Option<Uuid>,
    record: &[u8],
    expiry: SessionExpiry,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO sessions (tenant_id, session_hash, token, record, sliding_seconds, final_at, expires_at)
         SELECT $1, $2, $3, $4, $5, f.at,
                CASE WHEN $5::bigint IS NOT NULL THEN LEAST(f.at, now() + make_interval(secs => $5))
                     WHEN f.at IS NOT NULL THEN f.at
                     ELSE now() + make_interval(secs => $7::bigint) END
           FROM (SELECT to_timestamp($6::bigint) AS at) f
         ON CONFLICT (tenant_id, session_hash) DO UPDATE
            SET token = EXCLUDED.token, record = EXCLUDED.record,
                sliding_seconds = EXCLUDED.sliding_seconds, final_at = EXCLUDED.final_at,
                expires_at = EXCLUDED.expires_at, updated_at = now()",
        &[
            &tx.tenant().0,
            &hash,
            &token,
            &record,
            &expiry.sliding_seconds,
            &expiry.final_at,
            &expiry.default_seconds,
        ],
    )
    .await?;
    Ok(())
}

/// Renews a session's sliding window (after a read).
pub async fn renew(tx: &TenantTx<'_>, hash: &[u8]) -> Result<(), DbError> {
    tx.execute(
        "UPDATE sessions
            SET expires_at = LEAST(final_at, now() + make_interval(secs => sliding_seconds))
          WHERE session_hash = $1 AND sliding_seconds IS NOT NULL AND expires_at > now()",
        &[&hash],
    )
    .await?;
    Ok(())
}

/// Deletes the session with `hash`; whether a live one was there.
pub async fn delete(tx: &TenantTx<'_>, hash: &[u8]) -> Result<bool, DbError> {
    let row = tx
        .query_opt(
            "DELETE FROM sessions WHERE session_hash = $1 RETURNING expires_at > now()",
            &[&hash],
        )
        .await?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => false,
    })
}

/// A user's live sessions, newest first, at most `limit`.
pub async fn of_user(
    tx: &TenantTx<'_>,
    token: Uuid,
    limit: i64,
) -> Result<Vec<StoredSession>, DbError> {
    tx.query(
        &format!(
            "SELECT {COLUMNS} FROM sessions WHERE token = $1 AND expires_at > now()
              ORDER BY updated_at DESC LIMIT $2"
        ),
        &[&token, &limit],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Deletes up to `limit` sessions past their expiry; how many.
pub async fn purge_expired(tx: &TenantTx<'_>, limit: i64) -> Result<u64, DbError> {
    tx.execute(
        "DELETE FROM sessions WHERE ctid IN (
             SELECT ctid FROM sessions WHERE expires_at <= now()
              ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)",
        &[&limit],
    )
    .await
}
