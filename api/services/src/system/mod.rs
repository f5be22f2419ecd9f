//! The System commands: statistics ([`stats`]), subject access reports ([`report`]) and the
//! cross-tenant profile commands of the main tenant's root (SystemGetUserProfiles,
//! SystemSearchUserProfiles, SystemDeleteUserProfiles, SystemRestoreUserProfile).
//!
//! The cross-tenant commands are the one place where a request's work spans tenants. It goes tenant
//! by tenant: the bulk unlock is checked in the main tenant's transaction, then each tenant is
//! worked on in a transaction of its own under that tenant's row-level security and with that
//! tenant's keys (its blind indexes find the person; its record key opens the profile), and what
//! was done to a user is audited in the user's tenant. Last, one event in the main tenant's trail
//! records which tenants and users the command reached. Nothing disables row-level security or
//! uses another role.
//!
//! A profile removed by SystemDeleteUserProfiles is forgotten as UserDelete forgets it (record,
//! indexes, the user's key and so app data, files, sessions and shared records, agreements'
//! sealed parts), except its versions, kept sealed for `BUNKER_RESTORE_WINDOW_SECONDS` (30 days by
//! default; 0 keeps nothing) so that SystemRestoreUserProfile can bring the profile back (as its
//! newest version, with its token). After that the sweeper deletes them. UserDelete stays
//! immediate and complete.

use std::sync::Arc;
pub mod report;
pub mod stats;

use bunker_db::audit::{self as audit_store, AuditEvent, Performer};
use bunker_db::users as user_store;
use bunker_db::users::StoredUser;
use bunker_db::{TenantId, TenantTx};
use bunker_keys::TenantKeys;
use bunker_tenancy::Caller;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::access::Command;
use crate::bulk::require_unlock;
use crate::bulk::search::Search;
use crate::core::gate::Gate;
use crate::core::identity::{Lookup, Mode};
use crate::core::{
    audit_label, open_profile, record_event, record_label, resolve, seal_json, seal_profile,
    version_label, version_row, UserEvent, Vault, VaultError,
};
use crate::users::open_current;

/// The answer to anyone but the main tenant's root.
pub const MAIN_ROOT_ONLY: &str = "Only the main tenant admin can run cross-tenant commands";

/// A tenant named by a request: by `tenantid`, `tenantname`, or both (then they must agree).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantRef {
    pub id: Option<i64>,
    pub name: Option<String>,
}

/// A profile found in one tenant.
#[derive(Clone, Debug)]
pub struct TenantProfile {
    pub tenant: TenantId,
    pub tenantname: String,
    pub token: Uuid,
    pub profile: Map<String, Value>,
}

/// A profile removed in one tenant.
#[derive(Clone, Debug)]
pub struct TenantUser {
    pub tenant: TenantId,
    pub tenantname: String,
    pub token: Uuid,
}

/// The tenants a cross-tenant command works in, in id order.
type Tenants = Vec<(TenantId, String)>;

impl Vault {
    /// SystemGetUserProfiles: the profiles of the person `identity` names (by e-mail, phone,
    /// login or custom value) in every tenant.
    pub async fn system_get_user_profiles(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        unlock: String,
        metadata: Option<Value>,
    ) -> Result<Vec<TenantProfile>, VaultError> {
        const COMMAND: Command = Command::SystemGetUserProfiles;
        if mode == Mode::Token {
            return Err(VaultError::BadRequest(
                "SystemGetUserProfiles does not take mode token: a token names a user of one \
                 tenant"
                    .into(),
            ));
        }
        let tenants = self.open_cross_tenant(caller, &unlock).await?;
        let mut found = Vec::new();
        for (tenant, tenantname, keys) in self.keys_of_all(tenants).await? {
            let Some(lookup) = self.lookup_in(&keys, mode, identity)? else {
                continue;
            };
            let actor = caller.actor();
            let metadata = metadata.clone();
            let row = self
                .db
                .in_tenant(tenant, move |tx| {
                    Box::pin(async move {
                        let Some(user) = live_user(tx, lookup).await? else {
                            return Ok(None);
                        };
                        let profile = open_current(&keys, tx.tenant(), &user)?;
                        let event = UserEvent::about(COMMAND, user.token, metadata.as_ref());
                        record_event(tx, &keys, actor, event).await?;
                        Ok::<_, VaultError>(Some((user.token, profile)))
                    })
                })
                .await?;
            if let Some((token, profile)) = row {
                found.push(TenantProfile {
                    tenant,
                    tenantname,
                    token,
                    profile,
                });
            }
        }
        self.record_in_main(caller, COMMAND, &tokens_of(&found), metadata.as_ref())
            .await?;
        Ok(found)
    }

    /// SystemSearchUserProfiles: the profiles like `identity` in every tenant (each tenant's best
    /// first, tenants in id order), as UserSearch finds them.
    pub async fn system_search_user_profiles(
        &self,
        caller: &Caller,
        identity: String,
        unlock: String,
        metadata: Option<Value>,
    ) -> Result<Vec<TenantProfile>, VaultError> {
        const COMMAND: Command = Command::SystemSearchUserProfiles;
        self.check_search(&identity)?;
        let tenants = self.open_cross_tenant(caller, &unlock).await?;
        let mut found = Vec::new();
        for (tenant, tenantname, keys) in self.keys_of_all(tenants).await? {
            let actor = caller.actor();
            let metadata = metadata.clone();
            let normalizer = self.settings.normalizer.clone();
            let identity = identity.clone();
            let views = self
                .db
                .in_tenant(tenant, move |tx| {
                    Box::pin(async move {
                        let search = Search {
                            keys: &keys,
                            normalizer: &normalizer,
                            command: COMMAND,
                            actor,
                            metadata: metadata.as_ref(),
                        };
                        search.run(tx, &Gate::Admin, &identity).await
                    })
                })
                .await?;
            found.extend(views.into_iter().map(|view| TenantProfile {
                tenant,
                tenantname: tenantname.clone(),
                token: view.token,
                profile: view.profile,
            }));
        }
        self.record_in_main(caller, COMMAND, &tokens_of(&found), metadata.as_ref())
            .await?;
        Ok(found)
    }

    /// SystemDeleteUserProfiles: removes the person's profiles in every tenant, or in the one
    /// named (the only case where `mode` may be `token`); restorable for the configured window.
    /// Refused with not found when there was no profile to remove.
    pub async fn system_delete_user_profiles(
        &self,
        caller: &Caller,
        mode: Mode,
        identity: &str,
        unlock: String,
        only: Option<TenantRef>,
        metadata: Option<Value>,
    ) -> Result<Vec<TenantUser>, VaultError> {
        const COMMAND: Command = Command::SystemDeleteUserProfiles;
        if mode == Mode::Token && only.is_none() {
            return Err(VaultError::BadRequest(
                "SystemDeleteUserProfiles takes mode token only with tenantid or tenantname".into(),
            ));
        }
        let mut tenants = self.open_cross_tenant(caller, &unlock).await?;
        if let Some(only) = &only {
            tenants = vec![named(tenants, only)?];
        }
        let keep = self.settings.restore_window_seconds > 0;
        let mut removed = Vec::new();
        for (tenant, tenantname, keys) in self.keys_of_all(tenants).await? {
            let Some(lookup) = self.lookup_in(&keys, mode, identity)? else {
                continue;
            };
            let actor = caller.actor();
            let metadata = metadata.clone();
            let token = self
                .db
                .in_tenant(tenant, move |tx| {
                    Box::pin(async move {
                        let Some(user) = live_user(tx, lookup).await? else {
                            return Ok(None);
                        };
                        let performer = Performer::Token(actor);
                        let action = COMMAND.audit_action();
                        // Removed by another request since it was found: not found here.
                        if !crate::consent::forget_user_keeping_versions(
                            tx, &keys, user.token, action, performer, keep,
                        )
                        .await?
                        {
                            return Ok(None);
                        }
                        let event = UserEvent::about(COMMAND, user.token, metadata.as_ref());
                        record_event(tx, &keys, actor, event).await?;
                        Ok::<_, VaultError>(Some(user.token))
                    })
                })
                .await?;
            if let Some(token) = token {
                // Its files' keys are gone with it; their objects go now (or with the sweeper).
                self.remove_files_after_delete(tenant, Some(token)).await;
                removed.push(TenantUser {
                    tenant,
                    tenantname,
                    token,
                });
            }
        }
        let reached: Vec<(TenantId, Uuid)> = removed.iter().map(|r| (r.tenant, r.token)).collect();
        self.record_in_main(caller, COMMAND, &reached, metadata.as_ref())
            .await?;
        if removed.is_empty() {
            return Err(VaultError::NotFound);
        }
        Ok(removed)
    }

    /// SystemRestoreUserProfile: brings back, in the tenant named, the profile SystemDeleteUserProfiles
    /// removed (its newest version, with its token and indexes), while its versions are kept.
    /// Refused if another user has taken one of its indexed values since.
    pub async fn system_restore_user_profile(
        &self,
        caller: &Caller,
        token: Uuid,
        unlock: String,
        tenant: TenantRef,
        metadata: Option<Value>,
    ) -> Result<TenantProfile, VaultError> {
        const COMMAND: Command = Command::SystemRestoreUserProfile;
        let tenants = self.open_cross_tenant(caller, &unlock).await?;
        let (tenant, tenantname) = named(tenants, &tenant)?;
        let keys = self.keys(tenant).await?;
        let actor = caller.actor();
        let normalizer = self.settings.normalizer.clone();
        let window = self.settings.restore_window_seconds;
        let event_metadata = metadata.clone();
        let profile = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let kept = user_store::lock_restorable(tx, token, window)
                        .await?
                        .ok_or(VaultError::NotRestorable)?;
                    let row = version_row(token, kept.version);
                    let profile =
                        open_profile(&keys, &version_label(tx.tenant(), &row), &kept.record)?;
                    let indexes = normalizer.indexes(&keys.index, &profile)?;
                    let record_row = token.to_string();
                    let record =
                        seal_profile(&keys, &record_label(tx.tenant(), &record_row), &profile)?;
                    // Locked above: only a clash with another user's value can stop it now.
                    if !user_store::restore_user(tx, token, kept.version, &record, &indexes)
                        .await
                        .map_err(crate::users::duplicate)?
                    {
                        return Err(VaultError::NotRestorable);
                    }
                    let fields: Vec<String> = profile.keys().cloned().collect();
                    let event = UserEvent::change(COMMAND, token, fields, metadata.as_ref());
                    record_event(tx, &keys, actor, event).await?;
                    Ok::<_, VaultError>(profile)
                })
            })
            .await?;
        self.record_in_main(caller, COMMAND, &[(tenant, token)], event_metadata.as_ref())
            .await?;
        Ok(TenantProfile {
            tenant,
            tenantname,
            token,
            profile,
        })
    }

    /// Every tenant's keys, before anything is read or changed in any of them: a tenant whose keys
    /// are unavailable (its KMS key refuses) fails the whole command up front, instead of leaving
    /// it done in some tenants and not in others.
    async fn keys_of_all(
        &self,
        tenants: Tenants,
    ) -> Result<Vec<(TenantId, String, Arc<TenantKeys>)>, VaultError> {
        let mut all = Vec::with_capacity(tenants.len());
        for (tenant, name) in tenants {
            let keys = self.keys(tenant).await?;
            all.push((tenant, name, keys));
        }
        Ok(all)
    }

    /// The blind index of `identity` under `keys`; none when the value names no one.
    fn lookup_in(
        &self,
        keys: &TenantKeys,
        mode: Mode,
        identity: &str,
    ) -> Result<Option<Lookup>, VaultError> {
        match self.settings.normalizer.lookup(&keys.index, mode, identity) {
            Ok(lookup) => Ok(Some(lookup)),
            Err(VaultError::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Refuses anyone but the main tenant's root, and a missing or stale unlock (checked in the
    /// main tenant's transaction); the tenants to work in.
    async fn open_cross_tenant(
        &self,
        caller: &Caller,
        unlock: &str,
    ) -> Result<Tenants, VaultError> {
        if !caller.is_root() || caller.tenant.id != TenantId::MAIN {
            return Err(VaultError::Forbidden(MAIN_ROOT_ONLY));
        }
        let token_id = caller.actor().token_id;
        let unlock = unlock.to_owned();
        self.db
            .in_tenant(TenantId::MAIN, move |tx| {
                Box::pin(async move { require_unlock(tx, &unlock, token_id).await })
            })
            .await?;
        Ok(self.db.tenant_names().await?)
    }

    /// The main tenant's event of a cross-tenant command: which users of which tenants it reached
    /// (sealed with the main tenant's audit key, with the request's metadata).
    async fn record_in_main(
        &self,
        caller: &Caller,
        command: Command,
        reached: &[(TenantId, Uuid)],
        metadata: Option<&Value>,
    ) -> Result<(), VaultError> {
        let keys = self.keys(TenantId::MAIN).await?;
        let id = audit_store::new_event_id();
        let row = id.to_string();
        let reached: Vec<Value> = reached
            .iter()
            .map(|(tenant, token)| json!({"tenantid": tenant.0, "token": token.to_string()}))
            .collect();
        let mut details = json!({ "reached": reached });
        if let (Some(map), Some(metadata)) = (details.as_object_mut(), metadata) {
            map.insert("request_metadata".to_owned(), metadata.clone());
        }
        let event = AuditEvent {
            details: Some(seal_json(
                &keys.audit,
                &audit_label(TenantId::MAIN, &row),
                &details,
            )?),
            ..AuditEvent::about(
                Performer::Token(caller.actor()),
                command.audit_action(),
                "tenants".to_owned(),
            )
        };
        self.db
            .in_tenant(TenantId::MAIN, move |tx| {
                Box::pin(async move {
                    audit_store::record_with_id(tx, id, &event).await?;
                    Ok::<_, VaultError>(())
                })
            })
            .await
    }
}

/// The tenant a request names, of those there are. A `tenantid` and a `tenantname` that name two
/// tenants (or one that does not exist) are refused: a removal must not pick one of two.
fn named(tenants: Tenants, wanted: &TenantRef) -> Result<(TenantId, String), VaultError> {
    let found = tenants.into_iter().find(|(id, name)| match wanted {
        TenantRef {
            id: Some(wanted), ..
        } => id.0 == *wanted,
        TenantRef {
            name: Some(wanted), ..
        } => name == wanted,
        TenantRef { .. } => false,
    });
    match (found, &wanted.name) {
        (Some((_, name)), Some(wanted)) if name != *wanted => Err(VaultError::BadRequest(
            "tenantid and tenantname name different tenants".into(),
        )),
        (Some(found), _) => Ok(found),
        (None, _) => Err(VaultError::TenantNotFound),
    }
}

/// The live user `lookup` names in the transaction's tenant, if any.
async fn live_user(tx: &TenantTx<'_>, lookup: Lookup) -> Result<Option<StoredUser>, VaultError> {
    match resolve(tx, lookup).await {
        Ok(user) => Ok(Some(user)),
        Err(VaultError::NotFound) => Ok(None),
        Err(err) => Err(err),
    }
}

fn tokens_of(found: &[TenantProfile]) -> Vec<(TenantId, Uuid)> {
    found.iter().map(|p| (p.tenant, p.token)).collect()
}
