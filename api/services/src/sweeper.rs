//! The expiry sweeper: forgets users and purges tokens whose `finaltime` or sliding window has
//! passed, and expires agreements past their final time, tenant by tenant, each in its own transaction with an audit event whose actor is Bunker itself.

use std::time::Duration;

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::{app_sessions, files, shared_records, tokens};
use tokio::task::JoinHandle;

use crate::access::Operation;
use crate::consent::{expire_due, forget_user};
use crate::core::{UserEvent, Vault, VaultError};

/// How often the store is listed for objects without a row.
const ORPHAN_SCAN_PERIOD: Duration = Duration::from_secs(3600);

/// Users forgotten per transaction.
const BATCH: i64 = 100;

/// Sweeps every `every` until the task is aborted.
pub fn spawn_sweeper(vault: Vault, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Objects without a row are looked for at the first sweep and about hourly after: a
        // listing of the whole store costs more than a sweep of the database.
        let scan_every = (ORPHAN_SCAN_PERIOD.as_secs() / every.as_secs().max(1)).max(1);
        let mut sweeps: u64 = 0;
        loop {
            ticks.tick().await;
            let swept = vault.sweep().await;
            let outcome = if swept.is_ok() { "ok" } else { "failed" };
            vault
                .metrics
                .sweeper_runs
                .with_label_values(&[outcome])
                .inc();
            match swept {
                Ok(0) => {}
                Ok(n) => tracing::info!(forgotten = n, "expired users forgotten"),
                Err(err) => tracing::warn!(error = %err, "expiry sweep failed"),
            }
            if sweeps.is_multiple_of(scan_every) {
                match vault.sweep_orphan_files().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "file objects without a row removed"),
                    Err(err) => tracing::warn!(error = %err, "the sweep of file objects failed"),
                }
            }
            sweeps += 1;
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
                let keys = match self.keys(tenant).await {
                    Ok(keys) => keys,
                    // Its KMS key refuses: the tenant waits, the other tenants are swept.
                    Err(VaultError::TenantKeysUnavailable(cause)) => {
                        tracing::warn!(
                            tenant = tenant.0,
                            cause = cause.describe(),
                            "the expiry sweep skips a tenant whose keys are unavailable"
                        );
                        break;
                    }
                    Err(err) => return Err(err),
                };
                let window = self.settings.restore_window_seconds;
                let (swept, expired_files, most) = self
                    .db
                    .in_tenant(tenant, move |tx| {
                        Box::pin(async move {
                            // Another replica sweeps this tenant now: its turn, not ours.
                            if !tx.try_tenant_lock("bunker-sweep").await? {
                                return Ok::<_, VaultError>((Vec::new(), Vec::new(), 0));
                            }
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
                            let sessions = app_sessions::purge_expired(tx, BATCH).await?;
                            let shared = shared_records::purge_expired(tx, BATCH).await?;
                            let files = files::purge_expired(tx, BATCH).await?;
                            let ended =
                                bunker_db::users::purge_restorable(tx, window, BATCH).await?;
                            for token in &ended {
                                let event =
                                    UserEvent::operation(Operation::RestoreWindowEnded, *token);
                                let id = audit::new_event_id();
                                let sealed =
                                    event.seal(&keys, tx.tenant(), id, Performer::System)?;
                                audit::record_with_id(tx, id, &sealed).await?;
                            }
                            for (token, _) in &files {
                                let event = UserEvent::operation(Operation::FileExpired, *token);
                                let id = audit::new_event_id();
                                let sealed =
                                    event.seal(&keys, tx.tenant(), id, Performer::System)?;
                                audit::record_with_id(tx, id, &sealed).await?;
                            }
                            let most = [
                                expired.len(),
                                tokens.len(),
                                agreements,
                                sessions as usize,
                                shared as usize,
                                files.len(),
                                ended.len(),
                            ]
                            .into_iter()
                            .max()
                            .unwrap_or(0);
                            Ok::<_, VaultError>((expired, files, most))
                        })
                    })
                    .await?;
                forgotten += swept.len();
                // The objects of what was forgotten or expired: removed now that the rows are.
                // A store that fails leaves them to the listing for objects without a row.
                for token in &swept {
                    self.remove_files_after_delete(tenant, Some(*token)).await;
                }
                for (token, file) in expired_files {
                    if let Err(err) = self.remove_file_object(tenant, token, file).await {
                        tracing::warn!(error = %err, "an expired file's object is left to the sweeper");
                    }
                }
                if most < BATCH as usize {
                    break;
                }
            }
        }
        Ok(forgotten)
    }
}
