//! A tenant's request webhook and its outbox of deliveries.

use uuid::Uuid;

use crate::{DbError, TenantId, TenantTx};

/// A tenant's webhook as stored.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    /// Sealed by the services.
    pub secret: Vec<u8>,
    /// Set by root: may reach this machine and private networks.
    pub trusted: bool,
}

/// The transaction's tenant's webhook, if one is set.
pub async fn webhook(tx: &TenantTx<'_>) -> Result<Option<Webhook>, DbError> {
    let row = tx
        .query_opt(
            "SELECT webhook_url, webhook_secret, webhook_trusted FROM tenants
              WHERE id = $1 AND webhook_url IS NOT NULL",
            &[&tx.tenant().0],
        )
        .await?;
    row.map(|r| {
        Ok(Webhook {
            url: r.try_get(0)?,
            secret: r.try_get(1)?,
            trusted: r.try_get(2)?,
        })
    })
    .transpose()
}

/// Sets (or, with `None`, removes) a tenant's webhook; `false` if there is no such tenant.
pub async fn set_webhook(
    tx: &TenantTx<'_>,
    tenant: TenantId,
    webhook: Option<(&str, &[u8])>,
    trusted: bool,
) -> Result<bool, DbError> {
    let (url, secret) = webhook.unzip();
    Ok(tx
        .execute(
            "UPDATE tenants SET webhook_url = $2, webhook_secret = $3, webhook_trusted = $4,
                    updated_at = now()
              WHERE id = $1",
            &[&tenant.0, &url, &secret, &trusted],
        )
        .await?
        == 1)
}

/// Drops every queued delivery of the transaction's tenant (its webhook was removed).
pub async fn clear(tx: &TenantTx<'_>) -> Result<(), DbError> {
    tx.execute("DELETE FROM webhook_outbox", &[]).await?;
    Ok(())
}

/// Queues a delivery of `body` in the transaction.
pub async fn enqueue(tx: &TenantTx<'_>, id: Uuid, body: &str) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO webhook_outbox (tenant_id, id, body) VALUES ($1, $2, $3)",
        &[&tx.tenant().0, &id, &body],
    )
    .await?;
    Ok(())
}

/// A delivery due now, claimed for `lease_seconds` (another server skips it meanwhile).
#[derive(Clone, Debug)]
pub struct Due {
    pub id: Uuid,
    pub body: String,
    pub attempts: i32,
}

/// Claims up to `limit` due deliveries of the transaction's tenant.
pub async fn claim_due(
    tx: &TenantTx<'_>,
    limit: i64,
    lease_seconds: f64,
) -> Result<Vec<Due>, DbError> {
    tx.query(
        "UPDATE webhook_outbox SET next_at = now() + make_interval(secs => $2)
          WHERE (tenant_id, id) IN (
                SELECT tenant_id, id FROM webhook_outbox WHERE next_at <= now()
                 ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED)
      RETURNING id, body, attempts",
        &[&limit, &lease_seconds],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(Due {
            id: row.try_get(0)?,
            body: row.try_get(1)?,
            attempts: row.try_get(2)?,
        })
    })
    .collect()
}

/// A delivered (or abandoned) delivery goes.
pub async fn remove(tx: &TenantTx<'_>, id: Uuid) -> Result<(), DbError> {
    tx.execute("DELETE FROM webhook_outbox WHERE id = $1", &[&id])
        .await?;
    Ok(())
}

/// A failed attempt: tried again in `after_seconds`.
pub async fn retry_later(tx: &TenantTx<'_>, id: Uuid, after_seconds: f64) -> Result<(), DbError> {
    tx.execute(
        "UPDATE webhook_outbox SET attempts = attempts + 1,
                next_at = now() + make_interval(secs => $2)
          WHERE id = $1",
        &[&id, &after_seconds],
    )
    .await?;
    Ok(())
}
