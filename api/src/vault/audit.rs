//! Reading the audit trail: a user's events, and one event with its details opened.

use bunker_db::audit as store;
use bunker_db::users as users_store;
use bunker_tenancy::Caller;
use serde_json::Value;
use uuid::Uuid;

use super::identity::{Lookup, Mode};
use crate::access::Gate;

use super::users::record_event;
use super::{audit_label, UserEvent, Vault, VaultError};

/// One page of a user's events.
#[derive(Clone, Debug)]
pub struct EventPage {
    /// (event id, event type, RFC 3339 time), newest first.
    pub rows: Vec<(Uuid, String, String)>,
    pub total: i64,
}

/// One event with its details opened.
#[derive(Clone, Debug)]
pub struct EventDetails {
    pub eventtype: String,
    pub timestamp: String,
    pub details: Value,
}

impl Vault {
    /// A user's audit events. A forgotten user's events stay readable by token.
    pub async fn list_user_events(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        offset: i64,
        limit: i64,
    ) -> Result<EventPage, VaultError> {
        let tenant = caller.tenant.id;
        let (_, lookup) = self.locate(tenant, mode, identity)?;
        let principal = caller.principal.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let token = match (&gate, lookup) {
                        (Gate::Admin, Lookup::Token(token)) => {
                            users_store::get_user(tx, token)
                                .await?
                                .ok_or(VaultError::NotFound)?
                                .token
                        }
                        _ => {
                            gate.resolve(tx, lookup, "AuditListUserEvents", None)
                                .await?
                                .0
                                .token
                        }
                    };
                    let (events, total) = store::list_user_events(tx, token, offset, limit).await?;
                    Ok(EventPage {
                        rows: events
                            .into_iter()
                            .map(|e| (e.id, e.action, e.timestamp))
                            .collect(),
                        total,
                    })
                })
            })
            .await
    }

    /// One event of the caller's tenant with its sealed details opened. Reading them (they may hold
    /// request metadata) is itself audited.
    pub async fn get_event(
        &self,
        caller: &Caller,
        id: Uuid,
        metadata: Option<Value>,
    ) -> Result<EventDetails, VaultError> {
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant);
        let actor = caller.actor();
        let principal = caller.principal.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let event = store::get_event(tx, id).await?;
                    match (&gate, event.as_ref().and_then(|e| e.user_token)) {
                        (Gate::Admin, _) => {}
                        (_, Some(user)) => {
                            gate.check(tx, "AuditGetEvent", user, metadata.as_ref())
                                .await?;
                        }
                        (_, None) => gate.require("AuditGetEvent", metadata.as_ref())?,
                    }
                    let event = event.ok_or(VaultError::EventNotFound)?;
                    let details = match &event.details {
                        Some(sealed) => {
                            let row = event.id.to_string();
                            let plain = keys.audit.open(&audit_label(tx.tenant(), &row), sealed)?;
                            serde_json::from_slice(&plain).unwrap_or(Value::Null)
                        }
                        None => Value::Object(Default::default()),
                    };
                    if let Some(user) = event.user_token {
                        let read = UserEvent::about("AuditGetEvent", user, metadata.as_ref());
                        record_event(tx, &keys, actor, read).await?;
                    }
                    Ok(EventDetails {
                        eventtype: event.action,
                        timestamp: event.timestamp,
                        details,
                    })
                })
            })
            .await
    }
}
