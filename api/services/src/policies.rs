//! Policies and their links to roles: installation-wide, written by the root token only, validated
//! on write, audited in the main tenant.

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::policies::{self as store, PolicyRef, StoredPolicy};
use bunker_db::{DbError, TenantId, TenantTx};
use bunker_tenancy::Caller;
use serde_json::Value;

use crate::access::{policy, Command};
use crate::core::{Vault, VaultError};
use crate::groups::check_description;
use crate::groups::{find_role, RoleSelector};

/// A policy named by id or name.
#[derive(Clone, Debug)]
pub enum PolicySelector {
    Id(i64),
    Name(String),
}

async fn find(tx: &TenantTx<'_>, selector: &PolicySelector) -> Result<StoredPolicy, VaultError> {
    let reference = match selector {
        PolicySelector::Id(id) => PolicyRef::Id(*id),
        PolicySelector::Name(name) => PolicyRef::Name(name),
    };
    store::find(tx, &reference)
        .await?
        .ok_or(VaultError::PolicyNotFound)
}

fn validated(document: Value) -> Result<Value, VaultError> {
    let parsed = policy::parse(document).map_err(|e| VaultError::BadRequest(e.to_string()))?;
    serde_json::to_value(parsed).map_err(|_| VaultError::BadRequest("Invalid policy".into()))
}

fn duplicate(err: DbError) -> VaultError {
    match err.violated_constraint() {
        Some("policies_name_key") => VaultError::DuplicatePolicy,
        _ => VaultError::Database(err),
    }
}

fn root_only(caller: &Caller) -> Result<Performer, VaultError> {
    if caller.is_root() {
        Ok(Performer::Token(caller.actor()))
    } else {
        Err(VaultError::Forbidden(
            "Only the main tenant admin can manage policies",
        ))
    }
}

impl Vault {
    /// Creates a policy; returns its id.
    pub async fn create_policy(
        &self,
        caller: &Caller,
        name: String,
        description: String,
        document: Value,
    ) -> Result<i64, VaultError> {
        let actor = root_only(caller)?;
        if name.trim().is_empty() || name.chars().count() > 128 {
            return Err(VaultError::BadRequest(
                "policyname must be 1 to 128 characters".into(),
            ));
        }
        check_description("policydesc", Some(&description))?;
        let document = validated(document)?;
        self.db
            .in_tenant(TenantId::MAIN, move |tx| {
                Box::pin(async move {
                    let id = store::insert(tx, &name, &description, &document)
                        .await
                        .map_err(duplicate)?;
                    audit::record(
                        tx,
                        &AuditEvent::about(
                            actor,
                            Command::PolicyCreate.audit_action(),
                            format!("policy:{id}"),
                        ),
                    )
                    .await?;
                    Ok(id)
                })
            })
            .await
    }

    /// A policy by id or name.
    pub async fn get_policy(
        &self,
        caller: &Caller,
        selector: PolicySelector,
    ) -> Result<StoredPolicy, VaultError> {
        root_only(caller)?;
        self.db
            .in_tenant(TenantId::MAIN, move |tx| {
                Box::pin(async move { find(tx, &selector).await })
            })
            .await
    }

    /// Every policy.
    pub async fn list_policies(&self, caller: &Caller) -> Result<Vec<StoredPolicy>, VaultError> {
        root_only(caller)?;
        self.db
            .in_tenant(TenantId::MAIN, move |tx| {
                Box::pin(async move { Ok(store::list(tx).await?) })
            })
            .await
    }

    /// Changes a policy's name, description or document.
    pub async fn update_policy(
        &self,
        caller: &Caller,
        selector: PolicySelector,
        name: Option<String>,
        description: Option<String>,
        document: Option<Value>,
    ) -> Result<(), VaultError> {
        let actor = root_only(caller)?;
        check_description("policydesc", description.as_deref())?;
        let document = document.map(validated).transpose()?;
        self.db
            .in_tenant(TenantId::MAIN, move |tx| {
                Box::pin(async move {
                    let found = find(tx, &selector).await?;
                    store::update(
                        tx,
                        found.id,
                        name.as_deref(),
                        description.as_deref(),
                        document.as_ref(),
                    )
                    .await
                    .map_err(duplicate)?;
                    audit::record(
                        tx,
                        &AuditEvent::about(
                            actor,
                            Command::PolicyUpdate.audit_action(),
                            format!("policy:{}", found.id),
                        ),
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Links a policy to a role.
    pub async fn link_policy(
        &self,
        caller: &Caller,
        role: RoleSelector,
        selector: PolicySelector,
    ) -> Result<(), VaultError> {
        let actor = root_only(caller)?;
        self.db
            .in_tenant(TenantId::MAIN, move |tx| {
                Box::pin(async move {
                    let role = find_role(tx, &role).await?;
                    let found = find(tx, &selector).await?;
                    store::link(tx, role.id, found.id).await?;
                    let target = format!("role:{}:policy:{}", role.id, found.id);
                    audit::record(
                        tx,
                        &AuditEvent::about(actor, Command::RoleLinkPolicy.audit_action(), target),
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }
}
