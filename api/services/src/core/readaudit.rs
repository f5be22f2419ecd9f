//! The group commit of read events. A read (UserGet, TokenGet) runs in a transaction that writes
//! nothing, then hands its audit event here and waits: events arriving while a batch commits are
//! written together in the next one, so that many reads share one commit (one WAL flush) instead of
//! paying one each. The answer leaves only once its event is committed; if the batch fails, every
//! read in it fails.
//!
//! Fair between tenants: each tenant waits in a queue of its own, and a batch takes from the
//! queues in turn, one read at a time, so a read waiting behind a flooding tenant is in the next
//! batch whatever that tenant has queued (unless more tenants than a batch holds are waiting). A
//! tenant's queue is bounded: past [`QUEUE`] reads waiting, its next reads wait to be queued, and
//! only its own.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bunker_db::audit::AuditEvent;
use bunker_db::{Database, TenantId};
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::VaultError;
use crate::metrics::ServiceMetrics;

/// Reads of one tenant waiting at most (beyond this they wait to be queued).
const QUEUE: usize = 1024;
/// Events written in one batch at most.
const BATCH: usize = 512;

struct Pending {
    events: Vec<(Uuid, AuditEvent)>,
    committed: oneshot::Sender<Outcome>,
    queued_at: Instant,
    /// The tenant's queue place, given back once the read is written.
    _place: OwnedSemaphorePermit,
}

/// How a batch ended, for every read in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Committed,
    /// The database was unreachable: the reads may be retried.
    Unavailable,
    Failed,
}

/// One tenant's waiting reads.
struct TenantQueue {
    places: Arc<Semaphore>,
    waiting: VecDeque<Pending>,
}

/// The queues, and the order the writer visits tenants in.
#[derive(Default)]
struct Queues {
    tenants: HashMap<TenantId, TenantQueue>,
    /// Tenants with reads waiting, in turn; each appears once.
    turn: VecDeque<TenantId>,
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Notify,
}

/// The handle requests send their read events to.
#[derive(Clone)]
pub struct ReadAudit {
    shared: Arc<Shared>,
}

impl ReadAudit {
    /// Starts the writer on the current Tokio runtime.
    pub fn spawn(db: Database, metrics: Arc<ServiceMetrics>) -> Self {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            ready: Notify::new(),
        });
        tokio::spawn(write_batches(db, shared.clone(), metrics));
        ReadAudit { shared }
    }

    /// Records `events` of `tenant` and returns once they are committed.
    pub async fn record(
        &self,
        tenant: TenantId,
        events: Vec<(Uuid, AuditEvent)>,
    ) -> Result<(), VaultError> {
        let places = {
            let mut queues = self.lock()?;
            queues
                .tenants
                .entry(tenant)
                .or_insert_with(|| TenantQueue {
                    places: Arc::new(Semaphore::new(QUEUE)),
                    waiting: VecDeque::new(),
                })
                .places
                .clone()
        };
        let place = places
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| VaultError::AuditFailed)?;
        let (committed, done) = oneshot::channel();
        {
            let mut queues = self.lock()?;
            let Queues { tenants, turn } = &mut *queues;
            let queue = tenants.entry(tenant).or_insert_with(|| TenantQueue {
                places,
                waiting: VecDeque::new(),
            });
            if queue.waiting.is_empty() {
                turn.push_back(tenant);
            }
            queue.waiting.push_back(Pending {
                events,
                committed,
                queued_at: Instant::now(),
                _place: place,
            });
        }
        self.shared.ready.notify_one();
        match done.await {
            Ok(Outcome::Committed) => Ok(()),
            Ok(Outcome::Unavailable) => Err(VaultError::AuditUnavailable),
            _ => Err(VaultError::AuditFailed),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Queues>, VaultError> {
        self.shared.queues.lock().map_err(|_| {
            tracing::error!("the read-event queues are poisoned");
            VaultError::AuditFailed
        })
    }
}

/// The next batch: reads taken from the tenants' queues in turn, one at a time, up to [`BATCH`]
/// events. A tenant whose queue empties leaves the turn and the map.
fn next_batch(queues: &mut Queues) -> Vec<(TenantId, Pending)> {
    let mut batch = Vec::new();
    let mut count = 0;
    while count < BATCH {
        let Some(tenant) = queues.turn.pop_front() else {
            break;
        };
        let Some(queue) = queues.tenants.get_mut(&tenant) else {
            continue;
        };
        let Some(pending) = queue.waiting.pop_front() else {
            continue;
        };
        count += pending.events.len();
        batch.push((tenant, pending));
        if queue.waiting.is_empty() {
            // A read still waiting for a place puts the queue back (with the places it holds).
            queues.tenants.remove(&tenant);
        } else {
            queues.turn.push_back(tenant);
        }
    }
    batch
}

async fn write_batches(db: Database, shared: Arc<Shared>, metrics: Arc<ServiceMetrics>) {
    loop {
        let batch = match shared.queues.lock() {
            Ok(mut queues) => next_batch(&mut queues),
            Err(_) => return,
        };
        if batch.is_empty() {
            shared.ready.notified().await;
            continue;
        }
        let mut by_tenant: Vec<(TenantId, Vec<(Uuid, AuditEvent)>)> = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        let mut count = 0;
        for (tenant, pending) in batch {
            count += pending.events.len();
            metrics
                .read_audit_wait
                .observe(pending.queued_at.elapsed().as_secs_f64());
            match by_tenant.iter_mut().find(|(t, _)| *t == tenant) {
                Some((_, events)) => events.extend(pending.events),
                None => by_tenant.push((tenant, pending.events)),
            }
            replies.push((pending.committed, pending._place, pending.queued_at));
        }
        metrics.read_audit_batch.observe(count as f64);
        let outcome = match db.record_event_batch(&by_tenant).await {
            Ok(()) => Outcome::Committed,
            Err(err) => {
                tracing::error!(error = %err, events = count, "a batch of read events could not be recorded");
                if err.is_unavailable() {
                    Outcome::Unavailable
                } else {
                    Outcome::Failed
                }
            }
        };
        for (reply, place, queued_at) in replies {
            metrics
                .read_audit_delay
                .observe(queued_at.elapsed().as_secs_f64());
            drop(place);
            let _ = reply.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bunker_db::audit::Performer;

    fn pending(places: &Arc<Semaphore>) -> Pending {
        let (committed, _) = oneshot::channel();
        Pending {
            events: vec![(
                Uuid::nil(),
                AuditEvent::about(Performer::System, "UserGet", "user".to_owned()),
            )],
            committed,
            queued_at: Instant::now(),
            _place: places.clone().try_acquire_owned().unwrap(),
        }
    }

    #[test]
    fn a_batch_takes_every_waiting_tenant_in_turn_however_much_one_has_queued() {
        let mut queues = Queues::default();
        let places = Arc::new(Semaphore::new(QUEUE));
        let noisy = TenantId(2);
        let quiet = TenantId(3);
        let mut flood = VecDeque::new();
        for _ in 0..1000 {
            flood.push_back(pending(&places));
        }
        queues.tenants.insert(
            noisy,
            TenantQueue {
                places: places.clone(),
                waiting: flood,
            },
        );
        queues.turn.push_back(noisy);
        let quiet_places = Arc::new(Semaphore::new(QUEUE));
        queues.tenants.insert(
            quiet,
            TenantQueue {
                places: quiet_places.clone(),
                waiting: VecDeque::from([pending(&quiet_places)]),
            },
        );
        queues.turn.push_back(quiet);
        let first = next_batch(&mut queues);
        assert_eq!(first.len(), BATCH);
        assert!(
            first.iter().any(|(t, _)| *t == quiet),
            "the quiet tenant waits"
        );
        assert_eq!(
            &first[..2].iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            &[noisy, quiet]
        );
        // The noisy tenant keeps its turn; the quiet one, done, left the turn.
        assert_eq!(queues.turn, VecDeque::from([noisy]));
        let second = next_batch(&mut queues);
        assert!(second.iter().all(|(t, _)| *t == noisy));
    }
}
