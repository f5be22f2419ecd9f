use std::fmt;

use crate::TenancyError;

/// A tenant's name: a DNS label of lowercase ASCII letters, digits and inner hyphens, 1-63 long.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TenantName(String);

impl TenantName {
    /// The name of the main tenant, used when a request names none.
    pub const DEFAULT: &'static str = "default";

    /// Parses a tenant name; anything that is not a valid label is refused (never corrected).
    /// The rule [`TenantName::parse`] applies, as a regular expression (the OpenAPI document's).
    pub const PATTERN: &'static str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

    pub fn parse(value: &str) -> Result<Self, TenancyError> {
        let bytes = value.as_bytes();
        let valid_char = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let ok = (1..=63).contains(&bytes.len())
            && bytes.iter().all(valid_char)
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-');
        if ok {
            Ok(TenantName(value.to_owned()))
        } else {
            Err(TenancyError::InvalidTenantName)
        }
    }

    /// The main tenant's name.
    pub fn main() -> Self {
        TenantName(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_pattern_is_the_rule_parse_applies() {
        let pattern = regex::Regex::new(TenantName::PATTERN).unwrap();
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        for name in [
            "acme", "a", "0", "a-b", "a--b", "-a", "a-", "", "Acme", "a_b", "a.b", "ünï", &long,
            &too_long, "a b", "1-2-3", "default",
        ] {
            assert_eq!(
                pattern.is_match(name),
                TenantName::parse(name).is_ok(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn accepts_dns_labels() {
        for name in [
            "acme",
            "acme-corp",
            "a",
            "subaccount-001",
            "0",
            &"a".repeat(63),
        ] {
            assert!(TenantName::parse(name).is_ok(), "{name} should be accepted");
        }
    }

    #[test]
    fn refuses_everything_else() {
        let long = "a".repeat(64);
        for name in [
            "",
            "-acme",
            "acme-",
            "Acme",
            "ac me",
            "acme.corp",
            "acme_corp",
            "ácme",
            &long,
        ] {
            assert!(
                TenantName::parse(name).is_err(),
                "{name:?} should be refused"
            );
        }
    }
}
