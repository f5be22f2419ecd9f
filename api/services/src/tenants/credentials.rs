//! The lifecycle of a tenant's access tokens: list (never their values), revoke one, rotate the
//! admin token. Over the API root may act in any tenant, a tenant admin in its own; from the
//! command line, the operator. Each is audited in the tenant's trail. Revocation is immediate on
//! every server: no server caches tokens.

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::control::{self, TokenInfo};
use bunker_db::TenantId;
use uuid::Uuid;

use bunker_tenancy::token::IssuedToken;
use bunker_tenancy::{Caller, TenancyError};

use super::Tenants;
use crate::access::Command;

impl Tenants {
    /// The access tokens of the caller's tenant (root: of the tenant it names).
    pub async fn list_tokens(&self, caller: &Caller) -> Result<Vec<TokenInfo>, TenancyError> {
        caller.require_admin()?;
        self.list_tokens_of(caller.tenant.id, Performer::Token(caller.actor()))
            .await
    }

    /// Revokes one access token of the caller's tenant, at once.
    pub async fn revoke_token(&self, caller: &Caller, id: Uuid) -> Result<(), TenancyError> {
        caller.require_admin()?;
        self.revoke_token_of(caller.tenant.id, id, Performer::Token(caller.actor()))
            .await
    }

    /// A new admin token for the caller's tenant (shown once); every earlier one is revoked.
    pub async fn rotate_admin_token(&self, caller: &Caller) -> Result<IssuedToken, TenancyError> {
        caller.require_admin()?;
        self.rotate_admin_token_of(caller.tenant.id, Performer::Token(caller.actor()))
            .await
    }

    /// The access tokens of `tenant`, listed by `by`.
    pub async fn list_tokens_of(
        &self,
        tenant: TenantId,
        by: Performer,
    ) -> Result<Vec<TokenInfo>, TenancyError> {
        self.db
            .in_tenant(tenant, |tx| {
                Box::pin(async move {
                    let tokens = control::list_access_tokens(tx).await?;
                    let event = AuditEvent::about(
                        by,
                        Command::TenantListTokens.audit_action(),
                        "tokens".into(),
                    );
                    audit::record(tx, &event).await?;
                    Ok::<_, TenancyError>(tokens)
                })
            })
            .await
    }

    /// Revokes the access token `id` of `tenant`, by `by`.
    pub async fn revoke_token_of(
        &self,
        tenant: TenantId,
        id: Uuid,
        by: Performer,
    ) -> Result<(), TenancyError> {
        self.db
            .in_tenant(tenant, |tx| {
                Box::pin(async move {
                    if !control::revoke_access_token(tx, id).await? {
                        return Err(TenancyError::TokenNotFound);
                    }
                    let event = AuditEvent::about(
                        by,
                        Command::TenantRevokeToken.audit_action(),
                        format!("token:{id}"),
                    );
                    audit::record(tx, &event).await?;
                    Ok(())
                })
            })
            .await
    }

    /// A new admin token for `tenant`, by `by`; every earlier one is revoked. Not for the main
    /// tenant, whose administrator is the root token (`bunker token rotate-root`): an admin token
    /// there would be a second credential nobody asked for.
    pub async fn rotate_admin_token_of(
        &self,
        tenant: TenantId,
        by: Performer,
    ) -> Result<IssuedToken, TenancyError> {
        if tenant == TenantId::MAIN {
            return Err(TenancyError::InvalidRequest(
                "The default tenant's administrator is the root token: rotate it with `bunker token rotate-root`",
            ));
        }
        let token = IssuedToken::generate();
        let (token_id, hash) = (token.id, token.hash());
        self.db
            .in_tenant(tenant, |tx| {
                Box::pin(async move {
                    control::revoke_admin_tokens(tx).await?;
                    control::insert_admin_token(tx, token_id, hash.as_bytes(), tenant).await?;
                    let target = format!("token:{token_id}");
                    let event =
                        AuditEvent::about(by, Command::TenantRotateToken.audit_action(), target);
                    audit::record(tx, &event).await?;
                    Ok::<_, TenancyError>(())
                })
            })
            .await?;
        Ok(token)
    }

    /// The id of the tenant named `name`.
    pub async fn tenant_named(&self, name: &str) -> Result<TenantId, TenancyError> {
        self.db
            .tenant_by_name(name)
            .await?
            .ok_or(TenancyError::TenantNotFound)
    }
}
