//! Creating users, one (UserCreate) or many (UserCreateBulk). Each record is created or refused on
//! its own, as the contract has it (a batch is not atomic), and a refused record leaves nothing of
//! itself behind. The usual case costs one statement for the whole batch: the first attempt assumes
//! no stored user holds the batch's indexed values; if one does, the batch goes round again, this
//! time finding the holders first and refusing their clashing records. Each such refusal is
//! recorded in the holder's audit trail, since it told the caller that someone holds that value.

use std::collections::HashMap;

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::users::{self as store, NewUser};
use bunker_db::{TenantId, TenantTx};
use bunker_keys::TenantKeys;
use bunker_tenancy::{Caller, Principal};
use serde_json::Value;
use uuid::Uuid;

use crate::core::gate::Gate;

use crate::access::Command;
use crate::core::expiry::Expiry;
use crate::core::limits::{check_bulk, check_document, check_metadata, MAX_DOCUMENT_BYTES};
use crate::core::{
    record_label, seal_profile, version_label, version_row, UserEvent, Vault, VaultError,
};
use crate::groups::{allowed_membership, Joining};
use crate::users::{duplicate, Membership};

/// How often a batch whose values clashed with concurrent creates goes round again.
const ATTEMPTS: usize = 5;

/// One user to create, as submitted.
#[derive(Debug)]
pub struct NewUserRecord {
    /// Must be a JSON object.
    pub profile: Value,
    /// The group (and role) to join, or why the request's fields for it were refused.
    pub membership: Result<Option<Membership>, VaultError>,
}

/// A record ready to insert.
#[derive(Clone)]
struct Candidate {
    position: usize,
    user: NewUser,
    event: (Uuid, AuditEvent),
    membership: Option<Membership>,
}

/// What one attempt decided: each record's token or refusal, by position.
type Decided = Vec<(usize, Result<Uuid, VaultError>)>;

/// What the transaction of an attempt needs besides the candidates.
#[derive(Clone)]
struct Batch {
    principal: Principal,
    actor: Performer,
    command: Command,
    metadata: Option<Value>,
}

/// What every record of one request is prepared with.
struct Preparing<'a> {
    keys: &'a TenantKeys,
    tenant: TenantId,
    expiry: Expiry,
    actor: Performer,
    command: Command,
    metadata: Option<&'a Value>,
    /// Whether messages name the record (`records[3].profile`).
    bulk: bool,
}

impl Vault {
    /// Creates users, each optionally in a group with a role; returns each record's token or why it
    /// was refused, in order. Errors of the whole request (the database, the audit, a bad
    /// `request_metadata`) create nothing.
    pub async fn create_users(
        &self,
        caller: &Caller,
        command: Command,
        records: Vec<NewUserRecord>,
        expiry: Expiry,
        metadata: Option<Value>,
    ) -> Result<Vec<Result<Uuid, VaultError>>, VaultError> {
        check_metadata(metadata.as_ref())?;
        check_bulk(records.len(), "records")?;
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let actor = Performer::Token(caller.actor());
        let preparing = Preparing {
            keys: &keys,
            tenant,
            expiry,
            actor,
            command,
            metadata: metadata.as_ref(),
            bulk: command == Command::UserCreateBulk,
        };
        let count = records.len();
        let mut decided: Decided = Vec::with_capacity(count);
        let mut candidates = Vec::with_capacity(records.len());
        // Values already claimed by an earlier record of the batch.
        let mut claimed: HashMap<(&'static str, [u8; 32]), usize> = HashMap::new();
        for (position, record) in records.into_iter().enumerate() {
            let candidate = match self.candidate(&preparing, position, record) {
                Ok(candidate) => candidate,
                Err(err) => {
                    decided.push((position, Err(err)));
                    continue;
                }
            };
            let exact = &candidate.user.indexes.exact;
            if let Some((field, _)) = exact.iter().find(|i| claimed.contains_key(*i)) {
                decided.push((position, Err(VaultError::Duplicate(field))));
                continue;
            }
            claimed.extend(exact.iter().map(|i| (*i, position)));
            candidates.push(candidate);
        }
        let batch = Batch {
            principal: caller.principal.clone(),
            actor,
            command,
            metadata: metadata.clone(),
        };
        let mut check_holders = false;
        for attempt in 1..=ATTEMPTS {
            let batch = batch.clone();
            let candidates = candidates.clone();
            let keys = self.keys(tenant).await?;
            let result = self
                .db
                .in_tenant(tenant, move |tx| {
                    Box::pin(
                        async move { insert(tx, &keys, &batch, candidates, check_holders).await },
                    )
                })
                .await;
            match result {
                Ok(inserted) => {
                    decided.extend(inserted);
                    let mut by_position: HashMap<usize, Result<Uuid, VaultError>> =
                        decided.into_iter().collect();
                    return Ok((0..count)
                        .map(|p| by_position.remove(&p).unwrap_or(Err(VaultError::Conflict)))
                        .collect());
                }
                // A stored user holds one of the values (or a concurrent create took it).
                Err(VaultError::Duplicate(_)) if attempt < ATTEMPTS => check_holders = true,
                Err(VaultError::Duplicate(_)) => return Err(VaultError::Conflict),
                Err(err) => return Err(err),
            }
        }
        Err(VaultError::Conflict)
    }

    /// A record checked, sealed and indexed, with its audit event; or why it is refused.
    fn candidate(
        &self,
        preparing: &Preparing<'_>,
        position: usize,
        record: NewUserRecord,
    ) -> Result<Candidate, VaultError> {
        let what = if preparing.bulk {
            format!("records[{position}].profile")
        } else {
            "profile".to_owned()
        };
        let membership = record.membership?;
        if !record.profile.is_object() {
            return Err(VaultError::BadRequest(format!(
                "{what} must be a JSON object"
            )));
        }
        check_document(&record.profile, &what, MAX_DOCUMENT_BYTES)?;
        let Value::Object(profile) = record.profile else {
            return Err(VaultError::BadRequest(format!(
                "{what} must be a JSON object"
            )));
        };
        let (keys, tenant) = (preparing.keys, preparing.tenant);
        let token = Uuid::new_v4();
        let row = token.to_string();
        let first = version_row(token, 1);
        let user = NewUser {
            token,
            indexes: self.settings.normalizer.indexes(&keys.index, &profile)?,
            record: seal_profile(keys, &record_label(tenant, &row), &profile)?,
            first_version: seal_profile(keys, &version_label(tenant, &first), &profile)?,
            sliding_seconds: preparing.expiry.sliding_seconds,
            final_at: preparing.expiry.final_at,
        };
        let fields = profile.keys().cloned().collect();
        let id = audit::new_event_id();
        let event = UserEvent::change(preparing.command, token, fields, preparing.metadata).seal(
            keys,
            tenant,
            id,
            preparing.actor,
        )?;
        Ok(Candidate {
            position,
            user,
            event: (id, event),
            membership,
        })
    }
}

/// One attempt, in its transaction: with `check_holders`, refuses the records whose values stored
/// users hold (recording the attempt in each holder's trail); refuses records whose membership is
/// refused; inserts the rest with their events (one statement, pipelined with the events) and
/// their memberships. A clash the check did not see is a [`VaultError::Duplicate`] for the whole
/// attempt.
async fn insert(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    batch: &Batch,
    mut candidates: Vec<Candidate>,
    check_holders: bool,
) -> Result<Decided, VaultError> {
    let mut decided: Decided = Vec::new();
    let mut events: Vec<(Uuid, AuditEvent)> = Vec::new();
    if check_holders {
        let wanted: Vec<(&'static str, [u8; 32])> = candidates
            .iter()
            .flat_map(|c| c.user.indexes.exact.iter().copied())
            .collect();
        let holders: HashMap<(&'static str, [u8; 32]), Uuid> = store::index_holders(tx, &wanted)
            .await?
            .into_iter()
            .map(|(field, hash, holder)| ((field, hash), holder))
            .collect();
        let mut kept = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let clash = candidate
                .user
                .indexes
                .exact
                .iter()
                .find_map(|i| Some((i.0, *holders.get(i)?)));
            match clash {
                Some((field, holder)) => {
                    let probe =
                        UserEvent::probe(batch.command, holder, field, batch.metadata.as_ref());
                    let id = audit::new_event_id();
                    events.push((id, probe.seal(keys, tx.tenant(), id, batch.actor)?));
                    decided.push((candidate.position, Err(VaultError::Duplicate(field))));
                }
                None => kept.push(candidate),
            }
        }
        candidates = kept;
    }
    // Memberships are decided before anything is written, so that a refused one refuses only its
    // own record.
    let mut joins: Vec<(Uuid, i64, Option<i64>)> = Vec::new();
    if candidates.iter().any(|c| c.membership.is_some()) {
        let gate = Gate::load(tx, &batch.principal).await?;
        let mut kept = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let Some((group, role)) = &candidate.membership else {
                kept.push(candidate);
                continue;
            };
            let joining = Joining {
                token: candidate.user.token,
                group,
                role: role.as_ref(),
            };
            let metadata = batch.metadata.as_ref();
            match allowed_membership(tx, keys, &gate, batch.command, joining, metadata).await {
                Ok((group, role)) => {
                    joins.push((candidate.user.token, group, role));
                    kept.push(candidate);
                }
                Err(err) if err.is_refusal() => decided.push((candidate.position, Err(err))),
                Err(err) => return Err(err),
            }
        }
        candidates = kept;
    }
    let users: Vec<NewUser> = candidates.iter().map(|c| c.user.clone()).collect();
    events.extend(candidates.iter().map(|c| c.event.clone()));
    let indexes: Vec<(&'static str, [u8; 32])> = candidates
        .iter()
        .flat_map(|c| c.user.indexes.exact.iter().copied())
        .collect();
    let may_link = indexes.iter().any(|(f, _)| matches!(*f, "email" | "phone"));
    // Pipelined: the statements go out before any answer is awaited. Agreements waiting for these
    // users are looked for only once the linking hold is had (see `hold_linking`), in a statement
    // after it: its snapshot then sees what an accept holding it alone stored.
    let (inserted, audited, waiting) = tokio::join!(
        store::insert_users(tx, &users),
        audit::record_many(tx, &events),
        async {
            if !may_link {
                return Ok(Vec::new());
            }
            bunker_db::consent::hold_linking(tx, false).await?;
            bunker_db::consent::lock_waiting(tx, &indexes).await
        }
    );
    inserted.map_err(duplicate)?;
    audited?;
    // Consent recorded for an e-mail or phone before a user held it is now this user's.
    let waiting = waiting?;
    if !waiting.is_empty() {
        let holders: Vec<crate::consent::Holder<'_>> = candidates
            .iter()
            .map(|c| (c.user.token, c.user.indexes.exact.as_slice()))
            .collect();
        crate::consent::link_waiting(tx, keys, waiting, &holders).await?;
    }
    for (token, group, role) in joins {
        bunker_db::groups::add_member(tx, group, token, role).await?;
    }
    decided.extend(candidates.iter().map(|c| (c.position, Ok(c.user.token))));
    Ok(decided)
}
