//! A tenant's own key-encryption key: random, versioned, stored only wrapped (by the master key, or
//! by an AWS KMS key the tenant owns). Every sealing key of the tenant (records, audit, tokens, and
//! through records each user's key) comes from it with HKDF; its lookup keys (blind index,
//! fingerprint, token index) travel with it unchanged from version to version, so a rotation or a
//! change of wrapping never needs a re-index. Destroy every wrapped copy and nothing the tenant
//! sealed opens again, whatever else is kept.

use std::fmt;

use aes_gcm::aead::{Generate, Key, KeyInit};
use aes_gcm::Aes256Gcm;
use zeroize::Zeroizing;

use crate::master::{open_wrapped, seal_wrapped};
use crate::seal::{SealKey, SealKeys};
use crate::tenant::{derive, BlindIndexKey, TenantKeys};
use crate::{KeyError, Keyring, MasterKey};

/// Sealed values name their key version in their header: from this number up, a tenant key's
/// (`TENANT_KEY_VERSIONS + version`); below it, a master-key version (values sealed before tenant
/// keys existed, opened while the tenant still has such values).
pub const TENANT_KEY_VERSIONS: i32 = 1 << 24;

/// The bytes of a tenant key in clear: the root, then the blind-index, fingerprint and token-index
/// keys.
const PLAIN_LEN: usize = 128;

/// One version of a tenant's key. Zeroized when dropped; prints as its version only.
pub struct TenantKey {
    version: i32,
    plain: Zeroizing<[u8; PLAIN_LEN]>,
}

fn random_32() -> Zeroizing<[u8; 32]> {
    let key = Key::<Aes256Gcm>::generate();
    let mut bytes = Zeroizing::new([0u8; 32]);
    bytes.copy_from_slice(key.as_slice());
    bytes
}

impl TenantKey {
    fn from_parts(version: i32, root: &[u8; 32], lookup: [&[u8; 32]; 3]) -> Self {
        let mut plain = Zeroizing::new([0u8; PLAIN_LEN]);
        for (at, part) in std::iter::once(root).chain(lookup).enumerate() {
            if let Some(slot) = plain.get_mut(at * 32..(at + 1) * 32) {
                slot.copy_from_slice(part);
            }
        }
        TenantKey { version, plain }
    }

    /// Version 1 of a new tenant's key: every part random.
    pub fn generate() -> Self {
        let (root, index, fingerprint, token_index) =
            (random_32(), random_32(), random_32(), random_32());
        Self::from_parts(1, &root, [&index, &fingerprint, &token_index])
    }

    /// Version 1 for a tenant made before tenant keys existed: a random root, and the lookup keys
    /// it has always had (derived from master-key version 1), so that its blind indexes, version
    /// checksums, audit chain and unique tokens stay valid without a re-index.
    pub fn for_existing_tenant(keyring: &Keyring, tenant_id: i64) -> Self {
        let legacy = keyring.tenant_keys(tenant_id);
        Self::from_parts(
            1,
            &random_32(),
            [
                legacy.index.bytes(),
                legacy.fingerprint.bytes(),
                legacy.token_index.bytes(),
            ],
        )
    }

    /// The next version: a new random root, the same lookup keys.
    pub fn rotated(&self) -> Self {
        let mut next = TenantKey {
            version: self.version.saturating_add(1),
            plain: self.plain.clone(),
        };
        if let Some(root) = next.plain.get_mut(..32) {
            root.copy_from_slice(random_32().as_slice());
        }
        next
    }

    pub fn version(&self) -> i32 {
        self.version
    }

    /// The key in clear, for a key management service to encrypt (never stored or printed so).
    pub fn expose_for_wrapping(&self) -> &[u8] {
        self.plain.as_slice()
    }

    /// A key handed back by a key management service.
    pub fn from_unwrapped(version: i32, bytes: &[u8]) -> Result<Self, KeyError> {
        let mut plain = Zeroizing::new([0u8; PLAIN_LEN]);
        if bytes.len() != PLAIN_LEN || version < 1 {
            return Err(KeyError::Unsealable);
        }
        plain.copy_from_slice(bytes);
        Ok(TenantKey { version, plain })
    }

    /// Whether `other` holds the same key material (compared in constant time).
    pub fn same_as(&self, other: &TenantKey) -> bool {
        use subtle::ConstantTimeEq;
        self.version == other.version
            && bool::from(self.plain.as_slice().ct_eq(other.plain.as_slice()))
    }

    /// The key sealed under `master` for `tenant_id` (AES-256-GCM with a key derived for wrapping
    /// this tenant's keys, fresh nonce, tenant and version bound as associated data).
    pub fn wrap(&self, master: &MasterKey, tenant_id: i64) -> Result<Vec<u8>, KeyError> {
        seal_wrapped(
            &wrap_cipher(master, tenant_id),
            self.plain.as_slice(),
            &wrap_aad(tenant_id, self.version),
        )
    }

    /// Opens what [`TenantKey::wrap`] made with the same master key, tenant and version.
    pub fn unwrap(
        version: i32,
        wrapped: &[u8],
        master: &MasterKey,
        tenant_id: i64,
    ) -> Result<Self, KeyError> {
        let plain = open_wrapped(
            &wrap_cipher(master, tenant_id),
            wrapped,
            &wrap_aad(tenant_id, version),
        )
        .ok_or(KeyError::Unsealable)?;
        Self::from_unwrapped(version, &plain)
    }

    fn part(&self, at: usize) -> Zeroizing<[u8; 32]> {
        let mut key = Zeroizing::new([0u8; 32]);
        if let Some(part) = self.plain.get(at * 32..(at + 1) * 32) {
            key.copy_from_slice(part);
        }
        key
    }

    /// The sealing key of `purpose` from this version's root.
    fn seal_key(&self, tenant_id: i64, purpose: &str) -> SealKey {
        let root = self.part(0);
        SealKey::new(
            derive_from_root(root.as_slice(), tenant_id, purpose),
            TENANT_KEY_VERSIONS.saturating_add(self.version),
        )
    }
}

fn wrap_cipher(master: &MasterKey, tenant_id: i64) -> Aes256Gcm {
    let key = derive(master.bytes(), tenant_id, "tenant-key-wrapping");
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
}

fn wrap_aad(tenant_id: i64, version: i32) -> Vec<u8> {
    format!("bunker/tenant-key/{tenant_id}/v{version}").into_bytes()
}

/// HKDF-SHA256 from a tenant key's root to one purpose's key.
fn derive_from_root(root: &[u8], tenant_id: i64, purpose: &str) -> Zeroizing<[u8; 32]> {
    let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"bunker tenant root v1"), root);
    let mut okm = Zeroizing::new([0u8; 32]);
    let info = format!("bunker/tenant/{tenant_id}/{purpose}");
    // 32 bytes is far below HKDF-SHA256's limit, so expand cannot fail.
    if hkdf.expand(info.as_bytes(), okm.as_mut_slice()).is_err() {
        okm.fill(0);
    }
    okm
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantKey(v{}, ..)", self.version)
    }
}

impl TenantKeys {
    /// The keys of a tenant that has tenant keys: sealing with `current`, opening with it, the
    /// `older` versions held, and (`legacy`) the keys derived from the master keys, for values
    /// sealed before the tenant had keys of its own and not yet re-sealed.
    pub fn from_tenant_key(
        tenant_id: i64,
        current: &TenantKey,
        older: &[&TenantKey],
        legacy: Option<&Keyring>,
    ) -> Self {
        let seal_keys = |purpose: &str| {
            let mut opening: Vec<SealKey> = older
                .iter()
                .map(|key| key.seal_key(tenant_id, purpose))
                .collect();
            if let Some(keyring) = legacy {
                opening.extend(keyring.derived_seal_keys(tenant_id, purpose));
            }
            SealKeys::new(current.seal_key(tenant_id, purpose), opening)
        };
        TenantKeys {
            records: seal_keys("records"),
            audit: seal_keys("audit"),
            tokens: seal_keys("tokens"),
            index: BlindIndexKey::new(current.part(1)),
            fingerprint: BlindIndexKey::new(current.part(2)),
            token_index: BlindIndexKey::new(current.part(3)),
        }
    }
}

impl TenantKeys {
    /// The keys of a tenant made before tenant keys whose first tenant key is not active yet: it
    /// seals with the master-derived keys still, and opens with those and with `opening` (what a
    /// server that already sees the tenant key active seals with). Lookup keys are the same
    /// either way.
    pub fn master_derived_opening(
        keyring: &Keyring,
        tenant_id: i64,
        opening: &[&TenantKey],
    ) -> Self {
        let mut keys = keyring.tenant_keys(tenant_id);
        for (purpose, seal_keys) in [
            ("records", &mut keys.records),
            ("audit", &mut keys.audit),
            ("tokens", &mut keys.tokens),
        ] {
            seal_keys.add_opening(opening.iter().map(|key| key.seal_key(tenant_id, purpose)));
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sealed_version, Label};

    const ROW: Label<'static> = Label {
        tenant: 4,
        kind: "user",
        row: "t",
    };

    #[test]
    fn a_wrapped_tenant_key_opens_only_with_its_master_tenant_and_version() {
        let master = MasterKey::generate(1);
        let key = TenantKey::generate();
        let wrapped = key.wrap(&master, 4).unwrap();
        assert!(TenantKey::unwrap(1, &wrapped, &master, 4)
            .unwrap()
            .same_as(&key));
        assert!(TenantKey::unwrap(1, &wrapped, &master, 5).is_err());
        assert!(TenantKey::unwrap(2, &wrapped, &master, 4).is_err());
        assert!(TenantKey::unwrap(1, &wrapped, &MasterKey::generate(1), 4).is_err());
        assert!(!wrapped
            .windows(16)
            .any(|w| key.expose_for_wrapping().windows(16).any(|k| k == w)));
    }

    #[test]
    fn values_sealed_with_a_tenant_key_do_not_open_with_the_master_keys() {
        let ring = Keyring::new(vec![MasterKey::generate(1)]).unwrap();
        let key = TenantKey::generate();
        let keys = TenantKeys::from_tenant_key(4, &key, &[], Some(&ring));
        let sealed = keys.records.seal(&ROW, b"jane").unwrap();
        assert_eq!(sealed_version(&sealed), Some(TENANT_KEY_VERSIONS + 1));
        assert!(ring.tenant_keys(4).records.open(&ROW, &sealed).is_err());
        let legacy = ring.tenant_keys(4).records.seal(&ROW, b"old").unwrap();
        assert_eq!(keys.records.open(&ROW, &legacy).unwrap().as_slice(), b"old");
        let without_legacy = TenantKeys::from_tenant_key(4, &key, &[], None);
        assert!(without_legacy.records.open(&ROW, &legacy).is_err());
    }

    #[test]
    fn rotation_keeps_the_lookup_keys_and_opens_older_versions() {
        let ring = Keyring::new(vec![MasterKey::generate(1)]).unwrap();
        let first = TenantKey::for_existing_tenant(&ring, 4);
        let before = TenantKeys::from_tenant_key(4, &first, &[], None);
        assert_eq!(
            before.index.blind_index("email", b"x"),
            ring.tenant_keys(4).index.blind_index("email", b"x"),
            "an existing tenant keeps its blind indexes"
        );
        let old = before.tokens.seal(&ROW, b"4111").unwrap();
        let second = first.rotated();
        assert_eq!(second.version(), 2);
        let after = TenantKeys::from_tenant_key(4, &second, &[&first], None);
        assert_eq!(
            after.index.blind_index("email", b"x"),
            before.index.blind_index("email", b"x")
        );
        assert_eq!(after.tokens.open(&ROW, &old).unwrap().as_slice(), b"4111");
        assert_eq!(after.tokens.current_version(), TENANT_KEY_VERSIONS + 2);
        let only_second = TenantKeys::from_tenant_key(4, &second, &[], None);
        assert!(only_second.tokens.open(&ROW, &old).is_err());
        assert!(
            TenantKeys::from_tenant_key(5, &second, &[], None)
                .tokens
                .open(&ROW, &after.tokens.seal(&ROW, b"y").unwrap())
                .is_err(),
            "purpose keys are bound to the tenant"
        );
    }
}
