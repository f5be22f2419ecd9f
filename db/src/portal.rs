//! The web portals' sessions (migrations/V27): the token a signed-in browser acts with, sealed, found
//! by the SHA-256 of the session id its JWT names.

use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A session's row.
pub struct PortalSession {
    pub kind: String,
    pub user_token: Option<Uuid>,
    pub token_sealed: Vec<u8>,
    /// Seconds until it expires.
    pub remaining: i64,
}

/// Keeps a session for `seconds`, and removes the tenant's expired ones.
pub async fn insert(
    tx: &TenantTx<'_>,
    id_hash: &[u8],
    kind: &str,
    user_token: Option<Uuid>,
    token_sealed: &[u8],
    seconds: i64,
) -> Result<(), DbError> {
    tx.execute("DELETE FROM portal_sessions WHERE expires_at <= now()", &[])
        .await?;
    tx.execute(
        "INSERT INTO portal_sessions (tenant_id, id_hash, kind, user_token, token_sealed, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::bigint))",
        &[
            &tx.tenant().0,
            &id_hash,
            &kind,
            &user_token,
            &token_sealed,
            &seconds,
        ],
    )
    .await?;
    Ok(())
}

/// A live session of `kind`.
pub async fn get(
    tx: &TenantTx<'_>,
    id_hash: &[u8],
    kind: &str,
) -> Result<Option<PortalSession>, DbError> {
    Ok(tx
        .query_opt(
            "SELECT kind, user_token, token_sealed,
                    extract(epoch FROM expires_at - now())::bigint
               FROM portal_sessions
              WHERE id_hash = $1 AND kind = $2 AND expires_at > now()",
            &[&id_hash, &kind],
        )
        .await?
        .map(|row| PortalSession {
            kind: row.get(0),
            user_token: row.get(1),
            token_sealed: row.get(2),
            remaining: row.get(3),
        }))
}

/// Ends a session (signing out). Whether it was there.
pub async fn delete(tx: &TenantTx<'_>, id_hash: &[u8]) -> Result<bool, DbError> {
    Ok(tx
        .execute(
            "DELETE FROM portal_sessions WHERE id_hash = $1",
            &[&id_hash],
        )
        .await?
        > 0)
}
