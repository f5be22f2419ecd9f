//! The policy language (IAM-like, per the CRBAC design): who (`Principal` role) may do what
//! (`Action`: command names, `*` wildcards) on which parts of which users (`Resource`) under which
//! `Condition`. This module parses and validates policies on write; a policy that names an unknown
//! command, a malformed resource or an unknown variable is refused with a 400 naming the problem.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::engine::SECTIONS;

/// Every `/v2` command a policy may name.
pub const COMMANDS: &[&str] = &[
    "UserCreate",
    "UserCreateBulk",
    "UserGet",
    "UserUpdate",
    "UserPatch",
    "UserDelete",
    "UserDeleteBulk",
    "UserSearch",
    "UserListVersions",
    "UserUpdateRequest",
    "UserPatchRequest",
    "UserDeleteRequest",
    "UserRequestGet",
    "UserRequestListUserRequests",
    "UserRequestApprove",
    "UserRequestCancel",
    "AppdataCreate",
    "AppdataGet",
    "AppdataUpdate",
    "AppdataUpdateRequest",
    "AppdataDelete",
    "AppdataListUserAppNames",
    "AppdataListAppNames",
    "AppdataListVersions",
    "FileCreate",
    "FileGet",
    "FileListUserFiles",
    "FileReplaceTags",
    "FileDelete",
    "AgreementAccept",
    "AgreementGet",
    "AgreementListUserAgreements",
    "AgreementCancel",
    "AgreementCancelRequest",
    "AgreementRevokeAll",
    "GroupCreate",
    "GroupGet",
    "GroupListAllGroups",
    "GroupUpdate",
    "GroupDelete",
    "GroupListUserGroups",
    "GroupAddUser",
    "GroupDeleteUser",
    "TokenCreate",
    "TokenCreateBulk",
    "TokenGet",
    "TokenDelete",
    "BulkListUnlock",
    "BulkListUsers",
    "BulkListAllUsers",
    "BulkListGroupUsers",
    "BulkListAllUserRequests",
    "BulkListAllAuditEvents",
    "BulkListTokens",
    "BulkDeleteTokens",
    "BulkListFilesByTag",
    "AuditListUserEvents",
    "AuditGetEvent",
    "SessionUpsert",
    "SessionGet",
    "SessionDelete",
    "SessionListUserSessions",
    "SharedRecordCreate",
    "XTokenCreateForUser",
    "XTokenCreateForRole",
];

/// A policy document as stored and answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    #[serde(rename = "Effect", default = "allow")]
    pub effect: Effect,
    #[serde(rename = "Principal", default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    #[serde(rename = "Action", default)]
    pub action: Vec<String>,
    #[serde(rename = "Resource", default)]
    pub resource: Vec<String>,
    #[serde(rename = "Condition", default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Map<String, Value>>,
}

fn allow() -> Effect {
    Effect::Allow
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// Who a policy is for: one role or several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    #[serde(rename = "Role")]
    pub role: RoleNames,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RoleNames {
    One(String),
    Many(Vec<String>),
}

/// Why a policy is refused; the message names the problem.
#[derive(Debug, thiserror::Error)]
#[error("Invalid policy: {0}")]
pub struct PolicyError(pub String);

/// Parses and validates a policy document.
pub fn parse(value: Value) -> Result<PolicyDocument, PolicyError> {
    let document: PolicyDocument = serde_path_to_error::deserialize(value).map_err(|e| {
        PolicyError(format!(
            "{} at {}",
            describe_serde(&e.inner().to_string()),
            e.path()
        ))
    })?;
    if document.action.is_empty() {
        return Err(PolicyError("Action must name at least one command".into()));
    }
    for action in &document.action {
        if !COMMANDS.iter().any(|c| matches(action, c)) {
            return Err(PolicyError(format!("unknown action {action}")));
        }
    }
    for resource in &document.resource {
        check_resource(resource)?;
    }
    if let Some(condition) = &document.condition {
        check_condition(condition)?;
    }
    Ok(document)
}

/// Keeps serde's own words only where they cannot quote a value.
fn describe_serde(message: &str) -> String {
    if message.starts_with("unknown field")
        || message.starts_with("unknown variant")
        || message.starts_with("missing field")
    {
        message
            .split(", expected")
            .next()
            .unwrap_or(message)
            .to_owned()
    } else {
        "wrong type".to_owned()
    }
}

/// Whether an action pattern (`*` matches any run of characters) matches a command.
pub fn matches(pattern: &str, command: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == command,
        Some((head, tail)) => {
            command.len() >= head.len() + tail.len() && command.starts_with(head) && {
                let rest = &command[head.len()..];
                (0..=rest.len()).any(|i| rest.get(i..).is_some_and(|r| matches(tail, r)))
            }
        }
    }
}

/// `*`, or `<target>.<section>[.<field>]` where target is `${target_group_members:role/<role>}`,
/// `${target_user}` or `users`, and section is `profile`, `consent`, `appdata` or `group` (`profile.*`
/// too).
fn check_resource(resource: &str) -> Result<(), PolicyError> {
    if resource == "*" {
        return Ok(());
    }
    let malformed = || PolicyError(format!("malformed resource {resource}"));
    let (target, path) = if let Some(rest) = resource.strip_prefix("${") {
        let (variable, path) = rest.split_once('}').ok_or_else(malformed)?;
        let ok = variable == "target_user"
            || variable
                .strip_prefix("target_group_members:role/")
                .is_some_and(is_role_name);
        if !ok {
            return Err(malformed());
        }
        (variable, path)
    } else if let Some(path) = resource.strip_prefix("users") {
        ("users", path)
    } else {
        return Err(malformed());
    };
    let _ = target;
    let mut parts = path.strip_prefix('.').ok_or_else(malformed)?.splitn(2, '.');
    let section = parts.next().ok_or_else(malformed)?;
    if !SECTIONS.contains(&section) {
        return Err(malformed());
    }
    match parts.next() {
        None => Ok(()),
        Some(field) if section == "profile" && (field == "*" || is_field_path(field)) => Ok(()),
        Some(_) => Err(malformed()),
    }
}

fn is_role_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_field_path(path: &str) -> bool {
    path.split('.').all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

/// Operators map variables to a variable or a literal.
fn check_condition(condition: &Map<String, Value>) -> Result<(), PolicyError> {
    for (operator, clauses) in condition {
        if !matches!(
            operator.as_str(),
            "StringEquals" | "StringNotEquals" | "ListIntersect" | "ForAnyValue:ListIntersect"
        ) {
            return Err(PolicyError(format!(
                "unknown condition operator {operator}"
            )));
        }
        let clauses = clauses
            .as_object()
            .ok_or_else(|| PolicyError(format!("{operator} must map variables to values")))?;
        for (left, right) in clauses {
            check_variable(left)?;
            match right {
                Value::String(s) if s.starts_with("${") => check_variable(s)?,
                Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
                Value::Array(items) if items.iter().all(|i| i.is_string()) => {}
                _ => {
                    return Err(PolicyError(format!(
                        "{operator}: the value for {left} must be a string or list of strings"
                    )))
                }
            }
        }
    }
    Ok(())
}

fn check_variable(text: &str) -> Result<(), PolicyError> {
    let unknown = || PolicyError(format!("unknown variable {text}"));
    let name = text
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(unknown)?;
    let known = matches!(
        name,
        "principal_group_id"
            | "target_group_id"
            | "user_group_id"
            | "principal_token"
            | "target_token"
    ) || name
        .strip_prefix("principal_group_members:role/")
        .is_some_and(is_role_name)
        || name
            .strip_prefix("target_group_members:role/")
            .is_some_and(is_role_name)
        || name
            .strip_prefix("request_metadata:")
            .is_some_and(|k| !k.is_empty());
    if known {
        Ok(())
    } else {
        Err(unknown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_seed_examples_are_valid() {
        let parent = json!({
            "Effect": "Allow", "Principal": {"Role": "parent"},
            "Action": ["UserGet", "UserUpdate", "BulkListGroupUsers"],
            "Resource": ["${target_group_members:role/child}.profile", "${target_group_members:role/child}.consent"],
            "Condition": {"StringEquals": {"${principal_group_id}": "${target_group_id}"}}
        });
        let teacher = json!({
            "Effect": "Allow", "Principal": {"Role": "teacher"}, "Action": ["UserGet", "BulkListGroupUsers"],
            "Resource": ["${target_group_members:role/parent}.profile.name", "${target_group_members:role/parent}.profile.phone"],
            "Condition": {"ListIntersect": {"${principal_group_members:role/student}": "${target_group_members:role/child}"}}
        });
        for policy in [
            parent,
            teacher,
            json!({"Effect": "Deny", "Action": ["User*"], "Resource": ["users.profile.*"]}),
        ] {
            let parsed = parse(policy.clone()).unwrap();
            assert_eq!(serde_json::to_value(&parsed).unwrap(), policy, "round trip");
        }
    }

    #[test]
    fn problems_are_named() {
        for (policy, problem) in [
            (json!({"Action": ["UserSteal"]}), "unknown action UserSteal"),
            (json!({"Action": []}), "at least one command"),
            (
                json!({"Action": ["UserGet"], "Resource": ["${target_group_members:role/child}.secrets"]}),
                "malformed resource",
            ),
            (
                json!({"Action": ["UserGet"], "Resource": ["profile"]}),
                "malformed resource",
            ),
            (
                json!({"Action": ["UserGet"], "Condition": {"StringLike": {}}}),
                "unknown condition operator StringLike",
            ),
            (
                json!({"Action": ["UserGet"], "Condition": {"StringEquals": {"${who_knows}": "x"}}}),
                "unknown variable ${who_knows}",
            ),
            (
                json!({"Effect": "Maybe", "Action": ["UserGet"]}),
                "unknown variant",
            ),
            (json!({"Action": ["UserGet"], "Extra": 1}), "unknown field"),
        ] {
            let err = parse(policy).unwrap_err().to_string();
            assert!(err.contains(problem), "{err}");
        }
    }

    #[test]
    fn wildcards_match_command_names() {
        assert!(matches("*", "UserGet"));
        assert!(matches("User*", "UserGet"));
        assert!(matches("*Get", "UserGet"));
        assert!(matches("Bulk*Users", "BulkListGroupUsers"));
        assert!(!matches("User*", "GroupGet"));
        assert!(!matches("UserGet", "UserGetX"));
    }
}
