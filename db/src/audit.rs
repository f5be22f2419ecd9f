//! The audit trail. Events are written in the transaction of the work they describe, so a request
//! whose event cannot be written fails as a whole. The server may only add and read events.

use uuid::Uuid;

use crate::control::TokenKind;
use crate::{DbError, TenantTx};

/// Who acted: the kind of token and its id (never its value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    pub kind: TokenKind,
    pub token_id: Uuid,
}

/// One audited action.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub actor: Actor,
    /// The `/v2` command.
    pub action: &'static str,
    /// What was acted on, e.g. `tenant:7`; never personal data in clear.
    pub target: String,
}

/// Records `event` in the transaction's tenant and returns the event's id.
pub async fn record(tx: &TenantTx<'_>, event: &AuditEvent) -> Result<Uuid, DbError> {
    let id = Uuid::new_v4();
    tx.execute(
        "INSERT INTO audit_events (id, tenant_id, actor_kind, actor_token_id, action, target)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &id,
            &tx.tenant().0,
            &event.actor.kind.as_str(),
            &event.actor.token_id,
            &event.action,
            &event.target,
        ],
    )
    .await?;
    Ok(id)
}
