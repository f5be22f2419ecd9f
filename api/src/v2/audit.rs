//! Audit commands: AuditListUserEvents, AuditGetEvent.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::{page, ApiTags, Status};
use crate::http::error::ApiError;
use crate::http::extract::{lenient, Authenticated, JsonBody};
use bunker_services::core::identity::parse_token;
use bunker_services::core::Mode;
use bunker_services::Vault;

/// The audit commands.
pub struct AuditApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct AuditListRequest {
    mode: String,
    identity: String,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    limit: Option<i64>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct AuditRow {
    auditeventuuid: String,
    eventtype: String,
    /// RFC 3339, UTC.
    timestamp: String,
}

#[derive(Debug, Object)]
pub struct AuditList {
    status: Status,
    total: i64,
    /// Newest first.
    rows: Vec<AuditRow>,
}

#[derive(Debug, Object, Deserialize)]
pub struct AuditGetRequest {
    auditeventuuid: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct AuditEventView {
    status: Status,
    eventtype: String,
    timestamp: String,
    /// The fields touched (names only) and the request metadata of the audited request.
    details: Value,
}

#[OpenApi(tag = "ApiTags::Audit")]
impl AuditApi {
    /// List a user's audit events, newest first.
    #[oai(
        path = "/AuditListUserEvents",
        method = "post",
        operation_id = "AuditListUserEvents"
    )]
    async fn audit_list_user_events(
        &self,
        caller: Authenticated,
        body: JsonBody<AuditListRequest>,
    ) -> Result<Json<AuditList>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let (offset, limit) = page(request.offset, request.limit)?;
        let events = self
            .vault
            .list_user_events(
                &caller.0,
                mode,
                &request.identity,
                (offset, limit),
                request.request_metadata,
            )
            .await?;
        Ok(Json(AuditList {
            status: Status::Ok,
            total: events.total,
            rows: events
                .rows
                .into_iter()
                .map(|(id, eventtype, timestamp)| AuditRow {
                    auditeventuuid: id.to_string(),
                    eventtype,
                    timestamp,
                })
                .collect(),
        }))
    }

    /// Read one audit event with its details.
    #[oai(
        path = "/AuditGetEvent",
        method = "post",
        operation_id = "AuditGetEvent"
    )]
    async fn audit_get_event(
        &self,
        caller: Authenticated,
        body: JsonBody<AuditGetRequest>,
    ) -> Result<Json<AuditEventView>, ApiError> {
        let request = body.0;
        let id = parse_token(&request.auditeventuuid)?;
        let event = self
            .vault
            .get_event(&caller.0, id, request.request_metadata)
            .await?;
        Ok(Json(AuditEventView {
            status: Status::Ok,
            eventtype: event.eventtype,
            timestamp: event.timestamp,
            details: event.details,
        }))
    }
}
