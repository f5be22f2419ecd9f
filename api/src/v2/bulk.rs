//! Bulk commands: BulkListUnlock, BulkListTokens, BulkDeleteTokens, BulkListAllAuditEvents,
//! BulkListGroupUsers. Each needs a fresh `unlockuuid`.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::{page, ApiTags, Status};
use crate::error::ApiError;
use crate::extract::{lenient, Authenticated, JsonBody};
use crate::vault::groups::GroupRef;
use crate::vault::Vault;

/// The bulk commands.
pub struct BulkApi {
    pub vault: Vault,
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

#[derive(Debug, Object, Deserialize)]
pub struct BulkPageRequest {
    unlockuuid: String,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    limit: Option<i64>,
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

#[OpenApi(tag = "ApiTags::Bulk")]
impl BulkApi {
    /// An `unlockuuid` for the bulk commands: 60 seconds, this tenant and this token only.
    #[oai(path = "/BulkListUnlock", method = "post")]
    async fn bulk_list_unlock(
        &self,
        caller: Authenticated,
        _body: JsonBody<Value>,
    ) -> Result<Json<Unlocked>, ApiError> {
        let id = self.vault.bulk_unlock(&caller.0).await?;
        Ok(Json(Unlocked {
            status: Status::Ok,
            unlockuuid: id.to_string(),
        }))
    }

    /// The values behind many tokens.
    #[oai(path = "/BulkListTokens", method = "post")]
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
    #[oai(path = "/BulkDeleteTokens", method = "post")]
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
    #[oai(path = "/BulkListAllAuditEvents", method = "post")]
    async fn bulk_list_all_audit_events(
        &self,
        caller: Authenticated,
        body: JsonBody<BulkPageRequest>,
    ) -> Result<Json<BulkAuditList>, ApiError> {
        let r = body.0;
        let (offset, limit) = page(r.offset, r.limit)?;
        let (events, total) = self
            .vault
            .bulk_list_audit_events(&caller.0, r.unlockuuid, offset, limit)
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
    #[oai(path = "/BulkListGroupUsers", method = "post")]
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
            .bulk_list_group_users(&caller.0, r.unlockuuid, group, offset, limit)
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
