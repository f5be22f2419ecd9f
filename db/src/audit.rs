//! The audit trail. Events are written in the transaction of the work they describe, so a request
//! whose event cannot be written fails as a whole. The server may only add and read events.

use tokio_postgres::Row;
use uuid::Uuid;

use crate::control::TokenKind;
use crate::{DbError, TenantTx};

/// Who acted: the kind of token and its id (never its value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    pub kind: TokenKind,
    pub token_id: Uuid,
}

/// Who performed an audited action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Performer {
    /// A request authenticated by an access token.
    Token(Actor),
    /// Bunker itself (the expiry sweeper).
    System,
    /// An operator at the `bunker` command line (key management).
    Operator,
    /// Whoever held a shared record's uuid (SharedRecordGet, public): the record's row id, never
    /// the uuid.
    SharedRecord(Uuid),
    /// Whoever held an expiration flow's link (UserExpirationRetain, UserExpirationDelete,
    /// public): the flow's row id, never the link's capability.
    ExpirationLink(Uuid),
}

impl Performer {
    fn kind(self) -> &'static str {
        match self {
            Performer::Token(actor) => actor.kind.as_str(),
            Performer::System => "system",
            Performer::Operator => "operator",
            Performer::SharedRecord(_) => "shared_record",
            Performer::ExpirationLink(_) => "expiration_link",
        }
    }

    fn token_id(self) -> Option<Uuid> {
        match self {
            Performer::Token(actor) => Some(actor.token_id),
            Performer::SharedRecord(id) | Performer::ExpirationLink(id) => Some(id),
            _ => None,
        }
    }
}

/// One audited action.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub actor: Performer,
    /// The `/v2` command, or `UserExpired` for the sweeper.
    pub action: &'static str,
    /// What was acted on, e.g. `tenant:7` or `user`; never personal data in clear.
    pub target: String,
    /// The user the event concerns, if any.
    pub user_token: Option<Uuid>,
    /// Details sealed with the tenant's audit key.
    pub details: Option<Vec<u8>>,
}

impl AuditEvent {
    /// An event that concerns no user and carries no details (tenants, groups, roles, keys, ...).
    pub fn about(actor: Performer, action: &'static str, target: String) -> Self {
        AuditEvent {
            actor,
            action,
            target,
            user_token: None,
            details: None,
        }
    }
}

/// An event as listed.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub id: Uuid,
    pub action: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// What was acted on (`user`, `agreement:7`, ...).
    pub target: String,
    pub user_token: Option<Uuid>,
    pub details: Option<Vec<u8>>,
}

const EVENT_COLUMNS: &str = "id, action,
     to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS ts,
     target, user_token, details";

fn event_from_row(row: &Row) -> Result<StoredEvent, DbError> {
    Ok(StoredEvent {
        id: row.try_get("id")?,
        action: row.try_get("action")?,
        timestamp: row.try_get("ts")?,
        target: row.try_get("target")?,
        user_token: row.try_get("user_token")?,
        details: row.try_get("details")?,
    })
}

/// Records `event` in the transaction's tenant under the given id.
pub async fn record_with_id(
    tx: &TenantTx<'_>,
    id: Uuid,
    event: &AuditEvent,
) -> Result<(), DbError> {
    let actor_kind = event.actor.kind();
    let actor_token = event.actor.token_id();
    tx.execute(
        "INSERT INTO audit_events
             (id, tenant_id, actor_kind, actor_token_id, action, target, user_token, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &id,
            &tx.tenant().0,
            &actor_kind,
            &actor_token,
            &event.action,
            &event.target,
            &event.user_token,
            &event.details,
        ],
    )
    .await?;
    Ok(())
}

/// Records many events with their ids in one statement.
pub async fn record_many(tx: &TenantTx<'_>, events: &[(Uuid, AuditEvent)]) -> Result<(), DbError> {
    let ids: Vec<Uuid> = events.iter().map(|(id, _)| *id).collect();
    let kinds: Vec<&str> = events.iter().map(|(_, e)| e.actor.kind()).collect();
    let actors: Vec<Option<Uuid>> = events.iter().map(|(_, e)| e.actor.token_id()).collect();
    let actions: Vec<&str> = events.iter().map(|(_, e)| e.action).collect();
    let targets: Vec<&str> = events.iter().map(|(_, e)| e.target.as_str()).collect();
    let users: Vec<Option<Uuid>> = events.iter().map(|(_, e)| e.user_token).collect();
    let details: Vec<Option<&[u8]>> = events.iter().map(|(_, e)| e.details.as_deref()).collect();
    tx.execute(
        "INSERT INTO audit_events
             (id, tenant_id, actor_kind, actor_token_id, action, target, user_token, details)
         SELECT e.id, $1, e.kind, e.actor, e.action, e.target, e.user_token, e.details
           FROM UNNEST($2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::uuid[], $8::bytea[])
                AS e(id, kind, actor, action, target, user_token, details)",
        &[&tx.tenant().0, &ids, &kinds, &actors, &actions, &targets, &users, &details],
    )
    .await?;
    Ok(())
}

/// A new event id: a UUIDv7, ordered by time, so that the primary key grows at its end instead of
/// at random places (far fewer pages written per event). The time it tells is the event's own.
pub fn new_event_id() -> Uuid {
    Uuid::now_v7()
}

/// Records `event` in the transaction's tenant and returns the event's id.
pub async fn record(tx: &TenantTx<'_>, event: &AuditEvent) -> Result<Uuid, DbError> {
    let id = new_event_id();
    record_with_id(tx, id, event).await?;
    Ok(id)
}

/// One page of a user's events, newest first, and how many there are.
pub async fn list_user_events(
    tx: &TenantTx<'_>,
    user_token: Uuid,
    offset: i64,
    limit: i64,
) -> Result<(Vec<StoredEvent>, i64), DbError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE user_token = $1
          ORDER BY occurred_at DESC, id OFFSET $2 LIMIT $3"
    );
    let events = tx
        .query(&sql, &[&user_token, &offset, &limit])
        .await?
        .iter()
        .map(event_from_row)
        .collect::<Result<_, _>>()?;
    let total: i64 = tx
        .query_one(
            "SELECT count(*) FROM audit_events WHERE user_token = $1",
            &[&user_token],
        )
        .await?
        .try_get(0)?;
    Ok((events, total))
}

/// A user's events as a report shows them: with the kind of actor, newest first, at most `limit`,
/// and how many there are in all.
pub async fn trail_of_user(
    tx: &TenantTx<'_>,
    user_token: Uuid,
    limit: i64,
) -> Result<(Vec<(StoredEvent, String)>, i64), DbError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, actor_kind FROM audit_events WHERE user_token = $1
          ORDER BY occurred_at DESC, id LIMIT $2"
    );
    let events = tx
        .query(&sql, &[&user_token, &limit])
        .await?
        .iter()
        .map(|row| Ok((event_from_row(row)?, row.try_get("actor_kind")?)))
        .collect::<Result<_, DbError>>()?;
    let total: i64 = tx
        .query_one(
            "SELECT count(*) FROM audit_events WHERE user_token = $1",
            &[&user_token],
        )
        .await?
        .try_get(0)?;
    Ok((events, total))
}

/// One event of the transaction's tenant.
pub async fn get_event(tx: &TenantTx<'_>, id: Uuid) -> Result<Option<StoredEvent>, DbError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE id = $1");
    tx.query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(event_from_row)
        .transpose()
}

/// The newest `limit` events about `target` (e.g. `agreement:7`), oldest first.
pub async fn events_of_target(
    tx: &TenantTx<'_>,
    target: &str,
    limit: i64,
) -> Result<Vec<StoredEvent>, DbError> {
    let sql = format!(
        "SELECT * FROM (SELECT {EVENT_COLUMNS}, occurred_at FROM audit_events
                         WHERE target = $1 AND target LIKE 'agreement:%'
                         ORDER BY occurred_at DESC, id DESC LIMIT $2) newest
          ORDER BY occurred_at, id"
    );
    tx.query(&sql, &[&target, &limit])
        .await?
        .iter()
        .map(event_from_row)
        .collect()
}
