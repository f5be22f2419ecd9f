//! A tenant's legal bases (LegalBasisCreate, LegalBasisUpdate, LegalBasisDelete,
//! LegalBasisListAgreements) and processing activities (ProcessingActivity*). Both are the
//! tenant's own texts, not personal data; admins manage them, and a role whose policy allows the
//! command (a DPO). Any user token of the tenant may list both: a data subject is entitled to know
//! what is processed and why. Each change is audited in the tenant's trail.

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::consent::{
    self as store, Activity, ActivityFields, BasisFields, LegalBasis, RowLock,
};
use bunker_db::TenantTx;
use bunker_tenancy::Caller;
use serde_json::Value;

use super::{end_agreements, text, Name, MAX_LONG_CHARS, MAX_SHORT_CHARS};
use crate::access::{Command, DENIED};
use crate::core::gate::Gate;
use crate::core::{Vault, VaultError};

/// The most legal bases, and processing activities, one tenant may hold (their listings are not
/// paginated).
pub const MAX_PER_TENANT: i64 = 1_000;
/// Agreements revoked per transaction by LegalBasisDelete and AgreementRevokeAll.
const REVOKE_BATCH: i64 = 1_000;
/// The most agreements in force a role token may revoke at once (each is decided for its user).
const MAX_DECIDED: i64 = 100_000;

/// The legal basis types (upstream's; `_` read as `-`).
const BASIS_TYPES: [&str; 6] = [
    "consent",
    "contract",
    "legal-requirement",
    "legitimate-interest",
    "public-interest",
    "vital-interest",
];

/// A legal basis's fields as sent, checked: a known status and type (lower-cased; `_` in a type
/// read as `-`), texts within their lengths.
fn checked_basis(fields: BasisFields) -> Result<BasisFields, VaultError> {
    let status = match fields.status.map(|s| s.trim().to_ascii_lowercase()) {
        None => None,
        Some(s) if s == "active" || s == "inactive" => Some(s),
        Some(_) => {
            return Err(VaultError::BadRequest(
                "status must be active or inactive".into(),
            ))
        }
    };
    let basistype = match fields
        .basistype
        .map(|t| t.trim().to_ascii_lowercase().replace('_', "-"))
    {
        None => None,
        Some(t) if BASIS_TYPES.contains(&t.as_str()) => Some(t),
        Some(_) => {
            return Err(VaultError::BadRequest(format!(
                "basistype must be one of {}",
                BASIS_TYPES.join(", ")
            )))
        }
    };
    Ok(BasisFields {
        status,
        basistype,
        module: text(fields.module, "module", MAX_SHORT_CHARS)?,
        shortdesc: text(fields.shortdesc, "shortdesc", MAX_SHORT_CHARS)?,
        fulldesc: text(fields.fulldesc, "fulldesc", MAX_LONG_CHARS)?,
        requiredmsg: text(fields.requiredmsg, "requiredmsg", MAX_SHORT_CHARS)?,
        requiredflag: fields.requiredflag,
        usercontrol: fields.usercontrol,
    })
}

/// A legal basis or processing activity to create, checked.
enum NewText {
    Basis(BasisFields),
    Activity(ActivityFields),
}

/// A processing activity's fields as sent, checked: texts within their lengths.
fn checked_activity(fields: ActivityFields) -> Result<ActivityFields, VaultError> {
    Ok(ActivityFields {
        title: text(fields.title, "title", MAX_SHORT_CHARS)?,
        script: text(fields.script, "script", MAX_LONG_CHARS)?,
        fulldesc: text(fields.fulldesc, "fulldesc", MAX_LONG_CHARS)?,
        applicableto: text(fields.applicableto, "applicableto", MAX_SHORT_CHARS)?,
    })
}

/// Records a change of the tenant's consent texts.
async fn record(
    tx: &TenantTx<'_>,
    caller: &Caller,
    command: Command,
    target: String,
) -> Result<(), VaultError> {
    let event = AuditEvent::about(
        Performer::Token(caller.actor()),
        command.audit_action(),
        target,
    );
    audit::record(tx, &event).await?;
    Ok(())
}

/// A legal basis that exists and is not deleted.
pub(crate) async fn live_basis(
    tx: &TenantTx<'_>,
    brief: &Name,
    lock: RowLock,
) -> Result<LegalBasis, VaultError> {
    match store::get_basis(tx, brief.as_str(), lock).await? {
        Some(basis) if basis.status != "deleted" => Ok(basis),
        _ => Err(VaultError::LegalBasisNotFound),
    }
}

/// Revokes up to `limit` agreements in force under `basis_id`, locked in this transaction, as
/// `command`; returns whether more remain. A role token must be allowed `command` on every user's
/// consent (a `users…` grant) and on the consent of each user concerned, decided here under the
/// rows' locks (a Deny of one of them refuses the whole, and nothing is revoked).
#[allow(clippy::too_many_arguments)]
async fn revoke_locked(
    tx: &TenantTx<'_>,
    keys: &bunker_keys::TenantKeys,
    gate: &Gate,
    basis_id: i64,
    command: Command,
    actor: Performer,
    metadata: Option<&Value>,
    limit: i64,
) -> Result<bool, VaultError> {
    let (batch, more) = store::lock_in_force(tx, basis_id, limit).await?;
    if !gate.is_admin() {
        if !gate.nobody(tx, command, metadata).await?.consent() {
            return Err(VaultError::Forbidden(DENIED));
        }
        // A consent waiting for its user is an admin's only (no policy can name that user yet).
        if batch.iter().any(|a| a.token.is_none()) {
            return Err(VaultError::Forbidden(DENIED));
        }
        let users: Vec<_> = batch.iter().filter_map(|a| a.token).collect();
        let visible = gate.visible(tx, command, &users, metadata).await?;
        if users
            .iter()
            .any(|u| !visible.get(u).is_some_and(|v| v.consent()))
        {
            return Err(VaultError::Forbidden(DENIED));
        }
    }
    let action = command.audit_action();
    end_agreements(tx, keys, &batch, "revoked", action, actor, metadata).await?;
    Ok(more)
}

/// Revokes every agreement in force under `basis_id`, as `command` by `caller`: an admin's a
/// batch per transaction; a role token's in one transaction, decided for every user concerned
/// under the rows' locks (at most [`MAX_DECIDED`]).
pub(crate) async fn revoke_in_force(
    vault: &Vault,
    caller: &Caller,
    basis_id: i64,
    command: Command,
    metadata: Option<Value>,
) -> Result<(), VaultError> {
    let tenant = caller.tenant.id;
    let admin = caller.is_admin();
    let limit = if admin { REVOKE_BATCH } else { MAX_DECIDED };
    loop {
        let keys = vault.keys(tenant).await?;
        let principal = caller.principal.clone();
        let actor = Performer::Token(caller.actor());
        let metadata = metadata.clone();
        let more = vault
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &principal).await?;
                    let metadata = metadata.as_ref();
                    let more =
                        revoke_locked(tx, &keys, &gate, basis_id, command, actor, metadata, limit)
                            .await?;
                    if more && !admin {
                        return Err(too_many());
                    }
                    Ok::<_, VaultError>(more)
                })
            })
            .await?;
        if !more {
            return Ok(());
        }
    }
}

fn too_many() -> VaultError {
    VaultError::BadRequest(format!(
        "More than {MAX_DECIDED} agreements are in force: an admin must do this"
    ))
}

impl Vault {
    /// LegalBasisCreate: a new legal basis (409 if the brief is taken, by a deleted one too).
    pub async fn create_legal_basis(
        &self,
        caller: &Caller,
        brief: Name,
        fields: BasisFields,
    ) -> Result<(), VaultError> {
        self.create_text(caller, brief, NewText::Basis(checked_basis(fields)?))
            .await
    }

    /// LegalBasisUpdate: changes the fields sent, and renames the basis to `newbrief` if sent (its
    /// agreements follow it). A deleted basis is not found.
    pub async fn update_legal_basis(
        &self,
        caller: &Caller,
        brief: Name,
        newbrief: Option<Name>,
        fields: BasisFields,
    ) -> Result<(), VaultError> {
        let fields = checked_basis(fields)?;
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let basis = live_basis(tx, &brief, RowLock::Update).await?;
                    let rename = newbrief.filter(|n| n.as_str() != basis.brief);
                    if let Some(new) = &rename {
                        if store::get_basis(tx, new.as_str(), RowLock::None)
                            .await?
                            .is_some()
                        {
                            return Err(VaultError::LegalBasisExists);
                        }
                    }
                    store::update_basis(tx, basis.id, rename.as_ref().map(Name::as_str), &fields)
                        .await
                        .map_err(|err| match err.violated_constraint() {
                            Some("legal_bases_tenant_id_brief_key") => VaultError::LegalBasisExists,
                            _ => VaultError::Database(err),
                        })?;
                    let target = format!("legalbasis:{}", basis.brief);
                    record(tx, &caller, Command::LegalBasisUpdate, target).await
                })
            })
            .await
    }

    /// LegalBasisDelete: a basis no agreement refers to is removed; otherwise its agreements in
    /// force are revoked (audited, the webhook told) and it is kept, marked deleted, as what they
    /// refer to (its brief stays reserved).
    pub async fn delete_legal_basis(
        &self,
        caller: &Caller,
        brief: Name,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        const COMMAND: Command = Command::LegalBasisDelete;
        let tenant = caller.tenant.id;
        // An admin's revocations go a batch per transaction first; what is accepted meanwhile is
        // revoked below, under the lock new agreements wait for. A role's all go below.
        if caller.is_admin() {
            let found = brief.clone();
            let basis = self
                .db
                .in_tenant(tenant, move |tx| {
                    Box::pin(async move { live_basis(tx, &found, RowLock::None).await })
                })
                .await?;
            revoke_in_force(self, caller, basis.id, COMMAND, metadata.clone()).await?;
        }
        let keys = self.keys(tenant).await?;
        let caller = caller.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let gate = Gate::load(tx, &caller.principal).await?;
                    let basis = live_basis(tx, &brief, RowLock::Update).await?;
                    if !store::remove_unreferenced_basis(tx, basis.id).await? {
                        let actor = Performer::Token(caller.actor());
                        let metadata = metadata.as_ref();
                        let id = basis.id;
                        if revoke_locked(
                            tx,
                            &keys,
                            &gate,
                            id,
                            COMMAND,
                            actor,
                            metadata,
                            MAX_DECIDED,
                        )
                        .await?
                        {
                            return Err(too_many());
                        }
                        store::mark_basis_deleted(tx, basis.id).await?;
                    }
                    let target = format!("legalbasis:{}", basis.brief);
                    record(tx, &caller, COMMAND, target).await
                })
            })
            .await
    }

    /// LegalBasisListAgreements: every legal basis of the tenant (deleted ones too, marked so).
    pub async fn list_legal_bases(&self, caller: &Caller) -> Result<Vec<LegalBasis>, VaultError> {
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let bases = store::list_bases(tx).await?;
                    let target = "legalbases".to_owned();
                    record(tx, &caller, Command::LegalBasisListAgreements, target).await?;
                    Ok(bases)
                })
            })
            .await
    }

    /// ProcessingActivityCreate: a new processing activity (409 if the name is taken).
    pub async fn create_activity(
        &self,
        caller: &Caller,
        activity: Name,
        fields: ActivityFields,
    ) -> Result<(), VaultError> {
        self.create_text(
            caller,
            activity,
            NewText::Activity(checked_activity(fields)?),
        )
        .await
    }

    /// Creates a legal basis or a processing activity named `name`, within the tenant's
    /// [`MAX_PER_TENANT`] (counted under a lock, so that concurrent creates cannot pass it).
    async fn create_text(
        &self,
        caller: &Caller,
        name: Name,
        text: NewText,
    ) -> Result<(), VaultError> {
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    store::lock_tenant_texts(tx).await?;
                    let (count, what) = match &text {
                        NewText::Basis(_) => (store::count_bases(tx).await?, "legal bases"),
                        NewText::Activity(_) => {
                            (store::count_activities(tx).await?, "processing activities")
                        }
                    };
                    if count >= MAX_PER_TENANT {
                        return Err(VaultError::BadRequest(format!(
                            "A tenant may hold at most {MAX_PER_TENANT} {what}"
                        )));
                    }
                    let name = name.as_str();
                    let (created, taken, command, target) = match &text {
                        NewText::Basis(fields) => (
                            store::create_basis(tx, name, fields).await?,
                            VaultError::LegalBasisExists,
                            Command::LegalBasisCreate,
                            format!("legalbasis:{name}"),
                        ),
                        NewText::Activity(fields) => (
                            store::create_activity(tx, name, fields).await?,
                            VaultError::ActivityExists,
                            Command::ProcessingActivityCreate,
                            format!("activity:{name}"),
                        ),
                    };
                    if !created {
                        return Err(taken);
                    }
                    record(tx, &caller, command, target).await
                })
            })
            .await
    }

    /// ProcessingActivityUpdate: changes the fields sent, and renames the activity to
    /// `newactivity` if sent.
    pub async fn update_activity(
        &self,
        caller: &Caller,
        activity: Name,
        newname: Option<Name>,
        fields: ActivityFields,
    ) -> Result<(), VaultError> {
        let fields = checked_activity(fields)?;
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let id = store::lock_activity(tx, activity.as_str())
                        .await?
                        .ok_or(VaultError::ActivityNotFound)?;
                    let rename = newname.filter(|n| n != &activity);
                    if let Some(new) = &rename {
                        if store::lock_activity(tx, new.as_str()).await?.is_some() {
                            return Err(VaultError::ActivityExists);
                        }
                    }
                    store::update_activity(tx, id, rename.as_ref().map(Name::as_str), &fields)
                        .await
                        .map_err(|err| match err.violated_constraint() {
                            Some("processing_activities_tenant_id_activity_key") => {
                                VaultError::ActivityExists
                            }
                            _ => VaultError::Database(err),
                        })?;
                    let target = format!("activity:{}", activity.as_str());
                    record(tx, &caller, Command::ProcessingActivityUpdate, target).await
                })
            })
            .await
    }

    /// ProcessingActivityDelete: removes the activity and its links to legal bases.
    pub async fn delete_activity(&self, caller: &Caller, activity: Name) -> Result<(), VaultError> {
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    if !store::delete_activity(tx, activity.as_str()).await? {
                        return Err(VaultError::ActivityNotFound);
                    }
                    let target = format!("activity:{}", activity.as_str());
                    record(tx, &caller, Command::ProcessingActivityDelete, target).await
                })
            })
            .await
    }

    /// ProcessingActivityLinkLegalBasis / ProcessingActivityUnlinkLegalBasis: links (or unlinks)
    /// an activity and a legal basis; doing it twice changes nothing.
    pub async fn link_activity(
        &self,
        caller: &Caller,
        activity: Name,
        brief: Name,
        linked: bool,
    ) -> Result<(), VaultError> {
        let command = if linked {
            Command::ProcessingActivityLinkLegalBasis
        } else {
            Command::ProcessingActivityUnlinkLegalBasis
        };
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let id = store::lock_activity(tx, activity.as_str())
                        .await?
                        .ok_or(VaultError::ActivityNotFound)?;
                    let basis = live_basis(tx, &brief, RowLock::Share).await?;
                    store::set_link(tx, id, basis.id, linked).await?;
                    let target = format!("activity:{}/{}", activity.as_str(), basis.brief);
                    record(tx, &caller, command, target).await
                })
            })
            .await
    }

    /// ProcessingActivityListActivities: every processing activity, with its legal bases' briefs.
    pub async fn list_activities(&self, caller: &Caller) -> Result<Vec<Activity>, VaultError> {
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let activities = store::list_activities(tx).await?;
                    let target = "activities".to_owned();
                    record(
                        tx,
                        &caller,
                        Command::ProcessingActivityListActivities,
                        target,
                    )
                    .await?;
                    Ok(activities)
                })
            })
            .await
    }
}
