//! Expiration flows: a user's scheduled deletion, kept or carried out by the holder of a link
//! whose capability (a uuid) is stored only as its SHA-256. Every change of a flow is made with its
//! user's row locked first ([`crate::users::lock_user`]), in the order the sweeper and forget-me
//! take them (the user, then the flow), so that none of them deadlocks another or acts on a user
//! another has just forgotten. Started, read and cancelled in the
//! user's tenant transaction; the public links find their row through
//! [`Database::expiration_tenant`], the look-up that runs with no tenant set (see the capability
//! policy in `migrations/V29__user_expirations.sql`). The sweeper forgets a user whose flow waits
//! past its end ([`crate::users::lock_expired`]).

use uuid::Uuid;

use crate::{Database, DbError, TenantId, TenantTx};

/// A user's expiration flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiration {
    /// The row's id (what the audit trail names when a link acts).
    pub id: Uuid,
    pub token: Uuid,
    /// `wait` (the user is forgotten at the end) or `retain` (kept).
    pub status: String,
    /// The end, in Unix seconds.
    pub ends_at: i64,
}

fn expiration(row: &tokio_postgres::Row) -> Result<Expiration, DbError> {
    Ok(Expiration {
        id: row.try_get(0)?,
        token: row.try_get(1)?,
        status: row.try_get(2)?,
        ends_at: row.try_get(3)?,
    })
}

const COLUMNS: &str = "id, token, status, extract(epoch FROM ends_at)::bigint";

/// Starts (or restarts, with a new link) the flow of `token`: `status` until `ends_at` (Unix
/// seconds).
pub async fn start(
    tx: &TenantTx<'_>,
    token: Uuid,
    id: Uuid,
    link_hash: &[u8; 32],
    status: &str,
    ends_at: i64,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO user_expirations (tenant_id, token, id, link_hash, status, ends_at)
         VALUES ($1, $2, $3, $4, $5, to_timestamp($6::bigint))
         ON CONFLICT (tenant_id, token) DO UPDATE
            SET id = EXCLUDED.id, link_hash = EXCLUDED.link_hash, status = EXCLUDED.status,
                ends_at = EXCLUDED.ends_at, created_at = now()",
        &[
            &tx.tenant().0,
            &token,
            &id,
            &link_hash.as_slice(),
            &status,
            &ends_at,
        ],
    )
    .await?;
    Ok(())
}

/// The flow of `token`, if one was started and not cancelled.
pub async fn of_user(tx: &TenantTx<'_>, token: Uuid) -> Result<Option<Expiration>, DbError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM user_expirations WHERE token = $1"),
        &[&token],
    )
    .await?
    .map(|row| expiration(&row))
    .transpose()
}

/// The flow a link's capability opens in the transaction's tenant. Not locked: whoever changes a
/// flow locks its user's row first (as the sweeper and forget-me do), and so must the caller.
pub async fn by_link(
    tx: &TenantTx<'_>,
    link_hash: &[u8; 32],
) -> Result<Option<Expiration>, DbError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM user_expirations WHERE link_hash = $1"),
        &[&link_hash.as_slice()],
    )
    .await?
    .map(|row| expiration(&row))
    .transpose()
}

/// Sets the status of the flow `id`.
pub async fn set_status(tx: &TenantTx<'_>, id: Uuid, status: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE user_expirations SET status = $2 WHERE id = $1",
        &[&id, &status],
    )
    .await?;
    Ok(())
}

/// Ends the flow of `token` (cancelled, or the user forgotten); whether there was one.
pub async fn end(tx: &TenantTx<'_>, token: Uuid) -> Result<bool, DbError> {
    Ok(tx
        .execute("DELETE FROM user_expirations WHERE token = $1", &[&token])
        .await?
        > 0)
}

impl Database {
    /// The tenant of the flow a link's capability opens (by its SHA-256), found under the
    /// capability policy with no tenant set; the caller then works under that tenant's policy.
    pub async fn expiration_tenant(
        &self,
        link_hash: &[u8; 32],
    ) -> Result<Option<TenantId>, DbError> {
        self.by_capability(
            "bunker.expiration_link",
            "SELECT tenant_id FROM user_expirations WHERE link_hash = $1",
            link_hash,
        )
        .await?
        .map(|row| Ok(TenantId(row.try_get(0)?)))
        .transpose()
    }
}
