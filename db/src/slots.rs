//! The per-tenant cap on pooled connections: no tenant's requests may hold more than `cap` of the
//! pool's connections at once, so that a tenant flooding the server leaves the rest of the pool to
//! the others (BUNKER_TENANT_MAX_CONNECTIONS).
//!
//! Once a request's token is found and may work in the tenant the request names, the request takes
//! one of that tenant's slots for the transaction its authentication opened (or, if none is free,
//! ends that transaction and waits for one without a connection), and every later transaction of
//! the same request takes one again (the request's [`TenantSlot`] waits in [`crate::session`]).
//! Requests that do not authenticate take no slot: they cannot crowd a tenant out of its own. A slot is held with
//! its connection and given back with it, so a request waiting for anything else (its read event's
//! commit, its client) holds none. Background work (sweeps, the audit chain, the read-event writer)
//! takes no slot: its concurrency is fixed and small.
//!
//! Slots are keyed by the tenant name the request asks for; an entry lives only while a request of
//! that name holds or waits for a slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::DbError;

/// How long a request waits for one of its tenant's slots before it is answered 503.
const WAIT: Duration = Duration::from_secs(30);

/// Every tenant's slots.
pub(crate) struct TenantSlots {
    cap: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl TenantSlots {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(TenantSlots {
            cap: cap.max(1),
            tenants: Mutex::new(HashMap::new()),
        })
    }

    /// The slots of the tenant named `name`, for one request.
    pub(crate) fn of(self: &Arc<Self>, name: &str) -> TenantSlot {
        let semaphore = match self.tenants.lock() {
            Ok(mut tenants) => tenants
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.cap)))
                .clone(),
            // A poisoned map (a panic while it was held) caps nothing rather than everything.
            Err(_) => Arc::new(Semaphore::new(self.cap)),
        };
        TenantSlot {
            slots: self.clone(),
            name: name.to_owned(),
            semaphore,
        }
    }

    /// How many tenants have a request holding or waiting for a slot.
    #[cfg(test)]
    fn tenants_in_use(&self) -> usize {
        self.tenants.lock().map_or(0, |t| t.len())
    }
}

/// One request's access to its tenant's slots.
pub struct TenantSlot {
    slots: Arc<TenantSlots>,
    name: String,
    semaphore: Arc<Semaphore>,
}

impl TenantSlot {
    /// Takes a slot, waiting up to 30 s (then [`DbError::TenantBusy`]).
    pub(crate) async fn take(&self) -> Result<OwnedSemaphorePermit, DbError> {
        match tokio::time::timeout(WAIT, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(DbError::TenantBusy),
        }
    }
}

impl TenantSlot {
    /// A slot if one is free now.
    pub(crate) fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        self.semaphore.clone().try_acquire_owned().ok()
    }
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let Ok(mut tenants) = self.slots.tenants.lock() else {
            return;
        };
        // The map's reference and this one: no other request of the tenant holds or waits.
        if Arc::strong_count(&self.semaphore) == 2
            && tenants
                .get(&self.name)
                .is_some_and(|s| Arc::ptr_eq(s, &self.semaphore))
        {
            tenants.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tenant_holds_at_most_cap_slots_and_entries_go_when_unused() {
        let slots = TenantSlots::new(2);
        let a1 = slots.of("a");
        let a2 = slots.of("a");
        let first = a1.take().await.unwrap();
        let second = a2.take().await.unwrap();
        let a3 = slots.of("a");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), a3.take())
                .await
                .is_err(),
            "a third slot while two are held"
        );
        // Another tenant is not held up.
        let b = slots.of("b");
        assert!(b.take().await.is_ok());
        drop(first);
        assert!(a3.take().await.is_ok());
        drop(second);
        drop((a1, a2, a3, b));
        assert_eq!(slots.tenants_in_use(), 0);
    }
}
