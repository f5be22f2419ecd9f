//! The public commands besides SharedRecordGet: TenantGetUIConf, and the end-user login
//! (CaptchaCreate, UserPrelogin, UserLogin), which answer that no login method is enabled until
//! this server can deliver one-time codes (e-mail or SMS).

use poem::http::StatusCode;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::{ApiTags, Status};
use crate::http::error::ApiError;
use crate::http::extract::{app_state, JsonBody};
use crate::v2::tenants::NoFields;
use bunker_services::tenants::uiconf::LoginMethods;

/// The public commands.
pub struct LoginApi;

/// What this server can deliver login codes by: nothing yet.
const DELIVERABLE: LoginMethods = LoginMethods {
    email: false,
    phone: false,
};

/// The answer of the login commands while no login method is enabled.
const LOGIN_OFF: &str =
    "Passwordless login is not enabled on this server: no login method is configured";

#[derive(Debug, Object)]
pub struct UiConfAnswer {
    status: Status,
    /// The tenant's display configuration (companytitle, logourl, companylink,
    /// privacypolicyurl, termsofserviceurl, primarycolor, accentcolor: those it set) and
    /// `loginmethods` (`email`, `phone`: which are on).
    ui: Value,
}

#[derive(Debug, Object, Deserialize)]
pub struct LoginRequest {
    /// Accepted and ignored while login is off.
    identity: Option<String>,
    code: Option<String>,
    captchacode: Option<String>,
}

#[OpenApi(tag = "ApiTags::Public")]
impl LoginApi {
    /// Public (no token, not audited): the display configuration of the request's tenant (the
    /// X-Bunker-Tenant header, else the Host's subdomain, else `default`). A tenant that does not
    /// exist answers as one that set nothing.
    #[oai(
        path = "/TenantGetUIConf",
        method = "post",
        operation_id = "TenantGetUIConf"
    )]
    async fn tenant_get_ui_conf(
        &self,
        request: &Request,
        _body: JsonBody<NoFields>,
    ) -> Result<Json<UiConfAnswer>, ApiError> {
        let state = app_state(request)?;
        let headers = request.headers();
        let header = headers
            .get("x-bunker-tenant")
            .map(|v| v.to_str().unwrap_or(""));
        let host = headers.get("host").and_then(|v| v.to_str().ok());
        let name = state.tenancy.tenant_name(header, host)?;
        let ui = state.tenants.public_ui_conf(&name, DELIVERABLE).await?;
        Ok(Json(UiConfAnswer {
            status: Status::Ok,
            ui: Value::Object(ui),
        }))
    }

    /// Public: an image captcha for the login page. Refused while no login method is enabled.
    #[oai(
        path = "/CaptchaCreate",
        method = "post",
        operation_id = "CaptchaCreate"
    )]
    async fn captcha_create(&self, _body: JsonBody<NoFields>) -> Result<Json<Value>, ApiError> {
        Err(login_off())
    }

    /// Public: sends a one-time login code. Refused while no login method is enabled.
    #[oai(path = "/UserPrelogin", method = "post", operation_id = "UserPrelogin")]
    async fn user_prelogin(&self, _body: JsonBody<LoginRequest>) -> Result<Json<Value>, ApiError> {
        Err(login_off())
    }

    /// Public: exchanges a one-time login code for a session. Refused while no login method is
    /// enabled.
    #[oai(path = "/UserLogin", method = "post", operation_id = "UserLogin")]
    async fn user_login(&self, _body: JsonBody<LoginRequest>) -> Result<Json<Value>, ApiError> {
        Err(login_off())
    }
}

fn login_off() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, LOGIN_OFF)
}
