//! The policy engine: decides what a principal may do to a target user and which profile fields it
//! may see. Pure: the caller gathers memberships, group rosters and policies; nothing here touches
//! the database. Deny wins; whatever no Allow grants is denied.
//!
//! A statement applies through one of the principal's memberships (group `g`, role `r`) when its
//! policy is linked to `r` and its Action matches. Each Resource then names targets:
//! `${target_group_members:role/X}` binds every group `h` in which the target has role X;
//! `${target_user}` the principal's own record; `users` and `*` any target. The Condition is checked
//! with `${principal_group_id}` = g, `${target_group_id}` = h, `${principal_group_members:role/Y}` =
//! the members of g with role Y, `${target_group_members:role/Z}` = the members of h with role Z,
//! `${request_metadata:k}` = the request's metadata.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::policy::{matches, Effect, PolicyDocument};

/// A membership: a group and the role held in it. A role token holds its role in no group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub group_id: Option<i64>,
    pub role: Option<String>,
}

/// Who acts or is acted on.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    pub token: Option<Uuid>,
    pub memberships: Vec<Membership>,
}

/// The members of each group with each role: `(group, role) -> users`.
pub type Rosters = HashMap<(i64, String), BTreeSet<Uuid>>;

/// What was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Denied,
    /// Granted, with what of the target may be seen.
    Granted(Visible),
}

/// The parts of a target a principal may see.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Visible {
    /// Sections granted whole (`profile`, `consent`, `appdata`, `group`).
    pub sections: BTreeSet<String>,
    /// Top-level profile fields granted one by one.
    pub profile_fields: BTreeSet<String>,
}

/// The sections of a user a resource may name.
pub const SECTIONS: [&str; 4] = ["profile", "consent", "appdata", "group"];

impl Visible {
    /// Everything (admins, and a user's own record).
    pub fn all() -> Self {
        Visible {
            sections: SECTIONS.iter().map(|s| (*s).to_owned()).collect(),
            profile_fields: BTreeSet::new(),
        }
    }

    /// Whether the memberships (groups and roles) of the target may be seen.
    pub fn groups(&self) -> bool {
        self.sections.contains("group")
    }

    /// Whether every one of these top-level profile fields may be seen (and so changed).
    pub fn covers(&self, fields: &[String]) -> bool {
        self.sections.contains("profile") || fields.iter().all(|f| self.profile_fields.contains(f))
    }

    /// The profile as this principal may see it: hidden strings become `"***"`, other hidden values
    /// are dropped.
    pub fn mask(&self, profile: &Map<String, Value>) -> Map<String, Value> {
        if self.sections.contains("profile") {
            return profile.clone();
        }
        profile
            .iter()
            .filter_map(|(key, value)| {
                if self.profile_fields.contains(key) {
                    Some((key.clone(), value.clone()))
                } else if value.is_string() {
                    Some((key.clone(), Value::String("***".to_owned())))
                } else {
                    None
                }
            })
            .collect()
    }
}

/// A policy linked to a role.
#[derive(Clone, Debug)]
pub struct LinkedPolicy {
    pub role: String,
    pub document: PolicyDocument,
}

/// Decides `action` by `principal` on `target`.
pub fn decide(
    action: &str,
    principal: &Subject,
    target: &Subject,
    policies: &[LinkedPolicy],
    rosters: &Rosters,
    metadata: Option<&Value>,
) -> Access {
    let mut granted = Visible::default();
    let mut any_grant = false;
    for membership in &principal.memberships {
        let Some(role) = &membership.role else {
            continue;
        };
        for policy in policies.iter().filter(|p| &p.role == role) {
            let document = &policy.document;
            if !document.action.iter().any(|a| matches(a, action)) {
                continue;
            }
            for resource in &document.resource {
                let Some((selector, path)) = split_resource(resource) else {
                    continue;
                };
                for binding in bindings(selector, principal, target) {
                    let context = Context {
                        principal,
                        target,
                        principal_group: membership.group_id,
                        target_group: binding,
                        rosters,
                        metadata,
                    };
                    if !conditions_hold(document, &context) {
                        continue;
                    }
                    if document.effect == Effect::Deny {
                        return Access::Denied;
                    }
                    any_grant = true;
                    grant(&mut granted, path);
                }
            }
        }
    }
    if any_grant {
        Access::Granted(granted)
    } else {
        Access::Denied
    }
}

/// `(selector, path)`: `("${target_group_members:role/child}", "profile.name")`.
fn split_resource(resource: &str) -> Option<(&str, &str)> {
    if resource == "*" {
        return Some(("*", "*"));
    }
    if let Some(rest) = resource.strip_prefix("${") {
        let end = rest.find('}')?;
        let selector = resource.get(..end + 3)?;
        let path = rest.get(end + 2..)?;
        return Some((selector, path));
    }
    let path = resource.strip_prefix("users.")?;
    Some(("users", path))
}

/// The target groups a selector binds (`None` = no group bound); empty when it names no such target.
fn bindings(selector: &str, principal: &Subject, target: &Subject) -> Vec<Option<i64>> {
    if selector == "*" || selector == "users" {
        return vec![None];
    }
    if selector == "${target_user}" {
        return if principal.token.is_some() && principal.token == target.token {
            vec![None]
        } else {
            Vec::new()
        };
    }
    let Some(role) = selector
        .strip_prefix("${target_group_members:role/")
        .and_then(|r| r.strip_suffix('}'))
    else {
        return Vec::new();
    };
    target
        .memberships
        .iter()
        .filter(|m| m.role.as_deref() == Some(role))
        .map(|m| m.group_id)
        .collect()
}

fn grant(visible: &mut Visible, path: &str) {
    match path.split_once('.') {
        _ if path == "*" => *visible = Visible::all(),
        None => {
            visible.sections.insert(path.to_owned());
        }
        Some(("profile", "*")) => {
            visible.sections.insert("profile".to_owned());
        }
        Some(("profile", field)) => {
            let top = field.split('.').next().unwrap_or(field);
            visible.profile_fields.insert(top.to_owned());
        }
        Some((section, _)) => {
            visible.sections.insert(section.to_owned());
        }
    }
}

struct Context<'a> {
    principal: &'a Subject,
    target: &'a Subject,
    principal_group: Option<i64>,
    target_group: Option<i64>,
    rosters: &'a Rosters,
    metadata: Option<&'a Value>,
}

/// A variable's value: one string, or a set (group rosters).
enum Resolved {
    One(String),
    Set(BTreeSet<String>),
}

impl Context<'_> {
    fn resolve(&self, text: &str) -> Option<Resolved> {
        let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
            return Some(Resolved::One(text.to_owned()));
        };
        let roster = |group: Option<i64>, role: &str| {
            let members = group.and_then(|g| self.rosters.get(&(g, role.to_owned())));
            Resolved::Set(
                members
                    .map(|m| m.iter().map(Uuid::to_string).collect())
                    .unwrap_or_default(),
            )
        };
        let one = |value: Option<String>| value.map(Resolved::One);
        match name {
            "principal_group_id" | "user_group_id" => {
                one(self.principal_group.map(|g| g.to_string()))
            }
            "target_group_id" => one(self.target_group.map(|g| g.to_string())),
            "principal_token" => one(self.principal.token.map(|t| t.to_string())),
            "target_token" => one(self.target.token.map(|t| t.to_string())),
            _ => {
                if let Some(role) = name.strip_prefix("principal_group_members:role/") {
                    Some(roster(self.principal_group, role))
                } else if let Some(role) = name.strip_prefix("target_group_members:role/") {
                    Some(roster(self.target_group, role))
                } else if let Some(key) = name.strip_prefix("request_metadata:") {
                    match self.metadata?.get(key)? {
                        Value::String(s) => Some(Resolved::One(s.clone())),
                        other => Some(Resolved::One(other.to_string())),
                    }
                } else {
                    None
                }
            }
        }
    }
}

fn conditions_hold(document: &PolicyDocument, context: &Context<'_>) -> bool {
    let Some(condition) = &document.condition else {
        return true;
    };
    condition.iter().all(|(operator, clauses)| {
        let Some(clauses) = clauses.as_object() else {
            return false;
        };
        clauses.iter().all(|(left, right)| {
            let right_text = match right {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let (Some(l), Some(r)) = (context.resolve(left), context.resolve(&right_text)) else {
                return false;
            };
            match (operator.as_str(), l, r) {
                ("StringEquals", Resolved::One(a), Resolved::One(b)) => a == b,
                ("StringNotEquals", Resolved::One(a), Resolved::One(b)) => a != b,
                ("ListIntersect" | "ForAnyValue:ListIntersect", a, b) => {
                    let set = |v: Resolved| match v {
                        Resolved::One(s) => BTreeSet::from([s]),
                        Resolved::Set(s) => s,
                    };
                    !set(a).is_disjoint(&set(b))
                }
                _ => false,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::policy::parse;
    use serde_json::json;

    const FAMILY_1: i64 = 1;
    const FAMILY_2: i64 = 2;
    const CLASS: i64 = 3;

    fn user() -> Uuid {
        Uuid::new_v4()
    }

    fn member(group: i64, role: &str) -> Membership {
        Membership {
            group_id: Some(group),
            role: Some(role.to_owned()),
        }
    }

    fn subject(token: Uuid, memberships: Vec<Membership>) -> Subject {
        Subject {
            token: Some(token),
            memberships,
        }
    }

    fn linked(role: &str, policy: Value) -> LinkedPolicy {
        LinkedPolicy {
            role: role.to_owned(),
            document: parse(policy).unwrap(),
        }
    }

    fn parent_policy() -> LinkedPolicy {
        linked(
            "parent",
            json!({
                "Effect": "Allow", "Principal": {"Role": "parent"},
                "Action": ["UserGet", "UserUpdate", "BulkListGroupUsers"],
                "Resource": ["${target_group_members:role/child}.profile", "${target_group_members:role/child}.consent"],
                "Condition": {"StringEquals": {"${principal_group_id}": "${target_group_id}"}}
            }),
        )
    }

    fn teacher_policy() -> LinkedPolicy {
        linked(
            "teacher",
            json!({
                "Effect": "Allow", "Principal": {"Role": "teacher"},
                "Action": ["UserGet", "BulkListGroupUsers"],
                "Resource": ["${target_group_members:role/parent}.profile.name", "${target_group_members:role/parent}.profile.phone"],
                "Condition": {"ListIntersect": {"${principal_group_members:role/student}": "${target_group_members:role/child}"}}
            }),
        )
    }

    #[test]
    fn parents_read_their_own_childs_profile_and_consents_only() {
        let (mum, kid, other_kid, other_mum) = (user(), user(), user(), user());
        let mum = subject(mum, vec![member(FAMILY_1, "parent")]);
        let kid = subject(kid, vec![member(FAMILY_1, "child")]);
        let other_kid = subject(other_kid, vec![member(FAMILY_2, "child")]);
        let other_mum = subject(other_mum, vec![member(FAMILY_1, "parent")]);
        let policies = [parent_policy()];
        let rosters = Rosters::new();
        match decide("UserGet", &mum, &kid, &policies, &rosters, None) {
            Access::Granted(visible) => {
                assert!(
                    visible.sections.contains("profile") && visible.sections.contains("consent")
                );
            }
            Access::Denied => panic!("a parent reads their child"),
        }
        assert_eq!(
            decide("UserGet", &mum, &other_kid, &policies, &rosters, None),
            Access::Denied,
            "another family's child"
        );
        assert_eq!(
            decide("UserGet", &mum, &other_mum, &policies, &rosters, None),
            Access::Denied,
            "not a child"
        );
        assert_eq!(
            decide("UserDelete", &mum, &kid, &policies, &rosters, None),
            Access::Denied,
            "not an allowed action"
        );
        assert_eq!(
            decide("UserGet", &kid, &mum, &policies, &rosters, None),
            Access::Denied,
            "children hold no policy"
        );
    }

    #[test]
    fn teachers_read_only_the_name_and_phone_of_their_students_parents() {
        let (teacher, student, dad, stranger_parent, stranger_kid) =
            (user(), user(), user(), user(), user());
        let teacher_s = subject(teacher, vec![member(CLASS, "teacher")]);
        let dad_s = subject(dad, vec![member(FAMILY_1, "parent")]);
        let stranger = subject(stranger_parent, vec![member(FAMILY_2, "parent")]);
        let mut rosters = Rosters::new();
        rosters.insert((CLASS, "student".into()), BTreeSet::from([student]));
        rosters.insert((FAMILY_1, "child".into()), BTreeSet::from([student]));
        rosters.insert((FAMILY_1, "parent".into()), BTreeSet::from([dad]));
        rosters.insert((FAMILY_2, "child".into()), BTreeSet::from([stranger_kid]));
        let policies = [teacher_policy(), parent_policy()];
        let Access::Granted(visible) =
            decide("UserGet", &teacher_s, &dad_s, &policies, &rosters, None)
        else {
            panic!("a teacher reads a student's parent");
        };
        let profile = json!({"name": "Dad", "phone": "+447911123456", "email": "dad@example.com", "age": 41, "kids": ["x"]});
        let masked = visible.mask(profile.as_object().unwrap());
        assert_eq!(
            Value::Object(masked),
            json!({"name": "Dad", "phone": "+447911123456", "email": "***"}),
            "hidden strings become ***, other hidden values are dropped"
        );
        assert_eq!(
            decide("UserGet", &teacher_s, &stranger, &policies, &rosters, None),
            Access::Denied
        );
        assert_eq!(
            decide("UserUpdate", &teacher_s, &dad_s, &policies, &rosters, None),
            Access::Denied
        );
    }

    #[test]
    fn deny_wins_and_metadata_conditions_apply() {
        let (agent, customer) = (user(), user());
        let agent = subject(agent, vec![member(9, "support")]);
        let customer = subject(customer, vec![]);
        let policies = [
            linked(
                "support",
                json!({"Effect": "Allow", "Action": ["User*"], "Resource": ["users.profile"],
                "Condition": {"StringEquals": {"${request_metadata:purpose}": "ticket"}}}),
            ),
            linked(
                "support",
                json!({"Effect": "Deny", "Action": ["UserDelete"], "Resource": ["*"]}),
            ),
        ];
        let rosters = Rosters::new();
        let ticket = json!({"purpose": "ticket"});
        assert!(matches!(
            decide(
                "UserGet",
                &agent,
                &customer,
                &policies,
                &rosters,
                Some(&ticket)
            ),
            Access::Granted(_)
        ));
        assert_eq!(
            decide(
                "UserGet",
                &agent,
                &customer,
                &policies,
                &rosters,
                Some(&json!({"purpose": "marketing"}))
            ),
            Access::Denied
        );
        assert_eq!(
            decide("UserGet", &agent, &customer, &policies, &rosters, None),
            Access::Denied
        );
        assert_eq!(
            decide(
                "UserDelete",
                &agent,
                &customer,
                &policies,
                &rosters,
                Some(&ticket)
            ),
            Access::Denied,
            "deny wins"
        );
    }

    #[test]
    fn target_user_means_the_principal_itself() {
        let me = user();
        let policies = [linked(
            "self",
            json!({"Action": ["UserGet"], "Resource": ["${target_user}.profile"]}),
        )];
        let principal = subject(me, vec![member(1, "self")]);
        let rosters = Rosters::new();
        assert!(matches!(
            decide(
                "UserGet",
                &principal,
                &subject(me, vec![]),
                &policies,
                &rosters,
                None
            ),
            Access::Granted(_)
        ));
        assert_eq!(
            decide(
                "UserGet",
                &principal,
                &subject(user(), vec![]),
                &policies,
                &rosters,
                None
            ),
            Access::Denied
        );
    }
}
