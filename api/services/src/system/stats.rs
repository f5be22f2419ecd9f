//! SystemGetSystemStats: what the caller's scope holds, from the usage counters (see
//! `bunker_db::stats`), and the licence fields of the contract, which mean "unlimited": Bunker has
//! no licence.

use bunker_db::stats::{self, Usage};
use bunker_tenancy::Caller;

use crate::access::DENIED;
use crate::core::{Vault, VaultError};

/// The record cap answered as the licence's: the largest integer a JavaScript client reads
/// exactly (2^53 - 1), i.e. no cap, without a zero a monitoring rule would divide by.
pub const NO_RECORD_CAP: i64 = 9_007_199_254_740_991;

/// The licence expiry answered: 9999-12-31T23:59:59Z, i.e. never.
pub const NO_EXPIRY: i64 = 253_402_300_799;

/// The counts of SystemGetSystemStats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemStats {
    pub tenants: i64,
    pub usage: Usage,
}

impl SystemStats {
    /// Records in use: profiles and tokens (the contract's `totalnumrecords`).
    pub fn total_records(&self) -> i64 {
        self.usage.users + self.usage.tokens
    }
}

impl Vault {
    /// The counts of the caller's scope: the installation for root (each tenant's counters read in
    /// that tenant's own transaction), its own tenant for a tenant admin.
    pub async fn system_stats(&self, caller: &Caller) -> Result<SystemStats, VaultError> {
        if !caller.is_admin() {
            return Err(VaultError::Forbidden(DENIED));
        }
        let own = caller.tenant.id;
        let (mut usage, tenants) = self
            .db
            .in_tenant(own, |tx| {
                Box::pin(async move {
                    Ok::<_, VaultError>((stats::usage(tx).await?, stats::tenant_count(tx).await?))
                })
            })
            .await?;
        if !caller.is_root() {
            return Ok(SystemStats { tenants: 1, usage });
        }
        for tenant in self.db.tenant_ids().await? {
            if tenant == own {
                continue;
            }
            let more = self
                .db
                .in_tenant(tenant, |tx| {
                    Box::pin(async move { Ok::<_, VaultError>(stats::usage(tx).await?) })
                })
                .await?;
            usage.users += more.users;
            usage.tokens += more.tokens;
            usage.sessions += more.sessions;
        }
        Ok(SystemStats { tenants, usage })
    }
}
