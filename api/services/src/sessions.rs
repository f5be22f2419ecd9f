//! Sessions (SessionUpsert, SessionGet, SessionDelete, SessionListUserSessions): free-form data an
//! application keeps under an id it chooses, such as express-session's through
//! `@databunker/session-store`.
//!
//! The id is a secret of the application (a session cookie's value): only its HMAC with the
//! tenant's index key is stored, and the id itself is sealed with the data so that a user's
//! sessions can be listed. A session whose data names a user (`token`, `login`, `email`, `phone` or
//! `custom` at the top level, as Databunker does) is linked to that user and sealed with the user's
//! own key, so forget-me shreds it; a session that names no one is sealed with the tenant's record
//! key. Data naming a user that does not exist is refused rather than kept where forget-me could not
//! reach it.
//!
//! Access: a role or user token needs the `session` section of the linked user (or, for a session
//! linked to no one, of every user: `users.session`, `*`), for the session as it is and as it will be.
//! A user's own token may read, list and delete its own sessions. Every operation is audited: in
//! the linked user's trail, or the tenant's.

use bunker_db::app_sessions::{self as store, SessionExpiry, StoredSession};
use bunker_db::audit::{AuditEvent, Performer};
use bunker_db::{TenantId, TenantTx};
use bunker_keys::{Label, TenantKeys};
use bunker_tenancy::Caller;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::access::{Command, DENIED};
use crate::core::expiry::Expiry;
use crate::core::gate::Gate;
use crate::core::identity::{Lookup, Mode};
use crate::core::limits::{check_document, MAX_DOCUMENT_BYTES};
use crate::core::{
    open_json, read_events, record_event, seal_json, user_key_for_reading, user_key_for_writing,
    UserEvent, Vault, VaultError,
};

/// How long a session lives when neither `slidingtime` nor `finaltime` is given: 30 days from its
/// last write (Databunker's default session retention is one month).
pub const DEFAULT_SESSION_SECONDS: i64 = 30 * 86_400;

/// The most sessions SessionListUserSessions answers (newest first).
pub const MAX_LISTED_SESSIONS: i64 = 1_000;

/// The fields of session data that name its user, in the order they are tried.
const LINKING_FIELDS: [(&str, Mode); 5] = [
    ("token", Mode::Token),
    ("login", Mode::Login),
    ("email", Mode::Email),
    ("phone", Mode::Phone),
    ("custom", Mode::Custom),
];

/// A session id as the caller chose it: 1 to 128 visible ASCII characters (a UUID, or the
/// base64url ids express-session makes).
#[derive(Clone)]
pub struct SessionId(String);

impl SessionId {
    /// Checks `text`; the refusal names the rule, never the text.
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        if (1..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(SessionId(text.to_owned()))
        } else {
            Err(VaultError::BadRequest(
                "Invalid sessionuuid: 1 to 128 visible ASCII characters".into(),
            ))
        }
    }

    /// The stored form: an HMAC with the tenant's index key.
    fn hash(&self, keys: &TenantKeys) -> [u8; 32] {
        keys.index.blind_index("session", self.0.as_bytes())
    }
}

/// Where a session is sealed: the hex of its hash.
pub(crate) fn session_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "session",
        row,
    }
}

/// What is sealed: the id (for listings) and the data.
#[derive(Serialize, Deserialize)]
struct Sealed {
    id: String,
    data: Map<String, Value>,
}

/// A session as answered.
#[derive(Clone, Debug)]
pub struct SessionView {
    pub sessionuuid: String,
    pub data: Map<String, Value>,
    /// The linked user.
    pub token: Option<Uuid>,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
}

impl Vault {
    /// SessionUpsert: creates or replaces the session `id` with `data`.
    pub async fn upsert_session(
        &self,
        caller: &Caller,
        id: SessionId,
        data: Map<String, Value>,
        expiry: Expiry,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        let document = Value::Object(data);
        check_document(&document, "sessiondata", MAX_DOCUMENT_BYTES)?;
        let Value::Object(data) = document else {
            return Err(VaultError::BadRequest(
                "sessiondata must be a JSON object".into(),
            ));
        };
        let keys = self.keys(caller.tenant.id).await?;
        let linking = self.linking_lookup(caller, &keys, &data)?;
        let expiry = SessionExpiry {
            sliding_seconds: expiry.sliding_seconds,
            final_at: expiry.final_unix(),
            default_seconds: DEFAULT_SESSION_SECONDS,
        };
        let principal = caller.principal.clone();
        let actor = caller.actor();
        let command = Command::SessionUpsert;
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let hash = id.hash(&keys);
                    // The session as it is: whoever it belongs to must be reachable too.
                    // A live session of no one needs the grant over every user as well: taking
                    // it over (linking it to a user of one's choice) is a write of it.
                    let live = store::lock_owner(tx, &hash).await?;
                    if let Some(owner) = live {
                        require_sessions(&gate, tx, command, owner, metadata.as_ref()).await?;
                    }
                    let before = live.flatten();
                    let owner = match linking {
                        Some(lookup) => {
                            let (user, visible) =
                                gate.resolve(tx, lookup, command, metadata.as_ref()).await?;
                            if !visible.sessions() {
                                return Err(VaultError::Forbidden(DENIED));
                            }
                            Some(user.token)
                        }
                        None => {
                            require_sessions(&gate, tx, command, None, metadata.as_ref()).await?;
                            None
                        }
                    };
                    let row = hex::encode(hash);
                    let label = session_label(tx.tenant(), &row);
                    let sealed = Sealed { id: id.0, data };
                    let record = match owner {
                        Some(user) => {
                            let key = user_key_for_writing(tx, &keys, user).await?;
                            seal_json(&key, &label, &sealed)?
                        }
                        None => seal_json(&keys.records, &label, &sealed)?,
                    };
                    store::upsert(tx, &hash, owner, &record, expiry).await?;
                    // Recorded for the user it belongs to, and for the one it belonged to.
                    let mut users: Vec<Uuid> = owner.into_iter().collect();
                    users.extend(before.filter(|b| Some(*b) != owner));
                    audit(tx, &keys, actor, command, &users, metadata.as_ref()).await
                })
            })
            .await
    }

    /// SessionGet: the session `id`. Renews a sliding expiry.
    pub async fn get_session(
        &self,
        caller: &Caller,
        id: SessionId,
        metadata: Option<Value>,
    ) -> Result<SessionView, VaultError> {
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        let command = Command::SessionGet;
        let (view, events) = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let hash = id.hash(&keys);
                    let stored = store::get(tx, &hash)
                        .await?
                        .ok_or_else(|| gate.hide_missing(command, VaultError::SessionNotFound))?;
                    require_sessions(&gate, tx, command, stored.token, metadata.as_ref()).await?;
                    let view = open(tx, &keys, &stored).await?;
                    if stored.sliding_seconds.is_some() {
                        store::renew(tx, &hash).await?;
                    }
                    let events = match stored.token {
                        Some(user) => read_events(
                            &keys,
                            tx.tenant(),
                            actor,
                            command,
                            &[user],
                            metadata.as_ref(),
                        )?,
                        None => vec![(
                            bunker_db::audit::new_event_id(),
                            tenant_event(actor, command),
                        )],
                    };
                    Ok::<_, VaultError>((view, events))
                })
            })
            .await?;
        // The read's event joins the group commit; the answer waits for it.
        self.reads.record(tenant, events).await?;
        Ok(view)
    }

    /// SessionDelete: removes the session `id`.
    pub async fn delete_session(
        &self,
        caller: &Caller,
        id: SessionId,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        let keys = self.keys(caller.tenant.id).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        let command = Command::SessionDelete;
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let hash = id.hash(&keys);
                    let Some(owner) = store::lock_owner(tx, &hash).await? else {
                        return Err(gate.hide_missing(command, VaultError::SessionNotFound));
                    };
                    require_sessions(&gate, tx, command, owner, metadata.as_ref()).await?;
                    if !store::delete(tx, &hash).await? {
                        return Err(gate.hide_missing(command, VaultError::SessionNotFound));
                    }
                    let users: Vec<Uuid> = owner.into_iter().collect();
                    audit(tx, &keys, actor, command, &users, metadata.as_ref()).await
                })
            })
            .await
    }

    /// SessionListUserSessions: a user's live sessions, newest first.
    pub async fn list_user_sessions(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        metadata: Option<Value>,
    ) -> Result<Vec<SessionView>, VaultError> {
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        let command = Command::SessionListUserSessions;
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let (user, visible) = Gate::load(tx, &principal)
                        .await?
                        .resolve(tx, lookup, command, metadata.as_ref())
                        .await?;
                    if !visible.sessions() {
                        return Err(VaultError::Forbidden(DENIED));
                    }
                    let views = user_sessions(tx, &keys, user.token).await?;
                    let event = UserEvent::about(command, user.token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
                    Ok(views)
                })
            })
            .await
    }

    /// The user a session's data names, as a look-up (none: it names no one).
    fn linking_lookup(
        &self,
        caller: &Caller,
        keys: &TenantKeys,
        data: &Map<String, Value>,
    ) -> Result<Option<Lookup>, VaultError> {
        for (field, mode) in LINKING_FIELDS {
            if let Some(Value::String(identity)) = data.get(field) {
                if !identity.is_empty() {
                    let lookup = self
                        .settings
                        .normalizer
                        .lookup(&keys.index, mode, identity)
                        .map_err(|err| match err {
                            VaultError::NotFound if !caller.is_admin() => {
                                VaultError::Forbidden(DENIED)
                            }
                            err => err,
                        })?;
                    return Ok(Some(lookup));
                }
            }
        }
        Ok(None)
    }
}

/// Refuses unless the caller may reach the sessions of `owner` (or, for a session linked to no
/// one, of every user).
async fn require_sessions(
    gate: &Gate,
    tx: &TenantTx<'_>,
    command: Command,
    owner: Option<Uuid>,
    metadata: Option<&Value>,
) -> Result<(), VaultError> {
    let visible = match owner {
        Some(user) => gate.check(tx, command, user, metadata).await?,
        None => gate.nobody(tx, command, metadata).await?,
    };
    if visible.sessions() {
        Ok(())
    } else {
        Err(VaultError::Forbidden(DENIED))
    }
}

/// A user's live sessions opened, newest first, at most [`MAX_LISTED_SESSIONS`], in the
/// transaction (SessionListUserSessions, SystemGetUserReport).
pub(crate) async fn user_sessions(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    user: Uuid,
) -> Result<Vec<SessionView>, VaultError> {
    let mut views = Vec::new();
    for stored in store::of_user(tx, user, MAX_LISTED_SESSIONS).await? {
        views.push(open(tx, keys, &stored).await?);
    }
    Ok(views)
}

/// Opens a stored session.
async fn open(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    stored: &StoredSession,
) -> Result<SessionView, VaultError> {
    let row = hex::encode(&stored.hash);
    let label = session_label(tx.tenant(), &row);
    let sealed: Sealed = match stored.token {
        Some(user) => {
            let key = user_key_for_reading(tx, keys, user)
                .await?
                .ok_or(VaultError::SessionNotFound)?;
            open_json(&key, &label, &stored.record)?
        }
        None => open_json(&keys.records, &label, &stored.record)?,
    };
    Ok(SessionView {
        sessionuuid: sealed.id,
        data: sealed.data,
        token: stored.token,
        expires_at: stored.expires_at,
    })
}

/// A session event in the tenant's trail (for a session linked to no one).
fn tenant_event(actor: bunker_db::audit::Actor, command: Command) -> AuditEvent {
    AuditEvent::about(
        Performer::Token(actor),
        command.audit_action(),
        "session".to_owned(),
    )
}

/// Records a session operation in the trail of each of `users`, or the tenant's if none.
async fn audit(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    actor: bunker_db::audit::Actor,
    command: Command,
    users: &[Uuid],
    metadata: Option<&Value>,
) -> Result<(), VaultError> {
    if users.is_empty() {
        bunker_db::audit::record(tx, &tenant_event(actor, command)).await?;
    }
    for user in users {
        let event = UserEvent::change(command, *user, vec!["session".to_owned()], metadata);
        record_event(tx, keys, actor, event).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_visible_ascii_up_to_128() {
        for good in [
            "5a2f8c1e-1b7b-4a55-9b39-5e1c0f7f3c1a",
            "s%3AK9u_4n-xQm",
            "x",
            "a".repeat(128).as_str(),
        ] {
            assert!(SessionId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", " ", "a b", "a\u{0}", "é", "a".repeat(129).as_str()] {
            let err = SessionId::parse(bad).err().map(|e| e.to_string());
            assert_eq!(
                err.as_deref(),
                Some("Invalid sessionuuid: 1 to 128 visible ASCII characters"),
                "{bad:?}"
            );
        }
    }
}
