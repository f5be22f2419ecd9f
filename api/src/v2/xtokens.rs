//! Access token commands: XTokenCreateForUser, XTokenCreateForRole (root or a tenant admin).

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiTags, Status};
use crate::http::error::ApiError;
use crate::http::extract::{lenient, Authenticated, JsonBody};
use bunker_services::core::expiry::Expiry;
use bunker_services::core::Mode;
use bunker_services::groups::RoleSelector;
use bunker_services::Vault;

/// The access token commands.
pub struct XTokenApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct UserXTokenRequest {
    /// `token`, `email`, `phone`, `login` or `custom`.
    mode: String,
    identity: String,
    /// When the token stops working: a duration from now or a Unix time (at most
    /// `BUNKER_XTOKEN_MAX_SECONDS` away). 10 minutes when neither this nor `slidingtime` is given.
    finaltime: Option<Value>,
    /// Each use keeps the token alive this much longer (never past its final time).
    slidingtime: Option<Value>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct UserXToken {
    status: Status,
    /// The new access token: shown once, stored only hashed.
    xtoken: String,
    /// The user's token.
    token: String,
    /// When the token expires (Unix seconds), unless a sliding token is used before then.
    expirationtime: i64,
}

#[derive(Debug, Object, Deserialize)]
pub struct RoleXTokenRequest {
    #[serde(default, deserialize_with = "lenient::opt_int")]
    roleid: Option<i64>,
    rolename: Option<String>,
    finaltime: Option<Value>,
    slidingtime: Option<Value>,
}

#[derive(Debug, Object)]
pub struct RoleXToken {
    status: Status,
    /// The new access token: shown once, stored only hashed.
    xtoken: String,
    expirationtime: i64,
}

#[OpenApi(tag = "ApiTags::Tenants")]
impl XTokenApi {
    /// An access token that acts as a user: their own record (read only), and what the policies of
    /// the roles they hold in groups allow.
    #[oai(
        path = "/XTokenCreateForUser",
        method = "post",
        operation_id = "XTokenCreateForUser"
    )]
    async fn xtoken_create_for_user(
        &self,
        caller: Authenticated,
        body: JsonBody<UserXTokenRequest>,
    ) -> Result<Json<UserXToken>, ApiError> {
        let r = body.0;
        let mode: Mode = r.mode.parse()?;
        let expiry = Expiry::parse(r.slidingtime.as_ref(), r.finaltime.as_ref())?;
        let (issued, user) = self
            .vault
            .create_user_xtoken(&caller.0, mode, &r.identity, expiry, r.request_metadata)
            .await?;
        Ok(Json(UserXToken {
            status: Status::Ok,
            xtoken: issued.token.secret.expose_secret().to_owned(),
            token: user.to_string(),
            expirationtime: issued.expires_at,
        }))
    }

    /// An access token that acts as a role: what the role's policies allow.
    #[oai(
        path = "/XTokenCreateForRole",
        method = "post",
        operation_id = "XTokenCreateForRole"
    )]
    async fn xtoken_create_for_role(
        &self,
        caller: Authenticated,
        body: JsonBody<RoleXTokenRequest>,
    ) -> Result<Json<RoleXToken>, ApiError> {
        let r = body.0;
        let role = RoleSelector::named(r.roleid, r.rolename).ok_or_else(|| {
            ApiError::bad_request("Missing API request parameters: roleid or rolename")
        })?;
        let expiry = Expiry::parse(r.slidingtime.as_ref(), r.finaltime.as_ref())?;
        let issued = self
            .vault
            .create_role_xtoken(&caller.0, role, expiry)
            .await?;
        Ok(Json(RoleXToken {
            status: Status::Ok,
            xtoken: issued.token.secret.expose_secret().to_owned(),
            expirationtime: issued.expires_at,
        }))
    }
}
