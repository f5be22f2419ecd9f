use crate::{TenancyError, TenantName};

/// Finds the tenant a request is for: the `X-Bunker-Tenant` header; else the left-most label of a
/// Host that ends with `.` and one of the configured domains; else `default`.
#[derive(Clone, Debug, Default)]
pub struct TenantResolver {
    /// Lower-case domains without leading or trailing dots.
    domains: Vec<String>,
}

impl TenantResolver {
    /// A resolver for subdomains of `domains` (e.g. `bunker.example.com`).
    pub fn new<I, S>(domains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let domains = domains
            .into_iter()
            .map(|d| d.as_ref().trim().trim_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        TenantResolver { domains }
    }

    /// The tenant named by `header` (as sent) or, failing that, by `host`. A name that is not a
    /// valid tenant name is refused, from either source.
    pub fn resolve(
        &self,
        header: Option<&str>,
        host: Option<&str>,
    ) -> Result<TenantName, TenancyError> {
        if let Some(name) = header {
            return TenantName::parse(name);
        }
        match host.and_then(|h| self.subdomain_label(h)) {
            Some(label) => TenantName::parse(&label),
            None => Ok(TenantName::main()),
        }
    }

    /// Whether `host` is a subdomain of one of the domains, naming a tenant.
    pub fn names_tenant(&self, host: &str) -> bool {
        self.subdomain_label(host).is_some()
    }

    fn subdomain_label(&self, host: &str) -> Option<String> {
        let host = strip_port(host)?.trim_end_matches('.').to_ascii_lowercase();
        self.domains.iter().find_map(|domain| {
            let prefix = host.strip_suffix(domain.as_str())?.strip_suffix('.')?;
            prefix.split('.').next().map(str::to_owned)
        })
    }
}

/// The host without its port; `None` for an IPv6 literal, which never names a tenant.
fn strip_port(host: &str) -> Option<&str> {
    if host.starts_with('[') {
        return None;
    }
    Some(match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> TenantResolver {
        TenantResolver::new(["bunker.example.com", ".vault.test."])
    }

    fn name(header: Option<&str>, host: Option<&str>) -> Result<String, TenancyError> {
        resolver().resolve(header, host).map(|n| n.to_string())
    }

    #[test]
    fn header_wins_over_host() {
        let got = name(Some("acme"), Some("other.bunker.example.com")).ok();
        assert_eq!(got.as_deref(), Some("acme"));
    }

    #[test]
    fn subdomain_of_a_configured_domain_names_the_tenant() {
        for host in [
            "acme.bunker.example.com",
            "ACME.Bunker.Example.com:8443",
            "acme.vault.test",
            "acme.x.bunker.example.com",
        ] {
            assert_eq!(
                name(None, Some(host)).ok().as_deref(),
                Some("acme"),
                "{host}"
            );
        }
    }

    #[test]
    fn other_hosts_mean_default() {
        for host in [
            None,
            Some("localhost:3000"),
            Some("127.0.0.1"),
            Some("[::1]:3000"),
            Some("bunker.example.com"),
            Some("acme.example.com"),
            Some("acmebunker.example.com"),
        ] {
            assert_eq!(
                name(None, host).ok().as_deref(),
                Some("default"),
                "{host:?}"
            );
        }
    }

    #[test]
    fn invalid_names_are_refused_from_header_and_host() {
        assert!(name(Some("Acme"), None).is_err());
        assert!(name(Some(""), None).is_err());
        assert!(name(None, Some("-acme.bunker.example.com")).is_err());
        assert!(name(None, Some("ac_me.bunker.example.com")).is_err());
    }
}
