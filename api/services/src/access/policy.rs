//! The policy language (IAM-like, per the CRBAC design): who (`Principal` role) may do what
//! (`Action`: command names, `*` wildcards) on which parts of which users (`Resource`) under which
//! `Condition`. This module parses and validates policies on write; a policy that names an unknown
//! command, a malformed resource or an unknown variable is refused with a 400 naming the problem.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::engine::{storable, SECTIONS};
use super::Command;

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

/// How much one policy may hold: its lists, its conditions and each of its texts.
const MAX_ENTRIES: usize = 100;
const MAX_CLAUSES: usize = 50;
const MAX_TEXT: usize = 256;

/// Parses and validates a policy document. A refusal names the position and the rule, never the
/// text submitted.
pub fn parse(value: Value) -> Result<PolicyDocument, PolicyError> {
    check_fields(&value)?;
    let document: PolicyDocument = serde_path_to_error::deserialize(value)
        .map_err(|e| PolicyError(format!("wrong type at {}", e.path())))?;
    if document.action.is_empty() {
        return Err(PolicyError("Action must name at least one command".into()));
    }
    check_size("Action", &document.action)?;
    check_size("Resource", &document.resource)?;
    if let Some(principal) = &document.principal {
        let roles = match &principal.role {
            RoleNames::One(role) => std::slice::from_ref(role),
            RoleNames::Many(roles) => roles.as_slice(),
        };
        check_size("Principal.Role", roles)?;
    }
    for (i, action) in document.action.iter().enumerate() {
        if !Command::nameable_names().any(|c| matches(action, c)) {
            return Err(PolicyError(format!(
                "Action[{i}] names no command (command names, with * for any run of characters)"
            )));
        }
    }
    for (i, resource) in document.resource.iter().enumerate() {
        check_resource(resource).map_err(|rule| PolicyError(format!("Resource[{i}] {rule}")))?;
    }
    if let Some(condition) = &document.condition {
        check_condition(condition)?;
    }
    if document.resource.is_empty() {
        return Err(PolicyError(
            "Resource must name at least one resource (* for every one)".into(),
        ));
    }
    Ok(document)
}

/// The fields a policy may have, and its Principal.
const FIELDS: [&str; 5] = ["Effect", "Principal", "Action", "Resource", "Condition"];
const PRINCIPAL_FIELDS: [&str; 1] = ["Role"];

/// Refuses unknown fields, an Effect other than Allow or Deny and a Principal without a Role,
/// each with its own message, before the document is read (which then only finds wrong types).
fn check_fields(value: &Value) -> Result<(), PolicyError> {
    // (A struct could be read from a JSON array too, field by position: not a policy.)
    let Some(fields) = value.as_object() else {
        return Err(PolicyError("a policy is a JSON object".into()));
    };
    if fields.keys().any(|key| !FIELDS.contains(&key.as_str())) {
        return Err(PolicyError(
            "a policy has only the fields Effect, Principal, Action, Resource and Condition".into(),
        ));
    }
    if let Some(effect) = fields.get("Effect").filter(|v| !v.is_null()) {
        if effect.as_str() != Some("Allow") && effect.as_str() != Some("Deny") {
            return Err(PolicyError("Effect must be Allow or Deny".into()));
        }
    }
    if let Some(principal) = fields.get("Principal").filter(|v| !v.is_null()) {
        // (Read from an array, a Principal would take its Role by position.)
        let Some(principal) = principal.as_object() else {
            return Err(PolicyError(
                "Principal must be an object with a Role".into(),
            ));
        };
        if principal
            .keys()
            .any(|key| !PRINCIPAL_FIELDS.contains(&key.as_str()))
        {
            return Err(PolicyError("a Principal has only the field Role".into()));
        }
        if !principal.contains_key("Role") {
            return Err(PolicyError("a field is missing at Principal".into()));
        }
    }
    Ok(())
}

fn check_size(field: &str, items: &[String]) -> Result<(), PolicyError> {
    if items.len() > MAX_ENTRIES {
        return Err(PolicyError(format!(
            "{field} may hold at most {MAX_ENTRIES} entries"
        )));
    }
    match items
        .iter()
        .position(|item| item.chars().count() > MAX_TEXT)
    {
        Some(i) => Err(PolicyError(format!(
            "{field}[{i}] is longer than {MAX_TEXT} characters"
        ))),
        None => Ok(()),
    }
}

/// Whether an action pattern (`*` matches any run of characters, nothing else is special) matches
/// a command. Linear in the pattern's length, however many `*` it holds.
pub fn matches(pattern: &str, command: &str) -> bool {
    // The single-character wildcard is NUL, which no command name (nor any accepted text) holds.
    wildmatch::WildMatchPattern::<'*', '\0'>::new(pattern).matches(command)
}

/// `*`, or `<target>.<section>[.<field>]` where target is `${target_group_members:role/<role>}`,
/// `${target_user}` or `users`, and section is `profile`, `consent`, `appdata`, `group`, `session`
/// or `file` (`profile.*`
/// too). The error is the rule broken.
fn check_resource(resource: &str) -> Result<(), &'static str> {
    const MALFORMED: &str = "is malformed: use *, users.<section>, ${target_user}.<section> or \
         ${target_group_members:role/<role>}.<section>, where a section is profile, consent, \
         appdata, group, session or file, and profile may name a top-level field (profile.<field>, profile.*)";
    if resource == "*" {
        return Ok(());
    }
    let path = if let Some(rest) = resource.strip_prefix("${") {
        let (variable, path) = rest.split_once('}').ok_or(MALFORMED)?;
        let ok = variable == "target_user"
            || variable
                .strip_prefix("target_group_members:role/")
                .is_some_and(is_role_name);
        if !ok {
            return Err(MALFORMED);
        }
        path
    } else if let Some(path) = resource.strip_prefix("users") {
        path
    } else {
        return Err(MALFORMED);
    };
    let mut parts = path.strip_prefix('.').ok_or(MALFORMED)?.splitn(2, '.');
    let section = parts.next().ok_or(MALFORMED)?;
    if !SECTIONS.contains(&section) {
        return Err(MALFORMED);
    }
    match parts.next() {
        None => Ok(()),
        Some(field) if section == "profile" && (field == "*" || is_field_name(field)) => Ok(()),
        Some(_) => Err(MALFORMED),
    }
}

fn is_role_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A top-level profile field: fields are granted (and masked) whole, so a nested path is refused
/// rather than silently granting its whole top-level field.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The condition operators, and what each does with a missing key (see the engine).
const OPERATORS: &str = "StringEquals, StringNotEquals, ListIntersect or ForAnyValue:ListIntersect";

/// Operators map variables to a variable or a literal.
fn check_condition(condition: &Map<String, Value>) -> Result<(), PolicyError> {
    let mut clauses_seen = 0;
    for (operator, clauses) in condition {
        if !matches!(
            operator.as_str(),
            "StringEquals" | "StringNotEquals" | "ListIntersect" | "ForAnyValue:ListIntersect"
        ) {
            return Err(PolicyError(format!(
                "Condition may use only the operators {OPERATORS}"
            )));
        }
        let clauses = clauses.as_object().ok_or_else(|| {
            PolicyError(format!("Condition.{operator} must map variables to values"))
        })?;
        clauses_seen += clauses.len();
        if clauses_seen > MAX_CLAUSES {
            return Err(PolicyError(format!(
                "Condition may hold at most {MAX_CLAUSES} clauses"
            )));
        }
        for (left, right) in clauses {
            let unknown = || {
                PolicyError(format!(
                    "Condition.{operator} names a variable that is not known (see the policy \
                     language: ${{principal_group_id}}, ${{target_group_id}}, ${{request_metadata:<key>}}, ...)"
                ))
            };
            if left.chars().count() > MAX_TEXT || !is_variable(left) {
                return Err(unknown());
            }
            match right {
                Value::String(s) if s.starts_with("${") => {
                    if s.chars().count() > MAX_TEXT || !is_variable(s) {
                        return Err(unknown());
                    }
                }
                Value::String(s) if s.chars().count() <= MAX_TEXT => {}
                Value::Number(n) if !storable(n) => {
                    return Err(PolicyError(format!(
                        "Condition.{operator}: a number is out of range (at most 131072 digits \
                         before the point and 16383 after)"
                    )))
                }
                Value::Number(_) | Value::Bool(_) => {}
                Value::Array(items)
                    if items.len() <= MAX_ENTRIES
                        && items
                            .iter()
                            .all(|i| i.as_str().is_some_and(|s| s.chars().count() <= MAX_TEXT)) => {
                }
                _ => {
                    return Err(PolicyError(format!(
                        "Condition.{operator}: each value must be a variable, a string, a number, \
                         a boolean or a list of strings (at most {MAX_ENTRIES} of \
                         {MAX_TEXT} characters)"
                    )))
                }
            }
        }
    }
    Ok(())
}

fn is_variable(text: &str) -> bool {
    let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
        return false;
    };
    matches!(
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
            .is_some_and(|k| !k.is_empty())
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
        for (policy, problem, submitted) in [
            (
                json!({"Action": ["UserGet", "UserSteal"]}),
                "Action[1] names no command",
                "UserSteal",
            ),
            (json!({"Action": []}), "at least one command", ""),
            (
                serde_json::from_str(
                    r#"{"Action": ["UserGet"], "Resource": ["*"], "Condition": {"StringEquals": {"${request_metadata:level}": 1e999999999999999999}}}"#,
                )
                .unwrap(),
                "a number is out of range",
                "999999",
            ),
            (
                serde_json::from_str(
                    r#"{"Action": ["UserGet"], "Resource": ["*"], "Condition": {"StringEquals": {"${request_metadata:level}": 1e-16384}}}"#,
                )
                .unwrap(),
                "a number is out of range",
                "16384",
            ),
            (
                json!({"Action": ["UserGet"]}),
                "Resource must name at least one",
                "",
            ),
            (
                json!({"Effect": "Deny", "Action": ["UserGet"], "Resource": []}),
                "Resource must name at least one",
                "",
            ),
            (
                json!({"Action": ["UserGet"], "Principal": ["r1"]}),
                "Principal must be an object",
                "r1",
            ),
            (
                json!({"Action": ["UserGet"], "Effect": {"Deny": null}}),
                "Effect must be Allow or Deny",
                "",
            ),
            (
                json!({"Action": ["UserGet"], "Resource": ["${target_group_members:role/child}.secrets"]}),
                "Resource[0] is malformed",
                "secrets",
            ),
            (
                json!({"Action": ["UserGet"], "Resource": ["*", "profile"]}),
                "Resource[1] is malformed",
                "",
            ),
            (
                json!({"Action": ["UserGet"], "Condition": {"StringLike": {}}}),
                "only the operators",
                "StringLike",
            ),
            (
                json!({"Action": ["UserGet"], "Condition": {"StringEquals": {"${who_knows}": "x"}}}),
                "Condition.StringEquals names a variable that is not known",
                "who_knows",
            ),
            (
                json!({"Effect": "Maybe", "Action": ["UserGet"]}),
                "Effect must be Allow or Deny",
                "Maybe",
            ),
            (
                json!({"Action": ["UserGet"], "Extra": 1}),
                "only the fields",
                "Extra",
            ),
            (json!({"Action": "UserGet"}), "wrong type at Action", ""),
            (
                json!({"Action": ["UserGet"], "Effect": 1}),
                "Effect must be Allow or Deny",
                "",
            ),
            (
                json!({"Action": ["UserGet"], "Principal": {"Role": "a", "Who": 1}}),
                "only the field Role",
                "Who",
            ),
            (
                json!({"Action": ["UserGet"], "Principal": {}}),
                "a field is missing at Principal",
                "",
            ),
            (
                json!(["Allow", null, ["UserGet"]]),
                "a policy is a JSON object",
                "",
            ),
            (
                json!({"Action": vec!["UserGet"; MAX_ENTRIES + 1]}),
                "Action may hold at most 100 entries",
                "",
            ),
        ] {
            let err = parse(policy).unwrap_err().to_string();
            assert!(err.contains(problem), "{err}");
            if !submitted.is_empty() {
                assert!(!err.contains(submitted), "{err} quotes what was submitted");
            }
        }
    }

    #[test]
    fn matching_is_linear_in_the_stars_of_a_pattern() {
        // The recursive matcher tried every split of the command among the stars: this pattern
        // did not finish; a linear one answers at once.
        let pattern = format!("{}x", "*".repeat(200));
        assert!(!matches(&pattern, "BulkListAllUserRequests"));
        assert!(matches(&"*".repeat(200), "UserGet"));
        assert!(!matches("User?et", "UserGet"), "? is not a wildcard");
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
