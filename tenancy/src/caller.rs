use bunker_db::audit::Actor;
use bunker_db::control::{TenantRecord, TokenKind};
use uuid::Uuid;

use crate::token::TokenHash;
use crate::{Tenancy, TenancyError, TenantName};

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The installation's root token: every tenant, every command.
    Root,
    /// A tenant admin token, valid only in its own tenant.
    TenantAdmin,
    /// A role token (XTokenCreateForRole): what the role's policies allow, in its own tenant.
    Role { id: i64, name: String },
    /// A user token (XTokenCreateForUser): the user's own record, and what the policies of the roles
    /// the user holds in groups allow, in its own tenant.
    User { token: Uuid },
}

/// An authenticated request: the tenant it runs in and who is calling.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: TenantRecord,
    pub principal: Principal,
    /// The id of the access token used, recorded in audit events.
    pub token_id: Uuid,
}

impl Caller {
    pub fn is_root(&self) -> bool {
        self.principal == Principal::Root
    }

    /// Root or a tenant admin: every command of the tenant, no policy applies.
    pub fn is_admin(&self) -> bool {
        matches!(self.principal, Principal::Root | Principal::TenantAdmin)
    }

    /// Refuses role and user tokens.
    pub fn require_admin(&self) -> Result<(), TenancyError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(TenancyError::Forbidden(
                "role and user tokens may not do this",
            ))
        }
    }

    /// Refuses anyone but root.
    pub fn require_root(&self, why: &'static str) -> Result<(), TenancyError> {
        if self.is_root() {
            Ok(())
        } else {
            Err(TenancyError::Forbidden(why))
        }
    }

    /// The caller as recorded in audit events.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: match self.principal {
                Principal::Root => TokenKind::Root,
                Principal::TenantAdmin => TokenKind::TenantAdmin,
                Principal::Role { .. } => TokenKind::Role,
                Principal::User { .. } => TokenKind::User,
            },
            token_id: self.token_id,
        }
    }
}

impl Tenancy {
    /// The tenant a `/v1` request runs in, which names none of its own: the one `X-Bunker-Tenant`
    /// or the Host's subdomain names, else the token's own (root's: the default tenant). Only a
    /// name: [`Tenancy::authenticate`] then decides as for any request.
    pub async fn tenant_for_v1(
        &self,
        token: Option<&str>,
        tenant_header: Option<&str>,
        host: Option<&str>,
    ) -> Result<TenantName, TenancyError> {
        if tenant_header.is_some() || host.is_some_and(|h| self.resolver.names_tenant(h)) {
            return self.resolver.resolve(tenant_header, host);
        }
        let Some(token) = token else {
            return Ok(TenantName::main());
        };
        let hash = TokenHash::of(token);
        Ok(match self.db.token_tenant(hash.as_bytes()).await? {
            Some(name) => TenantName::parse(&name)?,
            None => TenantName::main(),
        })
    }

    /// Authenticates a request from its `X-Bunker-Token`, `X-Bunker-Tenant` and `Host` headers.
    ///
    /// An invalid tenant name is refused first; then a missing, unknown or expired token; a tenant's
    /// token (admin, role or user) used on another tenant is refused whether or not that tenant
    /// exists (so a token cannot probe for tenant names); root asking for a tenant that does not
    /// exist gets [`TenancyError::TenantNotFound`]. A sliding token's expiry is pushed forward (in
    /// the request's transaction: a refused or failed request does not renew it).
    ///
    /// Within a request's [`bunker_db::session::scope`], the transaction the lookup opened is kept
    /// for the request's work in the tenant (see [`bunker_db::Database::authenticate`]).
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        tenant_header: Option<&str>,
        host: Option<&str>,
    ) -> Result<Caller, TenancyError> {
        let tenant_name = self.resolver.resolve(tenant_header, host)?;
        let token = token.ok_or(TenancyError::MissingToken)?;
        let hash = TokenHash::of(token);
        let credential = self
            .db
            .authenticate(hash.as_bytes(), tenant_name.as_str())
            .await?
            .filter(|c| hash.matches(&c.token_hash) && !c.expired)
            .ok_or(TenancyError::InvalidToken)?;
        let principal = match (credential.kind, &credential.role, credential.user_token) {
            (TokenKind::Root, _, _) => Principal::Root,
            (TokenKind::TenantAdmin, _, _) => Principal::TenantAdmin,
            (TokenKind::Role, Some((id, name)), _) => Principal::Role {
                id: *id,
                name: name.clone(),
            },
            (TokenKind::User, _, Some(token)) => Principal::User { token },
            _ => return Err(TenancyError::InvalidToken),
        };
        let tenant = match (&principal, credential.requested) {
            (Principal::Root, Some(t)) => t,
            (Principal::Root, None) => return Err(TenancyError::TenantNotFound),
            (_, Some(t)) if Some(t.id) == credential.token_tenant => t,
            (_, _) => {
                return Err(TenancyError::Forbidden(
                    "this token is not valid for this tenant",
                ))
            }
        };
        Ok(Caller {
            tenant,
            principal,
            token_id: credential.token_id,
        })
    }
}
