//! The tenant commands and the lifecycle of tenants' access tokens ([`credentials`]): the only way
//! to the control-plane tables. Each runs in one transaction that also writes its audit event.

mod credentials;
pub mod quota;
pub mod uiconf;

use bunker_db::audit::{self, Actor, AuditEvent, Performer};
use bunker_db::control::{self, TenantRecord};
use bunker_db::tenant_keys::{self, NewTenantKey, Wrapping};
use bunker_db::{Database, DbError, TenantId};
use bunker_keys::TenantKey;

use crate::access::Command;
use crate::core::SharedKeyring;
use bunker_tenancy::token::IssuedToken;
use bunker_tenancy::{Caller, TenancyError, TenantName};

/// The tenant service.
#[derive(Clone)]
pub struct Tenants {
    db: Database,
    /// Wraps each new tenant's key (a service without it cannot create tenants).
    keyring: Option<SharedKeyring>,
}

impl Tenants {
    /// The tenant service over `db`.
    pub fn new(db: Database) -> Self {
        Tenants { db, keyring: None }
    }

    /// The service able to create tenants: each gets its key, wrapped by the newest master key.
    pub fn with_keyring(mut self, keyring: SharedKeyring) -> Self {
        self.keyring = Some(keyring);
        self
    }
}

/// The longest `tenantorg` accepted.
pub const MAX_ORG_LEN: usize = 255;

/// A tenant to create.
#[derive(Clone, Debug)]
pub struct NewTenant {
    pub name: TenantName,
    pub org: String,
}

/// Changes to a tenant; `None` keeps the field as it is.
#[derive(Clone, Debug, Default)]
pub struct TenantChanges {
    pub name: Option<TenantName>,
    pub org: Option<String>,
    /// What a user's own token may do to its own record directly (all off unless set).
    pub selfservice: control::SelfServiceChanges,
}

/// One page of a list and the number of items in all.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub total: i64,
}

impl Tenants {
    /// Creates a tenant and its admin token (root only). Recorded in the main tenant's audit trail.
    pub async fn create_tenant(
        &self,
        caller: &Caller,
        new: NewTenant,
    ) -> Result<(TenantRecord, IssuedToken), TenancyError> {
        caller.require_root("only the root token can create tenants")?;
        check_org(&new.org)?;
        let keyring = self.keyring.as_ref().ok_or(TenancyError::KeyFailure)?.get();
        let token = IssuedToken::generate();
        let hash = token.hash();
        let token_id = token.id;
        let actor = caller.actor();
        let tenant = self
            .db
            .in_tenant(TenantId::MAIN, |tx| {
                Box::pin(async move {
                    let tenant = control::insert_tenant(tx, new.name.as_str(), &new.org)
                        .await
                        .map_err(duplicate_name)?;
                    control::insert_admin_token(tx, token_id, hash.as_bytes(), tenant.id).await?;
                    // Its own key, in the same transaction: nothing of the tenant is ever sealed
                    // with keys derived from the master key.
                    let key = TenantKey::generate();
                    let master = keyring.current();
                    let first = NewTenantKey {
                        version: key.version(),
                        wrapped: key
                            .wrap(master, tenant.id.0)
                            .map_err(|_| TenancyError::KeyFailure)?,
                        wrapping: Wrapping::Master(master.version()),
                        active_in_seconds: 0,
                        opens_master_derived: false,
                    };
                    tenant_keys::insert(tx, tenant.id, &first).await?;
                    audit::record(
                        tx,
                        &event(actor, Command::TenantCreate.audit_action(), tenant.id),
                    )
                    .await?;
                    Ok::<_, TenancyError>(tenant)
                })
            })
            .await?;
        Ok((tenant, token))
    }

    /// A tenant by id: root may read any, a tenant admin only its own.
    pub async fn get_tenant(
        &self,
        caller: &Caller,
        id: TenantId,
    ) -> Result<TenantRecord, TenancyError> {
        require_own_tenant(caller, id)?;
        self.db
            .in_tenant(caller.tenant.id, |tx| {
                Box::pin(async move {
                    control::get_tenant(tx, id)
                        .await?
                        .ok_or(TenancyError::TenantNotFound)
                })
            })
            .await
    }

    /// Renames a tenant or changes its organisation: root any tenant, a tenant admin its own. The
    /// main tenant cannot be renamed: requests that name no tenant resolve to it by name.
    pub async fn update_tenant(
        &self,
        caller: &Caller,
        id: TenantId,
        changes: TenantChanges,
    ) -> Result<TenantRecord, TenancyError> {
        require_own_tenant(caller, id)?;
        if let Some(org) = &changes.org {
            check_org(org)?;
        }
        let renames_main = id == TenantId::MAIN
            && changes
                .name
                .as_ref()
                .is_some_and(|n| n.as_str() != TenantName::DEFAULT);
        if renames_main {
            return Err(TenancyError::InvalidRequest(
                "The default tenant cannot be renamed",
            ));
        }
        let actor = caller.actor();
        self.db
            .in_tenant(caller.tenant.id, |tx| {
                Box::pin(async move {
                    let name = changes.name.as_ref().map(TenantName::as_str);
                    let tenant = control::update_tenant(
                        tx,
                        id,
                        name,
                        changes.org.as_deref(),
                        changes.selfservice,
                    )
                    .await
                    .map_err(duplicate_name)?
                    .ok_or(TenancyError::TenantNotFound)?;
                    audit::record(tx, &event(actor, Command::TenantUpdate.audit_action(), id))
                        .await?;
                    Ok(tenant)
                })
            })
            .await
    }

    /// Deletes a tenant with its tokens and all of its rows, in one transaction (root only). The main
    /// tenant cannot be deleted. Recorded in the main tenant's audit trail.
    pub async fn delete_tenant(&self, caller: &Caller, id: TenantId) -> Result<(), TenancyError> {
        caller.require_root("only the root token can delete tenants")?;
        if id == TenantId::MAIN {
            return Err(TenancyError::InvalidRequest(
                "The default tenant cannot be deleted",
            ));
        }
        let actor = caller.actor();
        self.db
            .in_tenant(TenantId::MAIN, |tx| {
                Box::pin(async move {
                    if !control::delete_tenant(tx, id).await? {
                        return Err(TenancyError::TenantNotFound);
                    }
                    audit::record(tx, &event(actor, Command::TenantDelete.audit_action(), id))
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// One page of all tenants (root only).
    pub async fn list_tenants(
        &self,
        caller: &Caller,
        offset: i64,
        limit: i64,
    ) -> Result<Page<TenantRecord>, TenancyError> {
        caller.require_root("only the root token can list tenants")?;
        self.db
            .in_tenant(TenantId::MAIN, |tx| {
                Box::pin(async move {
                    let (rows, total) = control::list_tenants(tx, offset, limit).await?;
                    Ok::<_, TenancyError>(Page { rows, total })
                })
            })
            .await
    }
}

fn require_own_tenant(caller: &Caller, id: TenantId) -> Result<(), TenancyError> {
    caller.require_admin()?;
    if caller.is_root() || caller.tenant.id == id {
        Ok(())
    } else {
        Err(TenancyError::Forbidden(
            "a tenant token may only manage its own tenant",
        ))
    }
}

fn check_org(org: &str) -> Result<(), TenancyError> {
    if org.trim().is_empty() || org.chars().count() > MAX_ORG_LEN {
        return Err(TenancyError::InvalidRequest(
            "tenantorg must be 1 to 255 characters",
        ));
    }
    Ok(())
}

fn duplicate_name(err: DbError) -> TenancyError {
    match err.violated_constraint() {
        Some("tenants_name_key") => TenancyError::DuplicateTenantName,
        _ => TenancyError::Database(err),
    }
}

fn event(actor: Actor, action: &'static str, tenant: TenantId) -> AuditEvent {
    AuditEvent::about(Performer::Token(actor), action, format!("tenant:{tenant}"))
}
