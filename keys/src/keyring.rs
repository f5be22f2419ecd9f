//! Every master-key version an installation holds: new values are sealed with the newest; a
//! value sealed with an older version still opens until `bunker keys reencrypt` re-seals it.

use std::fmt;
use std::sync::Arc;

use crate::{KeyError, MasterKey, TenantKeys};

/// The master keys of an installation, newest first.
#[derive(Clone)]
pub struct Keyring {
    masters: Vec<Arc<MasterKey>>,
    /// Version 1: blind indexes (and fingerprints) keep the key derived from it across master-key
    /// rotations, so lookups never depend on how far a re-encryption has got.
    index_root: Arc<MasterKey>,
}

impl Keyring {
    /// A keyring of the given versions (any order); the one with the lowest version number keys
    /// the blind indexes.
    pub fn new(mut masters: Vec<MasterKey>) -> Result<Self, KeyError> {
        masters.sort_by_key(|m| std::cmp::Reverse(m.version()));
        let masters: Vec<Arc<MasterKey>> = masters.into_iter().map(Arc::new).collect();
        let index_root = masters.last().cloned().ok_or(KeyError::WrongWrappingKey)?;
        Ok(Keyring {
            masters,
            index_root,
        })
    }

    /// The newest master key: new values are sealed with it.
    pub fn current(&self) -> &MasterKey {
        // `new` refuses an empty keyring, and the index root is one of the masters.
        self.masters.first().unwrap_or(&self.index_root)
    }

    /// The versions held, newest first.
    pub fn versions(&self) -> Vec<i32> {
        self.masters.iter().map(|m| m.version()).collect()
    }

    /// The master key of one version.
    pub fn master(&self, version: i32) -> Option<&MasterKey> {
        self.masters
            .iter()
            .find(|m| m.version() == version)
            .map(|m| m.as_ref())
    }

    /// The key that signs one tenant's web-portal sessions, derived from master version `version`
    /// (`None`: the newest), with that version: a session signed under a version that is retired no
    /// longer verifies, so the key rotates with the master key.
    pub fn portal_session_key(
        &self,
        tenant_id: i64,
        version: Option<i32>,
    ) -> Option<(i32, zeroize::Zeroizing<[u8; 32]>)> {
        let master = match version {
            Some(version) => self.master(version)?,
            None => self.current(),
        };
        Some((
            master.version(),
            crate::tenant::derive(master.bytes(), tenant_id, "portal-session"),
        ))
    }

    /// The sealing keys of `purpose` derived for `tenant_id` from every master version held: they
    /// open what was sealed before the tenant had keys of its own.
    pub(crate) fn derived_seal_keys(&self, tenant_id: i64, purpose: &str) -> Vec<crate::SealKey> {
        self.masters
            .iter()
            .map(|m| {
                crate::SealKey::new(
                    crate::tenant::derive(m.bytes(), tenant_id, purpose),
                    m.version(),
                )
            })
            .collect()
    }

    /// One tenant's keys as they were before tenants had keys of their own (derived from the
    /// master keys): sealing with the newest version, opening with any held version.
    pub fn tenant_keys(&self, tenant_id: i64) -> TenantKeys {
        let current = self.current();
        let older: Vec<(&[u8], i32)> = self
            .masters
            .iter()
            .skip(1)
            .map(|m| (m.bytes(), m.version()))
            .collect();
        TenantKeys::derive(
            (current.bytes(), current.version()),
            &older,
            self.index_root.bytes(),
            tenant_id,
        )
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({:?})", self.versions())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Label;

    const ROW: Label<'static> = Label {
        tenant: 3,
        kind: "user",
        row: "t",
    };

    #[test]
    fn values_sealed_under_an_older_version_open_and_new_ones_use_the_newest() {
        let v1 = MasterKey::generate(1);
        let old = v1.tenant_keys(3).records.seal(&ROW, b"old").unwrap();
        let old_index = v1.tenant_keys(3).index.blind_index("email", b"x");
        let ring = Keyring::new(vec![MasterKey::generate(2), v1]).unwrap();
        let keys = ring.tenant_keys(3);
        assert_eq!(keys.records.open(&ROW, &old).unwrap().as_slice(), b"old");
        let new = keys.records.seal(&ROW, b"new").unwrap();
        assert_eq!(crate::seal::sealed_version(&new), Some(2));
        assert_eq!(keys.records.current_version(), 2);
        assert_eq!(
            keys.index.blind_index("email", b"x"),
            old_index,
            "indexes keep version 1's key"
        );
        let only_v2 = Keyring::new(vec![MasterKey::generate(2)]).unwrap();
        assert!(only_v2.tenant_keys(3).records.open(&ROW, &old).is_err());
    }
}
