//! The audit chain's rows (see V15): links written by the chaining task, read by verification.
//! Events arrive as written; this module never opens their details.

use std::time::SystemTime;

use tokio_postgres::Row;
use uuid::Uuid;

use crate::{DbError, TenantTx};

/// An audit event with everything the chain covers.
#[derive(Clone, Debug)]
pub struct ChainEvent {
    pub id: Uuid,
    pub occurred_at: SystemTime,
    /// `occurred_at` in microseconds since the epoch, exactly.
    pub micros: i64,
    pub actor_kind: String,
    pub actor_token_id: Option<Uuid>,
    pub action: String,
    pub target: String,
    pub user_token: Option<Uuid>,
    pub details: Option<Vec<u8>>,
}

/// One link of the chain.
#[derive(Clone, Debug)]
pub struct Link {
    pub position: i64,
    pub event_id: Uuid,
    pub occurred_at: SystemTime,
    pub mac: Vec<u8>,
}

const EVENT_COLUMNS: &str =
    "e.id, e.occurred_at, (extract(epoch FROM e.occurred_at) * 1000000)::bigint,
     e.actor_kind, e.actor_token_id, e.action, e.target, e.user_token, e.details";

fn event_from_row(row: &Row) -> Result<ChainEvent, DbError> {
    Ok(ChainEvent {
        id: row.try_get(0)?,
        occurred_at: row.try_get(1)?,
        micros: row.try_get(2)?,
        actor_kind: row.try_get(3)?,
        actor_token_id: row.try_get(4)?,
        action: row.try_get(5)?,
        target: row.try_get(6)?,
        user_token: row.try_get(7)?,
        details: row.try_get(8)?,
    })
}

fn link_from_row(row: &Row) -> Result<Link, DbError> {
    Ok(Link {
        position: row.try_get(0)?,
        event_id: row.try_get(1)?,
        occurred_at: row.try_get(2)?,
        mac: row.try_get(3)?,
    })
}

/// Takes this tenant's chaining lock for the transaction: false when another server holds it.
pub async fn try_lock(tx: &TenantTx<'_>) -> Result<bool, DbError> {
    tx.try_tenant_lock("bunker-audit-chain").await
}

/// The last link of the tenant's chain, if any.
pub async fn last_link(tx: &TenantTx<'_>) -> Result<Option<Link>, DbError> {
    tx.query_opt(
        "SELECT position, event_id, occurred_at, mac FROM audit_chain ORDER BY position DESC LIMIT 1",
        &[],
    )
    .await?
    .as_ref()
    .map(link_from_row)
    .transpose()
}

/// Up to `limit` events after `after` in chain order (`occurred_at`, `id`), all older than
/// `horizon_seconds`: what the next links cover.
pub async fn unlinked_events(
    tx: &TenantTx<'_>,
    after: Option<(SystemTime, Uuid)>,
    horizon_seconds: i64,
    limit: i64,
) -> Result<Vec<ChainEvent>, DbError> {
    let (at, id) = match after {
        Some((at, id)) => (Some(at), Some(id)),
        None => (None, None),
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events e
          WHERE ($1::timestamptz IS NULL OR (e.occurred_at, e.id) > ($1::timestamptz, $2::uuid))
            AND e.occurred_at < now() - make_interval(secs => $3::bigint)
            -- A time no event has (-infinity, written by hand) is never linked: verify names it.
            AND isfinite(e.occurred_at)
          ORDER BY e.occurred_at, e.id LIMIT $4"
    );
    tx.query(&sql, &[&at, &id, &horizon_seconds, &limit])
        .await?
        .iter()
        .map(event_from_row)
        .collect()
}

/// Appends links (one statement).
pub async fn insert_links(tx: &TenantTx<'_>, links: &[Link]) -> Result<(), DbError> {
    let positions: Vec<i64> = links.iter().map(|l| l.position).collect();
    let events: Vec<Uuid> = links.iter().map(|l| l.event_id).collect();
    let times: Vec<SystemTime> = links.iter().map(|l| l.occurred_at).collect();
    let macs: Vec<&[u8]> = links.iter().map(|l| l.mac.as_slice()).collect();
    tx.execute(
        "INSERT INTO audit_chain (tenant_id, position, event_id, occurred_at, mac)
         SELECT $1, l.position, l.event, l.at, l.mac
           FROM UNNEST($2::bigint[], $3::uuid[], $4::timestamptz[], $5::bytea[]) AS l(position, event, at, mac)",
        &[&tx.tenant().0, &positions, &events, &times, &macs],
    )
    .await?;
    Ok(())
}

/// Links from `from_position` on, in order, with the event each names (`None`: the event is
/// gone): up to `limit`.
pub async fn links_with_events(
    tx: &TenantTx<'_>,
    from_position: i64,
    limit: i64,
) -> Result<Vec<(Link, Option<ChainEvent>)>, DbError> {
    let sql = format!(
        "SELECT c.position, c.event_id, c.occurred_at, c.mac, {EVENT_COLUMNS}
           FROM audit_chain c LEFT JOIN audit_events e ON e.id = c.event_id
          WHERE c.position >= $1 ORDER BY c.position LIMIT $2"
    );
    let rows = tx.query(&sql, &[&from_position, &limit]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let link = link_from_row(row)?;
        let present: Option<Uuid> = row.try_get(4)?;
        let event = match present {
            Some(_) => Some(ChainEvent {
                id: row.try_get(4)?,
                occurred_at: row.try_get(5)?,
                micros: row.try_get(6)?,
                actor_kind: row.try_get(7)?,
                actor_token_id: row.try_get(8)?,
                action: row.try_get(9)?,
                target: row.try_get(10)?,
                user_token: row.try_get(11)?,
                details: row.try_get(12)?,
            }),
            None => None,
        };
        out.push((link, event));
    }
    Ok(out)
}

/// Events no link names that are, in chain order, at or before `until`: written into the covered
/// part of the trail after it was linked (up to `limit`).
pub async fn unlinked_before(
    tx: &TenantTx<'_>,
    until: (SystemTime, Uuid),
    limit: i64,
) -> Result<Vec<Uuid>, DbError> {
    tx.query(
        "SELECT e.id FROM audit_events e
          WHERE (e.occurred_at, e.id) <= ($1::timestamptz, $2::uuid)
            AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)
          ORDER BY e.occurred_at, e.id LIMIT $3",
        &[&until.0, &until.1, &limit],
    )
    .await?
    .iter()
    .map(|row| Ok(row.try_get(0)?))
    .collect()
}

/// How many events are after `until` (not covered yet).
pub async fn count_after(
    tx: &TenantTx<'_>,
    until: Option<(SystemTime, Uuid)>,
) -> Result<i64, DbError> {
    let (at, id) = match until {
        Some((at, id)) => (Some(at), Some(id)),
        None => (None, None),
    };
    Ok(tx
        .query_one(
            "SELECT count(*) FROM audit_events e
              WHERE $1::timestamptz IS NULL OR (e.occurred_at, e.id) > ($1::timestamptz, $2::uuid)",
            &[&at, &id],
        )
        .await?
        .try_get(0)?)
}

/// The link at `position`, if any.
pub async fn link_at(tx: &TenantTx<'_>, position: i64) -> Result<Option<Link>, DbError> {
    tx.query_opt(
        "SELECT position, event_id, occurred_at, mac FROM audit_chain WHERE position = $1",
        &[&position],
    )
    .await?
    .as_ref()
    .map(link_from_row)
    .transpose()
}

/// How many events after `after` (in chain order) are older than `seconds` and yet unlinked.
pub async fn count_unlinked_older_than(
    tx: &TenantTx<'_>,
    after: Option<(SystemTime, Uuid)>,
    seconds: i64,
) -> Result<i64, DbError> {
    let (at, id) = match after {
        Some((at, id)) => (Some(at), Some(id)),
        None => (None, None),
    };
    Ok(tx
        .query_one(
            "SELECT count(*) FROM audit_events e
              WHERE ($1::timestamptz IS NULL OR (e.occurred_at, e.id) > ($1::timestamptz, $2::uuid))
                AND e.occurred_at < now() - make_interval(secs => $3::bigint)",
            &[&at, &id, &seconds],
        )
        .await?
        .try_get(0)?)
}

/// The tenants the transaction's trail says were created and never deleted (TenantCreate and
/// TenantDelete events, `tenant:<id>` targets; a deletion dated in the future does not count)
/// but that do not exist: for the main tenant's trail.
pub async fn vanished_tenants(tx: &TenantTx<'_>) -> Result<Vec<i64>, DbError> {
    tx.query(
        "SELECT DISTINCT substring(c.target FROM 8)::bigint AS id
           FROM audit_events c
          WHERE c.action = 'TenantCreate' AND c.target ~ '^tenant:[0-9]{1,18}$'
            AND NOT EXISTS (SELECT 1 FROM audit_events d
                             WHERE d.action = 'TenantDelete' AND d.target = c.target
                               AND d.occurred_at <= now())
            AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = substring(c.target FROM 8)::bigint)
          ORDER BY 1",
        &[],
    )
    .await?
    .iter()
    .map(|row| Ok(row.try_get(0)?))
    .collect()
}

/// How many events are dated more than `seconds` after now (none is, but for clocks that
/// disagree): they would wait unlinked, and unflagged, until their time.
pub async fn count_future(tx: &TenantTx<'_>, seconds: i64) -> Result<i64, DbError> {
    Ok(tx
        .query_one(
            "SELECT count(*) FROM audit_events
              WHERE occurred_at > now() + make_interval(secs => $1::bigint)",
            &[&seconds],
        )
        .await?
        .try_get(0)?)
}

/// The lowest position in the chain, if any: the verifier walks from 1, so a link below it was
/// slipped in.
pub async fn lowest_position(tx: &TenantTx<'_>) -> Result<Option<i64>, DbError> {
    Ok(tx
        .query_one("SELECT min(position) FROM audit_chain", &[])
        .await?
        .try_get(0)?)
}
