//! The group commit of read events. A read (UserGet, TokenGet) runs in a transaction that writes
//! nothing, then hands its audit event here and waits: events arriving while a batch commits are
//! written together in the next one, so that many reads share one commit (one WAL flush) instead of
//! paying one each. The answer leaves only once its event is committed; if the batch fails, every
//! read in it fails.

use bunker_db::audit::AuditEvent;
use bunker_db::{Database, TenantId};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::VaultError;

/// Requests waiting at most (beyond this they wait for the channel).
const QUEUE: usize = 4096;
/// Events written in one batch at most.
const BATCH: usize = 512;

struct Pending {
    tenant: TenantId,
    events: Vec<(Uuid, AuditEvent)>,
    committed: oneshot::Sender<Outcome>,
}

/// How a batch ended, for every read in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Committed,
    /// The database was unreachable: the reads may be retried.
    Unavailable,
    Failed,
}

/// The handle requests send their read events to.
#[derive(Clone)]
pub struct ReadAudit {
    queue: mpsc::Sender<Pending>,
}

impl ReadAudit {
    /// Starts the writer on the current Tokio runtime.
    pub fn spawn(db: Database) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(db, receiver));
        ReadAudit { queue }
    }

    /// Records `events` of `tenant` and returns once they are committed.
    pub async fn record(
        &self,
        tenant: TenantId,
        events: Vec<(Uuid, AuditEvent)>,
    ) -> Result<(), VaultError> {
        let (committed, done) = oneshot::channel();
        let pending = Pending {
            tenant,
            events,
            committed,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| VaultError::AuditFailed)?;
        match done.await {
            Ok(Outcome::Committed) => Ok(()),
            Ok(Outcome::Unavailable) => Err(VaultError::AuditUnavailable),
            _ => Err(VaultError::AuditFailed),
        }
    }
}

async fn write_batches(db: Database, mut receiver: mpsc::Receiver<Pending>) {
    while let Some(first) = receiver.recv().await {
        let mut waiting = vec![first];
        let mut count = waiting.iter().map(|p| p.events.len()).sum::<usize>();
        while count < BATCH {
            match receiver.try_recv() {
                Ok(next) => {
                    count += next.events.len();
                    waiting.push(next);
                }
                Err(_) => break,
            }
        }
        let mut by_tenant: Vec<(TenantId, Vec<(Uuid, AuditEvent)>)> = Vec::new();
        let mut replies = Vec::with_capacity(waiting.len());
        for pending in waiting {
            match by_tenant.iter_mut().find(|(t, _)| *t == pending.tenant) {
                Some((_, events)) => events.extend(pending.events),
                None => by_tenant.push((pending.tenant, pending.events)),
            }
            replies.push(pending.committed);
        }
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
        for reply in replies {
            let _ = reply.send(outcome);
        }
    }
}
