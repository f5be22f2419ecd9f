//! The Databunker Pro `/v2` API: every command is `POST /v2/<Command>` with a JSON body.

pub mod appdata;
pub mod audit;
pub mod bulk;
pub mod consent;
pub mod expiration;
pub mod files;
pub mod groups;
pub mod login;
pub mod policies;
pub mod report_html;
pub mod requests;
pub mod sessions;
pub mod system;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod xtokens;

use poem_openapi::{Enum, Object, Tags};

use crate::http::error::ApiError;

/// The groups commands are listed under in the OpenAPI document.
#[derive(Tags)]
pub enum ApiTags {
    /// Tenants: create, read, rename and delete tenants; their admin tokens.
    Tenants,
    /// Users: encrypted profiles, looked up by token, email, phone, login or custom key.
    Users,
    /// App data: a user's per-application records, sealed with the user's own key.
    Appdata,
    /// User requests: changes a data subject asks for, approved or cancelled by an admin or a DPO.
    Requests,
    /// Consent: legal bases, processing activities, and each user's agreements to the bases.
    Consent,
    /// Sessions and shared records: an application's session data, and time-limited views of a
    /// user's data for partners.
    Sessions,
    /// Files: a user's documents, sealed with their own key and kept in object storage.
    Files,
    /// Audit: the trail of every operation on a user.
    Audit,
    /// Groups and roles: who belongs together, and as what.
    Groups,
    /// Tokens: format-preserving tokens for single values (cards, ids, dates, text).
    Tokens,
    /// Bulk: listings behind a short-lived unlock.
    Bulk,
    /// System: key administration, statistics, subject access reports and the main tenant's
    /// cross-tenant profile commands.
    System,
    /// Public: the tenant's display configuration and the end-user login (no token).
    Public,
}

/// The `status` of every successful answer.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Status {
    Ok,
}

/// The answer of commands that return nothing but success.
#[derive(Debug, Object)]
pub struct Done {
    pub status: Status,
}

/// Pages are 10 long unless asked otherwise, and never longer than 100.
const DEFAULT_LIMIT: i64 = 10;
const MAX_LIMIT: i64 = 100;

/// `offset` and `limit` as the contract reads them: a limit below 1 or above 100 means 100.
pub fn page(offset: Option<i64>, limit: Option<i64>) -> Result<(i64, i64), ApiError> {
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request("offset must not be negative"));
    }
    let limit = match limit.unwrap_or(DEFAULT_LIMIT) {
        n if (1..=MAX_LIMIT).contains(&n) => n,
        _ => MAX_LIMIT,
    };
    Ok((offset, limit))
}

/// A request field that must hold a JSON object (`profile`, `appdata`).
pub fn object(
    value: serde_json::Value,
    field: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    match value {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request(format!(
            "{field} must be a JSON object"
        ))),
    }
}
