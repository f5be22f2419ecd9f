//! Policy commands: PolicyCreate, PolicyGet, PolicyUpdate, PolicyListAllPolicies, RoleLinkPolicy.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::{ApiTags, Done, Status};
use crate::http::error::ApiError;
use crate::http::extract::{lenient, Authenticated, JsonBody};
use bunker_services::groups::RoleSelector;
use bunker_services::policies::PolicySelector;
use bunker_services::Vault;

/// The policy commands.
pub struct PolicyApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct PolicyCreateRequest {
    policyname: String,
    policydesc: Option<String>,
    /// `{"Effect": "Allow"|"Deny", "Principal": {"Role": ...}, "Action": [...], "Resource": [...], "Condition": {...}}`
    policy: Value,
}

#[derive(Debug, Object)]
pub struct PolicyCreated {
    status: Status,
    policyid: i64,
}

#[derive(Debug, Object, Deserialize)]
pub struct PolicyRefRequest {
    #[serde(default, deserialize_with = "lenient::opt_int")]
    policyid: Option<i64>,
    policyname: Option<String>,
}

#[derive(Debug, Object, Deserialize)]
pub struct PolicyUpdateRequest {
    /// The policy to change; without it, `policyname` names the policy.
    #[serde(default, deserialize_with = "lenient::opt_int")]
    policyid: Option<i64>,
    policyname: Option<String>,
    policydesc: Option<String>,
    policy: Option<Value>,
}

#[derive(Debug, Object)]
pub struct PolicyAnswer {
    status: Status,
    policyid: i64,
    policyname: String,
    policydesc: String,
    policy: Value,
}

#[derive(Debug, Object)]
pub struct PolicyRow {
    policyid: i64,
    policyname: String,
    policydesc: String,
}

#[derive(Debug, Object)]
pub struct PolicyList {
    status: Status,
    rows: Vec<PolicyRow>,
}

#[derive(Debug, Object, Deserialize)]
pub struct LinkPolicyRequest {
    #[serde(default, deserialize_with = "lenient::opt_int")]
    roleid: Option<i64>,
    rolename: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_int")]
    policyid: Option<i64>,
    policyname: Option<String>,
}

fn policy_selector(id: Option<i64>, name: Option<String>) -> Result<PolicySelector, ApiError> {
    match (id, name) {
        (Some(id), _) => Ok(PolicySelector::Id(id)),
        (None, Some(name)) => Ok(PolicySelector::Name(name)),
        (None, None) => Err(ApiError::bad_request(
            "Missing API request parameters: policyid or policyname",
        )),
    }
}

#[OpenApi(tag = "ApiTags::Groups")]
impl PolicyApi {
    /// Create a policy (root token only); it is validated first.
    #[oai(path = "/PolicyCreate", method = "post", operation_id = "PolicyCreate")]
    async fn policy_create(
        &self,
        caller: Authenticated,
        body: JsonBody<PolicyCreateRequest>,
    ) -> Result<Json<PolicyCreated>, ApiError> {
        let r = body.0;
        let id = self
            .vault
            .create_policy(
                &caller.0,
                r.policyname,
                r.policydesc.unwrap_or_default(),
                r.policy,
            )
            .await?;
        Ok(Json(PolicyCreated {
            status: Status::Ok,
            policyid: id,
        }))
    }

    /// Read a policy by id or name (root token only).
    #[oai(path = "/PolicyGet", method = "post", operation_id = "PolicyGet")]
    async fn policy_get(
        &self,
        caller: Authenticated,
        body: JsonBody<PolicyRefRequest>,
    ) -> Result<Json<PolicyAnswer>, ApiError> {
        let found = self
            .vault
            .get_policy(
                &caller.0,
                policy_selector(body.0.policyid, body.0.policyname)?,
            )
            .await?;
        Ok(Json(PolicyAnswer {
            status: Status::Ok,
            policyid: found.id,
            policyname: found.name,
            policydesc: found.description,
            policy: found.document,
        }))
    }

    /// List every policy (root token only).
    #[oai(
        path = "/PolicyListAllPolicies",
        method = "post",
        operation_id = "PolicyListAllPolicies"
    )]
    async fn policy_list(
        &self,
        caller: Authenticated,
        _body: JsonBody<Value>,
    ) -> Result<Json<PolicyList>, ApiError> {
        let rows = self
            .vault
            .list_policies(&caller.0)
            .await?
            .into_iter()
            .map(|p| PolicyRow {
                policyid: p.id,
                policyname: p.name,
                policydesc: p.description,
            })
            .collect();
        Ok(Json(PolicyList {
            status: Status::Ok,
            rows,
        }))
    }

    /// Change a policy (root token only); a new document is validated first.
    #[oai(path = "/PolicyUpdate", method = "post", operation_id = "PolicyUpdate")]
    async fn policy_update(
        &self,
        caller: Authenticated,
        body: JsonBody<PolicyUpdateRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        let (selector, new_name) = match r.policyid {
            Some(id) => (PolicySelector::Id(id), r.policyname),
            None => (policy_selector(None, r.policyname)?, None),
        };
        self.vault
            .update_policy(&caller.0, selector, new_name, r.policydesc, r.policy)
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }

    /// Link a policy to a role (root token only).
    #[oai(
        path = "/RoleLinkPolicy",
        method = "post",
        operation_id = "RoleLinkPolicy"
    )]
    async fn role_link_policy(
        &self,
        caller: Authenticated,
        body: JsonBody<LinkPolicyRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let r = body.0;
        let role = RoleSelector::named(r.roleid, r.rolename).ok_or_else(|| {
            ApiError::bad_request("Missing API request parameters: roleid or rolename")
        })?;
        self.vault
            .link_policy(&caller.0, role, policy_selector(r.policyid, r.policyname)?)
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }
}
