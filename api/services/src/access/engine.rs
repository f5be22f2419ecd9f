//! The policy engine: decides what a principal may do to a target user and which profile fields it
//! may see. Pure: the caller gathers memberships, group rosters and policies; nothing here touches
//! the database. Deny wins; whatever no Allow grants is denied.
//!
//! A statement applies through one of the principal's memberships (group `g`, role `r`) when its
//! policy is linked to `r` and its Action matches. Each Resource then names targets:
//! `${target_group_members:role/X}` binds every group `h` in which the target has role X;
//! `${target_user}` the principal's own record; `users` and `*` any target, binding each of its
//! groups (or none). The Condition is checked with `${principal_group_id}` = g,
//! `${target_group_id}` = h, `${principal_group_members:role/Y}` = the members of g with role Y,
//! `${target_group_members:role/Z}` = the members of h with role Z, `${request_metadata:k}` = the
//! request's metadata.
//!
//! Conditions have three outcomes ([`Truth`]): a clause over a variable that is **absent** (a
//! metadata key not sent, no group bound) follows AWS IAM: `StringEquals` and `ListIntersect` are
//! false, `StringNotEquals` is true. A clause that **cannot be decided** (a variable about a target
//! when there is none, values of the wrong kind) is unknown: an Allow needs every clause true, a
//! Deny applies unless a clause is false. So a missing key never lets a negated Deny fall away, and
//! nothing undecidable ever grants.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::policy::{matches, Effect, PolicyDocument};
use super::Command;

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

/// What a decision is about.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A command that names no user (GroupCreate, TokenCreate, ...): only `*` and `users…`
    /// resources apply, and every variable about a target is undecidable.
    Nobody,
    /// One user.
    User(&'a Subject),
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
    /// Sections granted whole (`profile`, `consent`, `appdata`, `group`, `session`, `file`).
    pub sections: BTreeSet<String>,
    /// Top-level profile fields granted one by one.
    pub profile_fields: BTreeSet<String>,
}

/// The sections of a user a resource may name.
pub const SECTIONS: [&str; 6] = ["profile", "consent", "appdata", "group", "session", "file"];

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

    /// Whether the target's app data may be seen (or, for a change, touched).
    pub fn appdata(&self) -> bool {
        self.sections.contains("appdata")
    }

    /// Whether the target's agreements may be seen (or, for a change, given or withdrawn).
    pub fn consent(&self) -> bool {
        self.sections.contains("consent")
    }

    /// Whether the target's sessions may be seen (or, for a change, written or deleted).
    pub fn sessions(&self) -> bool {
        self.sections.contains("session")
    }

    /// Whether the target's files may be seen (or, for a change, stored, retagged or deleted).
    pub fn files(&self) -> bool {
        self.sections.contains("file")
    }

    /// Whether the whole profile may be seen.
    pub fn whole_profile(&self) -> bool {
        self.sections.contains("profile")
    }

    /// Whether this top-level profile field may be seen.
    pub fn field(&self, field: &str) -> bool {
        self.whole_profile() || self.profile_fields.contains(field)
    }

    /// Whether every one of these top-level profile fields may be seen (and so changed).
    pub fn covers(&self, fields: &[String]) -> bool {
        fields.iter().all(|f| self.field(f))
    }

    /// The profile as this principal may see it: hidden strings become `"***"`, other hidden values
    /// are dropped.
    pub fn mask(&self, profile: &Map<String, Value>) -> Map<String, Value> {
        if self.whole_profile() {
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

/// The outcome of a condition: see the module's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

impl Truth {
    fn from_bool(value: bool) -> Self {
        if value {
            Truth::True
        } else {
            Truth::False
        }
    }

    /// Whether a statement with this condition outcome takes effect: an Allow only on a
    /// condition that holds, a Deny unless its condition is known not to hold.
    fn applies(self, effect: Effect) -> bool {
        match effect {
            Effect::Allow => self == Truth::True,
            Effect::Deny => self != Truth::False,
        }
    }
}

/// One statement, reached through one of the principal's memberships.
#[derive(Clone, Copy)]
struct Reached<'a> {
    membership: &'a Membership,
    document: &'a PolicyDocument,
}

/// The statements whose Action matches `action`, each with the membership that reaches it.
fn reached<'a>(
    action: &'a str,
    principal: &'a Subject,
    policies: &'a [LinkedPolicy],
) -> impl Iterator<Item = Reached<'a>> + 'a {
    principal.memberships.iter().flat_map(move |membership| {
        policies
            .iter()
            .filter(move |p| membership.role.as_ref() == Some(&p.role))
            .filter(move |p| p.document.action.iter().any(|a| matches(a, action)))
            .map(move |p| Reached {
                membership,
                document: &p.document,
            })
    })
}

/// Decides `action` by `principal` on `target`.
pub fn decide(
    action: &str,
    principal: &Subject,
    target: Target<'_>,
    policies: &[LinkedPolicy],
    rosters: &Rosters,
    metadata: Option<&Value>,
) -> Access {
    let mut granted = Visible::default();
    let mut any_grant = false;
    for statement in reached(action, principal, policies) {
        let document = statement.document;
        // A Deny that names no resource (or one that cannot be read) denies everything: a Deny
        // never fails open. (Policies are refused on write without a Resource; this holds for any
        // stored before.)
        let everything = [String::from("*")];
        let resources = match document.effect {
            Effect::Deny if document.resource.is_empty() => &everything[..],
            _ => &document.resource[..],
        };
        for resource in resources {
            let Some((selector, path)) = split_resource(resource).or(match document.effect {
                Effect::Deny => Some(("*", "*")),
                Effect::Allow => None,
            }) else {
                continue;
            };
            for binding in bindings(selector, principal, target) {
                let context = Context {
                    principal,
                    target: match target {
                        Target::Nobody => None,
                        Target::User(subject) => Some(subject),
                    },
                    principal_group: statement.membership.group_id,
                    target_group: binding,
                    rosters,
                    metadata,
                };
                if !condition(document, &context).applies(document.effect) {
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
    if any_grant {
        Access::Granted(granted)
    } else {
        Access::Denied
    }
}

/// Whether `principal` may ask for a bulk unlock, which reads nothing itself: each command it opens
/// is decided again, user by user. So the question is whether a command it opens (or
/// BulkListUnlock) *might* be allowed: an Allow naming one applies unless its condition is known to
/// be false without a target (a clause about a target is undecidable, not false). A Deny of
/// BulkListUnlock refuses unless its condition is known to be false.
pub fn may_unlock(
    principal: &Subject,
    opened: &[&str],
    policies: &[LinkedPolicy],
    rosters: &Rosters,
    metadata: Option<&Value>,
) -> bool {
    let context = |membership: &Membership| Context {
        principal,
        target: None,
        principal_group: membership.group_id,
        target_group: None,
        rosters,
        metadata,
    };
    for statement in reached(Command::BulkListUnlock.name(), principal, policies) {
        let document = statement.document;
        let truth = condition(document, &context(statement.membership));
        if document.effect == Effect::Deny && truth != Truth::False {
            return false;
        }
    }
    [Command::BulkListUnlock.name()]
        .iter()
        .chain(opened)
        .flat_map(|command| reached(command, principal, policies))
        .any(|statement| {
            let document = statement.document;
            document.effect == Effect::Allow
                && condition(document, &context(statement.membership)) != Truth::False
        })
}

/// A membership being given or taken away: `role` (or none) in `group`.
#[derive(Clone, Copy, Debug)]
pub struct MembershipChange<'a> {
    pub group: i64,
    pub role: Option<&'a str>,
}

/// Whether `principal` may give (or take away) `change` to `target` with `action`. `target` is the
/// user as they will be with the membership (or, for a removal, as they are with it).
///
/// Only a member of the group manages it: an Allow counts only through the principal's own
/// membership in that group, and only with a resource in the `group` section that binds the target
/// through the group: `${target_group_members:role/R}.group` naming the very role given (a
/// membership without a role also accepts `users.group` and `*`). Its Condition must hold with
/// `${target_group_id}` = the group. A Deny of the action on the `group` section (or `*`) that binds
/// the target through the group refuses, unless its condition is known not to hold. Role tokens
/// hold their role in no group, so they never change memberships.
pub fn may_change_membership(
    action: &str,
    principal: &Subject,
    target: &Subject,
    change: MembershipChange<'_>,
    policies: &[LinkedPolicy],
    rosters: &Rosters,
    metadata: Option<&Value>,
) -> bool {
    // The target holds the membership being changed, so a selector binds it through the group
    // when it names that role, or names any member (`*`, `users`) or the principal; a role given
    // must be named.
    decide_on_group(
        action,
        principal,
        target,
        change.group,
        policies,
        rosters,
        metadata,
        |selector| match role_of(selector) {
            Some(role) => change.role == Some(role),
            None if selector == "${target_user}" => {
                change.role.is_none()
                    && principal.token.is_some()
                    && principal.token == target.token
            }
            None => change.role.is_none() && (selector == "*" || selector == "users"),
        },
        |selector| match role_of(selector) {
            Some(role) => change.role == Some(role),
            None if selector == "${target_user}" => {
                principal.token.is_some() && principal.token == target.token
            }
            None => selector == "*" || selector == "users",
        },
    )
}

/// Whether `principal` may rename or delete `group` with `action` (GroupUpdate, GroupDelete):
/// deleting a group takes every membership of it away, so it is held to the rule of memberships.
/// An Allow counts only through the principal's own membership in that group, with a resource in
/// the `group` section (`*`, `users.group`, `${target_group_members:role/R}.group`) and its
/// Condition holding with `${target_group_id}` = the group (no target user: `${target_token}` is
/// absent). A Deny of the action on the `group` section (or `*`) refuses unless its condition is
/// known not to hold.
pub fn may_manage_group(
    action: &str,
    principal: &Subject,
    group: i64,
    policies: &[LinkedPolicy],
    rosters: &Rosters,
    metadata: Option<&Value>,
) -> bool {
    let the_group = Subject {
        token: None,
        memberships: vec![Membership {
            group_id: Some(group),
            role: None,
        }],
    };
    let names_group =
        |selector: &str| selector == "*" || selector == "users" || role_of(selector).is_some();
    decide_on_group(
        action,
        principal,
        &the_group,
        group,
        policies,
        rosters,
        metadata,
        names_group,
        names_group,
    )
}

/// The decision on one group shared by memberships and group changes: the statements of `action`
/// whose resource is in the `group` section. A Deny whose selector `denies_through` accepts refuses
/// unless its condition is known not to hold; an Allow counts when its selector `allows_through`
/// accepts, it reaches the principal through its own membership of `group`, and its condition
/// holds, with `${target_group_id}` = `group` and `target` as the target.
#[allow(clippy::too_many_arguments)]
fn decide_on_group(
    action: &str,
    principal: &Subject,
    target: &Subject,
    group: i64,
    policies: &[LinkedPolicy],
    rosters: &Rosters,
    metadata: Option<&Value>,
    allows_through: impl Fn(&str) -> bool,
    denies_through: impl Fn(&str) -> bool,
) -> bool {
    let mut allowed = false;
    for statement in reached(action, principal, policies) {
        let document = statement.document;
        // A Deny that names no resource (or one that cannot be read) denies everything: a Deny
        // never fails open. (Policies are refused on write without a Resource; this holds for any
        // stored before.)
        let everything = [String::from("*")];
        let resources = match document.effect {
            Effect::Deny if document.resource.is_empty() => &everything[..],
            _ => &document.resource[..],
        };
        for resource in resources {
            let Some((selector, path)) = split_resource(resource).or(match document.effect {
                Effect::Deny => Some(("*", "*")),
                Effect::Allow => None,
            }) else {
                continue;
            };
            if !(path == "*" || path == "group" || path.starts_with("group.")) {
                continue;
            }
            let context = Context {
                principal,
                target: Some(target),
                principal_group: statement.membership.group_id,
                target_group: Some(group),
                rosters,
                metadata,
            };
            match document.effect {
                Effect::Deny if denies_through(selector) => {
                    if condition(document, &context) != Truth::False {
                        return false;
                    }
                }
                Effect::Deny => {}
                Effect::Allow => {
                    allowed |= allows_through(selector)
                        && statement.membership.group_id == Some(group)
                        && condition(document, &context) == Truth::True;
                }
            }
        }
    }
    allowed
}

/// The role a `${target_group_members:role/R}` selector names.
fn role_of(selector: &str) -> Option<&str> {
    selector
        .strip_prefix("${target_group_members:role/")
        .and_then(|r| r.strip_suffix('}'))
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
/// `*` and `users` bind each group the target is in (none for a user in no group, or no target), so
/// that `${target_group_id}` means something under them too.
fn bindings(selector: &str, principal: &Subject, target: Target<'_>) -> Vec<Option<i64>> {
    let target = match target {
        Target::Nobody if selector == "*" || selector == "users" => return vec![None],
        Target::Nobody => return Vec::new(),
        Target::User(subject) => subject,
    };
    if selector == "*" || selector == "users" {
        let mut groups: Vec<Option<i64>> = target.memberships.iter().map(|m| m.group_id).collect();
        groups.sort_unstable();
        groups.dedup();
        if groups.is_empty() {
            groups.push(None);
        }
        return groups;
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
        // Only top-level fields are granted one by one: a nested path (no longer accepted on
        // write) grants nothing rather than its whole top-level field.
        Some(("profile", field)) if !field.contains('.') => {
            visible.profile_fields.insert(field.to_owned());
        }
        Some(("profile", _)) => {}
        Some((section, _)) => {
            visible.sections.insert(section.to_owned());
        }
    }
}

struct Context<'a> {
    principal: &'a Subject,
    /// `None` when the decision has no target user: every variable about one is undecidable.
    target: Option<&'a Subject>,
    principal_group: Option<i64>,
    target_group: Option<i64>,
    rosters: &'a Rosters,
    metadata: Option<&'a Value>,
}

/// A variable's (or literal's) value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Resolved {
    One(String),
    /// A number, as [`canonical_number`] writes it.
    Num(String),
    /// A group roster, or a list literal of the policy (any of its values).
    Set(BTreeSet<String>),
    /// A list sent in the request's metadata: a set to `ListIntersect`, undecidable to the string
    /// operators (it is not one value: `["ticket", "x"]` must not pass as the purpose `ticket`).
    Sent(BTreeSet<String>),
    /// Not there: a metadata key not sent, no group bound.
    Absent,
    /// Cannot be decided here.
    Unknown,
}

impl Context<'_> {
    /// The value of one side of a clause: a `${variable}` or a literal.
    fn value(&self, side: &Value) -> Resolved {
        match side {
            Value::String(text) => {
                match text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
                    Some(name) => self.variable(name),
                    None => Resolved::One(text.clone()),
                }
            }
            Value::Number(n) => number(n),
            Value::Bool(b) => Resolved::One(b.to_string()),
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<BTreeSet<String>>>()
                .map_or(Resolved::Unknown, Resolved::Set),
            Value::Null | Value::Object(_) => Resolved::Unknown,
        }
    }

    fn variable(&self, name: &str) -> Resolved {
        let one = |value: Option<String>| value.map_or(Resolved::Absent, Resolved::One);
        // Group ids are numbers: compared by value, as a policy may write them either way.
        let id =
            |group: Option<i64>| group.map_or(Resolved::Absent, |g| Resolved::Num(g.to_string()));
        let roster = |group: Option<i64>, role: &str| match group {
            None => Resolved::Absent,
            Some(g) => Resolved::Set(
                self.rosters
                    .get(&(g, role.to_owned()))
                    .map(|m| m.iter().map(Uuid::to_string).collect())
                    .unwrap_or_default(),
            ),
        };
        match name {
            "principal_group_id" | "user_group_id" => id(self.principal_group),
            "principal_token" => one(self.principal.token.map(|t| t.to_string())),
            "target_group_id" | "target_token" if self.target.is_none() => Resolved::Unknown,
            "target_group_id" => id(self.target_group),
            "target_token" => one(self.target.and_then(|t| t.token).map(|t| t.to_string())),
            _ => {
                if let Some(role) = name.strip_prefix("principal_group_members:role/") {
                    roster(self.principal_group, role)
                } else if let Some(role) = name.strip_prefix("target_group_members:role/") {
                    match self.target {
                        None => Resolved::Unknown,
                        Some(_) => roster(self.target_group, role),
                    }
                } else if let Some(key) = name.strip_prefix("request_metadata:") {
                    match self.metadata.and_then(|m| m.get(key)) {
                        None | Some(Value::Null) => Resolved::Absent,
                        Some(Value::String(s)) => Resolved::One(s.clone()),
                        Some(Value::Number(n)) => number(n),
                        Some(Value::Bool(b)) => Resolved::One(b.to_string()),
                        Some(Value::Array(items)) => items
                            .iter()
                            .map(|item| item.as_str().map(str::to_owned))
                            .collect::<Option<BTreeSet<String>>>()
                            .map_or(Resolved::Unknown, Resolved::Sent),
                        Some(_) => Resolved::Unknown,
                    }
                } else {
                    Resolved::Unknown
                }
            }
        }
    }
}

/// A number as the string operators compare it: by value, whichever way it was written (`1`, `1.0`,
/// `10e-1` and `1E+0` are `1`; `2.50` is `2.5`; `1e3` is `1000`), so that a condition cannot be
/// passed or dodged by writing a number differently. Beyond 64 places either side of the point it
/// is written `<digits>e<power>`; a power too large to read is undecidable.
fn number(n: &serde_json::Number) -> Resolved {
    canonical_number(&n.to_string()).map_or(Resolved::Unknown, Resolved::Num)
}

/// Whether `text` (a string of the policy or the request) is the number `canonical` written as
/// a JSON number (`"1.0"` is 1), or the same text.
fn is_number(text: &str, canonical: &str) -> bool {
    // Only a number's own characters: the JSON reader would take " 1\n" as 1 too.
    let number_text = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    text == canonical
        || (number_text
            && serde_json::from_str::<serde_json::Number>(text)
                .ok()
                .and_then(|n| canonical_number(&n.to_string()))
                .is_some_and(|c| c == canonical))
}

/// Whether PostgreSQL can store the number (a policy is kept as `jsonb`, whose numbers are
/// `numeric`: at most 131072 digits before the point and 16383 after).
pub(crate) fn storable(n: &serde_json::Number) -> bool {
    let Some(canonical) = canonical_number(&n.to_string()) else {
        return false;
    };
    let unsigned = canonical.trim_start_matches('-');
    let (significant, power) = match unsigned.split_once('e') {
        Some((digits, power)) => (
            digits.len() as i64,
            power.parse::<i64>().unwrap_or(i64::MAX),
        ),
        None => return true,
    };
    power <= 131072 - significant && power >= -16383
}

fn canonical_number(text: &str) -> Option<String> {
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (mantissa, mut power) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, power)) => (mantissa, power.parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    power = power.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let significant = digits.trim_end_matches('0');
    if significant.is_empty() {
        return Some("0".to_owned());
    }
    power = power.checked_add(i64::try_from(digits.len() - significant.len()).ok()?)?;
    let places = i64::try_from(significant.len()).ok()?;
    Some(if (0..=64).contains(&power) {
        format!("{sign}{significant}{}", "0".repeat(power as usize))
    } else if (-64..0).contains(&power) {
        let point = places + power;
        if point > 0 {
            let (int, frac) = significant.split_at(point as usize);
            format!("{sign}{int}.{frac}")
        } else {
            format!("{sign}0.{}{significant}", "0".repeat((-point) as usize))
        }
    } else {
        format!("{sign}{significant}e{power}")
    })
}

/// A statement's Condition: every clause of every operator (no Condition holds).
fn condition(document: &PolicyDocument, context: &Context<'_>) -> Truth {
    let Some(operators) = &document.condition else {
        return Truth::True;
    };
    let mut outcome = Truth::True;
    for (operator, clauses) in operators {
        let Some(clauses) = clauses.as_object() else {
            outcome = Truth::Unknown;
            continue;
        };
        for (left, right) in clauses {
            let left = context.value(&Value::String(left.clone()));
            match clause(operator, left, context.value(right)) {
                Truth::False => return Truth::False,
                Truth::Unknown => outcome = Truth::Unknown,
                Truth::True => {}
            }
        }
    }
    outcome
}

/// One clause. On an absent value: `StringEquals` and `ListIntersect` are false, `StringNotEquals`
/// true (AWS IAM's rule). A single value against a set asks whether the set holds it.
fn clause(operator: &str, left: Resolved, right: Resolved) -> Truth {
    use Resolved::{Absent, Num, One, Sent, Set, Unknown};
    if left == Unknown || right == Unknown {
        return Truth::Unknown;
    }
    match operator {
        "StringEquals" | "StringNotEquals" => {
            let negated = operator == "StringNotEquals";
            let equal = match (left, right) {
                (Absent, _) | (_, Absent) => return Truth::from_bool(negated),
                (One(a), One(b)) | (Num(a), Num(b)) => a == b,
                (One(a), Num(n)) | (Num(n), One(a)) => is_number(&a, &n),
                (One(a), Set(s)) | (Set(s), One(a)) => s.contains(&a),
                (Num(n), Set(s)) | (Set(s), Num(n)) => s.iter().any(|a| is_number(a, &n)),
                _ => return Truth::Unknown,
            };
            Truth::from_bool(equal != negated)
        }
        "ListIntersect" | "ForAnyValue:ListIntersect" => {
            // A number meets a value that is that number, however written (as StringEquals).
            let number = |v: &Resolved| match v {
                Num(n) => Some(n.clone()),
                _ => None,
            };
            let set = |v: Resolved| match v {
                One(s) | Num(s) => BTreeSet::from([s]),
                Set(s) | Sent(s) => s,
                Absent | Unknown => BTreeSet::new(),
            };
            let (left_number, right_number) = (number(&left), number(&right));
            let (left, right) = (set(left), set(right));
            let meets = match (left_number, right_number) {
                (Some(n), _) => right.iter().any(|s| is_number(s, &n)),
                (_, Some(n)) => left.iter().any(|s| is_number(s, &n)),
                (None, None) => !left.is_disjoint(&right),
            };
            Truth::from_bool(meets)
        }
        _ => Truth::Unknown,
    }
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
        match decide(
            "UserGet",
            &mum,
            Target::User(&kid),
            &policies,
            &rosters,
            None,
        ) {
            Access::Granted(visible) => {
                assert!(
                    visible.sections.contains("profile") && visible.sections.contains("consent")
                );
            }
            Access::Denied => panic!("a parent reads their child"),
        }
        assert_eq!(
            decide(
                "UserGet",
                &mum,
                Target::User(&other_kid),
                &policies,
                &rosters,
                None
            ),
            Access::Denied,
            "another family's child"
        );
        assert_eq!(
            decide(
                "UserGet",
                &mum,
                Target::User(&other_mum),
                &policies,
                &rosters,
                None
            ),
            Access::Denied,
            "not a child"
        );
        assert_eq!(
            decide(
                "UserDelete",
                &mum,
                Target::User(&kid),
                &policies,
                &rosters,
                None
            ),
            Access::Denied,
            "not an allowed action"
        );
        assert_eq!(
            decide(
                "UserGet",
                &kid,
                Target::User(&mum),
                &policies,
                &rosters,
                None
            ),
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
        let Access::Granted(visible) = decide(
            "UserGet",
            &teacher_s,
            Target::User(&dad_s),
            &policies,
            &rosters,
            None,
        ) else {
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
            decide(
                "UserGet",
                &teacher_s,
                Target::User(&stranger),
                &policies,
                &rosters,
                None
            ),
            Access::Denied
        );
        assert_eq!(
            decide(
                "UserUpdate",
                &teacher_s,
                Target::User(&dad_s),
                &policies,
                &rosters,
                None
            ),
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
                Target::User(&customer),
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
                Target::User(&customer),
                &policies,
                &rosters,
                Some(&json!({"purpose": "marketing"}))
            ),
            Access::Denied
        );
        assert_eq!(
            decide(
                "UserGet",
                &agent,
                Target::User(&customer),
                &policies,
                &rosters,
                None
            ),
            Access::Denied
        );
        assert_eq!(
            decide(
                "UserDelete",
                &agent,
                Target::User(&customer),
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
                Target::User(&subject(me, vec![])),
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
                Target::User(&subject(user(), vec![])),
                &policies,
                &rosters,
                None
            ),
            Access::Denied
        );
    }

    fn unlock_policy(effect: &str, action: &str, condition: Value) -> LinkedPolicy {
        linked(
            "clerk",
            json!({"Effect": effect, "Action": [action], "Resource": ["*"], "Condition": condition}),
        )
    }

    #[test]
    fn a_deny_that_names_no_resource_denies_everything() {
        let (agent, customer) = (user(), user());
        let agent = subject(agent, vec![member(9, "support")]);
        let customer = subject(customer, vec![]);
        let allow = linked(
            "support",
            json!({"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}),
        );
        // As a policy stored before Resource was required on write.
        let mut deny = linked(
            "support",
            json!({"Effect": "Deny", "Action": ["UserGet", "UserCreate"], "Resource": ["*"]}),
        );
        deny.document.resource.clear();
        let mut unreadable = deny.clone();
        unreadable.document.resource = vec!["not a resource".into()];
        let rosters = Rosters::new();
        for deny in [deny, unreadable] {
            let policies = [allow.clone(), deny];
            let target = Target::User(&customer);
            assert_eq!(
                decide("UserGet", &agent, target, &policies, &rosters, None),
                Access::Denied
            );
            assert_eq!(
                decide(
                    "UserCreate",
                    &agent,
                    Target::Nobody,
                    &policies,
                    &rosters,
                    None
                ),
                Access::Denied
            );
        }
    }

    #[test]
    fn numbers_are_compared_by_value_however_they_are_written() {
        let agent = subject(user(), vec![member(9, "support")]);
        let policies = [
            linked(
                "support",
                json!({"Effect": "Allow", "Action": ["GroupCreate"], "Resource": ["*"]}),
            ),
            linked(
                "support",
                json!({"Effect": "Deny", "Action": ["GroupCreate"], "Resource": ["*"],
                       "Condition": {"StringEquals": {"${request_metadata:level}": 1}}}),
            ),
        ];
        let rosters = Rosters::new();
        let create = |metadata: Value| {
            let metadata = json!({ "level": metadata });
            decide(
                "GroupCreate",
                &agent,
                Target::Nobody,
                &policies,
                &rosters,
                Some(&metadata),
            )
        };
        let written: Value =
            serde_json::from_str(r#"[1, 1.0, 1e0, 10e-1, 100e-2, 1E+0, 0.1e1, "1", "1.0"]"#)
                .unwrap();
        for level in written.as_array().unwrap() {
            assert_eq!(create(level.clone()), Access::Denied, "{level}");
        }
        for other in [json!(2), json!(1.5), json!("one"), json!(-1)] {
            assert!(
                matches!(create(other.clone()), Access::Granted(_)),
                "{other}"
            );
        }
    }

    #[test]
    fn a_number_in_a_list_condition_or_a_group_id_is_compared_by_value_too() {
        let agent = subject(user(), vec![member(183, "support")]);
        let rosters = Rosters::new();
        let with = |condition: Value| {
            [
                linked(
                    "support",
                    json!({"Effect": "Allow", "Action": ["GroupCreate"], "Resource": ["*"]}),
                ),
                linked(
                    "support",
                    json!({"Effect": "Deny", "Action": ["GroupCreate"], "Resource": ["*"],
                           "Condition": condition}),
                ),
            ]
        };
        let create = |policies: &[LinkedPolicy], level: Value| {
            let metadata = json!({ "level": level });
            decide(
                "GroupCreate",
                &agent,
                Target::Nobody,
                policies,
                &rosters,
                Some(&metadata),
            )
        };
        let list = with(json!({"ListIntersect": {"${request_metadata:level}": 1}}));
        for level in [json!(1.0), json!("1.0"), json!("1e0"), json!(["1.0", "x"])] {
            assert_eq!(create(&list, level.clone()), Access::Denied, "{level}");
        }
        assert!(matches!(create(&list, json!(["2"])), Access::Granted(_)));
        // Only a number's characters make a number: " 1" is not 1.
        let equals = with(json!({"StringNotEquals": {"${request_metadata:level}": 1}}));
        for padded in [" 1", "1 ", "\n1\t", "+1", "0x1", "01"] {
            assert_eq!(create(&equals, json!(padded)), Access::Denied, "{padded:?}");
        }
        assert!(matches!(create(&equals, json!("1.0")), Access::Granted(_)));
        // A group id is a number, written in the policy as a number or as a string.
        for group in [
            json!(183),
            json!(183.0),
            json!("183"),
            json!("183.0"),
            json!(1.83e2),
        ] {
            let policies = with(json!({"StringEquals": {"${principal_group_id}": group}}));
            assert_eq!(create(&policies, json!(0)), Access::Denied, "{group}");
        }
        let other = with(json!({"StringEquals": {"${principal_group_id}": "184"}}));
        assert!(matches!(create(&other, json!(0)), Access::Granted(_)));
    }

    #[test]
    fn canonical_numbers() {
        for (written, canonical) in [
            ("0", "0"),
            ("-0.0", "0"),
            ("1", "1"),
            ("1.50", "1.5"),
            ("-2.5e1", "-25"),
            ("1e3", "1000"),
            ("125e-2", "1.25"),
            ("5e-3", "0.005"),
            ("1e65", "1e65"),
            ("12e-70", "12e-70"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
        ] {
            assert_eq!(
                canonical_number(written).as_deref(),
                Some(canonical),
                "{written}"
            );
        }
        assert_eq!(canonical_number("1e99999999999999999999"), None);
    }

    #[test]
    fn a_negated_deny_applies_when_its_key_is_missing() {
        let (agent, customer) = (user(), user());
        let agent = subject(agent, vec![member(9, "support")]);
        let customer = subject(customer, vec![]);
        let policies = [
            linked(
                "support",
                json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["users.profile"]}),
            ),
            linked(
                "support",
                json!({"Effect": "Deny", "Action": ["UserGet"], "Resource": ["*"],
                       "Condition": {"StringNotEquals": {"${request_metadata:purpose}": "support-ticket"}}}),
            ),
        ];
        let rosters = Rosters::new();
        let get = |metadata: Option<&Value>| {
            decide(
                "UserGet",
                &agent,
                Target::User(&customer),
                &policies,
                &rosters,
                metadata,
            )
        };
        assert_eq!(get(None), Access::Denied, "no request_metadata at all");
        assert_eq!(
            get(Some(&json!({"other": "x"}))),
            Access::Denied,
            "key missing"
        );
        assert_eq!(
            get(Some(&json!({"purpose": null}))),
            Access::Denied,
            "key null"
        );
        assert_eq!(get(Some(&json!({"purpose": "marketing"}))), Access::Denied);
        assert!(matches!(
            get(Some(&json!({"purpose": "support-ticket"}))),
            Access::Granted(_)
        ));
    }

    #[test]
    fn every_operator_has_a_rule_for_missing_keys() {
        let context = Context {
            principal: &Subject::default(),
            target: None,
            principal_group: None,
            target_group: None,
            rosters: &Rosters::new(),
            metadata: Some(&json!({"purpose": "x", "tags": ["a", "b"], "deep": {"k": 1}})),
        };
        let cases = [
            // (operator, left, right, outcome)
            (
                "StringEquals",
                "${request_metadata:missing}",
                json!("x"),
                Truth::False,
            ),
            (
                "StringNotEquals",
                "${request_metadata:missing}",
                json!("x"),
                Truth::True,
            ),
            (
                "ListIntersect",
                "${request_metadata:missing}",
                json!(["x"]),
                Truth::False,
            ),
            (
                "ForAnyValue:ListIntersect",
                "${request_metadata:missing}",
                json!(["x"]),
                Truth::False,
            ),
            (
                "StringEquals",
                "${request_metadata:purpose}",
                json!("x"),
                Truth::True,
            ),
            (
                "StringNotEquals",
                "${request_metadata:purpose}",
                json!("x"),
                Truth::False,
            ),
            (
                "StringEquals",
                "${request_metadata:purpose}",
                json!(["y", "x"]),
                Truth::True,
            ),
            (
                "StringNotEquals",
                "${request_metadata:purpose}",
                json!(["y", "x"]),
                Truth::False,
            ),
            (
                "ListIntersect",
                "${request_metadata:tags}",
                json!(["b", "c"]),
                Truth::True,
            ),
            // No group bound for a role token: absent.
            (
                "StringEquals",
                "${principal_group_id}",
                json!("1"),
                Truth::False,
            ),
            (
                "StringNotEquals",
                "${principal_group_id}",
                json!("1"),
                Truth::True,
            ),
            // No target at all: undecidable, whatever the operator.
            (
                "StringEquals",
                "${target_group_id}",
                json!("1"),
                Truth::Unknown,
            ),
            (
                "StringNotEquals",
                "${target_token}",
                json!("1"),
                Truth::Unknown,
            ),
            (
                "ListIntersect",
                "${target_group_members:role/child}",
                json!(["1"]),
                Truth::Unknown,
            ),
            // Values of the wrong kind: undecidable.
            (
                "StringEquals",
                "${request_metadata:deep}",
                json!("x"),
                Truth::Unknown,
            ),
            (
                "StringEquals",
                "${request_metadata:tags}",
                json!(["a"]),
                Truth::Unknown,
            ),
            (
                "StringEquals",
                "${request_metadata:tags}",
                json!("a"),
                Truth::Unknown,
            ),
            (
                "StringNotEquals",
                "${request_metadata:tags}",
                json!("c"),
                Truth::Unknown,
            ),
            (
                "StringLike",
                "${request_metadata:purpose}",
                json!("x"),
                Truth::Unknown,
            ),
        ];
        for (operator, left, right, outcome) in cases {
            // Built directly: validation would refuse the unknown operator before the engine.
            let document = PolicyDocument {
                effect: Effect::Allow,
                principal: None,
                action: vec!["UserGet".into()],
                resource: vec![],
                condition: json!({ operator: { left: right } }).as_object().cloned(),
            };
            assert_eq!(
                condition(&document, &context),
                outcome,
                "{operator} {left} {right}"
            );
        }
    }

    #[test]
    fn an_undecidable_condition_never_grants_and_never_lifts_a_deny() {
        let clerk = subject(user(), vec![member(4, "clerk")]);
        let rosters = Rosters::new();
        let about_a_target = json!({"StringEquals": {"${target_group_id}": "4"}});
        let allow = [unlock_policy(
            "Allow",
            "GroupCreate",
            about_a_target.clone(),
        )];
        assert_eq!(
            decide(
                "GroupCreate",
                &clerk,
                Target::Nobody,
                &allow,
                &rosters,
                None
            ),
            Access::Denied
        );
        let deny = [
            unlock_policy("Allow", "GroupCreate", json!({})),
            unlock_policy("Deny", "GroupCreate", about_a_target),
        ];
        assert_eq!(
            decide("GroupCreate", &clerk, Target::Nobody, &deny, &rosters, None),
            Access::Denied
        );
        assert!(matches!(
            decide(
                "GroupCreate",
                &clerk,
                Target::Nobody,
                &deny[..1],
                &rosters,
                None
            ),
            Access::Granted(_)
        ));
    }

    #[test]
    fn a_bulk_unlock_honours_deny_and_conditions() {
        let clerk = subject(user(), vec![member(4, "clerk")]);
        let rosters = Rosters::new();
        let opened = ["BulkListGroupUsers", "UserSearch"];
        let group_bound = linked(
            "clerk",
            json!({"Action": ["BulkListGroupUsers"], "Resource": ["${target_group_members:role/x}.profile"],
                   "Condition": {"StringEquals": {"${principal_group_id}": "${target_group_id}"}}}),
        );
        assert!(
            may_unlock(
                &clerk,
                &opened,
                std::slice::from_ref(&group_bound),
                &rosters,
                None
            ),
            "a group-bound Allow of a command the unlock opens"
        );
        let denied = [
            group_bound.clone(),
            unlock_policy("Deny", "BulkListUnlock", json!({})),
        ];
        assert!(!may_unlock(&clerk, &opened, &denied, &rosters, None));
        let negated_deny = [
            group_bound.clone(),
            unlock_policy(
                "Deny",
                "BulkListUnlock",
                json!({"StringNotEquals": {"${request_metadata:purpose}": "audit"}}),
            ),
        ];
        assert!(!may_unlock(&clerk, &opened, &negated_deny, &rosters, None));
        assert!(may_unlock(
            &clerk,
            &opened,
            &negated_deny,
            &rosters,
            Some(&json!({"purpose": "audit"}))
        ));
        let conditional = [unlock_policy(
            "Allow",
            "BulkListUnlock",
            json!({"StringEquals": {"${request_metadata:purpose}": "audit"}}),
        )];
        assert!(!may_unlock(&clerk, &opened, &conditional, &rosters, None));
        assert!(!may_unlock(&clerk, &opened, &[], &rosters, None));
        let unrelated = [unlock_policy("Allow", "UserGet", json!({}))];
        assert!(!may_unlock(&clerk, &opened, &unrelated, &rosters, None));
    }

    fn manager_policy(resource: &str, condition: Value) -> LinkedPolicy {
        linked(
            "parent",
            json!({"Action": ["GroupAddUser"], "Resource": [resource], "Condition": condition}),
        )
    }

    #[test]
    fn only_a_member_of_a_group_gives_its_memberships_and_only_the_roles_named() {
        let (mum_t, kid_t) = (user(), user());
        let mum = subject(mum_t, vec![member(FAMILY_1, "parent")]);
        let same_group = json!({"StringEquals": {"${principal_group_id}": "${target_group_id}"}});
        let policies = [manager_policy(
            "${target_group_members:role/child}.group",
            same_group.clone(),
        )];
        let rosters = Rosters::new();
        let kid_in = |group| subject(kid_t, vec![member(group, "child")]);
        let change = |group, role| MembershipChange { group, role };
        let may = |target: &Subject, group, role, policies: &[LinkedPolicy]| {
            may_change_membership(
                "GroupAddUser",
                &mum,
                target,
                change(group, role),
                policies,
                &rosters,
                None,
            )
        };
        assert!(may(&kid_in(FAMILY_1), FAMILY_1, Some("child"), &policies));
        assert!(
            !may(&kid_in(FAMILY_2), FAMILY_2, Some("child"), &policies),
            "another family's group"
        );
        let as_parent = subject(kid_t, vec![member(FAMILY_1, "parent")]);
        assert!(
            !may(&as_parent, FAMILY_1, Some("parent"), &policies),
            "a role the policy does not name"
        );
        // Even without a condition, only through the principal's own membership of the group.
        let unconditional = [manager_policy(
            "${target_group_members:role/child}.group",
            json!({}),
        )];
        assert!(!may(
            &kid_in(FAMILY_2),
            FAMILY_2,
            Some("child"),
            &unconditional
        ));
        // `${target_user}.group`: the reported escalation, a user making itself parent elsewhere.
        let own = [manager_policy("${target_user}.group", json!({}))];
        let me_elsewhere = subject(
            mum_t,
            vec![member(FAMILY_1, "parent"), member(FAMILY_2, "parent")],
        );
        assert!(!may(&me_elsewhere, FAMILY_2, Some("parent"), &own));
        assert!(!may(&me_elsewhere, FAMILY_2, None, &own));
        // A profile grant is not a grant of memberships.
        let profile = [manager_policy(
            "${target_group_members:role/child}.profile",
            same_group,
        )];
        assert!(!may(&kid_in(FAMILY_1), FAMILY_1, Some("child"), &profile));
        // A role token holds its role in no group.
        let role_token = Subject {
            token: None,
            memberships: vec![Membership {
                group_id: None,
                role: Some("parent".into()),
            }],
        };
        assert!(!may_change_membership(
            "GroupAddUser",
            &role_token,
            &kid_in(FAMILY_1),
            change(FAMILY_1, Some("child")),
            &policies,
            &rosters,
            None
        ));
        // A Deny on the group section refuses.
        let denied = [
            policies[0].clone(),
            linked(
                "parent",
                json!({"Effect": "Deny", "Action": ["GroupAddUser"], "Resource": ["users.group"]}),
            ),
        ];
        assert!(!may(&kid_in(FAMILY_1), FAMILY_1, Some("child"), &denied));
    }

    #[test]
    fn users_and_star_bind_each_group_of_the_target() {
        let agent = subject(user(), vec![member(7, "support")]);
        let in_group_5 = subject(user(), vec![member(5, "customer")]);
        let in_no_group = subject(user(), vec![]);
        let policies = [
            linked(
                "support",
                json!({"Action": ["UserGet"], "Resource": ["users.profile"]}),
            ),
            linked(
                "support",
                json!({"Effect": "Deny", "Action": ["UserGet"], "Resource": ["users.profile"],
                       "Condition": {"StringEquals": {"${target_group_id}": "5"}}}),
            ),
        ];
        let rosters = Rosters::new();
        assert_eq!(
            decide(
                "UserGet",
                &agent,
                Target::User(&in_group_5),
                &policies,
                &rosters,
                None
            ),
            Access::Denied
        );
        assert!(matches!(
            decide(
                "UserGet",
                &agent,
                Target::User(&in_no_group),
                &policies,
                &rosters,
                None
            ),
            Access::Granted(_)
        ));
    }
}
