use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::seal::{SealKey, SealKeys};

/// The keys of one tenant, each derived for one purpose only.
pub struct TenantKeys {
    /// Seals user records and their versions (newest master version; opens any kept one).
    pub records: SealKeys,
    /// Seals the details of audit events.
    pub audit: SealKeys,
    /// Keys the blind indexes.
    pub index: BlindIndexKey,
    /// Keys version checksums.
    pub fingerprint: BlindIndexKey,
    /// Seals tokenized values.
    pub tokens: SealKeys,
    /// Keys the hash that makes `unique` tokens unique (same value, same token).
    pub token_index: BlindIndexKey,
}

/// HKDF-SHA256 from a master key to one tenant's key for one purpose.
pub(crate) fn derive(master: &[u8], tenant_id: i64, purpose: &str) -> Zeroizing<[u8; 32]> {
    let hkdf = Hkdf::<Sha256>::new(Some(b"bunker tenant keys v1"), master);
    let mut okm = Zeroizing::new([0u8; 32]);
    let info = format!("bunker/tenant/{tenant_id}/{purpose}");
    // 32 bytes is far below HKDF-SHA256's limit of 8160, so expand cannot fail.
    if hkdf.expand(info.as_bytes(), okm.as_mut_slice()).is_err() {
        okm.fill(0);
    }
    okm
}

impl TenantKeys {
    /// The keys of `tenant_id`. Sealing keys come from the `current` master version and the
    /// `older` ones still held; the blind-index, fingerprint and token keys from `index_master`, the
    /// first version, so that lookups keep working across master-key rotations.
    pub(crate) fn derive(
        current: (&[u8], i32),
        older: &[(&[u8], i32)],
        index_master: &[u8],
        tenant_id: i64,
    ) -> Self {
        let seal_keys = |purpose: &str| {
            let key = |(master, version): (&[u8], i32)| {
                SealKey::new(derive(master, tenant_id, purpose), version)
            };
            SealKeys::new(key(current), older.iter().copied().map(key).collect())
        };
        TenantKeys {
            records: seal_keys("records"),
            audit: seal_keys("audit"),
            tokens: seal_keys("tokens"),
            index: BlindIndexKey(derive(index_master, tenant_id, "blind-index")),
            fingerprint: BlindIndexKey(derive(index_master, tenant_id, "fingerprint")),
            token_index: BlindIndexKey(derive(index_master, tenant_id, "token-index")),
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
    pub(crate) fn new(key: Zeroizing<[u8; 32]>) -> Self {
        BlindIndexKey(key)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

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
        assert_ne!(
            a.token_index.blind_index("x", b"1"),
            b.token_index.blind_index("x", b"1")
        );
        assert_ne!(
            a.token_index.blind_index("x", b"1"),
            a.index.blind_index("x", b"1")
        );
    }
}
