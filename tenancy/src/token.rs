//! Access tokens: issued as random UUID-format strings, shown once, stored only as SHA-256 hashes.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The SHA-256 hash of an access token: what the database stores and looks tokens up by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a token as presented by a client. Tokens are UUIDs, hashed in their canonical form
    /// (lower-case, hyphenated), so that every way of writing one (upper case, braces, no hyphens)
    /// names the same token; an operator's own root token that is not a UUID is hashed as given.
    pub fn of(token: &str) -> Self {
        let digest = match Uuid::try_parse(token) {
            Ok(uuid) => Sha256::digest(uuid.hyphenated().to_string().as_bytes()),
            Err(_) => Sha256::digest(token.as_bytes()),
        };
        TokenHash(digest.into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares with a stored hash in constant time.
    pub fn matches(&self, stored: &[u8]) -> bool {
        stored.len() == self.0.len() && bool::from(self.0.ct_eq(stored))
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// A freshly issued token: its id (safe to record) and its value (shown to the client once).
pub struct IssuedToken {
    pub id: Uuid,
    pub secret: SecretString,
}

impl IssuedToken {
    /// A new random token (122 random bits, UUID format as the SDKs expect).
    pub fn generate() -> Self {
        Self::from_secret(SecretString::from(Uuid::new_v4().to_string()))
    }

    /// A token with a value chosen by the operator (e.g. `BUNKER_ROOT_TOKEN`).
    pub fn from_secret(secret: SecretString) -> Self {
        IssuedToken {
            id: Uuid::new_v4(),
            secret,
        }
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.secret.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_only_the_same_token() {
        let token = IssuedToken::generate();
        let stored = token.hash();
        assert!(TokenHash::of(token.secret.expose_secret()).matches(stored.as_bytes()));
        assert!(!TokenHash::of("something else").matches(stored.as_bytes()));
        assert!(!TokenHash::of(token.secret.expose_secret()).matches(&stored.as_bytes()[..31]));
    }

    #[test]
    fn a_uuid_token_matches_however_it_is_written() {
        let token = IssuedToken::generate();
        let stored = token.hash();
        let written = token.secret.expose_secret().to_owned();
        for form in [
            written.to_uppercase(),
            written.replace('-', ""),
            format!("{{{written}}}"),
        ] {
            assert!(TokenHash::of(&form).matches(stored.as_bytes()), "{form}");
        }
        let chosen = IssuedToken::from_secret(SecretString::from("Not-A-Uuid-Root-Token"));
        assert!(!TokenHash::of("not-a-uuid-root-token").matches(chosen.hash().as_bytes()));
    }

    #[test]
    fn generated_tokens_are_uuid_shaped_and_distinct() {
        let a = IssuedToken::generate();
        let b = IssuedToken::generate();
        assert_eq!(a.secret.expose_secret().len(), 36);
        assert_ne!(a.secret.expose_secret(), b.secret.expose_secret());
    }
}
