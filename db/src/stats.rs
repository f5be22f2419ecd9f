//! Usage counts of a tenant (SystemGetSystemStats), read from the counters the triggers of
//! `migrations/V23__reports_stats_restore.sql` keep: no large table is counted.

use crate::{DbError, TenantTx};

/// What a tenant holds, by the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Live profiles.
    pub users: i64,
    /// Stored tokens.
    pub tokens: i64,
    /// Stored sessions (an expired one until the sweeper purges it).
    pub sessions: i64,
}

/// The transaction's tenant's usage.
pub async fn usage(tx: &TenantTx<'_>) -> Result<Usage, DbError> {
    let row = tx
        .query_one(
            "SELECT coalesce(sum(users), 0)::bigint, coalesce(sum(tokens), 0)::bigint,
                    coalesce(sum(sessions), 0)::bigint
               FROM usage_counters",
            &[],
        )
        .await?;
    Ok(Usage {
        users: row.try_get(0)?,
        tokens: row.try_get(1)?,
        sessions: row.try_get(2)?,
    })
}

/// How many tenants there are (a small control-plane table).
pub async fn tenant_count(tx: &TenantTx<'_>) -> Result<i64, DbError> {
    Ok(tx
        .query_one("SELECT count(*) FROM tenants", &[])
        .await?
        .try_get(0)?)
}
