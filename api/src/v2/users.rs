//! User commands: UserCreate, UserCreateBulk, UserGet, UserUpdate, UserPatch, UserDelete,
//! UserDeleteBulk, UserListVersions.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::{object, ApiTags, Done, Status};
use crate::http::error::ApiError;
use crate::http::extract::{lenient, Authenticated, JsonBody};
use bunker_services::access::Command;
use bunker_services::core::expiry::Expiry;
use bunker_services::core::limits::check_bulk;
use bunker_services::core::Mode;
use bunker_services::groups::{GroupRef, RoleSelector};
use bunker_services::users::create::NewUserRecord;
use bunker_services::users::Membership;
use bunker_services::users::{parse_patch, Change};
use bunker_services::{Vault, VaultError};

/// The user commands.
pub struct UserApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct UserCreateRequest {
    /// The user's profile: any JSON object. `email`, `phone`, `login` and `custom` are indexed for
    /// lookup and must be unique within the tenant.
    profile: Value,
    groupname: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    groupid: Option<i64>,
    rolename: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    roleid: Option<i64>,
    /// A sliding retention window renewed on every read: `30d`, `12h`, `15m` (minutes), `10s`.
    slidingtime: Option<Value>,
    /// A hard cutoff: a duration from now, or a Unix time.
    finaltime: Option<Value>,
    /// Free-form; recorded (sealed) in the audit event.
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct UserCreated {
    status: Status,
    /// The user's token.
    token: String,
}

#[derive(Debug, Object, Deserialize)]
pub struct BulkRecord {
    profile: Value,
    groupname: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    groupid: Option<i64>,
    rolename: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    roleid: Option<i64>,
}

#[derive(Debug, Object, Deserialize)]
pub struct UserCreateBulkRequest {
    /// The users to create: each is created or listed in `errors` (at most 10,000).
    records: Vec<BulkRecord>,
    slidingtime: Option<Value>,
    finaltime: Option<Value>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct CreatedUser {
    token: String,
    profile: Value,
}

#[derive(Debug, Object)]
pub struct BulkError {
    profile: Value,
    reason: String,
}

#[derive(Debug, Object)]
pub struct UsersCreated {
    status: Status,
    /// In the order of `records`, each with the submitted profile.
    created: Vec<CreatedUser>,
    /// The records refused, each with the submitted profile and the reason.
    errors: Vec<BulkError>,
}

#[derive(Debug, Object, Deserialize)]
pub struct UserGetRequest {
    /// `token`, `email`, `phone`, `login` or `custom`.
    mode: String,
    identity: String,
    /// A kept version (from 1); the current profile when absent.
    #[serde(default, deserialize_with = "lenient::opt_int")]
    version: Option<i64>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct UserView {
    status: Status,
    token: String,
    profile: Value,
    version: i32,
    /// The hard cutoff (Unix seconds).
    #[oai(skip_serializing_if_is_none)]
    finaltime: Option<i64>,
    /// The sliding window (seconds).
    #[oai(skip_serializing_if_is_none)]
    slidingtime: Option<i64>,
    /// When the user expires (Unix seconds).
    #[oai(skip_serializing_if_is_none)]
    expirationtime: Option<i64>,
}

#[derive(Debug, Object, Deserialize)]
pub struct UserUpdateRequest {
    mode: String,
    identity: String,
    /// Merged into the stored profile (RFC 7396): given keys replace, `null` removes a key.
    profile: Value,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct UserPatchRequest {
    mode: String,
    identity: String,
    /// RFC 6902 operations (`add`, `remove`, `replace`, `move`, `copy`, `test`).
    patch: Value,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct UserSelector {
    mode: String,
    identity: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object, Deserialize)]
pub struct UserSelectorItem {
    /// `token`, `email`, `phone`, `login` or `custom` (BulkListUsers: not `token`).
    mode: String,
    identity: String,
}

impl UserSelectorItem {
    /// The users a bulk command names, in order; none is a 400.
    pub(crate) fn parse_all(items: Vec<Self>) -> Result<Vec<(Mode, String)>, ApiError> {
        check_bulk(items.len(), "users")?;
        items
            .into_iter()
            .map(|u| Ok((u.mode.parse::<Mode>()?, u.identity)))
            .collect()
    }
}

#[derive(Debug, Object, Deserialize)]
pub struct UserDeleteBulkRequest {
    /// The users to forget: each is forgotten or listed in `errors` (at most 10,000).
    users: Vec<UserSelectorItem>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct UsersDeleted {
    status: Status,
    /// How many of the users named were forgotten (one named twice counts twice).
    deleted_count: i64,
    /// The users not forgotten, each with the reason.
    errors: Vec<DeleteError>,
}

#[derive(Debug, Object)]
pub struct DeleteError {
    mode: String,
    identity: String,
    reason: String,
}

#[derive(Debug, Object)]
pub struct VersionRow {
    version: i32,
    /// When the version was made (Unix seconds).
    optime: i64,
    /// A keyed checksum of the version (32 hex digits).
    md5: String,
}

#[derive(Debug, Object)]
pub struct VersionList {
    status: Status,
    versions: Vec<VersionRow>,
}

impl VersionList {
    /// The answer listing `versions`.
    pub fn of(versions: Vec<bunker_services::users::VersionInfo>) -> Self {
        VersionList {
            status: Status::Ok,
            versions: versions
                .into_iter()
                .map(|v| VersionRow {
                    version: v.version,
                    optime: v.optime,
                    md5: v.md5,
                })
                .collect(),
        }
    }
}

#[OpenApi(tag = "ApiTags::Users")]
impl UserApi {
    /// Store a user profile, sealed; returns its token.
    #[oai(path = "/UserCreate", method = "post", operation_id = "UserCreate")]
    async fn user_create(
        &self,
        caller: Authenticated,
        body: JsonBody<UserCreateRequest>,
    ) -> Result<Json<UserCreated>, ApiError> {
        let request = body.0;
        let record = NewUserRecord {
            profile: request.profile,
            membership: membership(
                request.groupname,
                request.groupid,
                request.rolename,
                request.roleid,
            ),
        };
        let expiry = Expiry::parse(request.slidingtime.as_ref(), request.finaltime.as_ref())?;
        let created = self
            .vault
            .create_users(
                &caller.0,
                Command::UserCreate,
                vec![record],
                expiry,
                request.request_metadata,
            )
            .await?;
        let token = created
            .into_iter()
            .next()
            .ok_or_else(ApiError::internal)??;
        Ok(Json(UserCreated {
            status: Status::Ok,
            token: token.to_string(),
        }))
    }

    /// Store many user profiles: each is created or listed in `errors` with its reason; a record
    /// that fails leaves nothing of itself behind.
    #[oai(
        path = "/UserCreateBulk",
        method = "post",
        operation_id = "UserCreateBulk"
    )]
    async fn user_create_bulk(
        &self,
        caller: Authenticated,
        body: JsonBody<UserCreateBulkRequest>,
    ) -> Result<Json<UsersCreated>, ApiError> {
        let request = body.0;
        let expiry = Expiry::parse(request.slidingtime.as_ref(), request.finaltime.as_ref())?;
        let records: Vec<NewUserRecord> = request
            .records
            .into_iter()
            .map(|r| NewUserRecord {
                membership: membership(r.groupname, r.groupid, r.rolename, r.roleid),
                profile: r.profile,
            })
            .collect();
        let profiles: Vec<Value> = records.iter().map(|r| r.profile.clone()).collect();
        let outcomes = self
            .vault
            .create_users(
                &caller.0,
                Command::UserCreateBulk,
                records,
                expiry,
                request.request_metadata,
            )
            .await?;
        let mut created = Vec::new();
        let mut errors = Vec::new();
        for (outcome, profile) in outcomes.into_iter().zip(profiles) {
            match outcome {
                Ok(token) => created.push(CreatedUser {
                    token: token.to_string(),
                    profile,
                }),
                Err(err) => errors.push(BulkError {
                    profile,
                    reason: err.to_string(),
                }),
            }
        }
        Ok(Json(UsersCreated {
            status: Status::Ok,
            created,
            errors,
        }))
    }

    /// Read a user's profile (or a kept version of it).
    #[oai(path = "/UserGet", method = "post", operation_id = "UserGet")]
    async fn user_get(
        &self,
        caller: Authenticated,
        body: JsonBody<UserGetRequest>,
    ) -> Result<Json<UserView>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let version = request
            .version
            .map(|v| i32::try_from(v).map_err(|_| ApiError::bad_request("Invalid version")))
            .transpose()?;
        let user = self
            .vault
            .get_user(
                &caller.0,
                mode,
                &request.identity,
                version,
                request.request_metadata,
            )
            .await?;
        Ok(Json(UserView {
            status: Status::Ok,
            token: user.token.to_string(),
            profile: Value::Object(user.profile),
            version: user.version,
            finaltime: user.finaltime,
            slidingtime: user.slidingtime,
            expirationtime: user.expirationtime,
        }))
    }

    /// Merge changes into a user's profile; `null` removes a key.
    #[oai(path = "/UserUpdate", method = "post", operation_id = "UserUpdate")]
    async fn user_update(
        &self,
        caller: Authenticated,
        body: JsonBody<UserUpdateRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let change = Change::Merge(object(request.profile, "profile")?);
        self.vault
            .change_user(
                &caller.0,
                Command::UserUpdate,
                mode,
                &request.identity,
                change,
                request.request_metadata,
            )
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Apply RFC 6902 operations to a user's profile.
    #[oai(path = "/UserPatch", method = "post", operation_id = "UserPatch")]
    async fn user_patch(
        &self,
        caller: Authenticated,
        body: JsonBody<UserPatchRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let patch = parse_patch(request.patch)?;
        self.vault
            .change_user(
                &caller.0,
                Command::UserPatch,
                mode,
                &request.identity,
                Change::Patch(patch),
                request.request_metadata,
            )
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Forget a user: the record, its versions and its indexes are removed; the token stays reserved.
    #[oai(path = "/UserDelete", method = "post", operation_id = "UserDelete")]
    async fn user_delete(
        &self,
        caller: Authenticated,
        body: JsonBody<UserSelector>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        let selector = (request.mode.parse()?, request.identity);
        let forgotten = self
            .vault
            .forget_users(
                &caller.0,
                Command::UserDelete,
                &[selector],
                request.request_metadata,
            )
            .await?;
        forgotten
            .into_iter()
            .next()
            .ok_or_else(ApiError::internal)??;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Forget many users in one transaction: all or none.
    #[oai(
        path = "/UserDeleteBulk",
        method = "post",
        operation_id = "UserDeleteBulk"
    )]
    async fn user_delete_bulk(
        &self,
        caller: Authenticated,
        body: JsonBody<UserDeleteBulkRequest>,
    ) -> Result<Json<UsersDeleted>, ApiError> {
        let request = body.0;
        let selectors = UserSelectorItem::parse_all(request.users)?;
        let outcomes = self
            .vault
            .forget_users(
                &caller.0,
                Command::UserDeleteBulk,
                &selectors,
                request.request_metadata,
            )
            .await?;
        let mut deleted_count = 0;
        let mut errors = Vec::new();
        for (outcome, (mode, identity)) in outcomes.into_iter().zip(selectors) {
            match outcome {
                Ok(()) => deleted_count += 1,
                Err(err) => errors.push(DeleteError {
                    mode: mode.as_str().to_owned(),
                    identity,
                    reason: err.to_string(),
                }),
            }
        }
        Ok(Json(UsersDeleted {
            status: Status::Ok,
            deleted_count,
            errors,
        }))
    }

    /// List the kept versions of a user's profile.
    #[oai(
        path = "/UserListVersions",
        method = "post",
        operation_id = "UserListVersions"
    )]
    async fn user_list_versions(
        &self,
        caller: Authenticated,
        body: JsonBody<UserSelector>,
    ) -> Result<Json<VersionList>, ApiError> {
        let request = body.0;
        let mode: Mode = request.mode.parse()?;
        let versions = self
            .vault
            .list_versions(&caller.0, mode, &request.identity, request.request_metadata)
            .await?;
        Ok(Json(VersionList::of(versions)))
    }
}

/// The group (by id or name) and role (by id or name) a new user joins, if any.
fn membership(
    groupname: Option<String>,
    groupid: Option<i64>,
    rolename: Option<String>,
    roleid: Option<i64>,
) -> Result<Option<Membership>, VaultError> {
    let role = RoleSelector::named(roleid, rolename);
    if groupid.is_none() && groupname.is_none() {
        if role.is_some() {
            return Err(VaultError::BadRequest(
                "A role needs a group: give groupname or groupid".into(),
            ));
        }
        return Ok(None);
    }
    Ok(Some((
        GroupRef {
            id: groupid,
            name: groupname,
        },
        role,
    )))
}
