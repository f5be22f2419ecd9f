//! App data: one free-form object per user and application name (AppdataCreate, AppdataGet,
//! AppdataUpdate, AppdataDelete, the name listings and the versions).
//!
//! Sealed with the user's own data key ([`crate::core::user_key_for_writing`]), so forget-me, which
//! destroys that key, leaves nothing of it readable. A role or user token needs a policy granting
//! the `appdata` section of the user (`users.appdata`, `${target_user}.appdata`, ...); a user's own
//! token may read its app data but changes it only through requests (the contract). Every
//! operation is audited in the user's trail, naming the app (sealed), never the data.

use bunker_db::appdata as store;
use bunker_db::users::StoredUser;
use bunker_db::{TenantId, TenantTx};
use bunker_keys::{Label, TenantKeys};
use bunker_tenancy::{Caller, Principal};
use serde_json::{Map, Value};
use std::sync::Arc;

use crate::access::{Command, DENIED};
use crate::core::gate::Gate;
use crate::core::identity::{Lookup, Mode};
use crate::core::limits::{check_document, MAX_DOCUMENT_BYTES};
use crate::core::{
    open_json, record_event, seal_json, user_key_for_reading, user_key_for_writing, UserEvent,
    Vault, VaultError,
};
use crate::users::VersionInfo;

/// The most app names AppdataListAppNames answers.
const MAX_LISTED_NAMES: i64 = 10_000;

/// A valid app name: `^[a-z][a-z0-9_]{1,30}$` once lower-cased (the contract's rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppName(String);

impl AppName {
    /// Lower-cases and checks `text`; the refusal names the rule, never the text.
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        // ASCII only before lower-casing: "\u{212A}hop" (a Kelvin sign) must not become "khop".
        let name = text.to_ascii_lowercase();
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && (2..=31).contains(&name.len())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(AppName(name))
        } else {
            Err(VaultError::BadRequest(
                "Invalid appname: 2 to 31 characters, a letter first, then letters, digits or _"
                    .into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where an app's current data is sealed: `<token>/<appname>`.
fn data_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "appdata",
        row,
    }
}

/// Where one kept version is sealed: `<token>/<appname>/<version>`.
fn version_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "appdata_version",
        row,
    }
}

/// One app-data operation on one user, as carried into its transaction.
struct Reach {
    principal: Principal,
    lookup: Lookup,
    command: Command,
    metadata: Option<Value>,
}

impl Reach {
    /// The user, if the caller may reach the app data of it (the same refusal otherwise, whether
    /// or not the user exists).
    async fn user(&self, tx: &TenantTx<'_>) -> Result<StoredUser, VaultError> {
        let (user, visible) = Gate::load(tx, &self.principal)
            .await?
            .resolve(tx, self.lookup, self.command, self.metadata.as_ref())
            .await?;
        if !visible.appdata() {
            return Err(VaultError::Forbidden(DENIED));
        }
        Ok(user)
    }

    /// Records the operation in the user's trail, naming the app (sealed).
    async fn audit(
        &self,
        tx: &TenantTx<'_>,
        keys: &TenantKeys,
        caller: &Caller,
        user: &StoredUser,
        app: Option<&AppName>,
    ) -> Result<(), VaultError> {
        let fields = app
            .map(|a| vec![format!("appdata.{}", a.as_str())])
            .unwrap_or_default();
        let event = UserEvent::change(self.command, user.token, fields, self.metadata.as_ref());
        record_event(tx, keys, caller.actor(), event).await
    }
}

/// Merges `change` into a user's data for `app` in the transaction and keeps the result as a
/// version (AppdataUpdate, and an approved AppdataUpdateRequest). Locks the user's row, so changes
/// of one user's app data follow one another.
pub(crate) async fn apply_app_change(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    user: &StoredUser,
    app: &AppName,
    change: Map<String, Value>,
    keep: i32,
) -> Result<(), VaultError> {
    let key = user_key_for_writing(tx, keys, user.token).await?;
    let (sealed, version) = store::get(tx, user.token, app.as_str())
        .await?
        .ok_or(VaultError::AppDataNotFound)?;
    let row = format!("{}/{}", user.token, app.as_str());
    let label = data_label(tx.tenant(), &row);
    let mut merged = Value::Object(open_json(&key, &label, &sealed)?);
    json_patch::merge(&mut merged, &Value::Object(change));
    check_document(&merged, "appdata", MAX_DOCUMENT_BYTES)?;
    let Value::Object(merged) = merged else {
        return Err(VaultError::BadRequest(
            "appdata must be a JSON object".into(),
        ));
    };
    let record = seal_json(&key, &label, &merged)?;
    let next = version + 1;
    let version_row = format!("{row}/{next}");
    let kept = seal_json(&key, &version_label(tx.tenant(), &version_row), &merged)?;
    store::update(tx, user.token, app.as_str(), version, &record, &kept, keep)
        .await?
        .ok_or(VaultError::Conflict)?;
    Ok(())
}

/// A user's current data for `app`, if any (for a DPO comparing a request with what is stored).
pub(crate) async fn current_app_data(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    user: uuid::Uuid,
    app: &AppName,
) -> Result<Option<Map<String, Value>>, VaultError> {
    let Some(key) = user_key_for_reading(tx, keys, user).await? else {
        return Ok(None);
    };
    let Some((sealed, _)) = store::get(tx, user, app.as_str()).await? else {
        return Ok(None);
    };
    let row = format!("{user}/{}", app.as_str());
    Ok(Some(open_json(
        &key,
        &data_label(tx.tenant(), &row),
        &sealed,
    )?))
}

/// A user's current data of every app, by app name (SystemGetUserReport), in the transaction.
pub(crate) async fn report_of(
    tx: &TenantTx<'_>,
    keys: &TenantKeys,
    user: uuid::Uuid,
) -> Result<Vec<(String, Map<String, Value>)>, VaultError> {
    let names = store::user_app_names(tx, user).await?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let key = user_key_for_reading(tx, keys, user)
        .await?
        .ok_or(VaultError::Keys(bunker_keys::KeyError::Unsealable))?;
    let mut apps = Vec::with_capacity(names.len());
    for name in names {
        let Some((sealed, _)) = store::get(tx, user, &name).await? else {
            continue;
        };
        let row = format!("{user}/{name}");
        apps.push((
            name,
            open_json(&key, &data_label(tx.tenant(), &row), &sealed)?,
        ));
    }
    Ok(apps)
}

impl Vault {
    async fn reach(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        command: Command,
        metadata: Option<Value>,
    ) -> Result<(Arc<TenantKeys>, Reach), VaultError> {
        let (keys, lookup) = self.locate(caller, mode, identity).await?;
        Ok((
            keys,
            Reach {
                principal: caller.principal.clone(),
                lookup,
                command,
                metadata,
            },
        ))
    }

    /// AppdataCreate: stores `data` under `app` for the user; refused if the user has data for
    /// that app already.
    pub async fn create_app_data(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        app: AppName,
        data: Map<String, Value>,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        let document = Value::Object(data);
        check_document(&document, "appdata", MAX_DOCUMENT_BYTES)?;
        let Value::Object(data) = document else {
            return Err(VaultError::BadRequest(
                "appdata must be a JSON object".into(),
            ));
        };
        let (keys, reach) = self
            .reach(caller, mode, identity, Command::AppdataCreate, metadata)
            .await?;
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let user = reach.user(tx).await?;
                    let key = user_key_for_writing(tx, &keys, user.token).await?;
                    let row = format!("{}/{}", user.token, app.as_str());
                    let record = seal_json(&key, &data_label(tx.tenant(), &row), &data)?;
                    let version_row = format!("{row}/1");
                    let version =
                        seal_json(&key, &version_label(tx.tenant(), &version_row), &data)?;
                    if !store::insert(tx, user.token, app.as_str(), &record, &version).await? {
                        return Err(VaultError::AppDataExists);
                    }
                    reach.audit(tx, &keys, &caller, &user, Some(&app)).await
                })
            })
            .await
    }

    /// AppdataGet: the app's data (or one kept `version` of it).
    pub async fn get_app_data(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        app: AppName,
        version: Option<i32>,
        metadata: Option<Value>,
    ) -> Result<Map<String, Value>, VaultError> {
        let (keys, reach) = self
            .reach(caller, mode, identity, Command::AppdataGet, metadata)
            .await?;
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let user = reach.user(tx).await?;
                    let key = user_key_for_reading(tx, &keys, user.token)
                        .await?
                        .ok_or(VaultError::AppDataNotFound)?;
                    let row = format!("{}/{}", user.token, app.as_str());
                    let data = match version {
                        None => {
                            let (sealed, _) = store::get(tx, user.token, app.as_str())
                                .await?
                                .ok_or(VaultError::AppDataNotFound)?;
                            open_json(&key, &data_label(tx.tenant(), &row), &sealed)?
                        }
                        Some(v) => {
                            let sealed = store::get_version(tx, user.token, app.as_str(), v)
                                .await?
                                .ok_or(VaultError::AppDataNotFound)?;
                            let version_row = format!("{row}/{v}");
                            open_json(&key, &version_label(tx.tenant(), &version_row), &sealed)?
                        }
                    };
                    reach.audit(tx, &keys, &caller, &user, Some(&app)).await?;
                    Ok(data)
                })
            })
            .await
    }

    /// AppdataUpdate: merges `change` into the app's data (RFC 7396, as UserUpdate: given keys
    /// replace, `null` removes, nested objects merge) and keeps the result as a new version.
    pub async fn update_app_data(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        app: AppName,
        change: Map<String, Value>,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        let (keys, reach) = self
            .reach(caller, mode, identity, Command::AppdataUpdate, metadata)
            .await?;
        let caller = caller.clone();
        let keep = self.settings.versions_kept;
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let user = reach.user(tx).await?;
                    apply_app_change(tx, &keys, &user, &app, change, keep).await?;
                    reach.audit(tx, &keys, &caller, &user, Some(&app)).await
                })
            })
            .await
    }

    /// AppdataDelete: removes the app's data and its versions.
    pub async fn delete_app_data(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        app: AppName,
        metadata: Option<Value>,
    ) -> Result<(), VaultError> {
        let (keys, reach) = self
            .reach(caller, mode, identity, Command::AppdataDelete, metadata)
            .await?;
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let user = reach.user(tx).await?;
                    if !store::delete(tx, user.token, app.as_str()).await? {
                        return Err(VaultError::AppDataNotFound);
                    }
                    reach.audit(tx, &keys, &caller, &user, Some(&app)).await
                })
            })
            .await
    }

    /// AppdataListUserAppNames: the names of the apps the user has data for.
    pub async fn list_user_app_names(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        metadata: Option<Value>,
    ) -> Result<Vec<String>, VaultError> {
        let (keys, reach) = self
            .reach(
                caller,
                mode,
                identity,
                Command::AppdataListUserAppNames,
                metadata,
            )
            .await?;
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let user = reach.user(tx).await?;
                    let names = store::user_app_names(tx, user.token).await?;
                    reach.audit(tx, &keys, &caller, &user, None).await?;
                    Ok(names)
                })
            })
            .await
    }

    /// AppdataListVersions: the kept versions of the app's data, each with a keyed checksum.
    pub async fn list_app_data_versions(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        app: AppName,
        metadata: Option<Value>,
    ) -> Result<Vec<VersionInfo>, VaultError> {
        let (keys, reach) = self
            .reach(
                caller,
                mode,
                identity,
                Command::AppdataListVersions,
                metadata,
            )
            .await?;
        let caller = caller.clone();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let user = reach.user(tx).await?;
                    let stored = store::list_versions(tx, user.token, app.as_str()).await?;
                    let key = match user_key_for_reading(tx, &keys, user.token).await? {
                        Some(key) => key,
                        None if stored.is_empty() => return Err(VaultError::AppDataNotFound),
                        None => return Err(VaultError::Keys(bunker_keys::KeyError::Unsealable)),
                    };
                    if stored.is_empty() {
                        return Err(VaultError::AppDataNotFound);
                    }
                    let mut versions = Vec::with_capacity(stored.len());
                    for version in stored {
                        let row = format!("{}/{}/{}", user.token, app.as_str(), version.version);
                        let label = version_label(tx.tenant(), &row);
                        let plain = key.open(&label, &version.record)?;
                        let digest = keys.fingerprint.blind_index("appdata_version", &plain);
                        versions.push(VersionInfo {
                            version: version.version,
                            optime: version.optime,
                            md5: hex::encode(digest.get(..16).unwrap_or_default()),
                        });
                    }
                    reach.audit(tx, &keys, &caller, &user, Some(&app)).await?;
                    Ok(versions)
                })
            })
            .await
    }

    /// AppdataListAppNames: the names of the apps any user of the tenant has data for (names
    /// only: not personal). Recorded in the tenant's trail.
    pub async fn list_app_names(&self, caller: &Caller) -> Result<Vec<String>, VaultError> {
        let actor = caller.actor();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let names = store::app_names(tx, MAX_LISTED_NAMES).await?;
                    let event = bunker_db::audit::AuditEvent::about(
                        bunker_db::audit::Performer::Token(actor),
                        Command::AppdataListAppNames.audit_action(),
                        "appdata".into(),
                    );
                    bunker_db::audit::record(tx, &event).await?;
                    Ok(names)
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_follow_the_contract() {
        for good in [
            "shop",
            "Shop",
            "a1",
            "loyalty_points",
            "x_______________________________"
                .get(..31)
                .unwrap_or_default(),
        ] {
            assert!(AppName::parse(good).is_ok(), "{good}");
        }
        assert_eq!(AppName::parse("Shop").unwrap().as_str(), "shop");
        for bad in [
            "",
            "a",
            "1shop",
            "_shop",
            "shop-app",
            "shop app",
            "sh\u{0}p",
            "ßhop",
            "\u{212A}hop",
            "x".repeat(32).as_str(),
        ] {
            let err = AppName::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("Invalid appname"), "{bad}: {err}");
        }
    }
}
