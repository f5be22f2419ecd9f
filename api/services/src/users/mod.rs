//! The user commands: create (one or many), get, update (merge or JSON Patch), forget, versions.

pub mod create;

use std::collections::{BTreeSet, HashSet};

use bunker_db::audit::Actor;
use bunker_db::users::{self as store, StoredUser};
use bunker_db::{DbError, TenantTx};
use bunker_keys::TenantKeys;
use bunker_tenancy::{Caller, Principal};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::access::engine::Visible;
use crate::access::{Command, DENIED};
use crate::core::gate::Gate;

use crate::core::identity::{Lookup, Mode};
use crate::core::limits::{
    check_bulk, check_document, depth, fits, size, MAX_DEPTH, MAX_DOCUMENT_BYTES,
    MAX_PATCH_OPERATIONS, MAX_STORED_BYTES, MAX_VISIBLE_BYTES,
};
use crate::core::{
    open_profile, read_events, record_event, record_label, seal_profile, version_label,
    version_row, UserEvent, Vault, VaultError,
};
use crate::groups::{GroupRef, RoleSelector};

/// How often an update that lost an optimistic race is retried before the caller gets a conflict.
const UPDATE_ATTEMPTS: usize = 5;

/// A profile to store: a JSON object.
pub type NewProfile = Map<String, Value>;

/// A user as answered by UserGet.
#[derive(Clone, Debug)]
pub struct UserView {
    pub token: Uuid,
    pub profile: Map<String, Value>,
    pub version: i32,
    /// Unix seconds.
    pub finaltime: Option<i64>,
    /// The sliding window in seconds.
    pub slidingtime: Option<i64>,
    /// When the user expires (Unix seconds).
    pub expirationtime: Option<i64>,
}

/// One kept version.
#[derive(Clone, Debug)]
pub struct VersionInfo {
    pub version: i32,
    pub optime: i64,
    /// A keyed checksum of the version's content (32 hex digits, in the place of the contract's md5).
    pub md5: String,
}

/// A change to a profile.
#[derive(Clone, Debug)]
pub enum Change {
    /// RFC 7396 merge: given keys replace, `null` removes, nested objects merge.
    Merge(Map<String, Value>),
    /// RFC 6902 operations.
    Patch(json_patch::Patch),
}

/// A group to join and, optionally, the role to have in it.
pub type Membership = (GroupRef, Option<RoleSelector>);

/// One attempt at a change, as carried into its transaction.
pub(crate) struct ChangeRequest {
    pub(crate) principal: Principal,
    pub(crate) actor: Actor,
    pub(crate) command: Command,
    pub(crate) lookup: Lookup,
    pub(crate) change: Change,
    pub(crate) metadata: Option<Value>,
}

impl Vault {
    /// A user's current profile, or one kept version of it. Renews a sliding expiry.
    pub async fn get_user(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        version: Option<i32>,
        metadata: Option<Value>,
    ) -> Result<UserView, VaultError> {
        let tenant = caller.tenant.id;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let actor = caller.actor();
        let principal = caller.principal.clone();
        let read = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let (user, visible) = gate
                        .resolve(tx, lookup, Command::UserGet, metadata.as_ref())
                        .await?;
                    let (profile, version) = match version {
                        None => (open_current(&keys, tx.tenant(), &user)?, user.version),
                        Some(v) => {
                            let sealed = store::get_version(tx, user.token, v)
                                .await?
                                .ok_or(VaultError::NotFound)?;
                            let row = version_row(user.token, v);
                            (
                                open_profile(&keys, &version_label(tx.tenant(), &row), &sealed)?,
                                v,
                            )
                        }
                    };
                    // Only a sliding expiry is written to: a plain read stays read-only.
                    let renewed = match user.sliding_seconds {
                        Some(_) => store::renew_expiry(tx, user.token).await?,
                        None => None,
                    };
                    let events = read_events(
                        &keys,
                        tx.tenant(),
                        actor,
                        Command::UserGet,
                        &[user.token],
                        metadata.as_ref(),
                    )?;
                    let view = UserView {
                        token: user.token,
                        profile: visible.mask(&profile),
                        version,
                        finaltime: user.final_at,
                        slidingtime: user.sliding_seconds,
                        expirationtime: renewed.or(user.expires_at),
                    };
                    Ok::<_, VaultError>((view, events))
                })
            })
            .await?;
        // The read wrote nothing (unless it renewed an expiry): its event joins the group commit,
        // and the answer waits for it.
        let (view, events) = read;
        self.reads.record(tenant, events).await?;
        Ok(view)
    }

    /// Changes a profile. Optimistic: the update names the version it read, and one that lost a race
    /// is retried from a fresh read a few times before the caller gets [`VaultError::Conflict`].
    pub async fn change_user(
        &self,
        caller: &Caller,
        command: Command,
        mode: Mode,
        identity: &str,
        change: Change,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        let tenant = caller.tenant.id;
        let (_, lookup) = self.locate(caller, mode, identity).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let keys = self.keys(tenant).await?;
            let request = ChangeRequest {
                principal: caller.principal.clone(),
                actor: caller.actor(),
                command,
                lookup,
                change: change.clone(),
                metadata: metadata.clone(),
            };
            let vault = self.clone();
            let result = self
                .db
                .in_tenant(tenant, move |tx| {
                    Box::pin(async move { vault.apply_change(tx, &keys, request).await })
                })
                .await;
            match result {
                Err(VaultError::Conflict) if attempt < UPDATE_ATTEMPTS => continue,
                Err(VaultError::Clash { field, hash }) => {
                    return Err(self
                        .record_clash(caller, command, field, hash, metadata)
                        .await)
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn apply_change(
        &self,
        tx: &TenantTx<'_>,
        keys: &TenantKeys,
        request: ChangeRequest,
    ) -> Result<(), VaultError> {
        let ChangeRequest {
            principal,
            actor,
            command,
            lookup,
            change,
            metadata,
        } = request;
        let (user, visible) = Gate::load(tx, &principal)
            .await?
            .resolve(tx, lookup, command, metadata.as_ref())
            .await?;
        let current = open_current(keys, tx.tenant(), &user)?;
        // A change may read or write only what the principal may see: decided on what the change
        // names, before it is applied, so that neither its outcome nor its errors tell anything
        // about hidden fields (a `test` is a read, a `copy` reads its `from`).
        let touched = match &change {
            Change::Merge(update) => Touched::Fields(update.keys().cloned().collect()),
            Change::Patch(patch) => Touched::of_patch(patch),
        };
        let allowed = match &touched {
            Touched::Whole => visible.whole_profile(),
            Touched::Fields(fields) => fields.iter().all(|f| visible.field(f)),
        };
        if !allowed {
            return Err(VaultError::Forbidden(DENIED));
        }
        let before = Value::Object(current.clone());
        let after = match change {
            Change::Merge(update) => {
                let mut merged = before.clone();
                json_patch::merge(&mut merged, &Value::Object(update));
                merged
            }
            // Bounded but possibly heavy (a copy duplicates a subtree): off the async workers.
            Change::Patch(patch) => {
                tokio::task::spawn_blocking(move || apply_patch(before, &patch))
                    .await
                    .map_err(|_| {
                        VaultError::BadRequest("The patch could not be applied".into())
                    })??
            }
        };
        let Value::Object(profile) = after else {
            return Err(VaultError::BadRequest(
                "The profile must remain a JSON object".into(),
            ));
        };
        check_changed(&profile, &visible)?;
        let fields: Vec<String> = match touched {
            Touched::Fields(fields) => fields.into_iter().collect(),
            Touched::Whole => current
                .keys()
                .chain(profile.keys())
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        let event = UserEvent::change(command, user.token, fields, metadata.as_ref());
        // A change that changes nothing (a `test` alone, a value set to what it was) writes no
        // version; it is still audited, as a read.
        if profile == current {
            return record_event(tx, keys, actor, event).await;
        }
        let tenant = tx.tenant();
        let next = user.version + 1;
        let row = user.token.to_string();
        let version_key = version_row(user.token, next);
        let record = seal_profile(keys, &record_label(tenant, &row), &profile)?;
        let version_record = seal_profile(keys, &version_label(tenant, &version_key), &profile)?;
        let indexes = self.settings.normalizer.indexes(&keys.index, &profile)?;
        store::update_record(
            tx,
            user.token,
            user.version,
            &record,
            &version_record,
            self.settings.versions_kept,
        )
        .await?
        .ok_or(VaultError::Conflict)?;
        store::replace_indexes(tx, user.token, &indexes)
            .await
            .map_err(|err| match duplicate(err) {
                VaultError::Duplicate(field) => {
                    let hash = indexes.exact.iter().find(|(f, _)| *f == field).map(|i| i.1);
                    match hash {
                        Some(hash) => VaultError::Clash { field, hash },
                        None => VaultError::Duplicate(field),
                    }
                }
                other => other,
            })?;
        record_event(tx, keys, actor, event).await
    }

    /// Records in the trail of the user holding `field`'s value that a change by `caller` clashed
    /// with it (the refusal tells the caller that someone holds it); returns the refusal.
    pub(crate) async fn record_clash(
        &self,
        caller: &Caller,
        command: Command,
        field: &'static str,
        hash: [u8; 32],
        metadata: Option<Value>,
    ) -> VaultError {
        let tenant = caller.tenant.id;
        let keys = match self.keys(tenant).await {
            Ok(keys) => keys,
            Err(err) => return err,
        };
        let actor = caller.actor();
        let recorded = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    for (_, _, holder) in store::index_holders(tx, &[(field, hash)]).await? {
                        let probe = UserEvent::probe(command, holder, field, metadata.as_ref());
                        record_event(tx, &keys, actor, probe).await?;
                    }
                    Ok::<_, VaultError>(())
                })
            })
            .await;
        match recorded {
            Ok(()) => VaultError::Duplicate(field),
            Err(err) => err,
        }
    }

    /// Forget-me for one or more users: records, versions and indexes are removed; the tokens
    /// stay reserved. Returns, for each selector in order, whether its user was forgotten or why
    /// not (not found, not allowed, a bad value): each is decided on its own, as UserCreateBulk's
    /// records are. Errors of the whole request (the database, the audit) forget no one.
    pub async fn forget_users(
        &self,
        caller: &Caller,
        command: Command,
        selectors: &[(Mode, String)],
        metadata: Option<Value>,
    ) -> Result<Vec<Result<(), VaultError>>, VaultError> {
        check_bulk(selectors.len(), "users")?;
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let lookups: Vec<Result<Lookup, VaultError>> = selectors
            .iter()
            .map(|(mode, identity)| self.lookup_with(&keys, caller, *mode, identity))
            .collect();
        let actor = caller.actor();
        let principal = caller.principal.clone();
        let (outcomes, forgotten) = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    // A token no policy allows the command at all is refused outright.
                    if !gate.may_allow(command) {
                        return Err(VaultError::Forbidden(DENIED));
                    }
                    let mut done = HashSet::new();
                    let mut outcomes = Vec::with_capacity(lookups.len());
                    for lookup in lookups {
                        let resolved = match lookup {
                            Ok(lookup) => {
                                gate.resolve(tx, lookup, command, metadata.as_ref()).await
                            }
                            Err(err) => Err(err),
                        };
                        let token = match resolved {
                            // Forgetting takes every field: it needs the whole profile.
                            Ok((_, visible)) if !visible.whole_profile() => {
                                outcomes.push(Err(VaultError::Forbidden(DENIED)));
                                continue;
                            }
                            Ok((user, _)) => user.token,
                            Err(err) if err.is_refusal() => {
                                outcomes.push(Err(err));
                                continue;
                            }
                            Err(err) => return Err(err),
                        };
                        if done.contains(&token) {
                            outcomes.push(Ok(()));
                            continue;
                        }
                        let action = command.audit_action();
                        let performer = bunker_db::audit::Performer::Token(actor);
                        // Forgotten by another request since it was found (the row lock made
                        // this one wait for it): as if not found, and not audited again.
                        if !crate::consent::forget_user(tx, &keys, token, action, performer).await?
                        {
                            outcomes.push(Err(gate.hide_missing(command, VaultError::NotFound)));
                            continue;
                        }
                        done.insert(token);
                        outcomes.push(Ok(()));
                        let event = UserEvent::about(command, token, metadata.as_ref());
                        record_event(tx, &keys, actor, event).await?;
                    }
                    Ok::<_, VaultError>((outcomes, done))
                })
            })
            .await?;
        // Their files' keys are gone with them; their objects go now (or with the sweeper).
        for token in forgotten {
            self.remove_files_after_delete(tenant, Some(token)).await;
        }
        Ok(outcomes)
    }

    /// The kept versions of a user's profile, oldest first.
    pub async fn list_versions(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        metadata: Option<Value>,
    ) -> Result<Vec<VersionInfo>, VaultError> {
        let tenant = caller.tenant.id;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let actor = caller.actor();
        let principal = caller.principal.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let (user, visible) = Gate::load(tx, &principal)
                        .await?
                        .resolve(tx, lookup, Command::UserListVersions, metadata.as_ref())
                        .await?;
                    // A checksum of each whole version tells when hidden fields changed.
                    if !visible.whole_profile() {
                        return Err(VaultError::Forbidden(DENIED));
                    }
                    let mut versions = Vec::new();
                    for stored in store::list_versions(tx, user.token).await? {
                        let row = version_row(user.token, stored.version);
                        let label = version_label(tx.tenant(), &row);
                        let plain = keys.records.open(&label, &stored.record)?;
                        let digest = keys.fingerprint.blind_index("user_version", &plain);
                        versions.push(VersionInfo {
                            version: stored.version,
                            optime: stored.optime,
                            md5: hex::encode(digest.get(..16).unwrap_or_default()),
                        });
                    }
                    let event =
                        UserEvent::about(Command::UserListVersions, user.token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
                    Ok(versions)
                })
            })
            .await
    }
}

/// A JSON Patch. Each operation's `value` is set aside while the operation is read and put back
/// after: json-patch reads operations through a tagged enum, which would lose (or refuse) numbers
/// kept exactly (`arbitrary_precision`).
pub fn parse_patch(patch: Value) -> Result<json_patch::Patch, VaultError> {
    use json_patch::PatchOperation as Op;
    let refused =
        || VaultError::BadRequest("The patch must be a list of RFC 6902 operations".into());
    let Value::Array(items) = patch else {
        return Err(refused());
    };
    // Here as well as where a patch is applied: a patch kept in a request is parsed when it is
    // asked for, and one that could never be applied must not be kept.
    if items.len() > MAX_PATCH_OPERATIONS {
        return Err(VaultError::BadRequest(format!(
            "A patch may hold at most {MAX_PATCH_OPERATIONS} operations"
        )));
    }
    let mut operations = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(mut fields) = item else {
            return Err(refused());
        };
        let value = fields.insert("value".to_owned(), Value::Null);
        let mut operation: Op =
            serde_json::from_value(Value::Object(fields)).map_err(|_| refused())?;
        match (&mut operation, value) {
            (Op::Add(o), Some(value)) => o.value = value,
            (Op::Replace(o), Some(value)) => o.value = value,
            (Op::Test(o), Some(value)) => o.value = value,
            (Op::Add(_) | Op::Replace(_) | Op::Test(_), None) => return Err(refused()),
            (Op::Remove(_) | Op::Move(_) | Op::Copy(_), _) => {}
        }
        operations.push(operation);
    }
    Ok(json_patch::Patch(operations))
}

/// A user as answered, showing what `visible` allows of the opened profile.
pub(crate) fn view_of(
    user: &StoredUser,
    profile: &Map<String, Value>,
    visible: &Visible,
) -> UserView {
    UserView {
        token: user.token,
        profile: visible.mask(profile),
        version: user.version,
        finaltime: user.final_at,
        slidingtime: user.sliding_seconds,
        expirationtime: user.expires_at,
    }
}

pub(crate) fn open_current(
    keys: &TenantKeys,
    tenant: bunker_db::TenantId,
    user: &StoredUser,
) -> Result<Map<String, Value>, VaultError> {
    let sealed = user.record.as_deref().ok_or(VaultError::NotFound)?;
    let row = user.token.to_string();
    open_profile(keys, &record_label(tenant, &row), sealed)
}

/// A clash on a blind index, named by field (never by value).
pub(crate) fn duplicate(err: DbError) -> VaultError {
    match err.violated_constraint() {
        Some("user_index_email") => VaultError::Duplicate("email"),
        Some("user_index_phone") => VaultError::Duplicate("phone"),
        Some("user_index_login") => VaultError::Duplicate("login"),
        Some("user_index_custom") => VaultError::Duplicate("custom"),
        _ => VaultError::Database(err),
    }
}

/// Refuses a changed profile that is too large or too deep. A caller who sees the whole profile is
/// held to [`MAX_DOCUMENT_BYTES`]; one who sees only some fields, to [`MAX_VISIBLE_BYTES`] for
/// those fields (a limit over the whole would tell it the size of the rest), with the ceiling
/// [`MAX_STORED_BYTES`] for the whole, which only many such callers filling different fields can
/// reach. Depth is checked on the fields seen: the others are within the limit already.
fn check_changed(profile: &Map<String, Value>, visible: &Visible) -> Result<(), VaultError> {
    if visible.whole_profile() {
        return check_document(
            &Value::Object(profile.clone()),
            "profile",
            MAX_DOCUMENT_BYTES,
        );
    }
    let seen: Map<String, Value> = profile
        .iter()
        .filter(|(field, _)| visible.field(field))
        .map(|(field, value)| (field.clone(), value.clone()))
        .collect();
    check_document(
        &Value::Object(seen),
        "part of the profile this caller may see",
        MAX_VISIBLE_BYTES,
    )?;
    if !fits(profile, MAX_STORED_BYTES) {
        return Err(VaultError::BadRequest(format!(
            "The profile is full: it would be larger than {MAX_STORED_BYTES} bytes as JSON"
        )));
    }
    Ok(())
}

/// What a change reads or writes: some top-level profile fields, or the whole profile (a JSON
/// Pointer to the root).
#[derive(Debug, PartialEq, Eq)]
enum Touched {
    Fields(BTreeSet<String>),
    Whole,
}

impl Touched {
    /// Every top-level field a patch reads or writes: each operation's `path`, and the `from` of
    /// `copy` and `move`; a `test` reads its `path`. Pointers are decoded (`~1` is `/`, `~0` is
    /// `~`).
    fn of_patch(patch: &json_patch::Patch) -> Self {
        use json_patch::PatchOperation as Op;
        let mut fields = BTreeSet::new();
        for op in patch.iter() {
            let pointers: Vec<&json_patch::jsonptr::PointerBuf> = match op {
                Op::Add(o) => vec![&o.path],
                Op::Remove(o) => vec![&o.path],
                Op::Replace(o) => vec![&o.path],
                Op::Move(o) => vec![&o.from, &o.path],
                Op::Copy(o) => vec![&o.from, &o.path],
                Op::Test(o) => vec![&o.path],
            };
            for pointer in pointers {
                match pointer.first() {
                    Some(field) => {
                        fields.insert(field.decoded().into_owned());
                    }
                    None => return Touched::Whole,
                }
            }
        }
        Touched::Fields(fields)
    }
}

/// Applies a patch, all or nothing (on a copy: an error leaves nothing applied), refusing one that
/// would build what the limits forbid before it does: each operation's new subtree is bounded in
/// depth (its path plus the depth of its value, or of what a `copy` or `move` takes), and what the
/// operations add in all (values, and what copies duplicate) is bounded in size. Every figure comes
/// from the patch and from what it reads, never from the rest of the profile, so that a refusal
/// tells a caller who sees only some fields nothing about the others.
pub(crate) fn apply_patch(mut doc: Value, patch: &json_patch::Patch) -> Result<Value, VaultError> {
    use json_patch::PatchOperation as Op;
    if patch.len() > MAX_PATCH_OPERATIONS {
        return Err(VaultError::BadRequest(format!(
            "A patch may hold at most {MAX_PATCH_OPERATIONS} operations"
        )));
    }
    let too_deep = || {
        VaultError::BadRequest(format!(
            "The patched profile would be nested deeper than {MAX_DEPTH} levels"
        ))
    };
    let too_large = || {
        VaultError::BadRequest(format!(
            "The patch would add more than {MAX_DOCUMENT_BYTES} bytes as JSON"
        ))
    };
    let mut added = 0usize;
    for (position, op) in patch.iter().enumerate() {
        let levels = |pointer: &json_patch::jsonptr::PointerBuf| pointer.tokens().count();
        let (reach, growth) = match op {
            Op::Add(o) => (
                levels(&o.path) + depth(&o.value),
                size(&o.value, MAX_DOCUMENT_BYTES),
            ),
            Op::Replace(o) => (
                levels(&o.path) + depth(&o.value),
                size(&o.value, MAX_DOCUMENT_BYTES),
            ),
            Op::Copy(o) => {
                let copied = doc.pointer(o.from.as_str());
                (
                    levels(&o.path) + copied.map_or(0, depth),
                    copied.map_or(Some(0), |c| size(c, MAX_DOCUMENT_BYTES)),
                )
            }
            Op::Move(o) => {
                let moved = doc.pointer(o.from.as_str());
                (levels(&o.path) + moved.map_or(0, depth), Some(0))
            }
            Op::Remove(_) | Op::Test(_) => (0, Some(0)),
        };
        if reach > MAX_DEPTH {
            return Err(too_deep());
        }
        added += growth.ok_or_else(too_large)?;
        if added > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        json_patch::patch_unsafe(&mut doc, std::slice::from_ref(op)).map_err(|err| {
            VaultError::BadRequest(format!(
                "The patch could not be applied (operation {position}: {})",
                err.kind
            ))
        })?;
    }
    Ok(doc)
}
