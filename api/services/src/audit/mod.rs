//! Reading the audit trail: a user's events, and one event with its details opened.

pub mod chain;

use bunker_db::audit as store;
use bunker_db::consent as consent_store;
use bunker_db::users as users_store;
use bunker_tenancy::Caller;
use serde_json::Value;
use uuid::Uuid;

use crate::access::{Command, DENIED};
use crate::core::gate::Gate;
use crate::core::identity::{Lookup, Mode};

use crate::core::record_event;
use crate::core::{audit_label, UserEvent, Vault, VaultError};

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
    /// A user's audit events. A forgotten user's events stay readable by token (admins). A role or
    /// user token needs the user's whole profile: the trail names the fields touched and carries
    /// request metadata. The listing is itself audited.
    pub async fn list_user_events(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        page: (i64, i64),
        metadata: Option<Value>,
    ) -> Result<EventPage, VaultError> {
        const COMMAND: Command = Command::AuditListUserEvents;
        let tenant = caller.tenant.id;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let actor = caller.actor();
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
                            let (user, visible) =
                                gate.resolve(tx, lookup, COMMAND, metadata.as_ref()).await?;
                            if !visible.whole_profile() {
                                return Err(VaultError::Forbidden(DENIED));
                            }
                            user.token
                        }
                    };
                    let (offset, limit) = page;
                    let (events, total) = store::list_user_events(tx, token, offset, limit).await?;
                    let event = UserEvent::about(COMMAND, token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
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
        let keys = self.keys(tenant).await?;
        let actor = caller.actor();
        let principal = caller.principal.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    const COMMAND: Command = Command::AuditGetEvent;
                    let gate = Gate::load(tx, &principal).await?;
                    let event = store::get_event(tx, id)
                        .await?
                        .ok_or(VaultError::EventNotFound)
                        .map_err(|e| gate.hide_missing(COMMAND, e))?;
                    // An agreement's change recorded while it waited for its user is that user's
                    // once linked; before, an admin's only (as the consent itself).
                    let owner = match (event.user_token, event.target.strip_prefix("agreement:")) {
                        (Some(user), _) => Some(Some(user)),
                        (None, Some(id)) => match id.parse::<i64>() {
                            Ok(id) => Some(consent_store::owner_of(tx, id).await?.flatten()),
                            Err(_) => Some(None),
                        },
                        (None, None) => None,
                    };
                    match (&gate, owner) {
                        (Gate::Admin, _) => {}
                        // The user's whole profile, as for the user's trail.
                        (_, Some(Some(user))) => {
                            let visible = gate.check(tx, COMMAND, user, metadata.as_ref()).await?;
                            if !visible.whole_profile() {
                                return Err(VaultError::Forbidden(DENIED));
                            }
                        }
                        (_, Some(None)) => return Err(VaultError::Forbidden(DENIED)),
                        (_, None) => gate.require(tx, COMMAND, metadata.as_ref()).await?,
                    }
                    let details = match &event.details {
                        Some(sealed) => {
                            let row = event.id.to_string();
                            let plain = keys.audit.open(&audit_label(tx.tenant(), &row), sealed)?;
                            serde_json::from_slice(&plain).unwrap_or(Value::Null)
                        }
                        None => Value::Object(Default::default()),
                    };
                    if let Some(user) = event.user_token {
                        let read =
                            UserEvent::about(Command::AuditGetEvent, user, metadata.as_ref());
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
