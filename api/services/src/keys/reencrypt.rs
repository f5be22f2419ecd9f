//! Master-key rotation, second half: re-sealing every value sealed under an older master-key
//! version, online, a batch per transaction, then retiring the old versions.

use std::time::Duration;

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::keys as key_store;
use bunker_db::reseal::{self, SealedAt};
use bunker_db::TenantId;
use bunker_keys::{Label, SealKeys};

use crate::access::Operation;
use crate::core::{
    audit_label, record_label, token_label, user_key_label, version_label, version_row, Vault,
    VaultError,
};
use crate::{consent, groups, webhooks};

/// How a kind of sealed value names its label from its row.
type LabelOf = for<'a> fn(TenantId, &'a str) -> Label<'a>;

/// Values re-sealed per transaction (of each kind).
const BATCH: i64 = 200;

/// What [`Vault::reencrypt_all`] reports as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// A tenant with `total` stale values is being re-sealed.
    Tenant { tenant: TenantId, total: i64 },
    /// This many more of them are re-sealed.
    Resealed(usize),
    /// The tenant is done.
    TenantDone,
    /// Tenants made before tenant keys were given theirs (`made`); waiting `wait` until every
    /// server seals with them (one cache lifetime).
    TenantKeysPending { made: usize, wait: Duration },
}

/// What a re-encryption did.
#[derive(Clone, Debug, Default)]
pub struct ReencryptReport {
    pub resealed: usize,
    /// Master-key versions retired.
    pub retired: Vec<i32>,
    /// Tenants given their first key of their own (made before tenant keys).
    pub tenant_keys_made: usize,
    /// Older tenant key versions retired (destroyed), across tenants.
    pub tenant_keys_retired: usize,
    /// Tenants left as they were because their keys are unavailable (their KMS key refuses).
    pub unavailable: Vec<TenantId>,
}

/// Whether `result` failed only because the tenant's keys are unavailable: that tenant is left for
/// a later run, the others go on.
fn skipped<T>(
    result: Result<T, VaultError>,
    tenant: TenantId,
    report: &mut ReencryptReport,
) -> Result<Option<T>, VaultError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(VaultError::TenantKeysUnavailable(cause)) => {
            tracing::warn!(
                tenant = tenant.0,
                cause = cause.describe(),
                "re-encryption skips a tenant whose keys are unavailable"
            );
            if !report.unavailable.contains(&tenant) {
                report.unavailable.push(tenant);
            }
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

impl Vault {
    /// The master-key version new values are sealed with.
    pub fn current_version(&self) -> i32 {
        self.keyring.get().current().version()
    }

    /// How many values of `tenant` are sealed under another key version than the tenant's current
    /// one (an older version of its key, or the keys once derived from the master key).
    pub async fn count_stale(&self, tenant: TenantId) -> Result<i64, VaultError> {
        let current = self.keys(tenant).await?.records.current_version();
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(
                    async move { Ok::<_, VaultError>(reseal::count_stale(tx, current).await?) },
                )
            })
            .await
    }

    /// Re-seals one batch of `tenant`'s stale values; returns how many were replaced. A value that
    /// changed meanwhile (a concurrent write) is left alone: it is either current already or found
    /// again by the next batch.
    pub async fn reseal_batch(&self, tenant: TenantId) -> Result<usize, VaultError> {
        let keys = self.keys(tenant).await?;
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let current = keys.records.current_version();
                    let mut replaced = 0;
                    for stale in reseal::stale_values(tx, current, BATCH).await? {
                        let (row, label_of, seal_keys): (String, LabelOf, &SealKeys) = match &stale
                            .at
                        {
                            SealedAt::User(token) => {
                                (token.to_string(), record_label, &keys.records)
                            }
                            SealedAt::UserKey(token) => {
                                (token.to_string(), user_key_label, &keys.records)
                            }
                            SealedAt::UserVersion(token, version) => {
                                (version_row(*token, *version), version_label, &keys.records)
                            }
                            SealedAt::AuditEvent(id) => (id.to_string(), audit_label, &keys.audit),
                            SealedAt::Token(uuid) => (uuid.to_string(), token_label, &keys.tokens),
                            SealedAt::Group(id) => {
                                (id.to_string(), groups::group_seal_label, &keys.records)
                            }
                            SealedAt::WaitingAgreement(id) => {
                                (id.to_string(), consent::waiting_label, &keys.records)
                            }
                            SealedAt::Session(hash) => (
                                hex::encode(hash),
                                crate::sessions::session_label,
                                &keys.records,
                            ),
                            SealedAt::WebhookSecret => {
                                (tenant.0.to_string(), webhooks::secret_label, &keys.records)
                            }
                        };
                        let label = label_of(tx.tenant(), &row);
                        let fresh =
                            seal_keys.seal(&label, &seal_keys.open(&label, &stale.sealed)?)?;
                        if reseal::replace(tx, &stale.at, &stale.sealed, &fresh).await? {
                            replaced += 1;
                        }
                    }
                    Ok(replaced)
                })
            })
            .await
    }

    /// Re-seals every tenant's stale values, then retires the older master-key and tenant key
    /// versions. First waits `settle`, so that every server has loaded the newest master key; gives
    /// every tenant made before tenant keys its own key and waits until every server seals with
    /// it (one tenant-key cache lifetime); then passes over all tenants until a pass finds nothing
    /// stale; then re-wraps tenant keys under the newest master key and retires what nothing
    /// needs. `progress` hears of each tenant's work as it goes (the CLI draws a bar with it).
    pub async fn reencrypt_all(
        &self,
        settle: Duration,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<ReencryptReport, VaultError> {
        tokio::time::sleep(settle).await;
        let current = self.current_version();
        let mut report = ReencryptReport::default();
        let tenants = self.db.tenant_ids().await?;
        let mut wait = Duration::ZERO;
        for tenant in &tenants {
            if skipped(self.ensure_tenant_key(*tenant).await, *tenant, &mut report)? == Some(true) {
                report.tenant_keys_made += 1;
            }
            wait = wait.max(self.pending_for(*tenant).await?);
        }
        if !wait.is_zero() {
            progress(Progress::TenantKeysPending {
                made: report.tenant_keys_made,
                wait,
            });
            tokio::time::sleep(wait).await;
        }
        for tenant in &tenants {
            self.tenant_keys.forget(*tenant);
        }
        loop {
            let mut stale_left = 0;
            for tenant in self.db.tenant_ids().await? {
                if report.unavailable.contains(&tenant) {
                    continue;
                }
                let Some(total) = skipped(self.count_stale(tenant).await, tenant, &mut report)?
                else {
                    continue;
                };
                if total == 0 {
                    continue;
                }
                progress(Progress::Tenant { tenant, total });
                loop {
                    let Some(done) = skipped(self.reseal_batch(tenant).await, tenant, &mut report)?
                    else {
                        break;
                    };
                    if done == 0 {
                        break;
                    }
                    report.resealed += done;
                    progress(Progress::Resealed(done));
                }
                progress(Progress::TenantDone);
                if let Some(left) = skipped(self.count_stale(tenant).await, tenant, &mut report)? {
                    stale_left += left;
                }
            }
            if stale_left == 0 {
                break;
            }
        }
        for tenant in self.db.tenant_ids().await? {
            if report.unavailable.contains(&tenant) {
                continue;
            }
            if let Some(retired) =
                skipped(self.finish_tenant_keys(tenant).await, tenant, &mut report)?
            {
                report.tenant_keys_retired += retired.len();
            }
        }
        // A master version still wrapping a tenant's key (one made meanwhile by a server that had
        // not loaded the newest) is kept for the next run.
        let older: Vec<i32> = if self.tenant_keys_under_older_master(current).await? {
            Vec::new()
        } else {
            self.db
                .master_keys()
                .await?
                .iter()
                .filter(|k| k.version < current && !k.retired)
                .map(|k| k.version)
                .collect()
        };
        let retiring = older.clone();
        self.db
            .in_tenant(TenantId::MAIN, move |tx| {
                Box::pin(async move {
                    for version in &retiring {
                        key_store::retire(tx, *version).await?;
                        let event = AuditEvent::about(
                            Performer::Operator,
                            Operation::KeysRetireMaster.audit_action(),
                            format!("master-key:v{version}"),
                        );
                        audit::record(tx, &event).await?;
                    }
                    Ok::<_, VaultError>(())
                })
            })
            .await?;
        report.retired = older;
        Ok(report)
    }
}
