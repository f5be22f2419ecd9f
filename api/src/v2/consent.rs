//! Consent commands: legal bases (LegalBasisCreate, LegalBasisUpdate, LegalBasisDelete,
//! LegalBasisListAgreements), agreements (AgreementAccept, AgreementGet,
//! AgreementListUserAgreements, AgreementCancel, AgreementCancelRequest, AgreementRevokeAll) and
//! processing activities (ProcessingActivityCreate, ProcessingActivityUpdate,
//! ProcessingActivityDelete, ProcessingActivityLinkLegalBasis, ProcessingActivityUnlinkLegalBasis,
//! ProcessingActivityListActivities).

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::requests::RequestOpened;
use super::tenants::NoFields;
use super::{ApiTags, Done, Status};
use crate::http::error::ApiError;
use crate::http::extract::{Authenticated, JsonBody};
use bunker_db::consent::{Activity, ActivityFields, BasisFields, LegalBasis};
use bunker_services::consent::agreements::{AcceptInput, AgreementView, Withdrawal};
use bunker_services::consent::Name;
use bunker_services::core::Mode;
use bunker_services::Vault;

/// The consent commands.
pub struct ConsentApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct BasisWrite {
    /// The basis's key: lower-cased, then `^[a-z][a-z0-9-]{1,64}$`.
    brief: String,
    /// LegalBasisUpdate: a new brief (its agreements follow it).
    newbrief: Option<String>,
    /// `active` (the default) or `inactive` (no agreement to it can be accepted).
    status: Option<String>,
    /// `consent` (the default), `contract`, `legal-requirement`, `legitimate-interest`,
    /// `public-interest` or `vital-interest`.
    basistype: Option<String>,
    module: Option<String>,
    shortdesc: Option<String>,
    fulldesc: Option<String>,
    requiredmsg: Option<String>,
    requiredflag: Option<bool>,
    /// Whether the user may withdraw by itself (otherwise its withdrawal is a request for a DPO).
    usercontrol: Option<bool>,
    request_metadata: Option<Value>,
}

impl BasisWrite {
    fn input(&self) -> BasisFields {
        BasisFields {
            status: self.status.clone(),
            basistype: self.basistype.clone(),
            module: self.module.clone(),
            shortdesc: self.shortdesc.clone(),
            fulldesc: self.fulldesc.clone(),
            requiredmsg: self.requiredmsg.clone(),
            requiredflag: self.requiredflag,
            usercontrol: self.usercontrol,
        }
    }
}

#[derive(Debug, Object, Deserialize)]
pub struct BasisSelector {
    brief: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct BasisRow {
    brief: String,
    /// `active`, `inactive` or `deleted` (removed while agreements referred to it).
    status: String,
    basistype: String,
    module: Option<String>,
    shortdesc: Option<String>,
    fulldesc: Option<String>,
    requiredmsg: Option<String>,
    requiredflag: bool,
    usercontrol: bool,
    /// Unix seconds.
    creationtime: i64,
}

impl From<LegalBasis> for BasisRow {
    fn from(b: LegalBasis) -> Self {
        BasisRow {
            brief: b.brief,
            status: b.status,
            basistype: b.basistype,
            module: b.module,
            shortdesc: b.shortdesc,
            fulldesc: b.fulldesc,
            requiredmsg: b.requiredmsg,
            requiredflag: b.requiredflag,
            usercontrol: b.usercontrol,
            creationtime: b.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct BasisList {
    status: Status,
    total: i64,
    rows: Vec<BasisRow>,
}

#[derive(Debug, Object, Deserialize)]
pub struct AgreementWrite {
    /// `token`, `email`, `phone`, `login` or `custom`.
    mode: String,
    identity: String,
    brief: String,
    /// `yes` for 1, active, accept, agree, approve, given, good, ok, on, true, y, yes (the
    /// default); `no` for anything else.
    status: Option<Value>,
    /// How consent was given (default `api`); sealed with the user's key.
    agreementmethod: Option<String>,
    /// Sealed with the user's key.
    referencecode: Option<String>,
    /// Sealed with the user's key.
    lastmodifiedby: Option<String>,
    /// A duration from now (`10d`), a Unix time, or a date (`2027-01-31`, RFC 3339).
    starttime: Option<Value>,
    /// As `starttime`; in the future. The agreement expires then.
    finaltime: Option<Value>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct AgreementSelector {
    mode: String,
    identity: String,
    brief: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct AgreementUser {
    mode: String,
    identity: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct HistoryRow {
    /// RFC 3339, UTC.
    time: String,
    /// The command or operation that changed it (AgreementAccept, AgreementCancel,
    /// UserRequestApprove, AgreementRevokeAll, LegalBasisDelete, AgreementExpired, ...).
    event: String,
    /// `{"status", "agreementmethod"}` before (null: created) and after.
    before: Value,
    after: Value,
}

#[derive(Debug, Object)]
pub struct AgreementRow {
    brief: String,
    /// `yes`, `no` (withdrawn or refused), `expired` or `revoked`.
    status: String,
    agreementmethod: Option<String>,
    referencecode: Option<String>,
    lastmodifiedby: Option<String>,
    /// Unix seconds.
    starttime: Option<i64>,
    finaltime: Option<i64>,
    creationtime: i64,
    /// When it last changed.
    when: i64,
    /// AgreementGet: every change, oldest first (at most the newest 100).
    #[oai(skip_serializing_if_is_none)]
    history: Option<Vec<HistoryRow>>,
}

impl AgreementRow {
    fn of(view: AgreementView, with_history: bool) -> Self {
        AgreementRow {
            history: with_history.then(|| {
                view.history
                    .into_iter()
                    .map(|h| HistoryRow {
                        time: h.time,
                        event: h.event,
                        before: h.before,
                        after: h.after,
                    })
                    .collect()
            }),
            brief: view.brief,
            status: view.status,
            agreementmethod: view.agreementmethod,
            referencecode: view.referencecode,
            lastmodifiedby: view.lastmodifiedby,
            starttime: view.starttime,
            finaltime: view.finaltime,
            creationtime: view.creationtime,
            when: view.when,
        }
    }
}

#[derive(Debug, Object)]
pub struct AgreementAnswer {
    status: Status,
    agreement: AgreementRow,
}

#[derive(Debug, Object)]
pub struct AgreementList {
    status: Status,
    total: i64,
    rows: Vec<AgreementRow>,
}

#[derive(Debug, Object)]
pub struct CancelAnswer {
    status: Status,
    /// `done`, or `request-created` when the user's own token may not withdraw alone.
    result: String,
    /// The request opened instead, if one was.
    #[oai(skip_serializing_if_is_none)]
    requestuuid: Option<String>,
}

#[derive(Debug, Object, Deserialize)]
pub struct ActivityWrite {
    /// The activity's key: lower-cased, then `^[a-z][a-z0-9-]{1,64}$`.
    activity: String,
    /// ProcessingActivityUpdate: a new name.
    newactivity: Option<String>,
    /// Defaults to the activity's name.
    title: Option<String>,
    script: Option<String>,
    fulldesc: Option<String>,
    applicableto: Option<String>,
    request_metadata: Option<Value>,
}

impl ActivityWrite {
    fn input(&self) -> ActivityFields {
        ActivityFields {
            title: self.title.clone(),
            script: self.script.clone(),
            fulldesc: self.fulldesc.clone(),
            applicableto: self.applicableto.clone(),
        }
    }
}

#[derive(Debug, Object, Deserialize)]
pub struct ActivitySelector {
    activity: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct ActivityLink {
    activity: String,
    brief: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct ActivityRow {
    activity: String,
    title: String,
    script: Option<String>,
    fulldesc: Option<String>,
    applicableto: Option<String>,
    /// The briefs of the legal bases linked to it.
    briefs: Vec<String>,
    /// The same, comma-separated (as upstream answers it).
    legalbasis: String,
    /// Unix seconds.
    creationtime: i64,
}

impl From<Activity> for ActivityRow {
    fn from(a: Activity) -> Self {
        ActivityRow {
            legalbasis: a.briefs.join(","),
            activity: a.activity,
            title: a.title,
            script: a.script,
            fulldesc: a.fulldesc,
            applicableto: a.applicableto,
            briefs: a.briefs,
            creationtime: a.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct ActivityList {
    status: Status,
    total: i64,
    rows: Vec<ActivityRow>,
}

fn brief(text: &str) -> Result<Name, ApiError> {
    Ok(Name::parse(text, "brief")?)
}

fn activity(text: &str) -> Result<Name, ApiError> {
    Ok(Name::parse(text, "activity")?)
}

fn done() -> Json<Done> {
    Json(Done { status: Status::Ok })
}

#[OpenApi(tag = "ApiTags::Consent")]
impl ConsentApi {
    /// Create a legal basis (409 if its brief is taken).
    #[oai(
        path = "/LegalBasisCreate",
        method = "post",
        operation_id = "LegalBasisCreate"
    )]
    async fn legal_basis_create(
        &self,
        caller: Authenticated,
        body: JsonBody<BasisWrite>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        self.vault
            .create_legal_basis(&caller.0, brief(&r.brief)?, r.input())
            .await?;
        Ok(done())
    }

    /// Change a legal basis, renaming it with `newbrief`.
    #[oai(
        path = "/LegalBasisUpdate",
        method = "post",
        operation_id = "LegalBasisUpdate"
    )]
    async fn legal_basis_update(
        &self,
        caller: Authenticated,
        body: JsonBody<BasisWrite>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        let newbrief = r.newbrief.as_deref().map(brief).transpose()?;
        self.vault
            .update_legal_basis(&caller.0, brief(&r.brief)?, newbrief, r.input())
            .await?;
        Ok(done())
    }

    /// Delete a legal basis; one that agreements refer to is kept, marked deleted, and its
    /// agreements in force are revoked.
    #[oai(
        path = "/LegalBasisDelete",
        method = "post",
        operation_id = "LegalBasisDelete"
    )]
    async fn legal_basis_delete(
        &self,
        caller: Authenticated,
        body: JsonBody<BasisSelector>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        self.vault
            .delete_legal_basis(&caller.0, brief(&r.brief)?, r.request_metadata)
            .await?;
        Ok(done())
    }

    /// List the tenant's legal bases (despite the name).
    #[oai(
        path = "/LegalBasisListAgreements",
        method = "post",
        operation_id = "LegalBasisListAgreements"
    )]
    async fn legal_basis_list(
        &self,
        caller: Authenticated,
        _body: JsonBody<NoFields>,
    ) -> Result<Json<BasisList>, ApiError> {
        let rows: Vec<BasisRow> = self
            .vault
            .list_legal_bases(&caller.0)
            .await?
            .into_iter()
            .map(BasisRow::from)
            .collect();
        Ok(Json(BasisList {
            status: Status::Ok,
            total: rows.len() as i64,
            rows,
        }))
    }

    /// Record a user's agreement to a legal basis (or its refusal); again, to renew or change it.
    #[oai(
        path = "/AgreementAccept",
        method = "post",
        operation_id = "AgreementAccept"
    )]
    async fn agreement_accept(
        &self,
        caller: Authenticated,
        body: JsonBody<AgreementWrite>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        let mode: Mode = r.mode.parse()?;
        let input = AcceptInput {
            status: r.status,
            agreementmethod: r.agreementmethod,
            referencecode: r.referencecode,
            lastmodifiedby: r.lastmodifiedby,
            starttime: r.starttime,
            finaltime: r.finaltime,
        };
        self.vault
            .accept_agreement(
                &caller.0,
                mode,
                &r.identity,
                brief(&r.brief)?,
                input,
                r.request_metadata,
            )
            .await?;
        Ok(done())
    }

    /// Read a user's agreement to a legal basis, with its history.
    #[oai(path = "/AgreementGet", method = "post", operation_id = "AgreementGet")]
    async fn agreement_get(
        &self,
        caller: Authenticated,
        body: JsonBody<AgreementSelector>,
    ) -> Result<Json<AgreementAnswer>, ApiError> {
        let r = body.0;
        let mode: Mode = r.mode.parse()?;
        let view = self
            .vault
            .get_agreement(
                &caller.0,
                mode,
                &r.identity,
                brief(&r.brief)?,
                r.request_metadata,
            )
            .await?;
        Ok(Json(AgreementAnswer {
            status: Status::Ok,
            agreement: AgreementRow::of(view, true),
        }))
    }

    /// List a user's agreements.
    #[oai(
        path = "/AgreementListUserAgreements",
        method = "post",
        operation_id = "AgreementListUserAgreements"
    )]
    async fn agreement_list(
        &self,
        caller: Authenticated,
        body: JsonBody<AgreementUser>,
    ) -> Result<Json<AgreementList>, ApiError> {
        let r = body.0;
        let mode: Mode = r.mode.parse()?;
        let rows: Vec<AgreementRow> = self
            .vault
            .list_user_agreements(&caller.0, mode, &r.identity, r.request_metadata)
            .await?
            .into_iter()
            .map(|v| AgreementRow::of(v, false))
            .collect();
        Ok(Json(AgreementList {
            status: Status::Ok,
            total: rows.len() as i64,
            rows,
        }))
    }

    /// Withdraw a user's agreement. The user's own token, where the basis does not let it
    /// withdraw alone, gets a request for a DPO instead.
    #[oai(
        path = "/AgreementCancel",
        method = "post",
        operation_id = "AgreementCancel"
    )]
    async fn agreement_cancel(
        &self,
        caller: Authenticated,
        body: JsonBody<AgreementSelector>,
    ) -> Result<Json<CancelAnswer>, ApiError> {
        let r = body.0;
        let mode: Mode = r.mode.parse()?;
        let outcome = self
            .vault
            .cancel_agreement(
                &caller.0,
                mode,
                &r.identity,
                brief(&r.brief)?,
                r.request_metadata,
            )
            .await?;
        let (result, requestuuid) = match outcome {
            Withdrawal::Withdrawn => ("done", None),
            Withdrawal::Requested(uuid) => ("request-created", Some(uuid.to_string())),
        };
        Ok(Json(CancelAnswer {
            status: Status::Ok,
            result: result.to_owned(),
            requestuuid,
        }))
    }

    /// Ask for the withdrawal of a user's agreement, applied when a DPO approves.
    #[oai(
        path = "/AgreementCancelRequest",
        method = "post",
        operation_id = "AgreementCancelRequest"
    )]
    async fn agreement_cancel_request(
        &self,
        caller: Authenticated,
        body: JsonBody<AgreementSelector>,
    ) -> Result<Json<RequestOpened>, ApiError> {
        let r = body.0;
        let mode: Mode = r.mode.parse()?;
        let uuid = self
            .vault
            .request_agreement_cancellation(
                &caller.0,
                mode,
                &r.identity,
                brief(&r.brief)?,
                r.request_metadata,
            )
            .await?;
        Ok(Json(RequestOpened {
            status: Status::Ok,
            requestuuid: uuid.to_string(),
        }))
    }

    /// Revoke every user's agreement to a legal basis.
    #[oai(
        path = "/AgreementRevokeAll",
        method = "post",
        operation_id = "AgreementRevokeAll"
    )]
    async fn agreement_revoke_all(
        &self,
        caller: Authenticated,
        body: JsonBody<BasisSelector>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        self.vault
            .revoke_all_agreements(&caller.0, brief(&r.brief)?, r.request_metadata)
            .await?;
        Ok(done())
    }

    /// Create a processing activity (409 if its name is taken).
    #[oai(
        path = "/ProcessingActivityCreate",
        method = "post",
        operation_id = "ProcessingActivityCreate"
    )]
    async fn activity_create(
        &self,
        caller: Authenticated,
        body: JsonBody<ActivityWrite>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        self.vault
            .create_activity(&caller.0, activity(&r.activity)?, r.input())
            .await?;
        Ok(done())
    }

    /// Change a processing activity, renaming it with `newactivity`.
    #[oai(
        path = "/ProcessingActivityUpdate",
        method = "post",
        operation_id = "ProcessingActivityUpdate"
    )]
    async fn activity_update(
        &self,
        caller: Authenticated,
        body: JsonBody<ActivityWrite>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        let newname = r.newactivity.as_deref().map(activity).transpose()?;
        self.vault
            .update_activity(&caller.0, activity(&r.activity)?, newname, r.input())
            .await?;
        Ok(done())
    }

    /// Delete a processing activity.
    #[oai(
        path = "/ProcessingActivityDelete",
        method = "post",
        operation_id = "ProcessingActivityDelete"
    )]
    async fn activity_delete(
        &self,
        caller: Authenticated,
        body: JsonBody<ActivitySelector>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        self.vault
            .delete_activity(&caller.0, activity(&r.activity)?)
            .await?;
        Ok(done())
    }

    /// Link a processing activity to a legal basis.
    #[oai(
        path = "/ProcessingActivityLinkLegalBasis",
        method = "post",
        operation_id = "ProcessingActivityLinkLegalBasis"
    )]
    async fn activity_link(
        &self,
        caller: Authenticated,
        body: JsonBody<ActivityLink>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        self.vault
            .link_activity(&caller.0, activity(&r.activity)?, brief(&r.brief)?, true)
            .await?;
        Ok(done())
    }

    /// Unlink a processing activity from a legal basis.
    #[oai(
        path = "/ProcessingActivityUnlinkLegalBasis",
        method = "post",
        operation_id = "ProcessingActivityUnlinkLegalBasis"
    )]
    async fn activity_unlink(
        &self,
        caller: Authenticated,
        body: JsonBody<ActivityLink>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        self.vault
            .link_activity(&caller.0, activity(&r.activity)?, brief(&r.brief)?, false)
            .await?;
        Ok(done())
    }

    /// List the processing activities, with the briefs of their legal bases.
    #[oai(
        path = "/ProcessingActivityListActivities",
        method = "post",
        operation_id = "ProcessingActivityListActivities"
    )]
    async fn activity_list(
        &self,
        caller: Authenticated,
        _body: JsonBody<NoFields>,
    ) -> Result<Json<ActivityList>, ApiError> {
        let rows: Vec<ActivityRow> = self
            .vault
            .list_activities(&caller.0)
            .await?
            .into_iter()
            .map(ActivityRow::from)
            .collect();
        Ok(Json(ActivityList {
            status: Status::Ok,
            total: rows.len() as i64,
            rows,
        }))
    }
}
