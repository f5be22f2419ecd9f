use std::fmt;

use aes_gcm::aead::{Aead, Generate, Key, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::KeyError;

/// Format byte of a sealed value.
const SEAL_FORMAT: u8 = 1;
/// Format byte, then the key version as 4 big-endian bytes.
const HEADER_LEN: usize = 5;
const NONCE_LEN: usize = 12;
/// AES-GCM's tag.
const TAG_LEN: usize = 16;
/// How much longer a sealed value is than its plain text.
pub const SEALED_OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// Where a sealed value belongs: bound into its associated data, so a ciphertext copied to another
/// tenant, kind of record or row does not open.
#[derive(Clone, Copy, Debug)]
pub struct Label<'a> {
    pub tenant: i64,
    /// The kind of record, e.g. `user` or `user_version`.
    pub kind: &'a str,
    /// The row, e.g. the user token (and version).
    pub row: &'a str,
}

impl Label<'_> {
    /// Unambiguous encoding: every variable part is length-prefixed; the header is bound too.
    fn associated_data(&self, header: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + self.kind.len() + self.row.len());
        aad.extend_from_slice(b"bunker/sealed/v1");
        aad.extend_from_slice(&self.tenant.to_be_bytes());
        for part in [self.kind.as_bytes(), self.row.as_bytes()] {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part);
        }
        aad.extend_from_slice(header);
        aad
    }
}

/// An AES-256-GCM key for sealing values, with the version of the master key it comes from.
/// (The cipher zeroizes its key schedule when dropped.)
pub struct SealKey {
    cipher: Aes256Gcm,
    version: i32,
}

impl SealKey {
    pub(crate) fn new(key: Zeroizing<[u8; 32]>, version: i32) -> Self {
        SealKey {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)),
            version,
        }
    }

    /// Seals `plaintext` with a fresh random nonce:
    /// `format (1) | key version (4) | nonce (12) | ciphertext and tag`.
    pub fn seal(&self, label: &Label<'_>, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut header = [0u8; HEADER_LEN];
        header[0] = SEAL_FORMAT;
        header[1..].copy_from_slice(&self.version.to_be_bytes());
        let nonce = Nonce::generate();
        let aad = label.associated_data(&header);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Seal)?;
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed for `label`.
    pub fn open(&self, label: &Label<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if sealed.len() < HEADER_LEN + NONCE_LEN {
            return Err(KeyError::Unsealable);
        }
        let (header, rest) = sealed.split_at(HEADER_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let mut version = [0u8; 4];
        version.copy_from_slice(header.get(1..).ok_or(KeyError::Unsealable)?);
        let version = i32::from_be_bytes(version);
        if header.first() != Some(&SEAL_FORMAT) {
            return Err(KeyError::Unsealable);
        }
        if version != self.version {
            return Err(KeyError::KeyVersion {
                found: version,
                expected: self.version,
            });
        }
        let nonce = Nonce::try_from(nonce).map_err(|_| KeyError::Unsealable)?;
        let aad = label.associated_data(header);
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| KeyError::Unsealable)
    }
}

/// The sealing keys of one purpose across master-key versions: seals with the newest, opens with
/// whichever version a sealed value's header names.
pub struct SealKeys {
    current: SealKey,
    older: Vec<SealKey>,
}

impl SealKeys {
    pub(crate) fn new(current: SealKey, older: Vec<SealKey>) -> Self {
        SealKeys { current, older }
    }

    /// Opens with these keys too.
    pub(crate) fn add_opening(&mut self, keys: impl IntoIterator<Item = SealKey>) {
        self.older.extend(keys);
    }

    /// The key version new values are sealed with.
    pub fn current_version(&self) -> i32 {
        self.current.version
    }

    /// Seals with the newest key.
    pub fn seal(&self, label: &Label<'_>, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.current.seal(label, plaintext)
    }

    /// Opens with the key of the version the value was sealed with.
    pub fn open(&self, label: &Label<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let version = sealed_version(sealed).ok_or(KeyError::Unsealable)?;
        let key = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|k| k.version == version)
            .ok_or(KeyError::KeyVersion {
                found: version,
                expected: self.current.version,
            })?;
        key.open(label, sealed)
    }
}

/// The master-key version in a sealed value's header.
pub fn sealed_version(sealed: &[u8]) -> Option<i32> {
    if sealed.first() != Some(&SEAL_FORMAT) {
        return None;
    }
    let bytes: [u8; 4] = sealed.get(1..HEADER_LEN)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealKey(v{}, ..)", self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SealKey {
        SealKey::new(Zeroizing::new([byte; 32]), 1)
    }

    const ROW: Label<'static> = Label {
        tenant: 7,
        kind: "user",
        row: "c6688d6a-a87e-d332-2086-31c69fef4564",
    };

    #[test]
    fn sealed_values_open_only_for_their_label_and_key() {
        let sealed = key(1).seal(&ROW, b"{\"name\":\"Jane\"}").unwrap();
        assert_eq!(
            key(1).open(&ROW, &sealed).unwrap().as_slice(),
            b"{\"name\":\"Jane\"}"
        );
        for other in [
            Label { tenant: 8, ..ROW },
            Label {
                kind: "user_version",
                ..ROW
            },
            Label {
                row: "c6688d6a-a87e-d332-2086-31c69fef4565",
                ..ROW
            },
        ] {
            assert!(key(1).open(&other, &sealed).is_err(), "{other:?}");
        }
        assert!(key(2).open(&ROW, &sealed).is_err(), "another key");
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce_and_hides_the_plaintext() {
        let a = key(1).seal(&ROW, b"jane@example.com").unwrap();
        let b = key(1).seal(&ROW, b"jane@example.com").unwrap();
        assert_ne!(a, b);
        assert!(!a.windows(4).any(|w| w == b"jane"));
    }

    #[test]
    fn tampering_and_wrong_versions_are_refused() {
        let sealed = key(1).seal(&ROW, b"x").unwrap();
        let mut flipped = sealed.clone();
        if let Some(byte) = flipped.get_mut(HEADER_LEN + NONCE_LEN) {
            *byte ^= 0x80;
        }
        assert!(key(1).open(&ROW, &flipped).is_err());
        let newer = SealKey::new(Zeroizing::new([1; 32]), 2);
        assert!(matches!(
            newer.open(&ROW, &sealed),
            Err(KeyError::KeyVersion {
                found: 1,
                expected: 2
            })
        ));
        assert!(key(1).open(&ROW, &sealed[..10]).is_err());
    }
}
