//! User requests: UserUpdateRequest, UserPatchRequest, UserDeleteRequest, AppdataUpdateRequest,
//! UserRequestGet, UserRequestListUserRequests, UserRequestApprove, UserRequestCancel and
//! BulkListAllUserRequests.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{object, page, ApiTags, Done, Status};
use crate::http::error::ApiError;
use crate::http::extract::{lenient, Authenticated, JsonBody};
use bunker_services::appdata::AppName;
use bunker_services::core::Mode;
use bunker_services::requests::{Proposal, RequestView};
use bunker_services::Vault;

/// The user request commands.
pub struct RequestApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct ProfileChangeRequest {
    mode: String,
    identity: String,
    /// Merged into the profile when approved (as UserUpdate).
    profile: Value,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct ProfilePatchRequest {
    mode: String,
    identity: String,
    /// RFC 6902 operations, applied when approved (as UserPatch).
    patch: Value,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct ForgetRequest {
    mode: String,
    identity: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct AppdataChangeRequest {
    mode: String,
    identity: String,
    appname: String,
    /// Merged into the app's data when approved (as AppdataUpdate).
    appdata: Value,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct RequestOpened {
    pub status: Status,
    pub requestuuid: String,
}

#[derive(Debug, Object, Deserialize)]
pub struct RequestSelector {
    requestuuid: String,
    /// UserRequestCancel: why (kept, sealed with the user's key); ignored by UserRequestApprove.
    reason: Option<String>,
    /// UserRequestApprove (Bunker's addition): UserRequestGet's `reviewdigest`; the approval is
    /// refused (409) if the record or the request changed since.
    reviewdigest: Option<String>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct UserRequestsPage {
    mode: String,
    identity: String,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    limit: Option<i64>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct AllRequestsPage {
    unlockuuid: String,
    /// `open`, `approved` or `cancelled`; all when absent.
    #[oai(rename = "status")]
    #[serde(rename = "status")]
    wanted: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    limit: Option<i64>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct RequestRow {
    requestuuid: String,
    /// `change-profile`, `patch-profile`, `forget-me`, `change-app-data` or `withdraw-consent`.
    requesttype: String,
    /// The user's token.
    token: String,
    /// `open`, `approved` or `cancelled`.
    status: String,
    app: Option<String>,
    /// A withdrawal's legal basis.
    #[oai(skip_serializing_if_is_none)]
    brief: Option<String>,
    /// Unix seconds.
    creationtime: i64,
    /// Unix seconds; absent while open.
    decisiontime: Option<i64>,
    /// UserRequestGet: the proposed change.
    change: Option<Value>,
    /// UserRequestGet: what is stored now, to compare with.
    original: Option<Value>,
    /// UserRequestGet (Bunker's addition): what would be stored once approved (the change applied
    /// to `original` as approval applies it); absent when the change cannot be applied now.
    #[oai(skip_serializing_if_is_none)]
    proposed: Option<Value>,
    /// UserRequestGet (Bunker's addition): a digest of `original` and `change`, for
    /// UserRequestApprove's `reviewdigest`.
    #[oai(skip_serializing_if_is_none)]
    reviewdigest: Option<String>,
    /// UserRequestGet: why it was cancelled.
    reason: Option<String>,
}

impl From<RequestView> for RequestRow {
    fn from(view: RequestView) -> Self {
        RequestRow {
            requestuuid: view.uuid.to_string(),
            requesttype: view.kind,
            token: view.token.to_string(),
            status: view.status,
            app: view.app,
            brief: view.brief,
            creationtime: view.created,
            decisiontime: view.decided,
            change: view.change,
            original: view.original,
            proposed: view.proposed,
            reviewdigest: view.reviewed,
            reason: view.reason,
        }
    }
}

#[derive(Debug, Object)]
pub struct RequestAnswer {
    status: Status,
    request: RequestRow,
}

#[derive(Debug, Object)]
pub struct RequestList {
    status: Status,
    rows: Vec<RequestRow>,
    total: i64,
}

fn request_uuid(text: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(text.trim()).map_err(|_| ApiError::bad_request("Invalid requestuuid"))
}

impl RequestApi {
    async fn open(
        &self,
        caller: &Authenticated,
        mode: &str,
        identity: &str,
        proposal: Proposal,
        metadata: Option<Value>,
    ) -> Result<Json<RequestOpened>, ApiError> {
        let mode: Mode = mode.parse()?;
        let uuid = self
            .vault
            .open_request(&caller.0, mode, identity, proposal, metadata)
            .await?;
        Ok(Json(RequestOpened {
            status: Status::Ok,
            requestuuid: uuid.to_string(),
        }))
    }
}

#[OpenApi(tag = "ApiTags::Requests")]
impl RequestApi {
    /// Ask for a profile change, applied when approved.
    #[oai(
        path = "/UserUpdateRequest",
        method = "post",
        operation_id = "UserUpdateRequest"
    )]
    async fn user_update_request(
        &self,
        caller: Authenticated,
        body: JsonBody<ProfileChangeRequest>,
    ) -> Result<Json<RequestOpened>, ApiError> {
        let r = body.0;
        let proposal = Proposal::ChangeProfile(object(r.profile, "profile")?);
        self.open(&caller, &r.mode, &r.identity, proposal, r.request_metadata)
            .await
    }

    /// Ask for a JSON Patch of the profile, applied when approved.
    #[oai(
        path = "/UserPatchRequest",
        method = "post",
        operation_id = "UserPatchRequest"
    )]
    async fn user_patch_request(
        &self,
        caller: Authenticated,
        body: JsonBody<ProfilePatchRequest>,
    ) -> Result<Json<RequestOpened>, ApiError> {
        let r = body.0;
        let proposal = Proposal::PatchProfile(r.patch);
        self.open(&caller, &r.mode, &r.identity, proposal, r.request_metadata)
            .await
    }

    /// Ask to be forgotten, done when approved.
    #[oai(
        path = "/UserDeleteRequest",
        method = "post",
        operation_id = "UserDeleteRequest"
    )]
    async fn user_delete_request(
        &self,
        caller: Authenticated,
        body: JsonBody<ForgetRequest>,
    ) -> Result<Json<RequestOpened>, ApiError> {
        let r = body.0;
        self.open(
            &caller,
            &r.mode,
            &r.identity,
            Proposal::ForgetMe,
            r.request_metadata,
        )
        .await
    }

    /// Ask for an app-data change, applied when approved.
    #[oai(
        path = "/AppdataUpdateRequest",
        method = "post",
        operation_id = "AppdataUpdateRequest",
        tag = "ApiTags::Appdata"
    )]
    async fn appdata_update_request(
        &self,
        caller: Authenticated,
        body: JsonBody<AppdataChangeRequest>,
    ) -> Result<Json<RequestOpened>, ApiError> {
        let r = body.0;
        let app = AppName::parse(&r.appname)?;
        let proposal = Proposal::ChangeAppData(app, object(r.appdata, "appdata")?);
        self.open(&caller, &r.mode, &r.identity, proposal, r.request_metadata)
            .await
    }

    /// A request, with the proposed change and what is stored now.
    #[oai(
        path = "/UserRequestGet",
        method = "post",
        operation_id = "UserRequestGet"
    )]
    async fn user_request_get(
        &self,
        caller: Authenticated,
        body: JsonBody<RequestSelector>,
    ) -> Result<Json<RequestAnswer>, ApiError> {
        let r = body.0;
        let uuid = request_uuid(&r.requestuuid)?;
        let view = self
            .vault
            .get_request(&caller.0, uuid, r.request_metadata)
            .await?;
        Ok(Json(RequestAnswer {
            status: Status::Ok,
            request: view.into(),
        }))
    }

    /// One page of a user's requests, newest first.
    #[oai(
        path = "/UserRequestListUserRequests",
        method = "post",
        operation_id = "UserRequestListUserRequests"
    )]
    async fn user_request_list_user_requests(
        &self,
        caller: Authenticated,
        body: JsonBody<UserRequestsPage>,
    ) -> Result<Json<RequestList>, ApiError> {
        let r = body.0;
        let mode: Mode = r.mode.parse()?;
        let (offset, limit) = page(r.offset, r.limit)?;
        let (rows, total) = self
            .vault
            .list_user_requests(
                &caller.0,
                mode,
                &r.identity,
                offset,
                limit,
                r.request_metadata,
            )
            .await?;
        Ok(Json(RequestList {
            status: Status::Ok,
            rows: rows.into_iter().map(RequestRow::from).collect(),
            total,
        }))
    }

    /// Apply a request's change and close it.
    #[oai(
        path = "/UserRequestApprove",
        method = "post",
        operation_id = "UserRequestApprove"
    )]
    async fn user_request_approve(
        &self,
        caller: Authenticated,
        body: JsonBody<RequestSelector>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        let uuid = request_uuid(&r.requestuuid)?;
        self.vault
            .approve_request(&caller.0, uuid, r.reviewdigest, r.request_metadata)
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Close a request without applying it.
    #[oai(
        path = "/UserRequestCancel",
        method = "post",
        operation_id = "UserRequestCancel"
    )]
    async fn user_request_cancel(
        &self,
        caller: Authenticated,
        body: JsonBody<RequestSelector>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        let uuid = request_uuid(&r.requestuuid)?;
        self.vault
            .cancel_request(&caller.0, uuid, r.reason, r.request_metadata)
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// One page of the tenant's requests (behind an unlock), newest first.
    #[oai(
        path = "/BulkListAllUserRequests",
        method = "post",
        operation_id = "BulkListAllUserRequests",
        tag = "ApiTags::Bulk"
    )]
    async fn bulk_list_all_user_requests(
        &self,
        caller: Authenticated,
        body: JsonBody<AllRequestsPage>,
    ) -> Result<Json<RequestList>, ApiError> {
        let r = body.0;
        let (offset, limit) = page(r.offset, r.limit)?;
        let (rows, total) = self
            .vault
            .bulk_list_all_requests(
                &caller.0,
                r.unlockuuid,
                r.wanted,
                offset,
                limit,
                r.request_metadata,
            )
            .await?;
        Ok(Json(RequestList {
            status: Status::Ok,
            rows: rows.into_iter().map(RequestRow::from).collect(),
            total,
        }))
    }
}
