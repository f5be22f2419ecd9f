//! A user's own data key: random, made when the user first needs one, stored only wrapped by the
//! tenant's record key (so a master-key rotation re-wraps it, and `bunker keys reencrypt` re-seals
//! the wrapped form like any record). What is sealed with it (app data, its versions, pending
//! changes) opens only while the wrapped key exists: forget-me destroys it, and with it everything
//! of that user sealed with it, wherever a copy of the ciphertext is left.

use aes_gcm::aead::{Generate, Key};
use aes_gcm::Aes256Gcm;
use zeroize::Zeroizing;

use crate::{KeyError, Label, SealKey, SealKeys};

/// The version written in the header of values sealed with a user key. A user key is not derived
/// from a master-key version (its wrapping is), so its values never need re-sealing.
const USER_KEY_VERSION: i32 = 0;

/// A user's data key. Zeroized when dropped; prints as `..`.
#[derive(Debug)]
pub struct UserKey(SealKey);

impl UserKey {
    /// A new random key, and its wrapped form (sealed with `records` under `label`) to store.
    pub fn generate(records: &SealKeys, label: &Label<'_>) -> Result<(UserKey, Vec<u8>), KeyError> {
        let key = Key::<Aes256Gcm>::generate();
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(key.as_slice());
        let wrapped = records.seal(label, bytes.as_slice())?;
        Ok((UserKey(SealKey::new(bytes, USER_KEY_VERSION)), wrapped))
    }

    /// The key `wrapped` holds (as [`UserKey::generate`] wrapped it under `label`).
    pub fn unwrap(records: &SealKeys, label: &Label<'_>, wrapped: &[u8]) -> Result<Self, KeyError> {
        let plain = records.open(label, wrapped)?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Unsealable)?;
        Ok(UserKey(SealKey::new(
            Zeroizing::new(bytes),
            USER_KEY_VERSION,
        )))
    }

    /// A new random key for one thing of the user's (a file), and its form wrapped by this key
    /// under `label`: forget-me, which destroys this key, makes it unreadable too.
    pub fn generate_child(&self, label: &Label<'_>) -> Result<(UserKey, Vec<u8>), KeyError> {
        let key = Key::<Aes256Gcm>::generate();
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(key.as_slice());
        let wrapped = self.0.seal(label, bytes.as_slice())?;
        Ok((UserKey(SealKey::new(bytes, USER_KEY_VERSION)), wrapped))
    }

    /// The key `wrapped` holds (as [`UserKey::generate_child`] wrapped it under `label`).
    pub fn unwrap_child(&self, label: &Label<'_>, wrapped: &[u8]) -> Result<UserKey, KeyError> {
        let plain = self.0.open(label, wrapped)?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Unsealable)?;
        Ok(UserKey(SealKey::new(
            Zeroizing::new(bytes),
            USER_KEY_VERSION,
        )))
    }

    /// Seals `plaintext` for `label` with a fresh nonce.
    pub fn seal(&self, label: &Label<'_>, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.0.seal(label, plaintext)
    }

    /// Opens a value this key sealed for `label`.
    pub fn open(&self, label: &Label<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.0.open(label, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;

    const WRAP: Label<'static> = Label {
        tenant: 7,
        kind: "user_key",
        row: "c6688d6a-a87e-d332-2086-31c69fef4564",
    };
    const DATA: Label<'static> = Label {
        tenant: 7,
        kind: "appdata",
        row: "c6688d6a-a87e-d332-2086-31c69fef4564/shop",
    };

    #[test]
    fn a_user_key_opens_what_it_sealed_only_while_its_wrapped_form_is_kept() {
        let master = MasterKey::generate(1);
        let records = master.tenant_keys(7).records;
        let (key, wrapped) = UserKey::generate(&records, &WRAP).unwrap();
        let sealed = key.seal(&DATA, b"{\"size\":\"M\"}").unwrap();
        let again = UserKey::unwrap(&records, &WRAP, &wrapped).unwrap();
        assert_eq!(
            again.open(&DATA, &sealed).unwrap().as_slice(),
            b"{\"size\":\"M\"}"
        );
        // Another user's key (or a fresh one for the same user) opens nothing of it.
        let (other, _) = UserKey::generate(&records, &WRAP).unwrap();
        assert!(other.open(&DATA, &sealed).is_err());
        // The wrapped key opens only for its user, tenant and kind.
        let elsewhere = Label { tenant: 8, ..WRAP };
        assert!(UserKey::unwrap(&records, &elsewhere, &wrapped).is_err());
        let other_tenant = master.tenant_keys(8).records;
        assert!(UserKey::unwrap(&other_tenant, &WRAP, &wrapped).is_err());
        // The raw key is nowhere in its wrapped form.
        assert!(!wrapped.windows(32).any(|w| opens(w, &sealed)));
    }

    #[test]
    fn a_child_key_opens_only_with_its_parent() {
        let records = MasterKey::generate(1).tenant_keys(7).records;
        let (parent, _) = UserKey::generate(&records, &WRAP).unwrap();
        let file = Label {
            kind: "file_key",
            ..DATA
        };
        let (child, wrapped) = parent.generate_child(&file).unwrap();
        let sealed = child.seal(&DATA, b"chunk").unwrap();
        let again = parent.unwrap_child(&file, &wrapped).unwrap();
        assert_eq!(again.open(&DATA, &sealed).unwrap().as_slice(), b"chunk");
        let (other, _) = UserKey::generate(&records, &WRAP).unwrap();
        assert!(other.unwrap_child(&file, &wrapped).is_err());
        assert_eq!(sealed.len(), b"chunk".len() + crate::SEALED_OVERHEAD);
    }

    /// Whether `window`, as a raw key, opens `sealed`.
    fn opens(window: &[u8], sealed: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 32]>::try_from(window) else {
            return false;
        };
        SealKey::new(Zeroizing::new(bytes), USER_KEY_VERSION)
            .open(&DATA, sealed)
            .is_ok()
    }
}
