use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, Generate, Key, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::tenant::TenantKeys;
use crate::KeyError;

/// Format byte of a wrapped master key.
const WRAP_FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;

/// The operator's key-encryption key: it only ever wraps and unwraps the master key.
pub struct WrappingKey(Zeroizing<[u8; 32]>);

impl WrappingKey {
    /// Parses 64 hexadecimal characters (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), key.as_mut_slice())
            .map_err(|_| KeyError::MalformedWrappingKey)?;
        Ok(WrappingKey(key))
    }

    /// Reads a key file holding the hexadecimal key.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| KeyError::WrappingKeyFile(format!("{}: {e}", path.display())))?,
        );
        Self::from_hex(&text)
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return Err(KeyError::MalformedWrappingKey);
        }
        key.copy_from_slice(bytes);
        Ok(WrappingKey(key))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// A new random key (for `bunker demo` and tests).
    pub fn generate() -> Self {
        let key = Key::<Aes256Gcm>::generate();
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(key.as_slice());
        WrappingKey(bytes)
    }

    /// The key as 64 hexadecimal characters, to be written to a protected file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_slice()))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.0))
    }
}

impl fmt::Debug for WrappingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WrappingKey(..)")
    }
}

/// What a key wrapping the master key is for: bound into the wrapping's associated data, so a
/// recovery wrapping cannot be passed off as the primary one or the reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrapPurpose {
    /// The operator's wrapping key (or KMS).
    Primary,
    /// The recovery key split into Shamir shares.
    Recovery,
}

/// The installation's root of all data keys. Exists in clear only in memory.
pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    version: i32,
}

impl MasterKey {
    /// A new random master key with this version number.
    pub fn generate(version: i32) -> Self {
        let key = Key::<Aes256Gcm>::generate();
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(key.as_slice());
        MasterKey {
            key: bytes,
            version,
        }
    }

    pub fn version(&self) -> i32 {
        self.version
    }

    /// The master key sealed under `wrapping` (AES-256-GCM, fresh nonce, version bound as AAD).
    pub fn wrap(&self, wrapping: &WrappingKey) -> Result<Vec<u8>, KeyError> {
        self.wrap_for(wrapping, WrapPurpose::Primary)
    }

    /// The master key sealed under `key` for `purpose`.
    pub fn wrap_for(&self, key: &WrappingKey, purpose: WrapPurpose) -> Result<Vec<u8>, KeyError> {
        seal_wrapped(
            &key.cipher(),
            self.key.as_slice(),
            &wrap_aad(self.version, purpose),
        )
    }

    /// Opens a wrapped master key; a wrong wrapping key is [`KeyError::WrongWrappingKey`].
    pub fn unwrap(version: i32, wrapped: &[u8], wrapping: &WrappingKey) -> Result<Self, KeyError> {
        Self::unwrap_for(version, wrapped, wrapping, WrapPurpose::Primary)
    }

    /// Opens a master key wrapped for `purpose`.
    pub fn unwrap_for(
        version: i32,
        wrapped: &[u8],
        wrapping: &WrappingKey,
        purpose: WrapPurpose,
    ) -> Result<Self, KeyError> {
        let opened = open_wrapped(&wrapping.cipher(), wrapped, &wrap_aad(version, purpose))
            .ok_or(KeyError::WrongWrappingKey)?;
        let mut key = Zeroizing::new([0u8; 32]);
        if opened.len() != key.len() {
            return Err(KeyError::WrongWrappingKey);
        }
        key.copy_from_slice(&opened);
        Ok(MasterKey { key, version })
    }

    /// Whether `other` is the same key (compared in constant time).
    pub fn same_as(&self, other: &MasterKey) -> bool {
        use subtle::ConstantTimeEq;
        self.version == other.version && bool::from(self.key.as_slice().ct_eq(other.key.as_slice()))
    }

    /// The key as bytes, for a key management service to wrap (never stored or printed as is).
    pub fn expose_for_wrapping(&self) -> &[u8] {
        self.key.as_slice()
    }

    /// A master key handed back by a key management service.
    pub fn from_unwrapped(version: i32, bytes: &[u8]) -> Result<Self, KeyError> {
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return Err(KeyError::WrongWrappingKey);
        }
        key.copy_from_slice(bytes);
        Ok(MasterKey { key, version })
    }

    /// The keys of one tenant, derived with HKDF-SHA256 (this version only; see `Keyring`).
    pub fn tenant_keys(&self, tenant_id: i64) -> TenantKeys {
        let key = self.key.as_slice();
        TenantKeys::derive((key, self.version), &[], key, tenant_id)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.key.as_slice()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(v{}, ..)", self.version)
    }
}

/// `format (1) | nonce (12) | AES-256-GCM of msg`, with a fresh nonce and `aad` bound: the shape
/// of every wrapped key (the master key's, a tenant key's).
pub(crate) fn seal_wrapped(
    cipher: &Aes256Gcm,
    msg: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let nonce = Nonce::generate();
    let sealed = cipher
        .encrypt(&nonce, Payload { msg, aad })
        .map_err(|_| KeyError::Seal)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(WRAP_FORMAT);
    out.extend_from_slice(nonce.as_slice());
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal_wrapped`] made under the same cipher and `aad`; `None` if anything differs.
pub(crate) fn open_wrapped(
    cipher: &Aes256Gcm,
    wrapped: &[u8],
    aad: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let (format, rest) = wrapped.split_first()?;
    if *format != WRAP_FORMAT || rest.len() < NONCE_LEN {
        return None;
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_from(nonce).ok()?;
    cipher
        .decrypt(&nonce, Payload { msg: sealed, aad })
        .ok()
        .map(Zeroizing::new)
}

fn wrap_aad(version: i32, purpose: WrapPurpose) -> Vec<u8> {
    match purpose {
        WrapPurpose::Primary => format!("bunker/master-key/v{version}").into_bytes(),
        WrapPurpose::Recovery => format!("bunker/master-key/v{version}/recovery").into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_master_key_opens_only_with_its_wrapping_key_and_version() {
        let wrapping = WrappingKey::generate();
        let master = MasterKey::generate(1);
        let wrapped = master.wrap(&wrapping).unwrap();
        let opened = MasterKey::unwrap(1, &wrapped, &wrapping).unwrap();
        assert_eq!(opened.key.as_slice(), master.key.as_slice());
        assert!(matches!(
            MasterKey::unwrap(1, &wrapped, &WrappingKey::generate()),
            Err(KeyError::WrongWrappingKey)
        ));
        assert!(
            MasterKey::unwrap(2, &wrapped, &wrapping).is_err(),
            "version is bound"
        );
        let mut tampered = wrapped.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(MasterKey::unwrap(1, &tampered, &wrapping).is_err());
    }

    #[test]
    fn wrapping_keys_parse_from_64_hex_characters_only() {
        let hex = "ab".repeat(32);
        assert!(WrappingKey::from_hex(&format!(" {hex}\n")).is_ok());
        assert!(WrappingKey::from_hex(&hex[..62]).is_err());
        assert!(WrappingKey::from_hex(&"zz".repeat(32)).is_err());
        let key = WrappingKey::generate();
        assert_eq!(WrappingKey::from_hex(&key.to_hex()).unwrap().0, key.0);
    }

    #[test]
    fn keys_never_print() {
        let hex = "ab".repeat(32);
        let key = WrappingKey::from_hex(&hex).unwrap();
        assert!(!format!("{key:?}").contains("ab"));
        let master = MasterKey::generate(3);
        assert_eq!(format!("{master:?}"), "MasterKey(v3, ..)");
    }
}
