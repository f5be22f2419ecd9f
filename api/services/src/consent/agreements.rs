//! Agreements: AgreementAccept, AgreementGet, AgreementListUserAgreements, AgreementCancel,
//! AgreementCancelRequest, AgreementRevokeAll.
//!
//! A role or user token needs a policy granting the `consent` section of the user
//! (`users.consent`, `${target_user}.consent`, ...); a user's own token may give, read and withdraw
//! its own consents, the last directly only where the basis has `usercontrol` (otherwise its
//! AgreementCancel opens a request for a DPO, as AgreementCancelRequest does). Only admins may
//! record consent for an e-mail or phone no user holds yet (a role token is refused as for any
//! user it may not reach, so that it cannot probe for users); it waits under the value's blind
//! index and is linked when UserCreate creates a user with it.

use bunker_db::audit::{AuditEvent, Performer};
use bunker_db::consent::{
    self as store, AgreementValues, LegalBasis, Party, RowLock, StoredAgreement,
};
use bunker_db::TenantTx;
use bunker_keys::{TenantKeys, UserKey};
use bunker_tenancy::{Caller, Principal};
use serde_json::Value;
use uuid::Uuid;

use super::bases::{live_basis, revoke_in_force};
use super::{
    agreement_label, agreement_time, end_agreements, event_methods, normalize_status, text,
    waiting_label, ConsentEvent, Name, Sealed, MAX_SHORT_CHARS,
};
use crate::access::{Command, Operation, DENIED};
use crate::core::gate::Gate;
use crate::core::identity::{Lookup, Mode};
use crate::core::{
    open_json, record_event, resolve, seal_json, unix_now, user_key_for_reading,
    user_key_for_writing, UserEvent, Vault, VaultError,
};
use crate::requests::Proposal;
use crate::webhooks::{notify_consent, ConsentChange};

/// The most changes of one agreement AgreementGet lists (the newest).
const MAX_HISTORY: i64 = 100;

/// The refusal of a user's own withdrawal (by AgreementAccept) of a consent it does not control.
const NEEDS_REQUEST: &str =
    "This consent is withdrawn with a DPO's approval: use AgreementCancel or AgreementCancelRequest";

/// AgreementAccept's fields besides the user and the brief.
#[derive(Clone, Debug, Default)]
pub struct AcceptInput {
    pub status: Option<Value>,
    pub agreementmethod: Option<String>,
    pub referencecode: Option<String>,
    pub lastmodifiedby: Option<String>,
    pub starttime: Option<Value>,
    pub finaltime: Option<Value>,
}

/// An agreement as answered (and as a report holds it).
#[derive(Clone, Debug, serde::Serialize)]
pub struct AgreementView {
    pub brief: String,
    pub status: String,
    pub agreementmethod: Option<String>,
    pub referencecode: Option<String>,
    pub lastmodifiedby: Option<String>,
    /// Unix seconds.
    pub starttime: Option<i64>,
    pub finaltime: Option<i64>,
    pub creationtime: i64,
    /// When it last changed.
    pub when: i64,
    /// Every change, oldest first (AgreementGet only).
    pub history: Vec<HistoryEntry>,
}

/// One change of an agreement, from the audit trail.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HistoryEntry {
    pub time: String,
    pub event: String,
    pub before: Value,
    pub after: Value,
}

/// What AgreementCancel did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Withdrawal {
    Withdrawn,
    /// The user's own token, on a basis it may not withdraw from alone: a request was opened.
    Requested(Uuid),
}

/// The key an agreement's sealed part is sealed with: its user's, or (waiting) the tenant's.
enum PartKey<'k> {
    User(Box<UserKey>),
    Tenant(&'k TenantKeys),
}

impl PartKey<'_> {
    /// The user's key, if the agreement has a user.
    fn user(&self) -> Option<&UserKey> {
        match self {
            PartKey::User(key) => Some(key),
            PartKey::Tenant(_) => None,
        }
    }

    fn seal(&self, tx: &TenantTx<'_>, id: i64, part: &Sealed) -> Result<Vec<u8>, VaultError> {
        let row = id.to_string();
        match self {
            PartKey::User(key) => {
                seal_json(key.as_ref(), &agreement_label(tx.tenant(), &row), part)
            }
            PartKey::Tenant(keys) => {
                seal_json(&keys.records, &waiting_label(tx.tenant(), &row), part)
            }
        }
    }

    fn open(&self, tx: &TenantTx<'_>, id: i64, sealed: &[u8]) -> Result<Sealed, VaultError> {
        let row = id.to_string();
        match self {
            PartKey::User(key) => {
                open_json(key.as_ref(), &agreement_label(tx.tenant(), &row), sealed)
            }
            PartKey::Tenant(keys) => {
                open_json(&keys.records, &waiting_label(tx.tenant(), &row), sealed)
            }
        }
    }
}

/// The key to change `party`'s agreements with (a user's is made if it has none; its row is
/// locked, so that changes of one user's agreements follow one another).
async fn key_for_writing<'k>(
    tx: &TenantTx<'_>,
    keys: &'k TenantKeys,
    party: &Party,
) -> Result<PartKey<'k>, VaultError> {
    Ok(match party {
        Party::User(token) => {
            PartKey::User(Box::new(user_key_for_writing(tx, keys, *token).await?))
        }
        Party::Waiting { .. } => PartKey::Tenant(keys),
    })
}

/// The key to read `party`'s agreements with, if there is one.
async fn key_for_reading<'k>(
    tx: &TenantTx<'_>,
    keys: &'k TenantKeys,
    party: &Party,
) -> Result<Option<PartKey<'k>>, VaultError> {
    Ok(match party {
        Party::User(token) => user_key_for_reading(tx, keys, *token)
            .await?
            .map(|key| PartKey::User(Box::new(key))),
        Party::Waiting { .. } => Some(PartKey::Tenant(keys)),
    })
}

/// The sealed part of `agreement` opened (empty if it has none).
fn part_of(
    tx: &TenantTx<'_>,
    key: Option<&PartKey<'_>>,
    agreement: &StoredAgreement,
) -> Result<Sealed, VaultError> {
    match (&agreement.sealed, key) {
        (None, _) => Ok(Sealed::default()),
        (Some(sealed), Some(key)) => key.open(tx, agreement.id, sealed),
        // Sealed, and the user's key gone since: forgotten meanwhile.
        (Some(_), None) => Err(VaultError::NotFound),
    }
}

/// Whether an agreement is past its final time (the sweeper marks it `expired` soon after; it is
/// answered as expired from then on).
fn lapsed(agreement: &StoredAgreement) -> bool {
    agreement.status == "yes" && agreement.final_at.is_some_and(|at| at <= unix_now())
}

/// Marks an agreement past its final time that the sweeper has not marked yet (audited as
/// Bunker's own expiry, the webhook told), so that a change made now starts from `expired`. The
/// row must be locked.
async fn settle(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    agreement: &mut StoredAgreement,
) -> Result<(), VaultError> {
    if lapsed(agreement) {
        let action = Operation::AgreementExpired.audit_action();
        let ended = std::slice::from_ref(agreement);
        end_agreements(tx, keys, ended, "expired", action, Performer::System, None).await?;
        agreement.status = "expired".to_owned();
    }
    Ok(())
}

/// Whether an agreement is in force: given, and not past its final time.
pub(crate) fn in_force(agreement: &StoredAgreement) -> bool {
    agreement.status == "yes" && !lapsed(agreement)
}

fn view(agreement: &StoredAgreement, part: Sealed) -> AgreementView {
    AgreementView {
        brief: agreement.brief.clone(),
        status: if lapsed(agreement) {
            "expired".to_owned()
        } else {
            agreement.status.clone()
        },
        agreementmethod: part.agreementmethod,
        referencecode: part.referencecode,
        lastmodifiedby: part.lastmodifiedby,
        starttime: agreement.start_at,
        finaltime: agreement.final_at,
        creationtime: agreement.created_at,
        when: agreement.updated_at,
        history: Vec::new(),
    }
}

/// Every change of `agreement`, oldest first, from the audit trail (at most [`MAX_HISTORY`]).
async fn history_of(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    key: Option<&PartKey<'_>>,
    agreement: &StoredAgreement,
) -> Result<Vec<HistoryEntry>, VaultError> {
    let mut history = Vec::new();
    for event in store::history(tx, agreement.id, MAX_HISTORY).await? {
        let Some(sealed) = &event.details else {
            continue;
        };
        let row = event.id.to_string();
        let label = crate::core::audit_label(tx.tenant(), &row);
        let details: Value = open_json(&keys.audit, &label, sealed)?;
        let change = details.get("agreement").unwrap_or(&Value::Null);
        let state = |side: &str| change.get(side).cloned().unwrap_or(Value::Null);
        let (mut before, mut after) = (state("before"), state("after"));
        let methods = key
            .and_then(PartKey::user)
            .and_then(|k| event_methods(k, tx.tenant(), event.id, change));
        if let Some((was, now)) = methods {
            if let Some(state) = before.as_object_mut() {
                state.insert("agreementmethod".into(), was);
            }
            if let Some(state) = after.as_object_mut() {
                state.insert("agreementmethod".into(), now);
            }
        }
        history.push(HistoryEntry {
            time: event.timestamp,
            event: event.action,
            before,
            after,
        });
    }
    Ok(history)
}

/// Every agreement of `user` with its history (SystemGetUserReport), in the transaction.
pub(crate) async fn report_of(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    user: Uuid,
) -> Result<Vec<AgreementView>, VaultError> {
    let party = Party::User(user);
    let agreements = store::agreements_of(tx, &party).await?;
    let key = key_for_reading(tx, keys, &party).await?;
    let mut rows = Vec::new();
    for agreement in agreements {
        let mut row = view(&agreement, part_of(tx, key.as_ref(), &agreement)?);
        row.history = history_of(tx, keys, key.as_ref(), &agreement).await?;
        rows.push(row);
    }
    Ok(rows)
}

/// Whether a consent command reaches the agreements waiting for an e-mail or phone no user holds
/// (an admin's only), and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// It reads them.
    Read,
    /// It changes them: ordered against the creation of their user (see `hold_linking`).
    Write,
}

/// Who `lookup` names for a consent command, if the caller may reach their consent. An admin
/// naming an e-mail or phone no user holds reaches the agreements waiting for it (with
/// `waiting`); anyone else gets the refusal it gets for any user it may not reach.
async fn reach(
    tx: &TenantTx<'_>,
    gate: &Gate,
    lookup: Lookup,
    command: Command,
    metadata: Option<&Value>,
    waiting: Waiting,
) -> Result<Party, VaultError> {
    if let (true, Lookup::Index(field @ ("email" | "phone"), hash)) = (gate.is_admin(), lookup) {
        match resolve(tx, lookup).await {
            Ok(user) => return Ok(Party::User(user.token)),
            Err(VaultError::NotFound) if waiting == Waiting::Read => {
                return Ok(Party::Waiting { field, hash })
            }
            Err(VaultError::NotFound) => {}
            Err(err) => return Err(err),
        }
        // No user holds it: look again once no create of the tenant is in flight (and none
        // starts before this transaction ends), so that a user created meanwhile is found.
        bunker_db::consent::hold_linking(tx, true).await?;
        return match resolve(tx, lookup).await {
            Ok(user) => Ok(Party::User(user.token)),
            Err(VaultError::NotFound) => Ok(Party::Waiting { field, hash }),
            Err(err) => Err(err),
        };
    }
    let (user, visible) = gate.resolve(tx, lookup, command, metadata).await?;
    if !visible.consent() {
        return Err(VaultError::Forbidden(DENIED));
    }
    Ok(Party::User(user.token))
}

/// Audits a read of `party`'s consent: in the user's trail (naming the brief read, if one), or,
/// for agreements waiting for a user, in the tenant's.
async fn audit_read(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    caller: &Caller,
    party: &Party,
    command: Command,
    brief: Option<&str>,
    metadata: Option<&Value>,
) -> Result<(), VaultError> {
    match party {
        Party::User(token) => {
            let field = brief.map_or_else(|| "consent".to_owned(), |b| format!("consent.{b}"));
            let event = UserEvent::change(command, *token, vec![field], metadata);
            record_event(tx, keys, caller.actor(), event).await
        }
        Party::Waiting { .. } => {
            let event = AuditEvent::about(
                Performer::Token(caller.actor()),
                command.audit_action(),
                "consent:waiting".to_owned(),
            );
            bunker_db::audit::record(tx, &event).await?;
            Ok(())
        }
    }
}

/// Withdraws `party`'s agreement to `basis` in the transaction (status `no`), audited as
/// `action`; the webhook is told if it was in force. A withdrawn agreement stays withdrawn.
pub(crate) async fn withdraw(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    party: &Party,
    basis: (i64, &str),
    action: &'static str,
    actor: Performer,
    metadata: Option<&Value>,
) -> Result<(), VaultError> {
    let key = key_for_writing(tx, keys, party).await?;
    let mut agreement = store::get_agreement(tx, party, basis.0, true)
        .await?
        .ok_or(VaultError::AgreementNotFound)?;
    settle(tx, keys, &mut agreement).await?;
    let part = part_of(tx, Some(&key), &agreement)?;
    let status = if agreement.status == "yes" {
        "no"
    } else {
        agreement.status.as_str()
    };
    store::set_status(tx, &[agreement.id], status).await?;
    ConsentEvent {
        action,
        user: agreement.token,
        agreement: agreement.id,
        brief: basis.1,
        before: Some((&agreement.status, Some(&part))),
        after: (status, Some(&part)),
        key: key.user(),
        metadata,
    }
    .record(tx, keys, actor)
    .await?;
    if let (Some(user), "yes") = (agreement.token, agreement.status.as_str()) {
        notify_consent(tx, ConsentChange::Withdrawn, user, basis.1).await?;
    }
    Ok(())
}

/// The legal basis named `brief` (deleted ones too, for reading what referred to them).
async fn any_basis(tx: &TenantTx<'_>, brief: &Name) -> Result<LegalBasis, VaultError> {
    store::get_basis(tx, brief.as_str(), RowLock::None)
        .await?
        .ok_or(VaultError::LegalBasisNotFound)
}

impl Vault {
    /// AgreementAccept: records that the user (or, for an admin, an e-mail or phone no user holds
    /// yet) agreed to `brief` — or, with a status that is not a yes, refused it. Accepting again
    /// replaces the status, times and last modifier, and the method and reference code if sent.
    pub async fn accept_agreement(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        brief: Name,
        input: AcceptInput,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        const COMMAND: Command = Command::AgreementAccept;
        let status = normalize_status(input.status.as_ref());
        let start = input
            .starttime
            .as_ref()
            .map(|v| agreement_time(v, "starttime"))
            .transpose()?;
        let finish = input
            .finaltime
            .as_ref()
            .map(|v| agreement_time(v, "finaltime"))
            .transpose()?;
        if let (Some(start), Some(finish)) = (start, finish) {
            if finish <= start {
                return Err(VaultError::BadRequest(
                    "The finaltime value must come after the starttime".into(),
                ));
            }
        }
        let method = text(input.agreementmethod, "agreementmethod", MAX_SHORT_CHARS)?;
        let reference = text(input.referencecode, "referencecode", MAX_SHORT_CHARS)?;
        let modifier = text(input.lastmodifiedby, "lastmodifiedby", MAX_SHORT_CHARS)?;
        let (_, lookup) = self.locate(caller, mode, identity).await?;
        let actor = Performer::Token(caller.actor());
        // Two first accepts for one e-mail no user holds may meet: the second goes round again
        // and finds the first's agreement.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (keys, principal) = (self.keys(caller.tenant.id).await?, caller.principal.clone());
            let brief = brief.clone();
            let (method, reference) = (method.clone(), reference.clone());
            let (modifier, metadata) = (modifier.clone(), metadata.clone());
            let accepted = self
                .db
                .in_tenant(caller.tenant.id, move |tx| {
                    Box::pin(async move {
                        let gate = Gate::load(tx, &principal).await?;
                        let party = reach(
                            tx,
                            &gate,
                            lookup,
                            COMMAND,
                            metadata.as_ref(),
                            Waiting::Write,
                        )
                        .await?;
                        // Shared: a deletion of the basis waits for this, and this for it.
                        let basis = live_basis(tx, &brief, RowLock::Share).await?;
                        // An inactive basis takes no new consent; a refusal or withdrawal, always.
                        if basis.status != "active" && status == "yes" {
                            return Err(VaultError::LegalBasisInactive);
                        }
                        let key = key_for_writing(tx, &keys, &party).await?;
                        let mut existing = store::get_agreement(tx, &party, basis.id, true).await?;
                        if let Some(agreement) = existing.as_mut() {
                            settle(tx, &keys, agreement).await?;
                        }
                        // Accepting "no" over an agreement in force withdraws it, and bringing
                        // its end nearer ends it sooner: held to AgreementCancel's rules.
                        let in_force_until = existing
                            .as_ref()
                            .filter(|a| a.status == "yes")
                            .map(|a| a.final_at);
                        let now = unix_now();
                        let held_from = existing.as_ref().and_then(|a| a.start_at);
                        let starts_later =
                            start.is_some_and(|s| s > now && held_from.is_none_or(|from| s > from));
                        let withdraws = match in_force_until {
                            None => false,
                            Some(_) if status == "no" || starts_later => true,
                            Some(until) => {
                                finish.is_some_and(|f| until.is_none_or(|until| f < until))
                            }
                        };
                        if let (true, Party::User(user)) = (withdraws, &party) {
                            let own = principal == Principal::User { token: *user };
                            if own && !basis.usercontrol {
                                return Err(VaultError::Forbidden(NEEDS_REQUEST));
                            }
                            let command = Command::AgreementCancel;
                            let visible = gate.check(tx, command, *user, metadata.as_ref()).await?;
                            if !visible.consent() {
                                return Err(VaultError::Forbidden(DENIED));
                            }
                        }
                        let old = match &existing {
                            Some(agreement) => part_of(tx, Some(&key), agreement)?,
                            None => Sealed::default(),
                        };
                        let part = Sealed {
                            agreementmethod: method
                                .or_else(|| old.agreementmethod.clone())
                                .or_else(|| Some("api".to_owned())),
                            referencecode: reference.or_else(|| old.referencecode.clone()),
                            lastmodifiedby: modifier,
                        };
                        let renewed = existing.as_ref().is_none_or(|a| a.status != "yes");
                        let start_at = start.or(match &existing {
                            Some(agreement) if !renewed => agreement.start_at,
                            _ => None,
                        });
                        let mut values = AgreementValues {
                            status,
                            sealed: None,
                            start_at,
                            final_at: finish,
                        };
                        let id = match &existing {
                            Some(agreement) => agreement.id,
                            None => store::insert_agreement(tx, &party, basis.id, &values)
                                .await?
                                .ok_or(VaultError::Conflict)?,
                        };
                        let sealed = key.seal(tx, id, &part)?;
                        values.sealed = Some(&sealed);
                        store::update_agreement(tx, id, &values).await?;
                        let user = match party {
                            Party::User(token) => Some(token),
                            Party::Waiting { .. } => None,
                        };
                        ConsentEvent {
                            action: COMMAND.audit_action(),
                            user,
                            agreement: id,
                            brief: &basis.brief,
                            before: existing.as_ref().map(|a| (a.status.as_str(), Some(&old))),
                            after: (status, Some(&part)),
                            key: key.user(),
                            metadata: metadata.as_ref(),
                        }
                        .record(tx, &keys, actor)
                        .await?;
                        let was_in_force = existing.as_ref().is_some_and(|a| a.status == "yes");
                        if let (Some(user), true, "no") = (user, was_in_force, status) {
                            notify_consent(tx, ConsentChange::Withdrawn, user, &basis.brief)
                                .await?;
                        }
                        Ok(())
                    })
                })
                .await;
            match accepted {
                Err(VaultError::Conflict) if attempt < 3 => continue,
                other => return other,
            }
        }
    }

    /// AgreementGet: the user's agreement to `brief`, with every change of it (oldest first).
    pub async fn get_agreement(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        brief: Name,
        metadata: Option<Value>,
    ) -> Result<AgreementView, VaultError> {
        const COMMAND: Command = Command::AgreementGet;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &caller.principal).await?;
                    let party =
                        reach(tx, &gate, lookup, COMMAND, metadata.as_ref(), Waiting::Read).await?;
                    let basis = any_basis(tx, &brief).await?;
                    let agreement = store::get_agreement(tx, &party, basis.id, false)
                        .await?
                        .ok_or(VaultError::AgreementNotFound)?;
                    let key = key_for_reading(tx, &keys, &party).await?;
                    let mut answer = view(&agreement, part_of(tx, key.as_ref(), &agreement)?);
                    answer.history = history_of(tx, &keys, key.as_ref(), &agreement).await?;
                    let brief = Some(basis.brief.as_str());
                    audit_read(
                        tx,
                        &keys,
                        &caller,
                        &party,
                        COMMAND,
                        brief,
                        metadata.as_ref(),
                    )
                    .await?;
                    Ok(answer)
                })
            })
            .await
    }

    /// AgreementListUserAgreements: every agreement of the user, by brief.
    pub async fn list_user_agreements(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        metadata: Option<Value>,
    ) -> Result<Vec<AgreementView>, VaultError> {
        const COMMAND: Command = Command::AgreementListUserAgreements;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &caller.principal).await?;
                    let party =
                        reach(tx, &gate, lookup, COMMAND, metadata.as_ref(), Waiting::Read).await?;
                    // The rows first, then the key: a key made by a first accept committed
                    // between the two is found.
                    let agreements = store::agreements_of(tx, &party).await?;
                    let key = key_for_reading(tx, &keys, &party).await?;
                    let mut rows = Vec::new();
                    for agreement in agreements {
                        rows.push(view(&agreement, part_of(tx, key.as_ref(), &agreement)?));
                    }
                    audit_read(tx, &keys, &caller, &party, COMMAND, None, metadata.as_ref())
                        .await?;
                    Ok(rows)
                })
            })
            .await
    }

    /// AgreementCancel: withdraws the user's agreement to `brief`. The user's own token, on a
    /// basis without `usercontrol`, opens a request for a DPO instead (as AgreementCancelRequest).
    pub async fn cancel_agreement(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        brief: Name,
        metadata: Option<Value>,
    ) -> Result<Withdrawal, VaultError> {
        const COMMAND: Command = Command::AgreementCancel;
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let principal = caller.principal.clone();
        let actor = Performer::Token(caller.actor());
        let wanted = brief.clone();
        let request_metadata = metadata.clone();
        let withdrawn = self
            .db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let metadata = request_metadata.as_ref();
                    let gate = Gate::load(tx, &principal).await?;
                    let party = reach(tx, &gate, lookup, COMMAND, metadata, Waiting::Write).await?;
                    let basis = live_basis(tx, &wanted, RowLock::Share).await?;
                    let own = matches!((&principal, &party),
                        (Principal::User { token }, Party::User(user)) if token == user);
                    if own && !basis.usercontrol {
                        return Ok(false);
                    }
                    let action = COMMAND.audit_action();
                    let basis = (basis.id, basis.brief.as_str());
                    withdraw(tx, &keys, &party, basis, action, actor, metadata).await?;
                    Ok::<_, VaultError>(true)
                })
            })
            .await?;
        if withdrawn {
            return Ok(Withdrawal::Withdrawn);
        }
        let proposal = Proposal::WithdrawConsent(brief);
        let uuid = self
            .open_request(caller, mode, identity, proposal, metadata)
            .await?;
        Ok(Withdrawal::Requested(uuid))
    }

    /// AgreementCancelRequest: opens a request for a DPO to withdraw the user's agreement to
    /// `brief` (or answers the open one).
    pub async fn request_agreement_cancellation(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        brief: Name,
        metadata: Option<Value>,
    ) -> Result<Uuid, VaultError> {
        let proposal = Proposal::WithdrawConsent(brief);
        self.open_request(caller, mode, identity, proposal, metadata)
            .await
    }

    /// AgreementRevokeAll: revokes every agreement in force to `brief` (each audited, the webhook
    /// told for each user). A role token must be allowed it on the consent of every user concerned.
    pub async fn revoke_all_agreements(
        &self,
        caller: &Caller,
        brief: Name,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        let found = brief.clone();
        let basis = self
            .db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move { live_basis(tx, &found, RowLock::None).await })
            })
            .await?;
        revoke_in_force(
            self,
            caller,
            basis.id,
            Command::AgreementRevokeAll,
            metadata,
        )
        .await
    }
}
