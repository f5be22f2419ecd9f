//! The expiration flow (Bunker's `UserExpiration*` commands; `/v1/exp/…` of the OSS API): an admin,
//! or a role its policies allow, schedules a user's deletion and gets a link capability (a
//! version 4 uuid) to send to the user, who may keep their data (retain) or have it deleted now.
//! While the flow's status is `wait`, the sweeper forgets the user at its end; `retain` keeps them.
//!
//! The capability is handed out once and only its SHA-256 is stored. The links need no token:
//! their tenant is the flow's, found under the capability policy of `user_expirations`
//! ([`bunker_db::Database::expiration_tenant`]); an unknown, foreign or spent capability, and one
//! whose user is gone, all get the same 404. What a link does is audited in the user's trail with
//! the flow's row id as the actor, never the capability.

use bunker_db::audit::{self, Performer};
use bunker_db::expirations::{self as store, Expiration};
use bunker_db::users as user_store;
use bunker_db::TenantTx;
use bunker_tenancy::Caller;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::{Command, DENIED};
use crate::core::expiry::Expiry;
use crate::core::gate::Gate;
use crate::core::identity::Mode;
use crate::core::{is_live, record_event, UserEvent, Vault, VaultError};

/// What happens at a flow's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpirationStatus {
    /// The user is forgotten at the end, unless they keep their data first.
    Wait,
    /// The user keeps their data.
    Retain,
}

impl ExpirationStatus {
    /// `wait` (also when absent or empty) or `retain`.
    pub fn parse(text: Option<&str>) -> Result<Self, VaultError> {
        match text.map(str::trim) {
            None | Some("") | Some("wait") => Ok(ExpirationStatus::Wait),
            Some("retain") => Ok(ExpirationStatus::Retain),
            Some(_) => Err(VaultError::BadRequest(
                "The status value must be wait or retain".into(),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExpirationStatus::Wait => "wait",
            ExpirationStatus::Retain => "retain",
        }
    }
}

/// A flow as its user's readers see it (never the capability).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpirationView {
    /// `wait` or `retain`.
    pub status: String,
    /// The end, in Unix seconds.
    pub ends_at: i64,
}

impl From<Expiration> for ExpirationView {
    fn from(flow: Expiration) -> Self {
        ExpirationView {
            status: flow.status,
            ends_at: flow.ends_at,
        }
    }
}

/// What a command does to a user's flow: read it, or change it.
#[derive(Clone, Copy)]
enum Act {
    Read,
    Change(FlowChange),
}

#[derive(Clone, Copy)]
enum FlowChange {
    Start {
        link_hash: [u8; 32],
        status: ExpirationStatus,
        ends_at: i64,
    },
    Cancel,
}

impl Act {
    fn command(self) -> Command {
        match self {
            Act::Read => Command::UserExpirationGet,
            Act::Change(FlowChange::Start { .. }) => Command::UserExpirationStart,
            Act::Change(FlowChange::Cancel) => Command::UserExpirationCancel,
        }
    }
}

fn link_hash(link: Uuid) -> [u8; 32] {
    Sha256::digest(link.as_bytes()).into()
}

/// A link's capability: a uuid, or nothing it could open.
pub fn parse_link(text: &str) -> Result<Uuid, VaultError> {
    Uuid::parse_str(text.trim())
        .map_err(|_| VaultError::BadRequest("Invalid exptoken: a UUID is expected".into()))
}

impl Vault {
    /// UserExpirationStart: schedules the user's deletion at `finaltime` (or keeps them, with
    /// `retain`), replacing any flow and link the user had; the new link's capability and the end.
    /// Forgetting takes the whole record, so the caller must be allowed the whole profile; a user's
    /// own token may not.
    pub async fn start_expiration(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        finaltime: &Value,
        status: ExpirationStatus,
        metadata: Option<Value>,
    ) -> Result<(Uuid, i64), VaultError> {
        let ends_at = Expiry::parse(None, Some(finaltime))?
            .final_unix()
            .ok_or_else(|| VaultError::BadRequest("The finaltime value is required".into()))?;
        let link = Uuid::new_v4();
        let act = Act::Change(FlowChange::Start {
            link_hash: link_hash(link),
            status,
            ends_at,
        });
        self.on_user(caller, mode, identity, act, metadata).await?;
        Ok((link, ends_at))
    }

    /// UserExpirationGet: the user's flow, if one is running (its user may ask for its own).
    pub async fn expiration_of(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        metadata: Option<Value>,
    ) -> Result<Option<ExpirationView>, VaultError> {
        let flow = self
            .on_user(caller, mode, identity, Act::Read, metadata)
            .await?;
        Ok(flow.map(ExpirationView::from))
    }

    /// UserExpirationCancel: ends the user's flow, if any, and its link (its user may cancel its
    /// own: that keeps its data).
    pub async fn cancel_expiration(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        self.on_user(
            caller,
            mode,
            identity,
            Act::Change(FlowChange::Cancel),
            metadata,
        )
        .await?;
        Ok(())
    }

    /// One of the commands on a user's flow, in the user's tenant: the user resolved through the
    /// gate, a change made with the user's row locked and the user still live, the read or change
    /// audited; the flow as it was read (for UserExpirationGet).
    async fn on_user(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        act: Act,
        metadata: Option<Value>,
    ) -> Result<Option<Expiration>, VaultError> {
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        let command = act.command();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let (user, visible) = Gate::load(tx, &principal)
                        .await?
                        .resolve(tx, lookup, command, metadata.as_ref())
                        .await?;
                    let flow = match act {
                        Act::Read => store::of_user(tx, user.token).await?,
                        Act::Change(change) => {
                            // A change of the flow leads to (or away from) forgetting the whole
                            // record.
                            if !visible.whole_profile() {
                                return Err(VaultError::Forbidden(DENIED));
                            }
                            lock_live(tx, user.token).await?;
                            match change {
                                FlowChange::Start {
                                    link_hash,
                                    status,
                                    ends_at,
                                } => {
                                    let id = Uuid::new_v4();
                                    let status = status.as_str();
                                    store::start(tx, user.token, id, &link_hash, status, ends_at)
                                        .await?
                                }
                                FlowChange::Cancel => {
                                    store::end(tx, user.token).await?;
                                }
                            }
                            None
                        }
                    };
                    let event = UserEvent::about(command, user.token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
                    Ok(flow)
                })
            })
            .await
    }

    /// UserExpirationRetain (public): the link's holder keeps the user's data; the link stays
    /// valid for a later deletion, as upstream's.
    pub async fn retain_by_link(&self, link: Uuid) -> Result<(), VaultError> {
        self.by_link(link, Command::UserExpirationRetain).await
    }

    /// UserExpirationDelete (public): the link's holder has the user forgotten now.
    pub async fn delete_by_link(&self, link: Uuid) -> Result<(), VaultError> {
        self.by_link(link, Command::UserExpirationDelete).await
    }

    async fn by_link(&self, link: Uuid, command: Command) -> Result<(), VaultError> {
        let hash = link_hash(link);
        let tenant = self
            .db
            .expiration_tenant(&hash)
            .await?
            .ok_or(VaultError::ExpirationLinkNotFound)?;
        let keys = self.keys(tenant).await?;
        let forgotten = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let flow = locked_flow(tx, &hash).await?;
                    let performer = Performer::ExpirationLink(flow.id);
                    let forget = command == Command::UserExpirationDelete;
                    if forget {
                        let action = command.audit_action();
                        if !crate::consent::forget_user(tx, &keys, flow.token, action, performer)
                            .await?
                        {
                            return Err(VaultError::ExpirationLinkNotFound);
                        }
                    } else {
                        store::set_status(tx, flow.id, ExpirationStatus::Retain.as_str()).await?;
                    }
                    let id = audit::new_event_id();
                    let event = UserEvent::about(command, flow.token, None);
                    let sealed = event.seal(&keys, tx.tenant(), id, performer)?;
                    audit::record_with_id(tx, id, &sealed).await?;
                    Ok(forget.then_some(flow.token))
                })
            })
            .await?;
        // The user's files' keys are gone with them; their objects go now (or with the sweeper).
        if let Some(token) = forgotten {
            self.remove_files_after_delete(tenant, Some(token)).await;
        }
        Ok(())
    }
}

/// Locks the user's row, as the sweeper and forget-me lock it before they touch the flow: a user
/// forgotten meanwhile is [`VaultError::NotFound`] (it was found live a moment ago, so the caller
/// may know it existed).
async fn lock_live(tx: &TenantTx<'_>, token: Uuid) -> Result<(), VaultError> {
    user_store::lock_user(tx, token)
        .await?
        .filter(is_live)
        .map(|_| ())
        .ok_or(VaultError::NotFound)
}

/// The flow a link opens, its live user's row locked first (the order of the sweeper and of
/// forget-me: the user, then the flow), or [`VaultError::ExpirationLinkNotFound`].
async fn locked_flow(tx: &TenantTx<'_>, hash: &[u8; 32]) -> Result<Expiration, VaultError> {
    let found = store::by_link(tx, hash)
        .await?
        .ok_or(VaultError::ExpirationLinkNotFound)?;
    let user = user_store::lock_user(tx, found.token)
        .await?
        .filter(is_live)
        .ok_or(VaultError::ExpirationLinkNotFound)?;
    // Read again under the lock: a cancel or a new start may have replaced it meanwhile.
    store::by_link(tx, hash)
        .await?
        .filter(|flow| flow.token == user.token)
        .ok_or(VaultError::ExpirationLinkNotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_wait_unless_retain_is_asked_for() {
        assert_eq!(
            ExpirationStatus::parse(None).unwrap(),
            ExpirationStatus::Wait
        );
        assert_eq!(
            ExpirationStatus::parse(Some(" ")).unwrap(),
            ExpirationStatus::Wait
        );
        assert_eq!(
            ExpirationStatus::parse(Some("retain")).unwrap(),
            ExpirationStatus::Retain
        );
        for bad in ["expired", "WAIT", "forget"] {
            assert!(ExpirationStatus::parse(Some(bad)).is_err(), "{bad}");
        }
        assert!(parse_link("not-a-uuid").is_err());
    }
}
