//! The transaction a request's authentication opened, kept for the request's first tenant work.
//!
//! [`Database::authenticate`](crate::Database::authenticate) opens a transaction, sets the requested
//! tenant and finds the access token in one round trip. Within a request's [`scope`], that open
//! transaction waits here; the request's first [`Database::in_tenant`](crate::Database::in_tenant)
//! continues in it if it is for the same tenant (one round trip fewer per request), and rolls it back
//! otherwise. Whatever is left when the request ends is rolled back and its connection returned.
//!
//! **The rule:** a request's first tenant work is for the tenant the request was authenticated in,
//! or, for root's commands that live in the main tenant (roles, policies, tenants, keys) asked for
//! with another tenant named, the main tenant. Work for another tenant first (a misuse) is logged
//! as an error and panics in debug builds; the
//! kept transaction holds nothing but the token lookup, so rolling it back loses no write. The
//! task-local stays because it saves a round trip on every request (BENCHMARKS.md, "one round trip").

use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::slots::TenantSlot;
use crate::tx::OpenTx;
use crate::{DbError, TenantId};

/// What a request keeps between its authentication and its work.
#[derive(Default)]
struct Kept {
    /// The transaction its authentication opened, until its first tenant work takes it.
    open: Option<(TenantId, OpenTx)>,
    /// The slots of the tenant it asked for (see [`crate::slots`]): each of its transactions
    /// takes one.
    slot: Option<Arc<TenantSlot>>,
}

tokio::task_local! {
    static KEPT: Mutex<Kept>;
}

/// Runs one request with room for the transaction its authentication opens.
pub async fn scope<F: Future>(request: F) -> F::Output {
    KEPT.scope(Mutex::new(Kept::default()), async move {
        let output = request.await;
        if let Some((_, open)) = take() {
            // Unused (the request was refused or failed before its work): nothing to keep.
            let _ = open.end("ROLLBACK").await;
        }
        output
    })
    .await
}

/// Holds `slot` for the rest of the request (outside a request's scope: dropped).
pub(crate) fn hold_slot(slot: Arc<TenantSlot>) {
    let _ = KEPT.try_with(|kept| {
        if let Ok(mut kept) = kept.lock() {
            kept.slot = Some(slot);
        }
    });
}

/// The request's tenant slots, if its authentication took one.
pub(crate) fn slot() -> Option<Arc<TenantSlot>> {
    KEPT.try_with(|kept| kept.lock().ok().and_then(|kept| kept.slot.clone()))
        .ok()
        .flatten()
}

/// Keeps `open`, a transaction for `tenant`, for the request's first tenant work; outside a
/// request's scope it is rolled back at once.
pub(crate) async fn keep(tenant: TenantId, open: OpenTx) -> Result<(), DbError> {
    let mut open = Some(open);
    let previous = KEPT
        .try_with(|kept| match kept.lock() {
            Ok(mut kept) => kept.open.replace((tenant, open.take()?)),
            Err(_) => None,
        })
        .ok()
        .flatten();
    for left in [open, previous.map(|(_, open)| open)].into_iter().flatten() {
        left.end("ROLLBACK").await?;
    }
    Ok(())
}

/// The kept transaction, if any (taken: the slot is left empty).
pub(crate) fn take() -> Option<(TenantId, OpenTx)> {
    KEPT.try_with(|kept| kept.lock().ok().and_then(|mut kept| kept.open.take()))
        .ok()
        .flatten()
}
