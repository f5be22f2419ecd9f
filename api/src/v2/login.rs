//! The public commands besides SharedRecordGet: TenantGetUIConf, and the end-user login
//! (CaptchaCreate, UserPrelogin, UserLogin; `bunker_services::login`). Login by e-mail is on when the
//! server can send mail (`BUNKER_SMTP_URL` or `BUNKER_MAIL_LOG`) and the tenant has not turned it
//! off (`uiconf.loginemail`); by phone when it has an SMS gateway (`BUNKER_SMS_URL`) and the tenant has
//! not turned it off (`uiconf.loginphone`).

use bunker_db::TenantId;
use bunker_services::core::identity::Mode;
use bunker_services::login::Prelogin;
use poem::http::StatusCode;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiTags, Status};
use crate::http::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{app_state, client_address, JsonBody};
use crate::v2::tenants::NoFields;
use bunker_services::tenants::uiconf::LoginMethods;
use bunker_tenancy::TenantName;

/// The public commands.
pub struct LoginApi;

/// The answer of the login commands while no login method is enabled.
const LOGIN_OFF: &str =
    "Passwordless login is not enabled on this server: no login method is configured";

/// What this server can deliver login codes by.
pub(crate) fn deliverable(state: &AppState) -> LoginMethods {
    LoginMethods {
        email: state.mailer.is_some(),
        phone: state.sms.is_some(),
    }
}

/// The name of the request's tenant (the X-Bunker-Tenant header, else the Host's subdomain, else
/// `default`).
pub(crate) fn tenant_name(state: &AppState, request: &Request) -> Result<TenantName, ApiError> {
    let headers = request.headers();
    let header = headers
        .get("x-bunker-tenant")
        .map(|v| v.to_str().unwrap_or(""));
    let host = headers.get("host").and_then(|v| v.to_str().ok());
    Ok(state.tenancy.tenant_name(header, host)?)
}

/// The request's tenant (the X-Bunker-Tenant header, else the Host's subdomain, else `default`):
/// its name, and its id if it exists.
async fn public_tenant(
    state: &AppState,
    request: &Request,
) -> Result<(TenantName, Option<TenantId>), ApiError> {
    let name = tenant_name(state, request)?;
    let id = state
        .db
        .tenant_by_name(name.as_str())
        .await
        .map_err(bunker_services::core::VaultError::from)?;
    Ok((name, id))
}

/// What UserPrelogin and UserLogin start from: the mode, and the request's tenant (its name, its
/// id if it exists, its title), refused while the tenant or this server cannot log in by `mode`.
async fn open_login(
    state: &AppState,
    request: &Request,
    mode: &str,
) -> Result<(Mode, TenantName, Option<TenantId>, Option<String>), ApiError> {
    let mode = mode.parse::<Mode>()?;
    let (name, tenant) = public_tenant(state, request).await?;
    let (enabled, title) = login_enabled(state, &name, mode).await?;
    if !enabled {
        return Err(login_off());
    }
    Ok((mode, name, tenant, title))
}

/// Whether the tenant lets its users sign in by `mode`, which this server can deliver.
async fn login_enabled(
    state: &AppState,
    name: &TenantName,
    mode: Mode,
) -> Result<(bool, Option<String>), ApiError> {
    let ui = state
        .tenants
        .public_ui_conf(name, deliverable(state))
        .await?;
    let key = match mode {
        Mode::Phone => "phone",
        _ => "email",
    };
    let on = ui
        .get("loginmethods")
        .and_then(|m| m.get(key))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let title = ui
        .get("companytitle")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((on, title))
}

#[derive(Debug, Object)]
pub struct UiConfAnswer {
    status: Status,
    /// The tenant's display configuration (companytitle, logourl, companylink,
    /// privacypolicyurl, termsofserviceurl, primarycolor, accentcolor: those it set) and
    /// `loginmethods` (`email`, `phone`: which are on).
    ui: Value,
}

#[derive(Debug, Object)]
pub struct CaptchaAnswer {
    status: Status,
    /// The captcha's id: sent back as UserPrelogin's `code`.
    code: String,
    /// The picture, a PNG as a `data:` URL.
    image: String,
    /// Seconds the captcha can be answered in, once.
    expires: i64,
}

#[derive(Debug, Object, Deserialize)]
pub struct PreloginRequest {
    /// `email` or `phone`.
    #[oai(validator(max_length = 16))]
    mode: String,
    /// The user's e-mail address or phone number.
    #[oai(validator(max_length = 1024))]
    identity: String,
    /// The captcha's id (CaptchaCreate's `code`).
    #[oai(validator(max_length = 64))]
    code: String,
    /// The letters the captcha shows.
    #[oai(validator(max_length = 64))]
    captchacode: String,
}

#[derive(Debug, Object, Deserialize)]
pub struct LoginRequest {
    /// `email` or `phone`.
    #[oai(validator(max_length = 16))]
    mode: String,
    /// The user's e-mail address or phone number.
    #[oai(validator(max_length = 1024))]
    identity: String,
    /// The six-digit code UserPrelogin sent.
    #[oai(validator(max_length = 64))]
    smscode: String,
}

#[derive(Debug, Object)]
pub struct LoginAnswer {
    status: Status,
    /// A user token: the user's own record, and what their roles allow; sliding (30 minutes).
    xtoken: String,
    /// The user's token.
    token: String,
    /// When the xtoken stops working unless used (Unix seconds).
    expires: i64,
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
        let name = tenant_name(state, request)?;
        let ui = state
            .tenants
            .public_ui_conf(&name, deliverable(state))
            .await?;
        Ok(Json(UiConfAnswer {
            status: Status::Ok,
            ui: Value::Object(ui),
        }))
    }

    /// Public: a captcha for the login page (a picture), single use,
    /// valid five minutes. Refused while no login method is enabled.
    #[oai(
        path = "/CaptchaCreate",
        method = "post",
        operation_id = "CaptchaCreate"
    )]
    async fn captcha_create(
        &self,
        request: &Request,
        _body: JsonBody<NoFields>,
    ) -> Result<Json<CaptchaAnswer>, ApiError> {
        let state = app_state(request)?;
        let methods = deliverable(state);
        if !methods.email && !methods.phone {
            return Err(login_off());
        }
        let (_, tenant) = public_tenant(state, request).await?;
        let captcha = state.vault.create_captcha(tenant).await?;
        Ok(Json(CaptchaAnswer {
            status: Status::Ok,
            code: captcha.code,
            image: format!("data:image/png;base64,{}", captcha.png_base64),
            expires: bunker_services::login::CAPTCHA_SECONDS,
        }))
    }

    /// Public: sends a one-time login code to the user's e-mail address (mode `email`), after
    /// the captcha. Answers the same whether or not the address is a user's; a wrong captcha is
    /// `{"status":"error","message":"captcha-error"}` with HTTP 200, as upstream.
    #[oai(path = "/UserPrelogin", method = "post", operation_id = "UserPrelogin")]
    async fn user_prelogin(
        &self,
        request: &Request,
        body: JsonBody<PreloginRequest>,
    ) -> Result<Json<Value>, ApiError> {
        let state = app_state(request)?;
        let body = body.0;
        within(&[
            ("mode", &body.mode, 16),
            ("identity", &body.identity, 1024),
            ("code", &body.code, 64),
            ("captchacode", &body.captchacode, 64),
        ])?;
        let (mode, name, tenant, title) = open_login(state, request, &body.mode).await?;
        let found = state
            .vault
            .prelogin(tenant, mode, &body.identity, &body.code, &body.captchacode)
            .await?;
        match found {
            Prelogin::CaptchaWrong => {
                return Ok(Json(json!({"status": "error", "message": "captcha-error"})))
            }
            Prelogin::Nothing => {}
            Prelogin::Send { mode, to, code } => {
                // After the answer: how long delivery takes says nothing of whether it happened.
                let title = title.unwrap_or_else(|| name.as_str().to_owned());
                let tenant = name.as_str().to_owned();
                let (mailer, sms) = (state.mailer.clone(), state.sms.clone());
                tokio::spawn(async move {
                    let sent = match (mode, mailer, sms) {
                        (Mode::Phone, _, Some(sms)) => sms.send_code(&to, &code, &title).await,
                        (Mode::Email, Some(mailer), _) => {
                            mailer.send_code(&to, &code, &title).await
                        }
                        _ => Err("no delivery is configured for this login method"),
                    };
                    if let Err(why) = sent {
                        tracing::warn!(%tenant, reason = why, "a login code could not be sent");
                    }
                });
            }
        }
        Ok(Json(json!({"status": "ok"})))
    }

    /// Public: exchanges the code UserPrelogin sent for a user token. Every refusal (no such
    /// user, a wrong, expired or used code, an identity locked out after five wrong codes) is the
    /// same 403.
    #[oai(path = "/UserLogin", method = "post", operation_id = "UserLogin")]
    async fn user_login(
        &self,
        request: &Request,
        body: JsonBody<LoginRequest>,
    ) -> Result<Json<LoginAnswer>, ApiError> {
        let state = app_state(request)?;
        let body = body.0;
        within(&[
            ("mode", &body.mode, 16),
            ("identity", &body.identity, 1024),
            ("smscode", &body.smscode, 64),
        ])?;
        let (mode, _, tenant, _) = open_login(state, request, &body.mode).await?;
        state
            .limits
            .check_login(client_address(request))
            .map_err(|refusal| ApiError::too_many(&refusal))?;
        let (issued, user) = state
            .vault
            .login(tenant, mode, &body.identity, &body.smscode)
            .await?;
        Ok(Json(LoginAnswer {
            status: Status::Ok,
            xtoken: issued.token.secret.expose_secret().to_owned(),
            token: user.to_string(),
            expires: issued.expires_at,
        }))
    }
}

/// The request's fields within their declared lengths (the body is read without them).
fn within(fields: &[(&str, &str, usize)]) -> Result<(), ApiError> {
    for (name, value, most) in fields {
        if value.chars().count() > *most {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{name} must be at most {most} characters"),
            ));
        }
    }
    Ok(())
}

fn login_off() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, LOGIN_OFF)
}
