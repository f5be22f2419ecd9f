//! Bulk commands and their gate: BulkListUnlock makes an `unlockuuid` that lives for a minute and
//! serves only the tenant and the access token that asked for it; every bulk command checks it in
//! its own transaction. Every record a bulk command reads or deletes is audited, one event each.

pub mod search;

use std::collections::HashMap;

use bunker_db::audit::{self, Actor, AuditEvent, Performer};
use bunker_db::bulk as store;
use bunker_db::tokens as token_store;
use bunker_db::users::{self as user_store, StoredUser};
use bunker_db::TenantTx;
use bunker_keys::TenantKeys;
use bunker_tenancy::Caller;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::access::engine::Visible;
use crate::core::gate::Gate;

use crate::access::Command;
use crate::core::identity::{Lookup, Mode};
use crate::core::limits::check_at_most;
use crate::core::{is_live, resolve};
use crate::core::{read_events, Vault, VaultError};
use crate::groups::{find_group, GroupRef};
use crate::tokens::{find_many, open_token, token_event, TokenValue};
use crate::users::{open_current, view_of, UserView};

const NOT_VALID: &str = "The unlockuuid value was not found or is not valid";

/// A member of a group as listed.
#[derive(Clone, Debug)]
pub struct GroupMember {
    pub token: Uuid,
    pub profile: Map<String, Value>,
    pub rolename: Option<String>,
}

/// Refuses a missing, malformed, expired or foreign unlock.
pub(crate) async fn require_unlock(
    tx: &TenantTx<'_>,
    unlock: &str,
    token_id: Uuid,
) -> Result<(), VaultError> {
    let id = Uuid::try_parse(unlock.trim()).map_err(|_| VaultError::Forbidden(NOT_VALID))?;
    if store::unlock_is_valid(tx, id, token_id).await? {
        Ok(())
    } else {
        Err(VaultError::Forbidden(NOT_VALID))
    }
}

impl Vault {
    /// A fresh `unlockuuid` for the caller's token in the caller's tenant.
    pub async fn bulk_unlock(
        &self,
        caller: &Caller,
        metadata: Option<Value>,
    ) -> Result<Uuid, VaultError> {
        let actor = caller.actor();
        let principal = caller.principal.clone();
        let seconds = self.settings.unlock_seconds;
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    Gate::load(tx, &principal)
                        .await?
                        .require_unlock(tx, metadata.as_ref())
                        .await?;
                    let id = Uuid::new_v4();
                    store::insert_unlock(tx, id, actor.token_id, seconds).await?;
                    let event = AuditEvent::about(
                        Performer::Token(actor),
                        Command::BulkListUnlock.audit_action(),
                        "bulk".to_owned(),
                    );
                    audit::record(tx, &event).await?;
                    Ok(id)
                })
            })
            .await
    }

    /// The values behind tokens (by either handle); unknown or expired ones are left out.
    pub async fn bulk_list_tokens(
        &self,
        caller: &Caller,
        unlock: String,
        handles: Vec<String>,
    ) -> Result<Vec<TokenValue>, VaultError> {
        check_at_most(handles.len(), "tokens")?;
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let actor = caller.actor();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    require_unlock(tx, &unlock, actor.token_id).await?;
                    let mut found = Vec::new();
                    let mut events = Vec::new();
                    for token in find_many(tx, &handles).await? {
                        let record = open_token(&keys, tx.tenant(), &token)?;
                        events.push(token_event(
                            &keys,
                            tx.tenant(),
                            Performer::Token(actor),
                            Command::BulkListTokens,
                            &token.uuid,
                            &token.token_type,
                            None,
                        )?);
                        found.push(TokenValue {
                            uuid: token.uuid,
                            base: token.base,
                            token_type: token.token_type,
                            record,
                            expirationtime: token.expires_at,
                        });
                    }
                    audit::record_many(tx, &events).await?;
                    Ok(found)
                })
            })
            .await
    }

    /// Deletes tokens (by either handle); returns how many existed.
    pub async fn bulk_delete_tokens(
        &self,
        caller: &Caller,
        unlock: String,
        handles: Vec<String>,
    ) -> Result<u64, VaultError> {
        check_at_most(handles.len(), "tokens")?;
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let actor = caller.actor();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    require_unlock(tx, &unlock, actor.token_id).await?;
                    let mut uuids = Vec::new();
                    let mut events = Vec::new();
                    for token in find_many(tx, &handles).await? {
                        events.push(token_event(
                            &keys,
                            tx.tenant(),
                            Performer::Token(actor),
                            Command::BulkDeleteTokens,
                            &token.uuid,
                            &token.token_type,
                            None,
                        )?);
                        uuids.push(token.uuid);
                    }
                    uuids.sort();
                    uuids.dedup();
                    let deleted = token_store::delete(tx, &uuids).await?;
                    audit::record_many(tx, &events).await?;
                    Ok(deleted)
                })
            })
            .await
    }

    /// One page of the tenant's audit trail, newest first.
    pub async fn bulk_list_audit_events(
        &self,
        caller: &Caller,
        unlock: String,
        filter: store::AuditFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<(Uuid, String, String)>, i64), VaultError> {
        let actor = caller.actor();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    require_unlock(tx, &unlock, actor.token_id).await?;
                    Ok(store::audit_events(tx, &filter, offset, limit).await?)
                })
            })
            .await
    }

    /// One page of a group's members with their profiles and roles, as far as the caller may see
    /// them: members a role or user token may not see are left out (and not counted).
    pub async fn bulk_list_group_users(
        &self,
        caller: &Caller,
        unlock: String,
        group: GroupRef,
        offset: i64,
        limit: i64,
        metadata: Option<Value>,
    ) -> Result<(Vec<GroupMember>, i64), VaultError> {
        const COMMAND: Command = Command::BulkListGroupUsers;
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let actor = caller.actor();
        let principal = caller.principal.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    require_unlock(tx, &unlock, actor.token_id).await?;
                    let gate = Gate::load(tx, &principal).await?;
                    let stored = match find_group(tx, &keys, &group).await {
                        Ok(stored) => stored,
                        // To a role or user token, a group that does not exist is one in which
                        // it may see no one: the same empty page.
                        Err(VaultError::GroupNotFound) if !gate.is_admin() => {
                            return Ok((Vec::new(), 0))
                        }
                        Err(err) => return Err(err),
                    };
                    let members = store::all_group_members(tx, stored.id).await?;
                    let tokens: Vec<Uuid> = members.iter().map(|(t, _)| *t).collect();
                    let mut visible = gate
                        .visible(tx, COMMAND, &tokens, metadata.as_ref())
                        .await?;
                    let mut roles: HashMap<Uuid, Option<String>> = HashMap::new();
                    let mut seen = Vec::new();
                    for (token, role) in members {
                        if let Some(v) = visible.remove(&token) {
                            // The role shows only where the group section is granted.
                            roles.insert(token, role.filter(|_| v.groups()));
                            seen.push((token, v));
                        }
                    }
                    let total = seen.len() as i64;
                    let page = in_order(tx, page_of(seen, offset, limit)).await?;
                    let listing = Listing {
                        keys: &keys,
                        actor,
                        command: COMMAND,
                        metadata: metadata.as_ref(),
                    };
                    let rows = listing
                        .answer(tx, page)
                        .await?
                        .into_iter()
                        .map(|user| GroupMember {
                            rolename: roles.remove(&user.token).flatten(),
                            token: user.token,
                            profile: user.profile,
                        })
                        .collect();
                    Ok((rows, total))
                })
            })
            .await
    }

    /// Users named by indexed values (not by token), as far as the caller may see them; values
    /// that name no user, or one the caller may not see, are left out. Needs `BUNKER_LIST_USERS`.
    pub async fn bulk_list_users(
        &self,
        caller: &Caller,
        unlock: String,
        selectors: Vec<(Mode, String)>,
        metadata: Option<Value>,
    ) -> Result<Vec<UserView>, VaultError> {
        const COMMAND: Command = Command::BulkListUsers;
        if !self.settings.list_users {
            return Err(VaultError::Forbidden("BulkListUsers is disabled"));
        }
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let mut lookups = Vec::with_capacity(selectors.len());
        for (position, (mode, identity)) in selectors.iter().enumerate() {
            if *mode == Mode::Token {
                return Err(VaultError::BadRequest(format!(
                    "users[{position}]: mode must be email, phone, login or custom"
                )));
            }
            match self
                .settings
                .normalizer
                .lookup(&keys.index, *mode, identity)
            {
                Ok(lookup) => lookups.push(lookup),
                // An empty value names nobody.
                Err(VaultError::NotFound) => {}
                Err(VaultError::BadRequest(why)) => {
                    return Err(VaultError::BadRequest(format!("users[{position}]: {why}")))
                }
                Err(err) => return Err(err),
            }
        }
        let actor = caller.actor();
        let principal = caller.principal.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    require_unlock(tx, &unlock, actor.token_id).await?;
                    let gate = Gate::load(tx, &principal).await?;
                    // Each user with the fields that found them.
                    let mut found: Vec<(StoredUser, Vec<&'static str>)> = Vec::new();
                    for lookup in lookups {
                        let Lookup::Index(field, _) = lookup else {
                            continue;
                        };
                        match resolve(tx, lookup).await {
                            Ok(user) => match found.iter_mut().find(|(u, _)| u.token == user.token)
                            {
                                Some((_, fields)) => fields.push(field),
                                None => found.push((user, vec![field])),
                            },
                            Err(VaultError::NotFound) => {}
                            Err(err) => return Err(err),
                        }
                    }
                    let tokens: Vec<Uuid> = found.iter().map(|(u, _)| u.token).collect();
                    let mut visible = gate
                        .visible(tx, COMMAND, &tokens, metadata.as_ref())
                        .await?;
                    // A hit through a value the caller may not see counts as a miss: a user is
                    // listed only if found through a value it may see, so that no hidden value
                    // decides whether anyone is listed.
                    let found = found
                        .into_iter()
                        .filter_map(|(u, fields)| {
                            let seen = visible.remove(&u.token)?;
                            fields.iter().any(|f| seen.field(f)).then_some((u, seen))
                        })
                        .collect();
                    let listing = Listing {
                        keys: &keys,
                        actor,
                        command: COMMAND,
                        metadata: metadata.as_ref(),
                    };
                    listing.answer(tx, found).await
                })
            })
            .await
    }

    /// One page of all of the tenant's live users (oldest first), as far as the caller may see
    /// them. Needs `BUNKER_LIST_USERS`.
    pub async fn bulk_list_all_users(
        &self,
        caller: &Caller,
        unlock: String,
        offset: i64,
        limit: i64,
        metadata: Option<Value>,
    ) -> Result<(Vec<UserView>, i64), VaultError> {
        const COMMAND: Command = Command::BulkListAllUsers;
        if !self.settings.list_users {
            return Err(VaultError::Forbidden("BulkListAllUsers is disabled"));
        }
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant).await?;
        let actor = caller.actor();
        let principal = caller.principal.clone();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    require_unlock(tx, &unlock, actor.token_id).await?;
                    let gate = Gate::load(tx, &principal).await?;
                    let (page, total) = match &gate {
                        // Admins see everyone: page in the database.
                        Gate::Admin => {
                            let (users, total) = user_store::live_page(tx, offset, limit).await?;
                            let all = users.into_iter().map(|u| (u, Visible::all())).collect();
                            (all, total)
                        }
                        // Others see a subset: decide for every user (memberships only, nothing
                        // opened), then page what is left.
                        Gate::Policies(_) => {
                            let tokens = user_store::live_tokens(tx).await?;
                            let mut visible = gate
                                .visible(tx, COMMAND, &tokens, metadata.as_ref())
                                .await?;
                            let seen: Vec<(Uuid, Visible)> = tokens
                                .into_iter()
                                .filter_map(|t| Some((t, visible.remove(&t)?)))
                                .collect();
                            let total = seen.len() as i64;
                            (in_order(tx, page_of(seen, offset, limit)).await?, total)
                        }
                    };
                    let listing = Listing {
                        keys: &keys,
                        actor,
                        command: COMMAND,
                        metadata: metadata.as_ref(),
                    };
                    Ok((listing.answer(tx, page).await?, total))
                })
            })
            .await
    }
}

/// A listing of users by one command: what the caller may see of each, each audited.
struct Listing<'a> {
    keys: &'a TenantKeys,
    actor: Actor,
    command: Command,
    metadata: Option<&'a Value>,
}

impl Listing<'_> {
    /// The live ones of `users` (in order), each showing what its visibility allows; one read event
    /// for each user answered.
    async fn answer(
        &self,
        tx: &TenantTx<'_>,
        users: Vec<(StoredUser, Visible)>,
    ) -> Result<Vec<UserView>, VaultError> {
        let mut views = Vec::with_capacity(users.len());
        for (user, seen) in users.iter().filter(|(u, _)| is_live(u)) {
            let profile = open_current(self.keys, tx.tenant(), user)?;
            views.push(view_of(user, &profile, seen));
        }
        let listed: Vec<Uuid> = views.iter().map(|v| v.token).collect();
        let events = read_events(
            self.keys,
            tx.tenant(),
            self.actor,
            self.command,
            &listed,
            self.metadata,
        )?;
        audit::record_many(tx, &events).await?;
        Ok(views)
    }
}

/// The stored users of `page`, in its order, each with its visibility.
async fn in_order(
    tx: &TenantTx<'_>,
    page: Vec<(Uuid, Visible)>,
) -> Result<Vec<(StoredUser, Visible)>, VaultError> {
    let tokens: Vec<Uuid> = page.iter().map(|(t, _)| *t).collect();
    let mut users: HashMap<Uuid, StoredUser> = user_store::get_users(tx, &tokens)
        .await?
        .into_iter()
        .map(|u| (u.token, u))
        .collect();
    Ok(page
        .into_iter()
        .filter_map(|(t, v)| Some((users.remove(&t)?, v)))
        .collect())
}

/// `limit` items from `offset`.
fn page_of<T>(items: Vec<T>, offset: i64, limit: i64) -> Vec<T> {
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(0);
    items.into_iter().skip(skip).take(take).collect()
}
