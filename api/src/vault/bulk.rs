//! Bulk commands and their gate: BulkListUnlock makes an `unlockuuid` that lives for a minute and
//! serves only the tenant and the access token that asked for it; every bulk command checks it in
//! its own transaction. Every record a bulk command reads or deletes is audited, one event each.

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::bulk as store;
use bunker_db::tokens as token_store;
use bunker_db::users as user_store;
use bunker_db::TenantTx;
use bunker_tenancy::Caller;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::groups::{find_group, GroupRef};
use super::tokens::{find_many, open_token, token_event, TokenValue};
use super::users::open_current;
use super::{UserEvent, Vault, VaultError};

const NOT_VALID: &str = "The unlockuuid value was not found or is not valid";

/// A member of a group as listed.
#[derive(Clone, Debug)]
pub struct GroupMember {
    pub token: Uuid,
    pub profile: Map<String, Value>,
    pub rolename: Option<String>,
}

/// Refuses a missing, malformed, expired or foreign unlock.
async fn require_unlock(tx: &TenantTx<'_>, unlock: &str, token_id: Uuid) -> Result<(), VaultError> {
    let id = Uuid::try_parse(unlock.trim()).map_err(|_| VaultError::Forbidden(NOT_VALID))?;
    if store::unlock_is_valid(tx, id, token_id).await? {
        Ok(())
    } else {
        Err(VaultError::Forbidden(NOT_VALID))
    }
}

impl Vault {
    /// A fresh `unlockuuid` for the caller's token in the caller's tenant.
    pub async fn bulk_unlock(&self, caller: &Caller) -> Result<Uuid, VaultError> {
        let actor = caller.actor();
        let seconds = self.settings.unlock_seconds;
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let id = Uuid::new_v4();
                    store::insert_unlock(tx, id, actor.token_id, seconds).await?;
                    let event = AuditEvent::about(
                        Performer::Token(actor),
                        "BulkListUnlock",
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
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant);
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
                            "BulkListTokens",
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
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant);
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
                            "BulkDeleteTokens",
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
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<(Uuid, String, String)>, i64), VaultError> {
        let actor = caller.actor();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    require_unlock(tx, &unlock, actor.token_id).await?;
                    Ok(store::audit_events(tx, offset, limit).await?)
                })
            })
            .await
    }

    /// One page of a group's members with their profiles and roles.
    pub async fn bulk_list_group_users(
        &self,
        caller: &Caller,
        unlock: String,
        group: GroupRef,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<GroupMember>, i64), VaultError> {
        let tenant = caller.tenant.id;
        let keys = self.keys(tenant);
        let actor = caller.actor();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    require_unlock(tx, &unlock, actor.token_id).await?;
                    let stored = find_group(tx, &keys, &group).await?;
                    let (members, total) =
                        store::group_members(tx, stored.id, offset, limit).await?;
                    let mut rows = Vec::with_capacity(members.len());
                    let mut events = Vec::with_capacity(members.len());
                    for (token, rolename) in members {
                        let Some(user) = user_store::get_user(tx, token).await? else {
                            continue;
                        };
                        let profile = open_current(&keys, tx.tenant(), &user)?;
                        let event = UserEvent::about("BulkListGroupUsers", token, None);
                        let id = Uuid::new_v4();
                        events.push((
                            id,
                            event.seal(&keys, tx.tenant(), id, Performer::Token(actor))?,
                        ));
                        rows.push(GroupMember {
                            token,
                            profile,
                            rolename,
                        });
                    }
                    audit::record_many(tx, &events).await?;
                    Ok((rows, total))
                })
            })
            .await
    }
}
