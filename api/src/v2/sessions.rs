//! Session and shared-record commands: SessionUpsert, SessionGet, SessionDelete,
//! SessionListUserSessions, SharedRecordCreate and the public SharedRecordGet.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::{object, ApiTags, Done, Status};
use crate::http::error::ApiError;
use crate::http::extract::{Authenticated, JsonBody};
use bunker_services::appdata::AppName;
use bunker_services::core::expiry::Expiry;
use bunker_services::core::Mode;
use bunker_services::sessions::{SessionId, SessionView};
use bunker_services::shared::{Fields, SharedRecordRequest};
use bunker_services::Vault;

/// The session and shared-record commands.
pub struct SessionApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct SessionWrite {
    /// The application's id for the session: 1 to 128 visible ASCII characters (stored hashed).
    sessionuuid: String,
    /// Any JSON object. When it names a user at the top level (`token`, `login`, `email`,
    /// `phone` or `custom`), the session is linked to that user and sealed with the user's key.
    sessiondata: Value,
    /// A sliding window (`30m`, `1d`), renewed on every SessionGet.
    slidingtime: Option<Value>,
    /// A hard cutoff (a duration, or a Unix time). With neither, a session lives 30 days from its
    /// last write.
    finaltime: Option<Value>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct SessionSelector {
    sessionuuid: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct SessionUser {
    /// `token`, `email`, `phone`, `login` or `custom`.
    mode: String,
    identity: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct SessionAnswer {
    status: Status,
    sessiondata: Value,
    /// The linked user's token, if the session is linked.
    #[oai(skip_serializing_if_is_none)]
    token: Option<String>,
}

#[derive(Debug, Object)]
pub struct SessionRow {
    sessionuuid: String,
    sessiondata: Value,
    /// When it expires (Unix seconds).
    expirationtime: i64,
}

#[derive(Debug, Object)]
pub struct SessionList {
    status: Status,
    rows: Vec<SessionRow>,
}

#[derive(Debug, Object, Deserialize)]
pub struct SharedRecordWrite {
    mode: String,
    identity: String,
    /// A comma list of field paths (`name,address.city`); everything when absent.
    fields: Option<String>,
    /// A label for the partner, recorded (sealed) with every read.
    partner: Option<String>,
    /// Share this app's data instead of the profile.
    appname: Option<String>,
    /// How long the record lives (`30m`, `24h`, `7d`; default 1 day), at most
    /// `BUNKER_SHARED_RECORD_MAX_SECONDS`.
    finaltime: Option<Value>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct SharedRecordCreated {
    status: Status,
    /// The capability: whoever holds it reads the record until it expires. Shown only here.
    recorduuid: String,
}

#[derive(Debug, Object, Deserialize)]
pub struct SharedRecordSelector {
    recorduuid: String,
}

#[derive(Debug, Object)]
pub struct SharedRecordAnswer {
    status: Status,
    data: Value,
}

fn session_id(text: &str) -> Result<SessionId, ApiError> {
    Ok(SessionId::parse(text)?)
}

fn row(view: SessionView) -> SessionRow {
    SessionRow {
        sessionuuid: view.sessionuuid,
        sessiondata: Value::Object(view.data),
        expirationtime: view.expires_at,
    }
}

#[OpenApi(tag = "ApiTags::Sessions")]
impl SessionApi {
    /// Create or replace a session.
    #[oai(
        path = "/SessionUpsert",
        method = "post",
        operation_id = "SessionUpsert"
    )]
    async fn session_upsert(
        &self,
        caller: Authenticated,
        body: JsonBody<SessionWrite>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let id = session_id(&request.sessionuuid)?;
        let data = object(request.sessiondata, "sessiondata")?;
        let expiry = Expiry::parse(request.slidingtime.as_ref(), request.finaltime.as_ref())?;
        self.vault
            .upsert_session(&caller.0, id, data, expiry, request.request_metadata)
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Read a session (renews a sliding expiry).
    #[oai(path = "/SessionGet", method = "post", operation_id = "SessionGet")]
    async fn session_get(
        &self,
        caller: Authenticated,
        body: JsonBody<SessionSelector>,
    ) -> Result<Json<SessionAnswer>, ApiError> {
        let request = body.0;
        let id = session_id(&request.sessionuuid)?;
        let view = self
            .vault
            .get_session(&caller.0, id, request.request_metadata)
            .await?;
        Ok(Json(SessionAnswer {
            status: Status::Ok,
            sessiondata: Value::Object(view.data),
            token: view.token.map(|t| t.to_string()),
        }))
    }

    /// Delete a session.
    #[oai(
        path = "/SessionDelete",
        method = "post",
        operation_id = "SessionDelete"
    )]
    async fn session_delete(
        &self,
        caller: Authenticated,
        body: JsonBody<SessionSelector>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let id = session_id(&request.sessionuuid)?;
        self.vault
            .delete_session(&caller.0, id, request.request_metadata)
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// A user's live sessions, newest first (at most 1,000).
    #[oai(
        path = "/SessionListUserSessions",
        method = "post",
        operation_id = "SessionListUserSessions"
    )]
    async fn session_list_user_sessions(
        &self,
        caller: Authenticated,
        body: JsonBody<SessionUser>,
    ) -> Result<Json<SessionList>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let views = self
            .vault
            .list_user_sessions(&caller.0, mode, &request.identity, request.request_metadata)
            .await?;
        Ok(Json(SessionList {
            status: Status::Ok,
            rows: views.into_iter().map(row).collect(),
        }))
    }

    /// Share some of a user's fields (or one app's data) with a partner until a final time.
    #[oai(
        path = "/SharedRecordCreate",
        method = "post",
        operation_id = "SharedRecordCreate"
    )]
    async fn shared_record_create(
        &self,
        caller: Authenticated,
        body: JsonBody<SharedRecordWrite>,
    ) -> Result<Json<SharedRecordCreated>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let shared = SharedRecordRequest {
            fields: Fields::parse(request.fields.as_deref())?,
            appname: request.appname.as_deref().map(AppName::parse).transpose()?,
            partner: request.partner,
            finaltime: request.finaltime,
        };
        let record = self
            .vault
            .create_shared_record(
                &caller.0,
                mode,
                &request.identity,
                shared,
                request.request_metadata,
            )
            .await?;
        Ok(Json(SharedRecordCreated {
            status: Status::Ok,
            recorduuid: record.to_string(),
        }))
    }

    /// Public (no token): what a shared record shares, read now. The record's own tenant is used,
    /// whatever tenant the request names.
    #[oai(
        path = "/SharedRecordGet",
        method = "post",
        operation_id = "SharedRecordGet"
    )]
    async fn shared_record_get(
        &self,
        body: JsonBody<SharedRecordSelector>,
    ) -> Result<Json<SharedRecordAnswer>, ApiError> {
        let record = uuid::Uuid::parse_str(body.0.recorduuid.trim())
            .map_err(|_| ApiError::bad_request("Invalid recorduuid: a UUID is expected"))?;
        let data = self.vault.get_shared_record(record).await?;
        Ok(Json(SharedRecordAnswer {
            status: Status::Ok,
            data: Value::Object(data),
        }))
    }
}
