//! Bulk unlocks and the listings behind bulk commands.

use uuid::Uuid;

use crate::{DbError, TenantTx};

/// Records an unlock for `token_id`, valid for `seconds`; expired ones of the tenant are cleared.
pub async fn insert_unlock(
    tx: &TenantTx<'_>,
    id: Uuid,
    token_id: Uuid,
    seconds: i64,
) -> Result<(), DbError> {
    tx.execute("DELETE FROM bulk_unlocks WHERE expires_at <= now()", &[])
        .await?;
    tx.execute(
        "INSERT INTO bulk_unlocks (tenant_id, id, token_id, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint))",
        &[&tx.tenant().0, &id, &token_id, &seconds],
    )
    .await?;
    Ok(())
}

/// Whether `id` is a live unlock of the transaction's tenant for `token_id`.
pub async fn unlock_is_valid(tx: &TenantTx<'_>, id: Uuid, token_id: Uuid) -> Result<bool, DbError> {
    Ok(tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM bulk_unlocks WHERE id = $1 AND token_id = $2 AND expires_at > now())",
            &[&id, &token_id],
        )
        .await?
        .try_get(0)?)
}

/// Every live member of a group (token, role name), in the order pages list them.
pub async fn all_group_members(
    tx: &TenantTx<'_>,
    group_id: i64,
) -> Result<Vec<(Uuid, Option<String>)>, DbError> {
    tx.query(
        "SELECT m.token, r.name FROM group_members m
           JOIN users u ON u.token = m.token AND u.record IS NOT NULL
           LEFT JOIN roles r ON r.id = m.role_id
          WHERE m.group_id = $1 ORDER BY m.added_at, m.token",
        &[&group_id],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect()
}

/// One page of all of the tenant's audit events (newest first) and how many there are.
/// Which of the tenant's audit events a listing takes: all, or those of one action and a window
/// of time (Unix seconds, `since` included, `until` not).
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

pub async fn audit_events(
    tx: &TenantTx<'_>,
    filter: &AuditFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<(Uuid, String, String)>, i64), DbError> {
    const MATCHING: &str = "($1::text IS NULL OR action = $1)
           AND ($2::bigint IS NULL OR occurred_at >= to_timestamp($2))
           AND ($3::bigint IS NULL OR occurred_at < to_timestamp($3))";
    let rows = tx
        .query(
            &format!(
                "SELECT id, action, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                   FROM audit_events WHERE {MATCHING} ORDER BY occurred_at DESC, id OFFSET $4 LIMIT $5"
            ),
            &[&filter.action, &filter.since, &filter.until, &offset, &limit],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<Vec<_>, DbError>>()?;
    let total: i64 = tx
        .query_one(
            &format!("SELECT count(*) FROM audit_events WHERE {MATCHING}"),
            &[&filter.action, &filter.since, &filter.until],
        )
        .await?
        .try_get(0)?;
    Ok((rows, total))
}
