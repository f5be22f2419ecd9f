use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::SealKey;

/// The keys of one tenant, each derived for one purpose only.
pub struct TenantKeys {
    /// Seals user records and their versions.
    pub records: SealKey,
    /// Seals the details of audit events.
    pub audit: SealKey,
    /// Keys the blind indexes.
    pub index: BlindIndexKey,
    /// Keys version checksums.
    pub fingerprint: BlindIndexKey,
    /// Reserved for format-preserving tokens.
    pub tokens: Zeroizing<[u8; 32]>,
}

impl TenantKeys {
    pub(crate) fn derive(master: &[u8], version: i32, tenant_id: i64) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"bunker tenant keys v1"), master);
        let derive = |purpose: &str| {
            let mut okm = Zeroizing::new([0u8; 32]);
            let info = format!("bunker/tenant/{tenant_id}/{purpose}");
            // 32 bytes is far below HKDF-SHA256's limit of 8160, so expand cannot fail.
            if hkdf.expand(info.as_bytes(), okm.as_mut_slice()).is_err() {
                okm.fill(0);
            }
            okm
        };
        TenantKeys {
            records: SealKey::new(derive("records"), version),
            audit: SealKey::new(derive("audit"), version),
            index: BlindIndexKey(derive("blind-index")),
            fingerprint: BlindIndexKey(derive("fingerprint")),
            tokens: derive("tokens"),
        }
    }
}

impl fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantKeys(..)")
    }
}

/// An HMAC-SHA256 key: the same value and field always give the same index; without the key the
/// index says nothing about the value.
pub struct BlindIndexKey(Zeroizing<[u8; 32]>);

impl BlindIndexKey {
    /// HMAC-SHA256 over `field`, a zero byte and `value`: equal values of different fields differ.
    pub fn blind_index(&self, field: &str, value: &[u8]) -> [u8; 32] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.0.as_slice()) {
            Ok(mac) => mac,
            // HMAC takes keys of any length; this arm is never taken.
            Err(_) => return [0; 32],
        };
        mac.update(field.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindIndexKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use crate::MasterKey;

    #[test]
    fn tenants_and_purposes_get_different_keys() {
        let master = MasterKey::generate(1);
        let a = master.tenant_keys(1);
        let b = master.tenant_keys(2);
        let email = b"jane@example.com";
        assert_eq!(
            a.index.blind_index("email", email),
            master.tenant_keys(1).index.blind_index("email", email)
        );
        assert_ne!(
            a.index.blind_index("email", email),
            b.index.blind_index("email", email)
        );
        assert_ne!(
            a.index.blind_index("email", email),
            a.index.blind_index("login", email)
        );
        assert_ne!(
            a.index.blind_index("email", email),
            a.fingerprint.blind_index("email", email)
        );
        assert_ne!(a.tokens.as_slice(), b.tokens.as_slice());
    }
}
