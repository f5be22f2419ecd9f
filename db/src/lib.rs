//! PostgreSQL access for Bunker.
//!
//! Every query that touches tenant data runs through [`Database::in_tenant`]: one transaction, as the
//! role `bunker_app`, with the tenant set by `set_config('bunker.tenant_id', $1, true)`. The query
//! functions in [`control`] and [`audit`] take the resulting [`TenantTx`], so nothing outside this crate
//! can reach a tenant table any other way. SQL lives here and in `migrations/` only.

pub mod app_sessions;
pub mod appdata;
pub mod audit;
pub mod bulk;
pub mod chain;
pub mod consent;
pub mod control;
mod error;
pub mod expirations;
pub mod files;
pub mod groups;
pub mod keys;
pub mod login;
mod migrate;
pub mod policies;
mod pool;
pub mod portal;
mod posture;
pub mod requests;
pub mod reseal;
pub mod session;
pub mod shared_records;
mod slots;
pub mod stats;
pub mod tenant_keys;
pub mod tls;
pub mod tokens;
mod tx;
pub mod users;
pub mod webhooks;

pub use error::DbError;
pub use migrate::{latest_version, SchemaStatus};
pub use pool::{Database, OwnerConnection, PoolStatus, RoleMode};
pub use posture::CONTROL_PLANE_TABLES;
pub use slots::TenantSlot;
pub use tx::TenantTx;

use std::fmt;

/// The name of the role all tenant work runs as.
pub const APP_ROLE: &str = "bunker_app";

/// The role of re-encryption: `bunker_app`'s privileges, plus re-sealing what the server may never
/// rewrite (audit details, kept versions).
pub const MAINTENANCE_ROLE: &str = "bunker_maintenance";

/// A tenant's numeric id. The main ("default") tenant is [`TenantId::MAIN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub i64);

impl TenantId {
    /// The main tenant, created by `bunker init` under the name `default`.
    pub const MAIN: TenantId = TenantId(1);
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
