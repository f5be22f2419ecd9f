//! Group and role commands: GroupCreate, GroupGet, GroupListAllGroups, GroupUpdate, GroupDelete,
//! GroupListUserGroups, GroupAddUser, GroupDeleteUser, RoleCreate, RoleUpdate.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::{ApiTags, Done, Status};
use crate::http::error::ApiError;
use crate::http::extract::{lenient, Authenticated, JsonBody};
use bunker_services::core::Mode;
use bunker_services::groups::{GroupChanges, GroupRef, GroupView, RoleSelector};
use bunker_services::Vault;

/// The group and role commands.
pub struct GroupApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct GroupCreateRequest {
    groupname: String,
    groupdesc: Option<String>,
    /// A short label (up to 30 characters), `users` when absent.
    grouptype: Option<String>,
}

#[derive(Debug, Object)]
pub struct GroupCreated {
    status: Status,
    groupid: i64,
}

#[derive(Debug, Object, Deserialize)]
pub struct GroupRefRequest {
    #[serde(default, deserialize_with = "lenient::opt_int")]
    groupid: Option<i64>,
    groupname: Option<String>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct GroupRow {
    groupid: i64,
    groupname: String,
    groupdesc: String,
    grouptype: String,
    /// The user's role in the group (GroupListUserGroups).
    #[oai(skip_serializing_if_is_none)]
    rolename: Option<String>,
}

#[derive(Debug, Object)]
pub struct GroupAnswer {
    status: Status,
    groupid: i64,
    groupname: String,
    groupdesc: String,
    grouptype: String,
}

#[derive(Debug, Object)]
pub struct GroupList {
    status: Status,
    rows: Vec<GroupRow>,
}

#[derive(Debug, Object, Deserialize)]
pub struct GroupUpdateRequest {
    /// The group to change.
    #[serde(deserialize_with = "lenient::int")]
    groupid: i64,
    /// A new name.
    groupname: Option<String>,
    groupdesc: Option<String>,
    grouptype: Option<String>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct GroupMemberRequest {
    mode: String,
    identity: String,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    groupid: Option<i64>,
    groupname: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    roleid: Option<i64>,
    rolename: Option<String>,
    /// Older spelling of `rolename`.
    role: Option<String>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct UserGroupsRequest {
    mode: String,
    identity: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct RoleCreateRequest {
    /// Letters, digits, dots, dashes or underscores; up to 64.
    rolename: String,
    roledesc: Option<String>,
}

#[derive(Debug, Object)]
pub struct RoleCreated {
    status: Status,
    roleid: i64,
}

#[derive(Debug, Object, Deserialize)]
pub struct RoleUpdateRequest {
    /// The role to change; without it, `rolename` names the role.
    #[serde(default, deserialize_with = "lenient::opt_int")]
    roleid: Option<i64>,
    rolename: Option<String>,
    roledesc: Option<String>,
}

fn row(group: GroupView, rolename: Option<String>) -> GroupRow {
    GroupRow {
        groupid: group.id,
        groupname: group.name,
        groupdesc: group.description,
        grouptype: group.grouptype,
        rolename,
    }
}

fn group_ref(groupid: Option<i64>, groupname: Option<String>) -> GroupRef {
    GroupRef {
        id: groupid,
        name: groupname,
    }
}

#[OpenApi(tag = "ApiTags::Groups")]
impl GroupApi {
    /// Create a group in the tenant.
    #[oai(path = "/GroupCreate", method = "post", operation_id = "GroupCreate")]
    async fn group_create(
        &self,
        caller: Authenticated,
        body: JsonBody<GroupCreateRequest>,
    ) -> Result<Json<GroupCreated>, ApiError> {
        let request = body.0;
        let id = self
            .vault
            .create_group(
                &caller.0,
                request.groupname,
                request.groupdesc.unwrap_or_default(),
                request.grouptype,
            )
            .await?;
        Ok(Json(GroupCreated {
            status: Status::Ok,
            groupid: id,
        }))
    }

    /// Read a group by id or name.
    #[oai(path = "/GroupGet", method = "post", operation_id = "GroupGet")]
    async fn group_get(
        &self,
        caller: Authenticated,
        body: JsonBody<GroupRefRequest>,
    ) -> Result<Json<GroupAnswer>, ApiError> {
        let group = self
            .vault
            .get_group(&caller.0, group_ref(body.0.groupid, body.0.groupname))
            .await?;
        Ok(Json(GroupAnswer {
            status: Status::Ok,
            groupid: group.id,
            groupname: group.name,
            groupdesc: group.description,
            grouptype: group.grouptype,
        }))
    }

    /// List every group of the tenant.
    #[oai(
        path = "/GroupListAllGroups",
        method = "post",
        operation_id = "GroupListAllGroups"
    )]
    async fn group_list_all(
        &self,
        caller: Authenticated,
        _body: JsonBody<Value>,
    ) -> Result<Json<GroupList>, ApiError> {
        let groups = self.vault.list_groups(&caller.0).await?;
        Ok(Json(GroupList {
            status: Status::Ok,
            rows: groups.into_iter().map(|g| row(g, None)).collect(),
        }))
    }

    /// Rename a group or change its description or type.
    #[oai(path = "/GroupUpdate", method = "post", operation_id = "GroupUpdate")]
    async fn group_update(
        &self,
        caller: Authenticated,
        body: JsonBody<GroupUpdateRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        self.vault
            .update_group(
                &caller.0,
                group_ref(Some(request.groupid), None),
                GroupChanges {
                    name: request.groupname,
                    description: request.groupdesc,
                    grouptype: request.grouptype,
                },
                request.request_metadata,
            )
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Delete a group (by id or name) and its memberships.
    #[oai(path = "/GroupDelete", method = "post", operation_id = "GroupDelete")]
    async fn group_delete(
        &self,
        caller: Authenticated,
        body: JsonBody<GroupRefRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        self.vault
            .delete_group(
                &caller.0,
                group_ref(request.groupid, request.groupname),
                request.request_metadata,
            )
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// The groups a user is in, with the user's role in each.
    #[oai(
        path = "/GroupListUserGroups",
        method = "post",
        operation_id = "GroupListUserGroups"
    )]
    async fn group_list_user_groups(
        &self,
        caller: Authenticated,
        body: JsonBody<UserGroupsRequest>,
    ) -> Result<Json<GroupList>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let groups = self
            .vault
            .list_user_groups(&caller.0, mode, &request.identity, request.request_metadata)
            .await?;
        Ok(Json(GroupList {
            status: Status::Ok,
            rows: groups.into_iter().map(|(g, r)| row(g, r)).collect(),
        }))
    }

    /// Add a user to a group, optionally with a role (or change the user's role in it).
    #[oai(path = "/GroupAddUser", method = "post", operation_id = "GroupAddUser")]
    async fn group_add_user(
        &self,
        caller: Authenticated,
        body: JsonBody<GroupMemberRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let role = RoleSelector::named(request.roleid, request.rolename.or(request.role));
        self.vault
            .add_user_to_group(
                &caller.0,
                mode,
                &request.identity,
                group_ref(request.groupid, request.groupname),
                role,
                request.request_metadata,
            )
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Remove a user from a group.
    #[oai(
        path = "/GroupDeleteUser",
        method = "post",
        operation_id = "GroupDeleteUser"
    )]
    async fn group_delete_user(
        &self,
        caller: Authenticated,
        body: JsonBody<GroupMemberRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        self.vault
            .remove_user_from_group(
                &caller.0,
                mode,
                &request.identity,
                group_ref(request.groupid, request.groupname),
                request.request_metadata,
            )
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Define a role (root token only); roles are shared by all tenants.
    #[oai(path = "/RoleCreate", method = "post", operation_id = "RoleCreate")]
    async fn role_create(
        &self,
        caller: Authenticated,
        body: JsonBody<RoleCreateRequest>,
    ) -> Result<Json<RoleCreated>, ApiError> {
        let request = body.0;
        let id = self
            .vault
            .create_role(
                &caller.0,
                request.rolename,
                request.roledesc.unwrap_or_default(),
            )
            .await?;
        Ok(Json(RoleCreated {
            status: Status::Ok,
            roleid: id,
        }))
    }

    /// Rename a role or change its description (root token only).
    #[oai(path = "/RoleUpdate", method = "post", operation_id = "RoleUpdate")]
    async fn role_update(
        &self,
        caller: Authenticated,
        body: JsonBody<RoleUpdateRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let (role, new_name) = match (request.roleid, request.rolename) {
            (Some(id), name) => (RoleSelector::Id(id), name),
            (None, Some(name)) => (RoleSelector::Name(name), None),
            (None, None) => {
                return Err(ApiError::bad_request(
                    "Missing API request parameters: roleid or rolename",
                ))
            }
        };
        self.vault
            .update_role(&caller.0, role, new_name, request.roledesc)
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }
}
