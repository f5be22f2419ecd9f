//! The keyring the services seal and open with, shared by every request and replaced whole when
//! a master key version appears or goes (see `keys`).

use std::sync::Arc;

use arc_swap::ArcSwap;
use bunker_keys::Keyring;

/// The keyring the server seals and opens with, replaced when a new master version appears: the
/// readers of every request take it without a lock (`ArcSwap`).
#[derive(Clone)]
pub struct SharedKeyring(Arc<ArcSwap<Keyring>>);

impl SharedKeyring {
    pub fn new(keyring: Keyring) -> Self {
        SharedKeyring(Arc::new(ArcSwap::from_pointee(keyring)))
    }

    /// The keyring as it is now.
    pub fn get(&self) -> Arc<Keyring> {
        self.0.load_full()
    }

    pub(crate) fn set(&self, keyring: Keyring) {
        self.0.store(Arc::new(keyring));
    }
}
