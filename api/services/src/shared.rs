//! Shared records (SharedRecordCreate, SharedRecordGet): a time-limited view of a user's profile, or
//! of one app's data, restricted to listed fields, for a partner who holds its uuid.
//!
//! The uuid (version 4: 122 random bits) is the capability, handed out once: only its SHA-256 is
//! stored. What is shared (the fields, the app, the partner label) is sealed with the user's key,
//! and the answer is read from the user's data when it is asked for: a change shows, and a
//! forgotten user (whose key is gone, and whose shared records are deleted) shares nothing.
//!
//! SharedRecordGet needs no token, and its tenant is the record's: the server finds it with the
//! capability policy of `shared_records` (`bunker_db::Database::shared_record_tenant`), then reads
//! under that tenant's row-level security as always. An unknown, expired or foreign uuid, and a
//! record whose user is gone, all get the same 404. Each read is audited in the user's trail, with
//! the record (its row id) as the actor and the partner label sealed in the details.

use bunker_db::audit::{self, Performer};
use bunker_db::shared_records as store;
use bunker_db::users as user_store;
use bunker_db::{TenantId, TenantTx};
use bunker_keys::{Label, TenantKeys};
use bunker_tenancy::Caller;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::{Command, DENIED};
use crate::appdata::{current_app_data, AppName};
use crate::core::expiry::Expiry;
use crate::core::gate::Gate;
use crate::core::identity::Mode;
use crate::core::{
    is_live, open_json, record_event, seal_json, unix_now, user_key_for_reading,
    user_key_for_writing, UserEvent, Vault, VaultError,
};
use crate::users::open_current;

/// How long a shared record lives when no `finaltime` is given: one day.
pub const DEFAULT_SHARED_SECONDS: i64 = 86_400;

/// The most paths a shared record may list.
const MAX_PATHS: usize = 100;

/// The longest partner label.
const MAX_PARTNER_CHARS: usize = 256;

/// What a shared record shares: field paths (`name`, `address.city`), or everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields(Option<Vec<Vec<String>>>);

impl Fields {
    /// Reads the contract's comma list; absent shares everything, and a list that names no field is
    /// refused. The refusal names the rule, never the text.
    pub fn parse(text: Option<&str>) -> Result<Self, VaultError> {
        let Some(text) = text else {
            return Ok(Fields(None));
        };
        let refused = || {
            VaultError::BadRequest(format!(
                "Invalid fields: a comma list of at most {MAX_PATHS} field paths such as \
                 name,address.city (at most 8 parts of 1 to 128 characters each)"
            ))
        };
        let mut paths = Vec::new();
        for path in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
            let valid = parts.len() <= 8
                && parts.iter().all(|p| {
                    (1..=128).contains(&p.chars().count()) && !p.chars().any(char::is_control)
                });
            if !valid {
                return Err(refused());
            }
            if !paths.contains(&parts) {
                paths.push(parts);
            }
        }
        if paths.len() > MAX_PATHS {
            return Err(refused());
        }
        // An empty list is a mistake (a list built from nothing), not a wish to share everything.
        if paths.is_empty() {
            return Err(VaultError::BadRequest(
                "Invalid fields: the list names no field; leave fields out to share every field"
                    .into(),
            ));
        }
        Ok(Fields(Some(paths)))
    }

    /// The top-level fields it reaches (none: every field).
    fn top_level(&self) -> Option<Vec<String>> {
        self.0.as_ref().map(|paths| {
            let mut top: Vec<String> = Vec::new();
            for first in paths.iter().filter_map(|p| p.first()) {
                if !top.contains(first) {
                    top.push(first.clone());
                }
            }
            top
        })
    }

    /// The paths as written (for the audit: names, never values).
    fn names(&self) -> Vec<String> {
        match &self.0 {
            None => vec!["*".to_owned()],
            Some(paths) => paths.iter().map(|p| p.join(".")).collect(),
        }
    }

    /// What of `data` is shared: the listed paths that exist, nested as they are in `data`.
    fn select(&self, data: Map<String, Value>) -> Map<String, Value> {
        let Some(paths) = &self.0 else {
            return data;
        };
        let mut out = Map::new();
        for path in paths {
            let mut from = &data;
            let mut value = None;
            for (i, part) in path.iter().enumerate() {
                match from.get(part) {
                    Some(found) if i + 1 == path.len() => value = Some(found),
                    Some(Value::Object(inner)) => from = inner,
                    _ => break,
                }
            }
            if let Some(value) = value {
                insert_at(&mut out, path, value.clone());
            }
        }
        out
    }
}

/// Puts `value` at `path` in `out`, making the objects on the way.
fn insert_at(out: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = out;
    for part in parents {
        let entry = at
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(inner) = entry else {
            return;
        };
        at = inner;
    }
    at.insert(last.clone(), value);
}

/// What is sealed in a shared record.
#[derive(Serialize, Deserialize)]
struct Shared {
    fields: Fields,
    appname: Option<String>,
    partner: Option<String>,
}

/// A new shared record, as asked for.
pub struct SharedRecordRequest {
    pub fields: Fields,
    pub appname: Option<AppName>,
    pub partner: Option<String>,
    pub finaltime: Option<Value>,
}

fn shared_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "shared_record",
        row,
    }
}

/// The stored form of a shared record's uuid.
fn capability_hash(record: Uuid) -> [u8; 32] {
    Sha256::digest(record.as_bytes()).into()
}

/// A user's live shared record as a report shows it: never its uuid (the capability).
#[derive(Clone, Debug)]
pub struct SharedRecordInfo {
    /// The field paths shared (`address.city`); none: the whole profile (or app's data).
    pub fields: Option<Vec<String>>,
    pub appname: Option<String>,
    pub partner: Option<String>,
    /// Unix seconds.
    pub created: i64,
    pub expires: i64,
}

/// A user's live shared records (SystemGetUserReport), newest first, in the transaction.
pub(crate) async fn report_of(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    user: Uuid,
) -> Result<Vec<SharedRecordInfo>, VaultError> {
    let listed = store::of_user(tx, user, MAX_LISTED_RECORDS).await?;
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    let key = user_key_for_reading(tx, keys, user)
        .await?
        .ok_or(VaultError::Keys(bunker_keys::KeyError::Unsealable))?;
    let mut infos = Vec::new();
    for record in listed {
        let row = record.id.to_string();
        let shared: Shared = open_json(&key, &shared_label(tx.tenant(), &row), &record.sealed)?;
        infos.push(SharedRecordInfo {
            fields: shared
                .fields
                .0
                .map(|paths| paths.iter().map(|p| p.join(".")).collect()),
            appname: shared.appname,
            partner: shared.partner,
            created: record.created_at,
            expires: record.expires_at,
        });
    }
    Ok(infos)
}

/// The most shared records a report lists.
const MAX_LISTED_RECORDS: i64 = 1_000;

impl Vault {
    /// SharedRecordCreate: a new shared record of a user; its uuid, shown this once.
    pub async fn create_shared_record(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        request: SharedRecordRequest,
        metadata: Option<Value>,
    ) -> Result<Uuid, VaultError> {
        if let Some(partner) = &request.partner {
            if partner.chars().count() > MAX_PARTNER_CHARS {
                return Err(VaultError::BadRequest(format!(
                    "Invalid partner: at most {MAX_PARTNER_CHARS} characters"
                )));
            }
        }
        let max = self.settings.shared_record_max_seconds;
        let seconds = match &request.finaltime {
            None => DEFAULT_SHARED_SECONDS.min(max),
            Some(value) => {
                let at = Expiry::parse(None, Some(value))?.final_unix().unwrap_or(0);
                // Cut to the maximum, as a role or user token's is.
                (at - unix_now()).clamp(1, max)
            }
        };
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        let principal = caller.principal.clone();
        let actor = caller.actor();
        let command = Command::SharedRecordCreate;
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let (user, visible) = Gate::load(tx, &principal)
                        .await?
                        .resolve(tx, lookup, command, metadata.as_ref())
                        .await?;
                    // Only what the caller may see itself may be shared.
                    let allowed = match (&request.appname, request.fields.top_level()) {
                        (Some(_), _) => visible.appdata(),
                        (None, None) => visible.whole_profile(),
                        (None, Some(top)) => visible.covers(&top),
                    };
                    if !allowed {
                        return Err(VaultError::Forbidden(DENIED));
                    }
                    if let Some(app) = &request.appname {
                        if current_app_data(tx, &keys, user.token, app)
                            .await?
                            .is_none()
                        {
                            return Err(VaultError::AppDataNotFound);
                        }
                    }
                    let record = Uuid::new_v4();
                    let id = Uuid::new_v4();
                    let key = user_key_for_writing(tx, &keys, user.token).await?;
                    let row = id.to_string();
                    let names = request.fields.names();
                    let shared = Shared {
                        fields: request.fields,
                        appname: request.appname.map(|a| a.as_str().to_owned()),
                        partner: request.partner,
                    };
                    let sealed = seal_json(&key, &shared_label(tx.tenant(), &row), &shared)?;
                    store::insert(
                        tx,
                        id,
                        &capability_hash(record),
                        user.token,
                        &sealed,
                        seconds,
                    )
                    .await?;
                    let event = UserEvent::change(command, user.token, names, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
                    Ok(record)
                })
            })
            .await
    }

    /// SharedRecordGet (public): what the record shares, read now. Unknown, expired, foreign and
    /// orphaned uuids are all [`VaultError::SharedRecordNotFound`].
    pub async fn get_shared_record(&self, record: Uuid) -> Result<Map<String, Value>, VaultError> {
        let hash = capability_hash(record);
        let tenant = self
            .db
            .shared_record_tenant(&hash)
            .await?
            .ok_or(VaultError::SharedRecordNotFound)?;
        let keys = self.keys(tenant).await?;
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let stored = store::get(tx, &hash)
                        .await?
                        .ok_or(VaultError::SharedRecordNotFound)?;
                    let user = user_store::get_user(tx, stored.token)
                        .await?
                        .filter(is_live)
                        .ok_or(VaultError::SharedRecordNotFound)?;
                    let key = user_key_for_reading(tx, &keys, user.token)
                        .await?
                        .ok_or(VaultError::SharedRecordNotFound)?;
                    let row = stored.id.to_string();
                    let shared: Shared =
                        open_json(&key, &shared_label(tx.tenant(), &row), &stored.sealed)?;
                    let data = match &shared.appname {
                        Some(app) => {
                            let app = AppName::parse(app)?;
                            current_app_data(tx, &keys, user.token, &app)
                                .await?
                                .ok_or(VaultError::SharedRecordNotFound)?
                        }
                        None => open_current(&keys, tx.tenant(), &user)?,
                    };
                    let answer = shared.fields.select(data);
                    let mut names = shared.fields.names();
                    if let Some(app) = &shared.appname {
                        names = names.iter().map(|n| format!("appdata.{app}.{n}")).collect();
                    }
                    let event = UserEvent::shared(
                        Command::SharedRecordGet,
                        user.token,
                        names,
                        shared.partner,
                    );
                    let id = audit::new_event_id();
                    let sealed =
                        event.seal(&keys, tx.tenant(), id, Performer::SharedRecord(stored.id))?;
                    audit::record_with_id(tx, id, &sealed).await?;
                    Ok(answer)
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_a_comma_list_of_paths_and_select_only_those() {
        let fields = Fields::parse(Some(" name, address.city ,,name,missing.x")).unwrap();
        let data = json!({
            "name": "Jane",
            "email": "jane@example.com",
            "address": {"city": "Oslo", "street": "Karl Johans gate 1"},
            "missing": 5
        });
        let Value::Object(data) = data else {
            unreachable!()
        };
        assert_eq!(
            Value::Object(fields.select(data.clone())),
            json!({"name": "Jane", "address": {"city": "Oslo"}})
        );
        assert_eq!(
            fields.top_level(),
            Some(vec!["name".into(), "address".into(), "missing".into()])
        );
        // Absent or empty: everything.
        assert_eq!(Fields::parse(None).unwrap().select(data.clone()), data);
        assert!(Fields::parse(Some(" , ")).is_err());
        assert!(Fields::parse(Some("")).is_err());
        for bad in [
            "a..b",
            "a.",
            &"x".repeat(129),
            "a\u{7}",
            "1.2.3.4.5.6.7.8.9",
        ] {
            assert!(Fields::parse(Some(bad)).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..101).map(|i| format!("f{i}")).collect();
        assert!(Fields::parse(Some(&many.join(","))).is_err());
    }
}
