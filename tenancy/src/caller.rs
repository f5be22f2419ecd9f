use bunker_db::audit::Actor;
use bunker_db::control::{TenantRecord, TokenKind};
use uuid::Uuid;

use crate::token::TokenHash;
use crate::{Tenancy, TenancyError};

/// Who is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The installation's root token: every tenant, every command.
    Root,
    /// A tenant admin token, valid only in its own tenant.
    TenantAdmin,
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
            },
            token_id: self.token_id,
        }
    }
}

impl Tenancy {
    /// Authenticates a request from its `X-Bunker-Token`, `X-Bunker-Tenant` and `Host` headers.
    ///
    /// An invalid tenant name is refused first; then a missing or unknown token; a tenant admin token
    /// used on another tenant is refused whether or not that tenant exists (so a token cannot probe
    /// for tenant names); root asking for a tenant that does not exist gets
    /// [`TenancyError::TenantNotFound`].
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
            .find_credential(hash.as_bytes(), tenant_name.as_str())
            .await?
            .filter(|c| hash.matches(&c.token_hash))
            .ok_or(TenancyError::InvalidToken)?;
        let principal = match credential.kind {
            TokenKind::Root => Principal::Root,
            TokenKind::TenantAdmin => Principal::TenantAdmin,
        };
        let tenant = match (principal, credential.requested) {
            (Principal::TenantAdmin, Some(t)) if Some(t.id) == credential.token_tenant => t,
            (Principal::TenantAdmin, _) => {
                return Err(TenancyError::Forbidden(
                    "this token is not valid for this tenant",
                ))
            }
            (Principal::Root, Some(t)) => t,
            (Principal::Root, None) => return Err(TenancyError::TenantNotFound),
        };
        Ok(Caller {
            tenant,
            principal,
            token_id: credential.token_id,
        })
    }
}
