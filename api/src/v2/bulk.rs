//! Bulk commands: BulkListUnlock, BulkListUsers, BulkListAllUsers, BulkListGroupUsers,
//! BulkListTokens, BulkDeleteTokens, BulkListAllAuditEvents, and UserSearch. Each needs a fresh
//! `unlockuuid`.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::users::UserSelectorItem;
use super::{page, ApiTags, Status};
use crate::http::error::ApiError;
use crate::http::extract::{lenient, Authenticated, JsonBody};
use bunker_db::bulk::AuditFilter;
use bunker_services::groups::GroupRef;
use bunker_services::users::UserView;
use bunker_services::Vault;

/// The bulk commands.
pub struct BulkApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct UnlockRequest {
    /// Free-form; policy conditions may name its keys, and it is recorded (sealed) in the audit.
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct Unlocked {
    status: Status,
    /// Valid for 60 seconds, for this tenant and this access token only.
    unlockuuid: String,
}

#[derive(Debug, Object, Deserialize)]
pub struct BulkTokensRequest {
    unlockuuid: String,
    /// `tokenuuid` or `tokenbase` values.
    tokens: Vec<String>,
}

#[derive(Debug, Object)]
pub struct BulkTokenRow {
    tokenuuid: String,
    tokenbase: String,
    record: String,
    tokentype: String,
}

#[derive(Debug, Object)]
pub struct BulkTokenList {
    status: Status,
    total: i64,
    rows: Vec<BulkTokenRow>,
}

#[derive(Debug, Object)]
pub struct BulkDeleted {
    status: Status,
    deleted: i64,
}

/// BulkListAllAuditEvents' request: a page, and (Bunker's additions) which events.
#[derive(Debug, Object, Deserialize)]
pub struct BulkAuditRequest {
    unlockuuid: String,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    limit: Option<i64>,
    /// Only events of this command (for example `UserGet`).
    eventtype: Option<String>,
    /// Only events at or after this time (Unix seconds).
    #[serde(default, deserialize_with = "lenient::opt_int")]
    since: Option<i64>,
    /// Only events before this time (Unix seconds).
    #[serde(default, deserialize_with = "lenient::opt_int")]
    until: Option<i64>,
}

/// The latest time a filter may name: the end of year 9999.
pub const LATEST_SECONDS: i64 = 253_402_300_799;

impl BulkAuditRequest {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        let time = |value: Option<i64>, field: &str| match value {
            Some(t) if !(0..=LATEST_SECONDS).contains(&t) => Err(ApiError::bad_request(format!(
                "Invalid {field}: Unix seconds from 0 to {LATEST_SECONDS}"
            ))),
            _ => Ok(value),
        };
        let action = match self.eventtype.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) if name.len() > 64 => {
                return Err(ApiError::bad_request(
                    "Invalid eventtype: at most 64 characters",
                ))
            }
            Some(name) => Some(name.to_owned()),
        };
        Ok(AuditFilter {
            action,
            since: time(self.since, "since")?,
            until: time(self.until, "until")?,
        })
    }
}

#[derive(Debug, Object)]
pub struct BulkAuditRow {
    auditeventuuid: String,
    eventtype: String,
    timestamp: String,
    more: bool,
}

#[derive(Debug, Object)]
pub struct BulkAuditList {
    status: Status,
    total: i64,
    rows: Vec<BulkAuditRow>,
}

#[derive(Debug, Object, Deserialize)]
pub struct BulkGroupRequest {
    unlockuuid: String,
    request_metadata: Option<Value>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    groupid: Option<i64>,
    groupname: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    limit: Option<i64>,
}

#[derive(Debug, Object)]
pub struct BulkUserRow {
    token: String,
    profile: Value,
    #[oai(skip_serializing_if_is_none)]
    rolename: Option<String>,
}

#[derive(Debug, Object)]
pub struct BulkUserList {
    status: Status,
    total: i64,
    rows: Vec<BulkUserRow>,
}

#[derive(Debug, Object, Deserialize)]
pub struct BulkUsersRequest {
    unlockuuid: String,
    users: Vec<UserSelectorItem>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct BulkAllUsersRequest {
    unlockuuid: String,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    limit: Option<i64>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct UserSearchRequest {
    /// A whole or partial, possibly misspelled email (with `@`), or login, phone or custom value.
    identity: String,
    unlockuuid: String,
    /// Accepted and ignored: the fields searched follow from `identity`.
    mode: Option<String>,
    request_metadata: Option<Value>,
}

/// A user as listed: what the caller may see of the profile.
#[derive(Debug, Object)]
pub struct UserRow {
    token: String,
    profile: Value,
    version: i32,
    #[oai(skip_serializing_if_is_none)]
    finaltime: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    slidingtime: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    expirationtime: Option<i64>,
}

impl From<UserView> for UserRow {
    fn from(user: UserView) -> Self {
        UserRow {
            token: user.token.to_string(),
            profile: Value::Object(user.profile),
            version: user.version,
            finaltime: user.finaltime,
            slidingtime: user.slidingtime,
            expirationtime: user.expirationtime,
        }
    }
}

#[derive(Debug, Object)]
pub struct UserRows {
    status: Status,
    total: i64,
    rows: Vec<UserRow>,
}

#[derive(Debug, Object)]
pub struct SearchRows {
    status: Status,
    /// Best match first; at most 20.
    rows: Vec<UserRow>,
}

#[OpenApi(tag = "ApiTags::Bulk")]
impl BulkApi {
    /// Users named by email, phone, login or custom value (needs `BUNKER_LIST_USERS`).
    #[oai(
        path = "/BulkListUsers",
        method = "post",
        operation_id = "BulkListUsers"
    )]
    async fn bulk_list_users(
        &self,
        caller: Authenticated,
        body: JsonBody<BulkUsersRequest>,
    ) -> Result<Json<UserRows>, ApiError> {
        let r = body.0;
        let selectors = UserSelectorItem::parse_all(r.users)?;
        let rows: Vec<UserRow> = self
            .vault
            .bulk_list_users(&caller.0, r.unlockuuid, selectors, r.request_metadata)
            .await?
            .into_iter()
            .map(UserRow::from)
            .collect();
        Ok(Json(UserRows {
            status: Status::Ok,
            total: rows.len() as i64,
            rows,
        }))
    }

    /// One page of all of the tenant's users, oldest first (needs `BUNKER_LIST_USERS`).
    #[oai(
        path = "/BulkListAllUsers",
        method = "post",
        operation_id = "BulkListAllUsers"
    )]
    async fn bulk_list_all_users(
        &self,
        caller: Authenticated,
        body: JsonBody<BulkAllUsersRequest>,
    ) -> Result<Json<UserRows>, ApiError> {
        let r = body.0;
        let (offset, limit) = page(r.offset, r.limit)?;
        let (users, total) = self
            .vault
            .bulk_list_all_users(&caller.0, r.unlockuuid, offset, limit, r.request_metadata)
            .await?;
        Ok(Json(UserRows {
            status: Status::Ok,
            total,
            rows: users.into_iter().map(UserRow::from).collect(),
        }))
    }

    /// Fuzzy search: users whose email, login, phone or custom value is like `identity`.
    #[oai(
        path = "/UserSearch",
        method = "post",
        operation_id = "UserSearch",
        tag = "ApiTags::Users"
    )]
    async fn user_search(
        &self,
        caller: Authenticated,
        body: JsonBody<UserSearchRequest>,
    ) -> Result<Json<SearchRows>, ApiError> {
        let r = body.0;
        let _ = r.mode;
        let rows = self
            .vault
            .search_users(&caller.0, r.unlockuuid, r.identity, r.request_metadata)
            .await?
            .into_iter()
            .map(UserRow::from)
            .collect();
        Ok(Json(SearchRows {
            status: Status::Ok,
            rows,
        }))
    }

    /// An `unlockuuid` for the bulk commands: 60 seconds, this tenant and this token only.
    #[oai(
        path = "/BulkListUnlock",
        method = "post",
        operation_id = "BulkListUnlock"
    )]
    async fn bulk_list_unlock(
        &self,
        caller: Authenticated,
        body: JsonBody<UnlockRequest>,
    ) -> Result<Json<Unlocked>, ApiError> {
        let id = self
            .vault
            .bulk_unlock(&caller.0, body.0.request_metadata)
            .await?;
        Ok(Json(Unlocked {
            status: Status::Ok,
            unlockuuid: id.to_string(),
        }))
    }

    /// The values behind many tokens.
    #[oai(
        path = "/BulkListTokens",
        method = "post",
        operation_id = "BulkListTokens"
    )]
    async fn bulk_list_tokens(
        &self,
        caller: Authenticated,
        body: JsonBody<BulkTokensRequest>,
    ) -> Result<Json<BulkTokenList>, ApiError> {
        let r = body.0;
        let rows: Vec<BulkTokenRow> = self
            .vault
            .bulk_list_tokens(&caller.0, r.unlockuuid, r.tokens)
            .await?
            .into_iter()
            .map(|t| BulkTokenRow {
                tokenuuid: t.uuid.to_string(),
                tokenbase: t.base,
                record: t.record,
                tokentype: t.token_type,
            })
            .collect();
        Ok(Json(BulkTokenList {
            status: Status::Ok,
            total: rows.len() as i64,
            rows,
        }))
    }

    /// Delete many tokens.
    #[oai(
        path = "/BulkDeleteTokens",
        method = "post",
        operation_id = "BulkDeleteTokens"
    )]
    async fn bulk_delete_tokens(
        &self,
        caller: Authenticated,
        body: JsonBody<BulkTokensRequest>,
    ) -> Result<Json<BulkDeleted>, ApiError> {
        let r = body.0;
        let deleted = self
            .vault
            .bulk_delete_tokens(&caller.0, r.unlockuuid, r.tokens)
            .await?;
        Ok(Json(BulkDeleted {
            status: Status::Ok,
            deleted: deleted as i64,
        }))
    }

    /// One page of the tenant's audit trail, newest first.
    #[oai(
        path = "/BulkListAllAuditEvents",
        method = "post",
        operation_id = "BulkListAllAuditEvents"
    )]
    async fn bulk_list_all_audit_events(
        &self,
        caller: Authenticated,
        body: JsonBody<BulkAuditRequest>,
    ) -> Result<Json<BulkAuditList>, ApiError> {
        let r = body.0;
        let (offset, limit) = page(r.offset, r.limit)?;
        let filter = r.filter()?;
        let (events, total) = self
            .vault
            .bulk_list_audit_events(&caller.0, r.unlockuuid, filter, offset, limit)
            .await?;
        let rows = events
            .into_iter()
            .map(|(id, eventtype, timestamp)| BulkAuditRow {
                auditeventuuid: id.to_string(),
                eventtype,
                timestamp,
                more: false,
            })
            .collect();
        Ok(Json(BulkAuditList {
            status: Status::Ok,
            total,
            rows,
        }))
    }

    /// One page of a group's members with their profiles and roles.
    #[oai(
        path = "/BulkListGroupUsers",
        method = "post",
        operation_id = "BulkListGroupUsers"
    )]
    async fn bulk_list_group_users(
        &self,
        caller: Authenticated,
        body: JsonBody<BulkGroupRequest>,
    ) -> Result<Json<BulkUserList>, ApiError> {
        let r = body.0;
        let (offset, limit) = page(r.offset, r.limit)?;
        let group = GroupRef {
            id: r.groupid,
            name: r.groupname,
        };
        let (members, total) = self
            .vault
            .bulk_list_group_users(
                &caller.0,
                r.unlockuuid,
                group,
                offset,
                limit,
                r.request_metadata,
            )
            .await?;
        let rows = members
            .into_iter()
            .map(|m| BulkUserRow {
                token: m.token.to_string(),
                profile: Value::Object(m.profile),
                rolename: m.rolename,
            })
            .collect();
        Ok(Json(BulkUserList {
            status: Status::Ok,
            total,
            rows,
        }))
    }
}
