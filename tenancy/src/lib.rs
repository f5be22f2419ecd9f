//! Tenancy for Bunker: which tenant a request is for, who is asking, and whether they may.
//!
//! A request's tenant comes from the `X-Bunker-Tenant` header, else the left-most label of a Host
//! under one of the configured domains, else `default` ([`TenantResolver`]). Its `X-Bunker-Token` is
//! looked up by SHA-256 hash and compared in constant time ([`token`]). A root token works in every
//! tenant; a tenant admin token only in its own ([`Tenancy::authenticate`]). The tenant commands are
//! a service of `bunker-services` (`tenants`).

mod caller;
mod error;
mod name;
mod resolve;
pub mod token;

pub use caller::{Caller, Principal};
pub use error::TenancyError;
pub use name::TenantName;
pub use resolve::TenantResolver;

use bunker_db::Database;

/// The tenancy service: which tenant a request is for, and who is asking.
#[derive(Clone)]
pub struct Tenancy {
    db: Database,
    resolver: TenantResolver,
}

impl Tenancy {
    /// A tenancy service over `db`, resolving subdomains of `resolver`'s domains.
    pub fn new(db: Database, resolver: TenantResolver) -> Self {
        Tenancy { db, resolver }
    }

    /// The name of the tenant a request is for (see [`TenantResolver::resolve`]), for the public
    /// commands, which are not authenticated.
    pub fn tenant_name(
        &self,
        header: Option<&str>,
        host: Option<&str>,
    ) -> Result<TenantName, TenancyError> {
        self.resolver.resolve(header, host)
    }
}
