//! The expiration flow, Bunker's own commands (the OSS API's `/v1/exp/…`, which has no `/v2`
//! equivalent upstream): UserExpirationStart, UserExpirationGet, UserExpirationCancel, and the
//! public UserExpirationRetain and UserExpirationDelete that the user's links call.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::{ApiTags, Done, Status};
use crate::http::error::ApiError;
use crate::http::extract::{Authenticated, JsonBody};
use bunker_services::core::Mode;
use bunker_services::expiration::{parse_link, ExpirationStatus};
use bunker_services::Vault;

/// The expiration-flow commands.
pub struct ExpirationApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct ExpirationStart {
    mode: String,
    identity: String,
    /// When the user is forgotten: a duration from now (`30d`, `12h`) or a future Unix time or
    /// date, at most 100 years away.
    finaltime: Value,
    /// `wait` (the default: the user is forgotten at `finaltime` unless they keep their data) or
    /// `retain`.
    status: Option<String>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct ExpirationStarted {
    status: Status,
    /// The capability of the user's links (retain, delete), shown this once and stored hashed.
    exptoken: String,
    /// When the user is forgotten unless they keep their data (Unix seconds).
    exptime: i64,
}

#[derive(Debug, Object, Deserialize)]
pub struct ExpirationUser {
    mode: String,
    identity: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct ExpirationAnswer {
    status: Status,
    /// `wait`, `retain`, or empty when no flow runs.
    expstatus: String,
    /// The flow's end (Unix seconds); 0 when no flow runs.
    exptime: i64,
}

#[derive(Debug, Object, Deserialize)]
pub struct ExpirationLink {
    /// The capability UserExpirationStart gave.
    exptoken: String,
}

#[OpenApi(tag = "ApiTags::Users")]
impl ExpirationApi {
    /// Schedule a user's deletion: unless they keep their data through the link (`exptoken`)
    /// first, the user is forgotten at `finaltime`. Replaces any earlier flow and link.
    #[oai(
        path = "/UserExpirationStart",
        method = "post",
        operation_id = "UserExpirationStart"
    )]
    async fn user_expiration_start(
        &self,
        caller: Authenticated,
        body: JsonBody<ExpirationStart>,
    ) -> Result<Json<ExpirationStarted>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let status = ExpirationStatus::parse(request.status.as_deref())?;
        let (link, ends_at) = self
            .vault
            .start_expiration(
                &caller.0,
                mode,
                &request.identity,
                &request.finaltime,
                status,
                request.request_metadata,
            )
            .await?;
        Ok(Json(ExpirationStarted {
            status: Status::Ok,
            exptoken: link.to_string(),
            exptime: ends_at,
        }))
    }

    /// A user's expiration flow: its status and end (never its link).
    #[oai(
        path = "/UserExpirationGet",
        method = "post",
        operation_id = "UserExpirationGet"
    )]
    async fn user_expiration_get(
        &self,
        caller: Authenticated,
        body: JsonBody<ExpirationUser>,
    ) -> Result<Json<ExpirationAnswer>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let flow = self
            .vault
            .expiration_of(&caller.0, mode, &request.identity, request.request_metadata)
            .await?;
        Ok(Json(ExpirationAnswer {
            status: Status::Ok,
            expstatus: flow.as_ref().map(|f| f.status.clone()).unwrap_or_default(),
            exptime: flow.map_or(0, |f| f.ends_at),
        }))
    }

    /// End a user's expiration flow and its link: the user is kept.
    #[oai(
        path = "/UserExpirationCancel",
        method = "post",
        operation_id = "UserExpirationCancel"
    )]
    async fn user_expiration_cancel(
        &self,
        caller: Authenticated,
        body: JsonBody<ExpirationUser>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        self.vault
            .cancel_expiration(&caller.0, mode, &request.identity, request.request_metadata)
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Public (no token): the link's user keeps their data. The link stays valid for a deletion.
    #[oai(
        path = "/UserExpirationRetain",
        method = "post",
        operation_id = "UserExpirationRetain"
    )]
    async fn user_expiration_retain(
        &self,
        body: JsonBody<ExpirationLink>,
    ) -> Result<Json<Done>, ApiError> {
        let link = parse_link(&body.0.exptoken)?;
        self.vault.retain_by_link(link).await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Public (no token): the link's user is forgotten now.
    #[oai(
        path = "/UserExpirationDelete",
        method = "post",
        operation_id = "UserExpirationDelete"
    )]
    async fn user_expiration_delete(
        &self,
        body: JsonBody<ExpirationLink>,
    ) -> Result<Json<Done>, ApiError> {
        let link = parse_link(&body.0.exptoken)?;
        self.vault.delete_by_link(link).await?;
        Ok(Json(Done { status: Status::Ok }))
    }
}
