//! User requests (the approval workflow): UserUpdateRequest, UserPatchRequest, UserDeleteRequest
//! and AppdataUpdateRequest open a request instead of changing anything; an admin, or a DPO whose
//! role a policy grants UserRequestApprove / UserRequestCancel on the user, approves it (the change
//! is applied by the same code as the direct command, with its checks, in the transaction that
//! closes the request: a change that has become invalid is refused and the request stays open) or
//! cancels it (with a reason). One open request per user, kind and app: asking again answers the
//! open one's uuid. The change, the request's metadata and the reason are sealed with the user's
//! own key: forget-me, which destroys it, leaves none of them readable and cancels what is open.

use bunker_db::audit::Performer;
use bunker_db::consent::{self as consent_store, Party, RowLock};
use bunker_db::requests::{self as store, NewRequest, StoredRequest};
use bunker_db::users::StoredUser;
use bunker_db::{TenantId, TenantTx};
use bunker_keys::{Label, TenantKeys, UserKey};
use bunker_tenancy::{Caller, Principal};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::access::engine::Visible;
use crate::access::{Command, DENIED};
use crate::appdata::{apply_app_change, current_app_data, AppName};
use crate::bulk::require_unlock;
use crate::consent::agreements::{in_force, withdraw};
use crate::consent::bases::live_basis;
use crate::consent::{forget_user, Name};
use crate::core::gate::Gate;
use crate::core::identity::{Lookup, Mode};
use crate::core::limits::{check_document, MAX_DOCUMENT_BYTES};
use crate::core::{
    open_json, record_event, seal_json, user_key_for_reading, user_key_for_writing, UserEvent,
    Vault, VaultError,
};
use crate::users::{apply_patch, open_current, parse_patch, Change, ChangeRequest};
use crate::webhooks::{notify, RequestEvent};

/// The most requests a role or user token's listing looks through.
const MAX_SCANNED: i64 = 10_000;
/// The longest cancellation reason.
pub const MAX_REASON_CHARS: usize = 1024;

/// What a request asks for.
#[derive(Clone, Debug)]
pub enum Proposal {
    /// UserUpdateRequest: a merge into the profile.
    ChangeProfile(Map<String, Value>),
    /// UserPatchRequest: an RFC 6902 patch of the profile (as sent; checked when asked).
    PatchProfile(Value),
    /// UserDeleteRequest: forget-me.
    ForgetMe,
    /// AppdataUpdateRequest: a merge into an app's data.
    ChangeAppData(AppName, Map<String, Value>),
    /// AgreementCancelRequest (or a user's AgreementCancel where it may not withdraw alone): the
    /// withdrawal of its agreement to a legal basis.
    WithdrawConsent(Name),
}

impl Proposal {
    fn kind(&self) -> &'static str {
        match self {
            Proposal::ChangeProfile(_) => "change-profile",
            Proposal::PatchProfile(_) => "patch-profile",
            Proposal::ForgetMe => "forget-me",
            Proposal::ChangeAppData(..) => "change-app-data",
            Proposal::WithdrawConsent(_) => "withdraw-consent",
        }
    }

    fn command(&self) -> Command {
        match self {
            Proposal::ChangeProfile(_) => Command::UserUpdateRequest,
            Proposal::PatchProfile(_) => Command::UserPatchRequest,
            Proposal::ForgetMe => Command::UserDeleteRequest,
            Proposal::ChangeAppData(..) => Command::AppdataUpdateRequest,
            Proposal::WithdrawConsent(_) => Command::AgreementCancelRequest,
        }
    }

    fn app(&self) -> Option<&AppName> {
        match self {
            Proposal::ChangeAppData(app, _) => Some(app),
            _ => None,
        }
    }

    /// The change as sealed (none for forget-me).
    fn change(&self) -> Option<Value> {
        match self {
            Proposal::ChangeProfile(map) | Proposal::ChangeAppData(_, map) => {
                Some(Value::Object(map.clone()))
            }
            Proposal::PatchProfile(patch) => Some(patch.clone()),
            Proposal::ForgetMe | Proposal::WithdrawConsent(_) => None,
        }
    }

    /// Whether `visible` covers what the proposal touches.
    fn allowed(&self, visible: &Visible) -> bool {
        kind_allowed(self.kind(), visible)
    }
}

/// Whether `visible` covers what a request of `kind` touches: the app data for an app-data change,
/// the consent for a withdrawal, the whole profile for the others.
fn kind_allowed(kind: &str, visible: &Visible) -> bool {
    match kind {
        "change-app-data" => visible.appdata(),
        "withdraw-consent" => visible.consent(),
        _ => visible.whole_profile(),
    }
}

/// One page of `rows`.
fn page_of(rows: Vec<StoredRequest>, offset: i64, limit: i64) -> Vec<StoredRequest> {
    rows.into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .collect()
}

/// A request as answered.
#[derive(Clone, Debug)]
pub struct RequestView {
    pub uuid: Uuid,
    pub token: Uuid,
    pub kind: String,
    pub app: Option<String>,
    /// A withdrawal's legal basis.
    pub brief: Option<String>,
    pub status: String,
    pub created: i64,
    pub decided: Option<i64>,
    /// The proposed change (UserRequestGet only; none for forget-me).
    pub change: Option<Value>,
    /// What is stored now, to compare with (UserRequestGet only).
    pub original: Option<Value>,
    /// What would be stored once it is approved: the change applied to `original` by the code
    /// that approves it (UserRequestGet only; none where it applies to nothing, or where the
    /// patch cannot be applied to what is stored now, which approval would then refuse).
    pub proposed: Option<Value>,
    /// A digest of `original` and `change` (UserRequestGet only): given to UserRequestApprove, it
    /// approves only while the record is still as it was reviewed.
    pub reviewed: Option<String>,
    /// Why it was cancelled (UserRequestGet only).
    pub reason: Option<String>,
}

fn label<'a>(tenant: TenantId, kind: &'a str, row: &'a str) -> Label<'a> {
    Label {
        tenant: tenant.0,
        kind,
        row,
    }
}

fn seal_value(
    key: &UserKey,
    tenant: TenantId,
    kind: &str,
    uuid: Uuid,
    value: &Value,
) -> Result<Vec<u8>, VaultError> {
    let row = uuid.to_string();
    seal_json(key, &label(tenant, kind, &row), value)
}

fn open_value(
    key: &UserKey,
    tenant: TenantId,
    kind: &str,
    uuid: Uuid,
    sealed: &[u8],
) -> Result<Value, VaultError> {
    let row = uuid.to_string();
    open_json(key, &label(tenant, kind, &row), sealed)
}

fn view(request: &StoredRequest) -> RequestView {
    RequestView {
        uuid: request.uuid,
        token: request.token,
        kind: request.kind.clone(),
        app: request.appname.clone(),
        brief: request.brief.clone(),
        status: request.status.clone(),
        created: request.created_at,
        decided: request.decided_at,
        change: None,
        original: None,
        proposed: None,
        reviewed: None,
        reason: None,
    }
}

/// Whether a request's proposal was removed by a forget-me (its kind has one, and it is gone).
fn emptied(request: &StoredRequest) -> bool {
    request.change.is_none() && !matches!(request.kind.as_str(), "forget-me" | "withdraw-consent")
}

/// The proposal a stored request holds, opened with the user's key.
/// What a request would change, as it is stored now: the profile, the app's data, the agreement
/// (none for forget-me).
async fn original_of(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    request: &StoredRequest,
    user: &StoredUser,
    proposal: &Proposal,
) -> Result<Option<Value>, VaultError> {
    Ok(match proposal {
        Proposal::ChangeAppData(app, _) => current_app_data(tx, keys, user.token, app)
            .await?
            .map(Value::Object),
        Proposal::ForgetMe => None,
        Proposal::WithdrawConsent(brief) => {
            let party = Party::User(user.token);
            let status = match request.basis_id {
                Some(basis) => consent_store::get_agreement(tx, &party, basis, false)
                    .await?
                    .map(|a| a.status),
                None => None,
            };
            Some(json!({"brief": brief.as_str(), "status": status}))
        }
        _ => Some(Value::Object(open_current(keys, tx.tenant(), user)?)),
    })
}

/// The digest of what a reviewer saw: what is stored and what is asked (objects' keys sorted).
pub fn review_digest(original: Option<&Value>, change: Option<&Value>) -> String {
    use sha2::{Digest, Sha256};
    let seen = serde_json::to_vec(&json!([original, change])).unwrap_or_default();
    hex::encode(Sha256::digest(&seen))
}

/// `original` as approving `proposal` would leave it, for the reviewer to compare.
async fn proposed(proposal: &Proposal, original: Option<&Value>) -> Option<Value> {
    match (proposal, original) {
        (Proposal::ChangeProfile(change), Some(original))
        | (Proposal::ChangeAppData(_, change), Some(original)) => {
            let mut merged = original.clone();
            json_patch::merge(&mut merged, &Value::Object(change.clone()));
            Some(merged)
        }
        (Proposal::PatchProfile(patch), Some(original)) => {
            let patch = parse_patch(patch.clone()).ok()?;
            let original = original.clone();
            // As approval applies it: bounded, off the async workers.
            tokio::task::spawn_blocking(move || apply_patch(original, &patch))
                .await
                .ok()?
                .ok()
        }
        _ => None,
    }
}

fn proposal_of(
    request: &StoredRequest,
    key: Option<&UserKey>,
    tenant: TenantId,
) -> Result<Proposal, VaultError> {
    let change = match (&request.change, key) {
        (Some(sealed), Some(key)) => Some(open_value(
            key,
            tenant,
            "request_change",
            request.uuid,
            sealed,
        )?),
        (Some(_), None) => return Err(VaultError::Keys(bunker_keys::KeyError::Unsealable)),
        (None, _) => None,
    };
    let object = |value: Option<Value>| match value {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(VaultError::Keys(bunker_keys::KeyError::Unsealable)),
    };
    Ok(match request.kind.as_str() {
        "change-profile" => Proposal::ChangeProfile(object(change)?),
        "patch-profile" => Proposal::PatchProfile(change.unwrap_or(Value::Null)),
        "forget-me" => Proposal::ForgetMe,
        "withdraw-consent" => Proposal::WithdrawConsent(Name::parse(
            request.brief.as_deref().unwrap_or_default(),
            "brief",
        )?),
        _ => {
            let app = AppName::parse(request.appname.as_deref().unwrap_or_default())?;
            Proposal::ChangeAppData(app, object(change)?)
        }
    })
}

/// A user's requests the caller may see what they touch of (by `visible`), newest first, each with
/// its proposed change and the reason it was cancelled (SystemGetUserReport), in the transaction.
pub(crate) async fn report_of(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    user: Uuid,
    visible: &Visible,
) -> Result<Vec<RequestView>, VaultError> {
    let (rows, _) = store::of_user(tx, user, 0, MAX_SCANNED).await?;
    let key = user_key_for_reading(tx, keys, user).await?;
    let mut views = Vec::new();
    for request in rows.iter().filter(|r| kind_allowed(&r.kind, visible)) {
        let mut answer = view(request);
        if let Some(key) = key.as_ref() {
            if let Some(sealed) = &request.change {
                answer.change = Some(open_value(
                    key,
                    tx.tenant(),
                    "request_change",
                    request.uuid,
                    sealed,
                )?);
            }
            if let Some(sealed) = &request.reason {
                let reason = open_value(key, tx.tenant(), "request_reason", request.uuid, sealed)?;
                answer.reason = reason.as_str().map(str::to_owned);
            }
        }
        views.push(answer);
    }
    Ok(views)
}

/// A request the caller may decide on or read, with its user: the same refusal for one that does
/// not exist as for one the caller may not touch.
async fn reach_request(
    tx: &TenantTx<'_>,
    gate: &Gate,
    uuid: Uuid,
    command: Command,
    lock: bool,
    metadata: Option<&Value>,
) -> Result<(StoredRequest, StoredUser, Visible), VaultError> {
    let missing = || gate.hide_missing(command, VaultError::RequestNotFound);
    let mut request = store::get(tx, uuid, false).await?.ok_or_else(missing)?;
    if lock {
        // The user's row first, then the request's: the order a new request of that user takes
        // (it locks the user, then meets the open request), so the two never wait on each other.
        bunker_db::appdata::lock_user_key(tx, request.token).await?;
        request = store::get(tx, uuid, true).await?.ok_or_else(missing)?;
    }
    let (user, visible) = match gate
        .resolve(tx, Lookup::Token(request.token), command, metadata)
        .await
    {
        Ok(found) => found,
        Err(VaultError::NotFound) => return Err(missing()),
        Err(err) => return Err(err),
    };
    Ok((request, user, visible))
}

impl Vault {
    /// Opens a request for the user `mode`/`identity` names (or answers the open one of the same
    /// kind and app). Changes nothing else.
    pub async fn open_request(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        proposal: Proposal,
        metadata: Option<Value>,
    ) -> Result<Uuid, VaultError> {
        // Checked now, so that a request that could never be approved is not kept.
        match &proposal {
            Proposal::PatchProfile(patch) => {
                parse_patch(patch.clone())?;
            }
            Proposal::ChangeProfile(map) | Proposal::ChangeAppData(_, map) => {
                check_document(&Value::Object(map.clone()), "change", MAX_DOCUMENT_BYTES)?;
            }
            Proposal::ForgetMe | Proposal::WithdrawConsent(_) => {}
        }
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        let command = proposal.command();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let (user, visible) = Gate::load(tx, &principal)
                        .await?
                        .resolve(tx, lookup, command, metadata.as_ref())
                        .await?;
                    if !proposal.allowed(&visible) {
                        return Err(VaultError::Forbidden(DENIED));
                    }
                    let key = user_key_for_writing(tx, &keys, user.token).await?;
                    // A change of app data that does not exist could never be approved.
                    if let Some(app) = proposal.app() {
                        if current_app_data(tx, &keys, user.token, app)
                            .await?
                            .is_none()
                        {
                            return Err(VaultError::AppDataNotFound);
                        }
                    }
                    // A withdrawal needs an agreement to withdraw.
                    let basis_id = match &proposal {
                        Proposal::WithdrawConsent(brief) => {
                            let basis = live_basis(tx, brief, RowLock::Share).await?;
                            let party = Party::User(user.token);
                            let agreement =
                                consent_store::get_agreement(tx, &party, basis.id, false)
                                    .await?
                                    .ok_or(VaultError::AgreementNotFound)?;
                            // Nothing to withdraw: a request no one needs to decide.
                            if !in_force(&agreement) {
                                return Err(VaultError::AgreementNotInForce);
                            }
                            Some(basis.id)
                        }
                        _ => None,
                    };
                    let uuid = Uuid::new_v4();
                    let change = proposal
                        .change()
                        .map(|c| seal_value(&key, tx.tenant(), "request_change", uuid, &c))
                        .transpose()?;
                    let sealed_metadata = metadata
                        .as_ref()
                        .map(|m| seal_value(&key, tx.tenant(), "request_metadata", uuid, m))
                        .transpose()?;
                    let (uuid, new) = store::open(
                        tx,
                        &NewRequest {
                            uuid,
                            token: user.token,
                            kind: proposal.kind(),
                            appname: proposal.app().map(AppName::as_str),
                            basis_id,
                            change: change.as_deref(),
                            metadata: sealed_metadata.as_deref(),
                            requested_by: actor.token_id,
                        },
                    )
                    .await?
                    .ok_or(VaultError::Conflict)?;
                    if new {
                        let event = UserEvent::about(command, user.token, metadata.as_ref());
                        record_event(tx, &keys, actor, event).await?;
                        notify(tx, RequestEvent::Opened, user.token, uuid).await?;
                    }
                    Ok(uuid)
                })
            })
            .await
    }

    /// UserRequestGet: the request, with the proposed change and what is stored now.
    pub async fn get_request(
        &self,
        caller: &Caller,
        uuid: Uuid,
        metadata: Option<Value>,
    ) -> Result<RequestView, VaultError> {
        let keys = self.keys(caller.tenant.id).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let command = Command::UserRequestGet;
                    let (request, user, visible) =
                        reach_request(tx, &gate, uuid, command, false, metadata.as_ref()).await?;
                    if !kind_allowed(&request.kind, &visible) {
                        return Err(VaultError::Forbidden(DENIED));
                    }
                    let key = user_key_for_reading(tx, &keys, user.token).await?;
                    let mut answer = view(&request);
                    // Emptied by a forget-me (of a profile restored since): closed, with nothing
                    // left to show of what it asked.
                    if emptied(&request) {
                        let event = UserEvent::about(command, user.token, metadata.as_ref());
                        record_event(tx, &keys, actor, event).await?;
                        return Ok(answer);
                    }
                    let proposal = proposal_of(&request, key.as_ref(), tx.tenant())?;
                    answer.change = proposal.change();
                    answer.original = original_of(tx, &keys, &request, &user, &proposal).await?;
                    answer.reviewed = Some(review_digest(
                        answer.original.as_ref(),
                        answer.change.as_ref(),
                    ));
                    answer.proposed = proposed(&proposal, answer.original.as_ref()).await;
                    if let (Some(sealed), Some(key)) = (&request.reason, key.as_ref()) {
                        let reason = open_value(key, tx.tenant(), "request_reason", uuid, sealed)?;
                        answer.reason = reason.as_str().map(str::to_owned);
                    }
                    let event = UserEvent::about(command, user.token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
                    Ok(answer)
                })
            })
            .await
    }

    /// UserRequestListUserRequests: one page of a user's requests, newest first.
    pub async fn list_user_requests(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        offset: i64,
        limit: i64,
        metadata: Option<Value>,
    ) -> Result<(Vec<RequestView>, i64), VaultError> {
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let command = Command::UserRequestListUserRequests;
                    let (user, visible) = Gate::load(tx, &principal)
                        .await?
                        .resolve(tx, lookup, command, metadata.as_ref())
                        .await?;
                    // Only the kinds of request the caller may see what they touch of.
                    if !visible.whole_profile() && !visible.appdata() {
                        return Err(VaultError::Forbidden(DENIED));
                    }
                    let (rows, total) = if visible.whole_profile() && visible.appdata() {
                        store::of_user(tx, user.token, offset, limit).await?
                    } else {
                        let (rows, _) = store::of_user(tx, user.token, 0, MAX_SCANNED).await?;
                        let seen: Vec<StoredRequest> = rows
                            .into_iter()
                            .filter(|r| kind_allowed(&r.kind, &visible))
                            .collect();
                        let total = seen.len() as i64;
                        (page_of(seen, offset, limit), total)
                    };
                    let event = UserEvent::about(command, user.token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
                    Ok((rows.iter().map(view).collect(), total))
                })
            })
            .await
    }

    /// BulkListAllUserRequests (behind an unlock): one page of the tenant's requests, newest
    /// first, of one status or all; a role or user token sees those of the users it may touch.
    pub async fn bulk_list_all_requests(
        &self,
        caller: &Caller,
        unlock: String,
        status: Option<String>,
        offset: i64,
        limit: i64,
        metadata: Option<Value>,
    ) -> Result<(Vec<RequestView>, i64), VaultError> {
        const COMMAND: Command = Command::BulkListAllUserRequests;
        if let Some(status) = &status {
            if !matches!(status.as_str(), "open" | "approved" | "cancelled") {
                return Err(VaultError::BadRequest(
                    "status must be open, approved or cancelled".into(),
                ));
            }
        }
        let principal = caller.principal.clone();
        let actor = caller.actor();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    require_unlock(tx, &unlock, actor.token_id).await?;
                    let gate = Gate::load(tx, &principal).await?;
                    let (rows, total) = if gate.is_admin() {
                        store::all(tx, status.as_deref(), offset, limit).await?
                    } else {
                        let (rows, _) = store::all(tx, status.as_deref(), 0, MAX_SCANNED).await?;
                        let mut tokens: Vec<Uuid> = rows.iter().map(|r| r.token).collect();
                        tokens.sort_unstable();
                        tokens.dedup();
                        let visible = gate
                            .visible(tx, COMMAND, &tokens, metadata.as_ref())
                            .await?;
                        let seen: Vec<StoredRequest> = rows
                            .into_iter()
                            .filter(|r| {
                                visible
                                    .get(&r.token)
                                    .is_some_and(|v| kind_allowed(&r.kind, v))
                            })
                            .collect();
                        let total = seen.len() as i64;
                        (page_of(seen, offset, limit), total)
                    };
                    let event = bunker_db::audit::AuditEvent::about(
                        bunker_db::audit::Performer::Token(actor),
                        COMMAND.audit_action(),
                        "requests".into(),
                    );
                    bunker_db::audit::record(tx, &event).await?;
                    Ok((rows.iter().map(view).collect(), total))
                })
            })
            .await
    }

    /// UserRequestApprove: applies the request's change, as the direct command would, and closes
    /// it, in one transaction; a change that has become invalid (a clash, a bad patch) is refused
    /// with its reason and the request stays open.
    pub async fn approve_request(
        &self,
        caller: &Caller,
        uuid: Uuid,
        reviewed: Option<String>,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        const COMMAND: Command = Command::UserRequestApprove;
        let tenant = caller.tenant.id;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let keys = self.keys(tenant).await?;
            let principal = caller.principal.clone();
            let actor = caller.actor();
            let request_metadata = metadata.clone();
            let reviewed = reviewed.clone();
            let vault = self.clone();
            let result = self
                .db
                .in_tenant(tenant, move |tx| {
                    Box::pin(async move {
                        let metadata = request_metadata;
                        let gate = Gate::load(tx, &principal).await?;
                        let (request, user, visible) =
                            reach_request(tx, &gate, uuid, COMMAND, true, metadata.as_ref())
                                .await?;
                        // Decided before anything about the request is told (even that it is
                        // closed).
                        if !kind_allowed(&request.kind, &visible) {
                            return Err(VaultError::Forbidden(DENIED));
                        }
                        if request.status != "open" {
                            return Err(VaultError::RequestClosed);
                        }
                        let key = user_key_for_reading(tx, &keys, user.token).await?;
                        let proposal = proposal_of(&request, key.as_ref(), tx.tenant())?;
                        // Approved only as reviewed, when the reviewer says what it saw.
                        if let Some(reviewed) = &reviewed {
                            let original =
                                original_of(tx, &keys, &request, &user, &proposal).await?;
                            let change = proposal.change();
                            if review_digest(original.as_ref(), change.as_ref()) != *reviewed {
                                return Err(VaultError::ReviewOutdated);
                            }
                        }
                        // Closed first: a forget-me cancels the user's open requests.
                        store::close(tx, uuid, "approved", None, actor.token_id).await?;
                        vault
                            .apply(tx, &keys, &principal, actor, &user, proposal, metadata)
                            .await?;
                        notify(tx, RequestEvent::Approved, user.token, uuid).await?;
                        Ok::<_, VaultError>(user.token)
                    })
                })
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(VaultError::Conflict) if attempt < 5 => continue,
                Err(VaultError::Clash { field, hash }) => {
                    return Err(self
                        .record_clash(caller, COMMAND, field, hash, metadata)
                        .await)
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Applies an approved proposal in the transaction, audited as UserRequestApprove.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        tx: &TenantTx<'_>,
        keys: &TenantKeys,
        principal: &Principal,
        actor: bunker_db::audit::Actor,
        user: &StoredUser,
        proposal: Proposal,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        let command = Command::UserRequestApprove;
        let change = match proposal {
            Proposal::ChangeProfile(map) => Change::Merge(map),
            Proposal::PatchProfile(patch) => Change::Patch(parse_patch(patch)?),
            Proposal::ForgetMe => {
                let action = command.audit_action();
                forget_user(tx, keys, user.token, action, Performer::Token(actor)).await?;
                let event = UserEvent::about(command, user.token, metadata.as_ref());
                return record_event(tx, keys, actor, event).await;
            }
            Proposal::WithdrawConsent(brief) => {
                let basis = consent_store::get_basis(tx, brief.as_str(), RowLock::Share)
                    .await?
                    .ok_or(VaultError::LegalBasisNotFound)?;
                let party = Party::User(user.token);
                let basis = (basis.id, basis.brief.as_str());
                let action = command.audit_action();
                let actor = Performer::Token(actor);
                return withdraw(tx, keys, &party, basis, action, actor, metadata.as_ref()).await;
            }
            Proposal::ChangeAppData(app, change) => {
                let keep = self.settings.versions_kept;
                apply_app_change(tx, keys, user, &app, change, keep).await?;
                let fields = vec![format!("appdata.{}", app.as_str())];
                let event = UserEvent::change(command, user.token, fields, metadata.as_ref());
                return record_event(tx, keys, actor, event).await;
            }
        };
        let request = ChangeRequest {
            principal: principal.clone(),
            actor,
            command,
            lookup: Lookup::Token(user.token),
            change,
            metadata,
        };
        self.apply_change(tx, keys, request).await
    }

    /// UserRequestCancel: closes an open request without applying it, keeping `reason` (sealed).
    pub async fn cancel_request(
        &self,
        caller: &Caller,
        uuid: Uuid,
        reason: Option<String>,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        const COMMAND: Command = Command::UserRequestCancel;
        if reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
        {
            return Err(VaultError::BadRequest(format!(
                "reason may hold at most {MAX_REASON_CHARS} characters"
            )));
        }
        let keys = self.keys(caller.tenant.id).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let (request, user, visible) =
                        reach_request(tx, &gate, uuid, COMMAND, true, metadata.as_ref()).await?;
                    if !kind_allowed(&request.kind, &visible) {
                        return Err(VaultError::Forbidden(DENIED));
                    }
                    if request.status != "open" {
                        return Err(VaultError::RequestClosed);
                    }
                    let sealed = match &reason {
                        Some(reason) => {
                            let key = user_key_for_writing(tx, &keys, user.token).await?;
                            let value = json!(reason);
                            Some(seal_value(
                                &key,
                                tx.tenant(),
                                "request_reason",
                                uuid,
                                &value,
                            )?)
                        }
                        None => None,
                    };
                    store::close(tx, uuid, "cancelled", sealed.as_deref(), actor.token_id).await?;
                    notify(tx, RequestEvent::Cancelled, user.token, uuid).await?;
                    let event = UserEvent::about(COMMAND, user.token, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await
                })
            })
            .await
    }
}
