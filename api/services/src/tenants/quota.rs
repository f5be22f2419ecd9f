//! A tenant's own request quota: set by root only (a tenant admin cannot raise its own), read back
//! by TenantGet, enforced by the HTTP layer from the tenant row every request authenticates with.

use bunker_db::audit;
use bunker_db::control;
use bunker_db::TenantId;
use bunker_tenancy::{Caller, TenancyError};

use super::{event, Tenants};
use crate::access::Command;
use crate::core::rate::Rate;

/// A change to a tenant's quota: a rate (or `off`), or back to the installation's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaChange {
    Set(Option<Rate>),
    Default,
}

impl QuotaChange {
    /// `COUNT/s`, `COUNT/min`, `COUNT/h`, `off`, or `default` (or empty) for the installation's.
    pub fn parse(text: &str) -> Result<Self, TenancyError> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("default") {
            return Ok(QuotaChange::Default);
        }
        Rate::parse(text)
            .map(QuotaChange::Set)
            .map_err(|_| TenancyError::InvalidRequest(QUOTA_GRAMMAR))
    }
}

const QUOTA_GRAMMAR: &str = "ratelimit is COUNT/s, COUNT/min or COUNT/h (COUNT from 1 to \
                             1000000000), off, or default";

impl Tenants {
    /// Sets the request quota of tenant `id` (root only), in one transaction with its audit event.
    pub async fn update_quota(
        &self,
        caller: &Caller,
        id: TenantId,
        change: QuotaChange,
    ) -> Result<(), TenancyError> {
        caller.require_root("only the root token can change a tenant's rate limit")?;
        let stored = match change {
            QuotaChange::Default => None,
            QuotaChange::Set(rate) => Some(crate::core::rate::show(rate)),
        };
        let actor = caller.actor();
        self.db
            .in_tenant(caller.tenant.id, |tx| {
                Box::pin(async move {
                    if !control::set_rate_limit(tx, id, stored.as_deref()).await? {
                        return Err(TenancyError::TenantNotFound);
                    }
                    audit::record(tx, &event(actor, Command::TenantUpdate.audit_action(), id))
                        .await?;
                    Ok(())
                })
            })
            .await
    }
}
