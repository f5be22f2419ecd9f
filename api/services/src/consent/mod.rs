//! Consent: a tenant's legal bases and processing activities ([`bases`]), and each person's
//! agreement to a basis ([`agreements`]): accepted, withdrawn (by the user directly where the basis
//! allows it, otherwise through a request a DPO approves), revoked, expired.
//!
//! An agreement keeps in clear only what must be queried, in a form that names no one: the basis
//! (by id), the user's token, the status and the times. Its method, reference code and last
//! modifier are sealed with the user's own key, so forget-me (which destroys that key) leaves none
//! of them readable; forget-me also revokes what is in force, keeping the rest as proof that
//! consent was given and when (docs/consent.md). Every change is an audit event about
//! `agreement:<id>` with the status and method before and after: the history AgreementGet lists.
//! A withdrawal, revocation or expiry queues a call of the tenant's webhook (brief, user token,
//! event; never personal data).

pub mod agreements;
pub mod bases;

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::consent::{self as store, StoredAgreement};
use bunker_db::{TenantId, TenantTx};
use bunker_keys::{Label, TenantKeys, UserKey};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::access::Operation;
use crate::core::{audit_label, open_json, seal_json, unix_now, user_key_for_writing, VaultError};
use crate::webhooks::{notify_consent, ConsentChange};

/// A legal basis's `brief` or a processing activity's name: lower-cased, then
/// `^[a-z][a-z0-9-]{1,64}$` (upstream's rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Lower-cases and checks `text` for `field`; the refusal names the rule, never the text.
    pub fn parse(text: &str, field: &str) -> Result<Self, VaultError> {
        // ASCII only before lower-casing (a Kelvin sign must not become a k).
        let name = text.trim().to_ascii_lowercase();
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && (2..=65).contains(&name.len())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(Name(name))
        } else {
            Err(VaultError::BadRequest(format!(
                "Invalid {field}: 2 to 65 characters, a letter first, then letters, digits or -"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest short text of a basis or activity (title, module, short description, message).
const MAX_SHORT_CHARS: usize = 1024;
/// The longest long text (full description, script).
const MAX_LONG_CHARS: usize = 16 * 1024;

/// A text field as given, refused over `max` characters.
fn text(value: Option<String>, field: &str, max: usize) -> Result<Option<String>, VaultError> {
    match value {
        Some(text) if text.chars().count() > max => Err(VaultError::BadRequest(format!(
            "{field} may hold at most {max} characters"
        ))),
        other => Ok(other),
    }
}

/// What an agreement's `status` says, as upstream reads it: yes for 1, active, accept, agree,
/// approve, given, good, ok, on, true, y and yes (any case), and for `true` and `1` as JSON; no
/// for anything else.
pub fn normalize_status(value: Option<&Value>) -> &'static str {
    const YES: [&str; 12] = [
        "1", "active", "accept", "agree", "approve", "given", "good", "ok", "on", "true", "y",
        "yes",
    ];
    let text = match value {
        None => return "yes",
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return "no",
    };
    if YES.contains(&text.as_str()) {
        "yes"
    } else {
        "no"
    }
}

/// The furthest time accepted, either way: 100 years.
const MAX_SECONDS: i64 = 100 * 365 * 86_400;

fn bad_time(field: &str) -> VaultError {
    VaultError::BadRequest(format!(
        "The {field} value must be a duration such as 30d, 12h, 15m or 10s, a Unix time, or a \
         date such as 2027-01-31 (or 2027-01-31T12:00:00Z), at most 100 years away"
    ))
}

/// A calendar date (midnight UTC) or an RFC 3339 time, as Unix seconds.
pub(crate) fn iso_time(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at.unix_timestamp());
    }
    let date = time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

/// `starttime` or `finaltime` of an agreement, as Unix seconds: a duration from now, a Unix time
/// (a bare number), or an ISO date or time; within 100 years of now. A final time must be in the
/// future; a start time may be past (consent given before it was recorded).
pub fn agreement_time(value: &Value, field: &str) -> Result<i64, VaultError> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return Err(bad_time(field)),
    };
    let now = unix_now();
    let at = if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        text.parse::<i64>().ok()
    } else if let Some(seconds) = crate::core::expiry::seconds(&Value::String(text.clone())) {
        now.checked_add(seconds)
    } else {
        iso_time(&text)
    }
    .filter(|at| (at - now).abs() <= MAX_SECONDS && *at >= 0)
    .ok_or_else(|| bad_time(field))?;
    if field == "finaltime" && at <= now {
        return Err(VaultError::BadRequest(
            "The finaltime value must be in the future".into(),
        ));
    }
    Ok(at)
}

/// Where a linked agreement's sealed part is: sealed with its user's key.
pub(crate) fn agreement_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "agreement",
        row,
    }
}

/// Where a waiting agreement's sealed part is: sealed with the tenant's record key.
pub(crate) fn waiting_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "agreement_pending",
        row,
    }
}

/// The sealed part of an agreement: how it was given, its reference, who last changed it.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Sealed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreementmethod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referencecode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lastmodifiedby: Option<String>,
}

/// A change of an agreement, for the audit trail.
pub(crate) struct ConsentEvent<'a> {
    pub action: &'static str,
    pub user: Option<Uuid>,
    pub agreement: i64,
    pub brief: &'a str,
    /// Status and sealed part before (`None`: the agreement is new) and after.
    pub before: Option<(&'a str, Option<&'a Sealed>)>,
    pub after: (&'a str, Option<&'a Sealed>),
    /// The user's key: the methods before and after are sealed with it (inside the details the
    /// audit key seals), so forget-me leaves them unreadable in the trail too. Without it (a
    /// consent waiting for its user, Bunker's own changes) they are left out.
    pub key: Option<&'a UserKey>,
    pub metadata: Option<&'a Value>,
}

/// Where the methods of one consent event are sealed (row: the event's id).
fn methods_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "agreement_event",
        row,
    }
}

/// The methods (before, after) an event sealed with `key`, if it has any.
pub(crate) fn event_methods(
    key: &UserKey,
    tenant: TenantId,
    event: Uuid,
    change: &Value,
) -> Option<(Value, Value)> {
    let sealed = hex::decode(change.get("methods")?.as_str()?).ok()?;
    let row = event.to_string();
    let methods: Value = open_json(key, &methods_label(tenant, &row), &sealed).ok()?;
    let side = |name: &str| methods.get(name).cloned().unwrap_or(Value::Null);
    Some((side("before"), side("after")))
}

impl ConsentEvent<'_> {
    /// Records the change in the transaction: about `agreement:<id>` (so the history of one
    /// agreement can be listed), in the user's trail if it has a user; details sealed under the
    /// tenant's audit key.
    pub(crate) async fn record(
        self,
        tx: &TenantTx<'_>,
        keys: &TenantKeys,
        actor: Performer,
    ) -> Result<(), VaultError> {
        let id = audit::new_event_id();
        let row = id.to_string();
        let method = |sealed: Option<&Sealed>| sealed.and_then(|s| s.agreementmethod.clone());
        let mut change = json!({
            "brief": self.brief,
            "before": self.before.map(|(status, _)| json!({"status": status})),
            "after": {"status": self.after.0},
        });
        let methods = (
            self.before.and_then(|(_, s)| method(s)),
            method(self.after.1),
        );
        if let (Some(key), true) = (self.key, methods.0.is_some() || methods.1.is_some()) {
            let sealed = seal_json(
                key,
                &methods_label(tx.tenant(), &row),
                &json!({"before": methods.0, "after": methods.1}),
            )?;
            if let Some(change) = change.as_object_mut() {
                change.insert("methods".into(), Value::String(hex::encode(sealed)));
            }
        }
        let mut details = Map::new();
        details.insert("agreement".into(), change);
        if let Some(metadata) = self.metadata {
            details.insert("request_metadata".into(), metadata.clone());
        }
        let event = AuditEvent {
            actor,
            action: self.action,
            target: store::agreement_target(self.agreement),
            user_token: self.user,
            details: Some(seal_json(
                &keys.audit,
                &audit_label(tx.tenant(), &row),
                &Value::Object(details),
            )?),
        };
        audit::record_with_id(tx, id, &event).await?;
        Ok(())
    }
}

/// Ends agreements in force with `status` (`revoked` or `expired`): audited one by one as `action`
/// by `actor`, and the webhook told for each that has a user. The rows must be locked.
pub(crate) async fn end_agreements(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    ended: &[StoredAgreement],
    status: &'static str,
    action: &'static str,
    actor: Performer,
    metadata: Option<&Value>,
) -> Result<(), VaultError> {
    let ids: Vec<i64> = ended.iter().map(|a| a.id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    store::set_status(tx, &ids, status).await?;
    let change = if status == "expired" {
        ConsentChange::Expired
    } else {
        ConsentChange::Revoked
    };
    for agreement in ended {
        ConsentEvent {
            action,
            user: agreement.token,
            agreement: agreement.id,
            brief: &agreement.brief,
            before: Some((&agreement.status, None)),
            after: (status, None),
            key: None,
            metadata,
        }
        .record(tx, keys, actor)
        .await?;
        if let Some(user) = agreement.token {
            notify_consent(tx, change, user, &agreement.brief).await?;
        }
    }
    Ok(())
}

/// Forget-me's part for consent, in its transaction: what is in force is revoked (audited as
/// `action`, the webhook told) and every sealed part goes; the rest stays as proof.
pub(crate) async fn forget_agreements(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    token: Uuid,
    action: &'static str,
    actor: Performer,
) -> Result<(), VaultError> {
    for (agreement, now) in store::forget(tx, token).await? {
        let change = match (agreement.status.as_str(), now.as_str()) {
            ("yes", "expired") => ConsentChange::Expired,
            ("yes", "revoked") => ConsentChange::Revoked,
            _ => continue,
        };
        ConsentEvent {
            action,
            user: Some(token),
            agreement: agreement.id,
            brief: &agreement.brief,
            before: Some(("yes", None)),
            after: (&now, None),
            key: None,
            metadata: None,
        }
        .record(tx, keys, actor)
        .await?;
        notify_consent(tx, change, token, &agreement.brief).await?;
    }
    Ok(())
}

/// Forgets a user (its record, key, indexes, memberships, app data, requests and tokens) with its
/// agreements, in the transaction; `false` if it was forgotten already.
pub(crate) async fn forget_user(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    token: Uuid,
    action: &'static str,
    actor: Performer,
) -> Result<bool, VaultError> {
    forget_user_keeping_versions(tx, keys, token, action, actor, false).await
}

/// [`forget_user`], the profile's versions kept with `keep_versions` (a profile removed by
/// SystemDeleteUserProfiles, which SystemRestoreUserProfile may bring back within its window).
pub(crate) async fn forget_user_keeping_versions(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    token: Uuid,
    action: &'static str,
    actor: Performer,
    keep_versions: bool,
) -> Result<bool, VaultError> {
    if !bunker_db::users::forget_keeping_versions(tx, token, keep_versions).await? {
        return Ok(false);
    }
    forget_agreements(tx, keys, token, action, actor).await?;
    Ok(true)
}

/// A user just created, with its indexed values (`(field, blind index)`).
pub(crate) type Holder<'a> = (Uuid, &'a [(&'static str, [u8; 32])]);

/// Links the agreements waiting for an e-mail or phone to the users just created with them, in
/// their transaction: each is re-sealed with its user's key and audited in the user's trail. If a
/// user's e-mail and phone both had one for the same basis, the newest change wins and the other
/// is removed (audited).
pub(crate) async fn link_waiting(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    waiting: Vec<StoredAgreement>,
    holders: &[Holder<'_>],
) -> Result<(), VaultError> {
    let mut linked: Vec<(Uuid, i64)> = Vec::new();
    // Newest change first: it is the one kept.
    for agreement in waiting.into_iter().rev() {
        let Some((field, hash)) = agreement.pending.as_ref() else {
            continue;
        };
        let Some((user, _)) = holders.iter().find(|(_, indexes)| {
            indexes
                .iter()
                .any(|(f, h)| f == field && h.as_slice() == hash.as_slice())
        }) else {
            continue;
        };
        let user = *user;
        let row = agreement.id.to_string();
        if linked.contains(&(user, agreement.basis_id)) {
            store::remove_agreement(tx, agreement.id).await?;
            let event = AuditEvent {
                user_token: Some(user),
                ..AuditEvent::about(
                    Performer::System,
                    Operation::AgreementSuperseded.audit_action(),
                    store::agreement_target(agreement.id),
                )
            };
            audit::record(tx, &event).await?;
            continue;
        }
        let sealed = match &agreement.sealed {
            Some(sealed) => {
                let part: Sealed =
                    open_json(&keys.records, &waiting_label(tx.tenant(), &row), sealed)?;
                let key = user_key_for_writing(tx, keys, user).await?;
                Some(seal_json(&key, &agreement_label(tx.tenant(), &row), &part)?)
            }
            None => None,
        };
        store::attach(tx, agreement.id, user, sealed.as_deref()).await?;
        linked.push((user, agreement.basis_id));
        ConsentEvent {
            action: Operation::AgreementLinked.audit_action(),
            user: Some(user),
            agreement: agreement.id,
            brief: &agreement.brief,
            before: Some((&agreement.status, None)),
            after: (&agreement.status, None),
            key: None,
            metadata: None,
        }
        .record(tx, keys, Performer::System)
        .await?;
    }
    Ok(())
}

/// Expires up to `limit` agreements past their final time, in the transaction (audited as Bunker's
/// own work, the webhook told); returns how many.
pub(crate) async fn expire_due(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    limit: i64,
) -> Result<usize, VaultError> {
    let due = store::lock_due(tx, limit).await?;
    end_agreements(
        tx,
        keys,
        &due,
        "expired",
        Operation::AgreementExpired.audit_action(),
        Performer::System,
        None,
    )
    .await?;
    Ok(due.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_upstreams_rule() {
        for good in ["ab", "Marketing", "health-programme-2", &"a".repeat(65)] {
            assert!(Name::parse(good, "brief").is_ok(), "{good}");
        }
        assert_eq!(Name::parse(" News ", "brief").unwrap().as_str(), "news");
        for bad in [
            "",
            "a",
            "1ab",
            "-ab",
            "a_b",
            "a b",
            "\u{212A}ab",
            &"a".repeat(66),
        ] {
            let err = Name::parse(bad, "brief").unwrap_err().to_string();
            assert!(err.starts_with("Invalid brief"), "{bad}: {err}");
        }
    }

    #[test]
    fn statuses_normalize_as_upstream() {
        for yes in [
            json!("1"),
            json!("Active"),
            json!("accept"),
            json!("agree"),
            json!("approve"),
            json!("given"),
            json!("good"),
            json!("OK"),
            json!("on"),
            json!("true"),
            json!("y"),
            json!("yes"),
            json!(true),
            json!(1),
        ] {
            assert_eq!(normalize_status(Some(&yes)), "yes", "{yes}");
        }
        for no in [
            json!("no"),
            json!("pending"),
            json!("expired"),
            json!(0),
            json!({}),
        ] {
            assert_eq!(normalize_status(Some(&no)), "no", "{no}");
        }
        assert_eq!(normalize_status(None), "yes");
    }

    #[test]
    fn agreement_times_are_durations_unix_times_or_dates() {
        let now = unix_now();
        let in_ten_days = agreement_time(&json!("10d"), "finaltime").unwrap();
        assert!((in_ten_days - now - 864_000).abs() <= 2);
        assert_eq!(
            agreement_time(&json!("2100-01-31"), "finaltime").unwrap(),
            4_105_036_800
        );
        assert_eq!(
            agreement_time(&json!("2100-01-31T12:00:00Z"), "finaltime").unwrap(),
            4_105_080_000
        );
        assert_eq!(
            agreement_time(&json!(1_700_000_000), "starttime").unwrap(),
            1_700_000_000
        );
        assert_eq!(
            agreement_time(&json!("2020-05-01"), "starttime").unwrap(),
            1_588_291_200
        );
        for bad in [
            json!("2020-05-01"),
            json!("soon"),
            json!("3w"),
            json!("-5d"),
            json!(true),
            json!("2020-13-01"),
            json!("101y"),
            json!("99999999999999"),
        ] {
            assert!(agreement_time(&bad, "finaltime").is_err(), "{bad}");
        }
    }
}
