//! The expiry sweeper: forgets users and purges tokens whose `finaltime` or sliding window has
//! passed, and expires agreements past their final time, tenant by tenant, each in its own transaction with an audit event whose actor is Bunker itself.

use std::time::Duration;

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::tokens;
use tokio::task::JoinHandle;

use crate::access::Operation;
use crate::consent::{expire_due, forget_user};
use crate::core::{UserEvent, Vault, VaultError};

/// Users forgotten per transaction.
const BATCH: i64 = 100;

/// Sweeps every `every` until the task is aborted.
pub fn spawn_sweeper(vault: Vault, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match vault.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(forgotten = n, "expired users forgotten"),
                Err(err) => tracing::warn!(error = %err, "expiry sweep failed"),
            }
        }
    })
}

impl Vault {
    /// One sweep over all tenants; returns how many users were forgotten.
    pub async fn sweep(&self) -> Result<usize, VaultError> {
        let mut forgotten = 0;
        for tenant in self.db.tenant_ids().await? {
            // Expired role and user tokens already fail to authenticate; this only tidies them.
            self.db.delete_expired_access_tokens(tenant).await?;
            loop {
                let keys = self.keys(tenant);
                let (swept, most) = self
                    .db
                    .in_tenant(tenant, move |tx| {
                        Box::pin(async move {
                            let expired = bunker_db::users::lock_expired(tx, BATCH).await?;
                            for token in &expired {
                                let action = Operation::UserExpired.audit_action();
                                forget_user(tx, &keys, *token, action, Performer::System).await?;
                                let event = UserEvent::operation(Operation::UserExpired, *token);
                                let id = audit::new_event_id();
                                let sealed =
                                    event.seal(&keys, tx.tenant(), id, Performer::System)?;
                                audit::record_with_id(tx, id, &sealed).await?;
                            }
                            let tokens = tokens::lock_expired(tx, BATCH).await?;
                            tokens::delete(tx, &tokens).await?;
                            for token in &tokens {
                                let event = AuditEvent::about(
                                    Performer::System,
                                    Operation::TokenExpired.audit_action(),
                                    format!("token:{token}"),
                                );
                                audit::record(tx, &event).await?;
                            }
                            let agreements = expire_due(tx, &keys, BATCH).await?;
                            let most = expired.len().max(tokens.len()).max(agreements);
                            Ok::<_, VaultError>((expired.len(), most))
                        })
                    })
                    .await?;
                forgotten += swept;
                if most < BATCH as usize {
                    break;
                }
            }
        }
        Ok(forgotten)
    }
}
