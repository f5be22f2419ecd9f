//! The one place errors become HTTP answers: `{"status":"error","message":...}` with a 4xx/5xx code.

use std::borrow::Cow;

use bunker_db::DbError;

use crate::http::limits::Refusal;
use bunker_tenancy::TenancyError;

use bunker_services::keys::KeyAdminError;
use bunker_services::VaultError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object};

/// The body of every error answer.
#[derive(Debug, Object)]
pub struct ErrorBody {
    /// Always `error`.
    pub status: String,
    /// What went wrong, for a person; never contains personal data.
    pub message: String,
}

/// An error answer of the `/v2` API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: Cow<'static, str>,
    /// Headers the answer carries (a 429's `Retry-After` and rate-limit headers).
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// 429, saying which limit and when to retry, with `Retry-After` and the rate-limit headers.
    pub fn too_many(refusal: &Refusal) -> Self {
        ApiError {
            headers: refusal.headers().into(),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, refusal.message())
        }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// An opaque 500; the cause must already be logged.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: "error".to_owned(),
            message: self.message.into_owned(),
        };
        let mut response = poem::web::Json(body.to_json())
            .with_status(self.status)
            .into_response();
        for (name, value) in self.headers {
            if let Ok(value) = poem::http::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

impl From<ApiError> for poem::Error {
    fn from(err: ApiError) -> Self {
        poem::Error::from_response(err.into_response())
    }
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        let described = [
            (
                400,
                "Bad input: malformed JSON, a missing or invalid field, an invalid tenant name",
            ),
            (
                401,
                "The X-Bunker-Token header is missing or names no token",
            ),
            (403, "The token may not do this, or not in this tenant"),
            (404, "The tenant or record was not found"),
            (409, "A duplicate, e.g. a tenant name already taken"),
            (413, "The request body is over the configured limit"),
            (
                429,
                "A rate limit is reached (the tenant's, the token's or the client address's); \
                 Retry-After says when to retry",
            ),
            (500, "An internal error; its cause is in the server log"),
            (
                503,
                "The database is unavailable, or the tenant holds all the connections it may",
            ),
        ];
        MetaResponses {
            responses: described
                .into_iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: ErrorBody::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

impl From<TenancyError> for ApiError {
    fn from(err: TenancyError) -> Self {
        let status = match &err {
            TenancyError::InvalidTenantName | TenancyError::InvalidRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            TenancyError::MissingToken | TenancyError::InvalidToken => StatusCode::UNAUTHORIZED,
            TenancyError::Forbidden(_) => StatusCode::FORBIDDEN,
            TenancyError::TenantNotFound | TenancyError::TokenNotFound => StatusCode::NOT_FOUND,
            TenancyError::DuplicateTenantName => StatusCode::CONFLICT,
            TenancyError::Database(db) => return db_error(db),
            TenancyError::KeyFailure => return ApiError::internal(),
        };
        ApiError::new(status, err.to_string())
    }
}

impl From<VaultError> for ApiError {
    fn from(err: VaultError) -> Self {
        let status = match &err {
            VaultError::BadRequest(_) => StatusCode::BAD_REQUEST,
            VaultError::NotFound
            | VaultError::EventNotFound
            | VaultError::AppDataNotFound
            | VaultError::RequestNotFound
            | VaultError::LegalBasisNotFound
            | VaultError::AgreementNotFound
            | VaultError::ActivityNotFound
            | VaultError::TokenNotFound
            | VaultError::GroupNotFound
            | VaultError::RoleNotFound
            | VaultError::PolicyNotFound
            | VaultError::SessionNotFound
            | VaultError::SharedRecordNotFound
            | VaultError::ExpirationLinkNotFound
            | VaultError::FileNotFound
            | VaultError::NotRestorable
            | VaultError::TenantNotFound => StatusCode::NOT_FOUND,
            VaultError::FileTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            VaultError::StorageUnavailable | VaultError::StorageNotConfigured => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            VaultError::RoleExists
            | VaultError::AppDataExists
            | VaultError::RequestClosed
            | VaultError::ReviewOutdated
            | VaultError::LegalBasisExists
            | VaultError::LegalBasisInactive
            | VaultError::AgreementNotInForce
            | VaultError::ActivityExists
            | VaultError::DuplicateGroup
            | VaultError::GroupClash(_)
            | VaultError::DuplicatePolicy
            | VaultError::TokenSpaceExhausted => StatusCode::CONFLICT,
            VaultError::Forbidden(_) => StatusCode::FORBIDDEN,
            VaultError::Duplicate(_)
            | VaultError::Clash { .. }
            | VaultError::Conflict
            | VaultError::KeyConflict => StatusCode::CONFLICT,
            VaultError::Database(db) => return db_error(db),
            // Logged (with KMS's own words) where the load failed; retried within seconds.
            VaultError::TenantKeysUnavailable(_) => {
                return ApiError {
                    headers: vec![("retry-after", "5".to_owned())],
                    ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
                }
            }
            // The cause is logged by the writer of the batch.
            VaultError::AuditUnavailable => {
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
            }
            VaultError::AuditFailed | VaultError::AuditChainCut => return ApiError::internal(),
            // Logged where it was found: the object's path names ids only.
            VaultError::FileDamaged => StatusCode::INTERNAL_SERVER_ERROR,
            VaultError::Keys(keys) => {
                tracing::error!(error = %keys, "a sealed value did not open");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Failed to decrypt the user record",
                );
            }
        };
        ApiError::new(status, err.to_string())
    }
}

impl From<KeyAdminError> for ApiError {
    fn from(err: KeyAdminError) -> Self {
        match &err {
            KeyAdminError::Shares(_) => ApiError::bad_request(err.to_string()),
            KeyAdminError::Mismatch | KeyAdminError::NoRecovery => {
                ApiError::new(StatusCode::FORBIDDEN, err.to_string())
            }
            KeyAdminError::Database(db) => db_error(db),
            KeyAdminError::NoMasterKey | KeyAdminError::Wrap(_) | KeyAdminError::Keys(_) => {
                tracing::error!(error = %err, "key administration failed");
                ApiError::internal()
            }
        }
    }
}

fn db_error(err: &DbError) -> ApiError {
    if matches!(err, DbError::TenantBusy) {
        return ApiError {
            headers: vec![("retry-after", "1".to_owned())],
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The tenant has too many requests in progress on this server; retry later",
            )
        };
    }
    if err.is_unavailable() {
        log_unavailable(err);
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable",
        );
    }
    tracing::error!(error = %err, "database error");
    ApiError::internal()
}

/// Logs that the database is unavailable at most once a second, with how many requests met it
/// since: an outage under load would otherwise write a line per request.
fn log_unavailable(err: &DbError) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_LOGGED: AtomicU64 = AtomicU64::new(0);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let met = SINCE.fetch_add(1, Ordering::Relaxed) + 1;
    let last = LAST_LOGGED.load(Ordering::Relaxed);
    if now > last
        && LAST_LOGGED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        SINCE.store(0, Ordering::Relaxed);
        tracing::error!(error = %err, requests = met, "database unavailable");
    }
}

/// Turns whatever poem itself refused (unknown route, wrong method, ...) into the JSON envelope.
/// Answers built from an [`ApiError`] pass through unchanged.
pub async fn envelope(err: poem::Error, in_v2: bool) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let message: Cow<'static, str> = match status {
        StatusCode::NOT_FOUND if in_v2 => "The API request was not found".into(),
        StatusCode::NOT_FOUND => "endpoint is missing".into(),
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed: every /v2 command is a POST".into(),
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large".into(),
        s if s.is_server_error() => {
            tracing::error!(error = %err, "request failed");
            "Internal error".into()
        }
        _ => "Bad request".into(),
    };
    ApiError::new(status, message).into_response()
}
