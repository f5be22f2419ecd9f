//! The verifiable audit trail (see migration V15): linking events into each tenant's chain, in the
//! background, and verifying the chain (`bunker audit verify`).
//!
//! Link n's MAC is HMAC-SHA256, under the tenant's fingerprint key (derived from master-key
//! version 1, so a rotation never breaks the chain), over link n-1's MAC, n, and the event as
//! written: id, time, actor, action, target, user and a MAC of its opened details (re-encryption
//! replaces the sealed bytes, never what they hold). Only events older than a horizon are linked,
//! so that no transaction still writing an earlier event can be open when its place is taken.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bunker_db::chain::{self as store, ChainEvent, Link};
use bunker_db::{TenantId, TenantTx};
use bunker_keys::TenantKeys;
use uuid::Uuid;

use crate::core::{audit_label, Vault, VaultError};

/// Events linked per transaction at most.
/// How far ahead of the database's clock an event may be dated (servers' clocks differ).
const CLOCK_SKEW_SECONDS: i64 = 300;

const BATCH: i64 = 1000;

/// Something `verify` found wrong with a tenant's trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The event differs from what was linked (any column, or its details).
    Changed(Uuid),
    /// A linked event is gone.
    Deleted(Uuid),
    /// An event sits in the linked part of the trail but was never linked.
    Inserted(Uuid),
    /// A linked event's time puts it before the one linked ahead of it.
    Reordered { earlier: Uuid, later: Uuid },
    /// A link itself is missing or out of order (the chain table was altered).
    BrokenChain { position: i64 },
    /// Events old enough to have been linked are not: the chain was cut or stalled.
    Unlinked { count: i64 },
    /// The chain does not hold the head an operator recorded (`--head`).
    AnchorMismatch { position: i64 },
    /// Events dated in the future (beyond a few minutes of clock skew): they would wait unlinked.
    Future { count: i64 },
    /// The main trail records a tenant created and never deleted that no longer exists: its trail
    /// was removed without TenantDelete.
    TenantVanished(i64),
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Changed(id) => write!(f, "event {id} was changed after it was linked"),
            Finding::Deleted(id) => write!(f, "event {id} was deleted after it was linked"),
            Finding::Inserted(id) => {
                write!(
                    f,
                    "event {id} was inserted into the linked part of the trail"
                )
            }
            Finding::Reordered { earlier, later } => write!(
                f,
                "events {earlier} and {later} are out of the order they were linked in"
            ),
            Finding::BrokenChain { position } => {
                write!(f, "the chain itself was altered at link {position}")
            }
            Finding::Unlinked { count } => write!(
                f,
                "{count} event(s) old enough to be linked are not: the chain was cut or has stalled"
            ),
            Finding::AnchorMismatch { position } => write!(
                f,
                "link {position} is not the head recorded for it: the chain was cut or rewritten"
            ),
            Finding::Future { count } => write!(
                f,
                "{count} event(s) are dated in the future, where no link can reach them yet"
            ),
            Finding::TenantVanished(id) => write!(
                f,
                "tenant {id} was created and never deleted, yet it and its trail are gone"
            ),
        }
    }
}

/// What verifying one tenant's trail found.
#[derive(Clone, Debug, Default)]
pub struct ChainReport {
    /// Events verified (as many as there are links).
    pub verified: i64,
    /// Events newer than the last link (not verifiable yet).
    pub not_yet_linked: i64,
    pub findings: Vec<Finding>,
}

/// The head of a tenant's chain: the last link's position and MAC. Logged at every extension, so
/// that a copy outside the database can later prove the chain was not cut (`--head`).
pub type Head = (i64, Vec<u8>);

/// The heads each server has written or seen, per tenant: a chain found shorter than, or not
/// holding, the head remembered was cut, and is not extended over the cut.
pub type Heads = HashMap<TenantId, Head>;

/// What verification checks besides the chain itself.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Events older than this must be linked (the horizon and a few rounds of the task).
    pub stale_after: Duration,
    /// A head recorded earlier that the chain must still hold.
    pub anchor: Option<Head>,
}

impl Vault {
    /// Links the events of every tenant that are older than `horizon`; returns how many. A tenant
    /// whose chain was cut below the head in `heads` is not linked (logged); an error in one
    /// tenant does not stop the others.
    pub async fn extend_audit_chains(&self, horizon: Duration, heads: &mut Heads) -> usize {
        let tenants = match self.db.tenant_ids().await {
            Ok(tenants) => tenants,
            Err(err) => {
                tracing::warn!(error = %err, "linking audit events: no tenant list; will retry");
                return 0;
            }
        };
        let mut linked = 0;
        for tenant in tenants {
            loop {
                let remembered = heads.get(&tenant).cloned();
                match self.extend_audit_chain(tenant, horizon, remembered).await {
                    Ok((done, head)) => {
                        if let Some(head) = head {
                            if done > 0 {
                                tracing::info!(
                                    tenant = tenant.0,
                                    position = head.0,
                                    head = %hex::encode(&head.1),
                                    "audit chain extended"
                                );
                            }
                            heads.insert(tenant, head);
                        }
                        linked += done;
                        if done < BATCH as usize {
                            break;
                        }
                    }
                    Err(VaultError::AuditChainCut) => {
                        tracing::error!(
                            tenant = tenant.0,
                            "the audit chain no longer holds the head this server linked: it was \
                             cut or rewritten; not extending it (run `bunker audit verify`)"
                        );
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(tenant = tenant.0, error = %err, "linking audit events failed; will retry");
                        break;
                    }
                }
            }
        }
        linked
    }

    /// Links one batch of `tenant`'s events older than `horizon`, after checking that the chain
    /// still holds `remembered`; returns how many and the head. None when another server is
    /// linking this tenant at the same time.
    async fn extend_audit_chain(
        &self,
        tenant: TenantId,
        horizon: Duration,
        remembered: Option<Head>,
    ) -> Result<(usize, Option<Head>), VaultError> {
        let keys = self.keys(tenant).await?;
        let horizon = i64::try_from(horizon.as_secs()).unwrap_or(i64::MAX);
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    if !store::try_lock(tx).await? {
                        return Ok((0, remembered));
                    }
                    if let Some((position, mac)) = &remembered {
                        let held = store::link_at(tx, *position).await?;
                        if held.is_none_or(|link| &link.mac != mac) {
                            return Err(VaultError::AuditChainCut);
                        }
                    }
                    let last = store::last_link(tx).await?;
                    let after = last.as_ref().map(|l| (l.occurred_at, l.event_id));
                    let events = store::unlinked_events(tx, after, horizon, BATCH).await?;
                    let (mut position, mut previous) = match last {
                        Some(link) => (link.position, Some(link.mac)),
                        None => (0, None),
                    };
                    let mut links = Vec::with_capacity(events.len());
                    for event in &events {
                        // A position no chain can reach was written by someone else.
                        position = position.checked_add(1).ok_or(VaultError::AuditChainCut)?;
                        let mac = link_mac(&keys, tx, previous.as_deref(), position, event);
                        links.push(Link {
                            position,
                            event_id: event.id,
                            occurred_at: event.occurred_at,
                            mac: mac.to_vec(),
                        });
                        previous = Some(mac.to_vec());
                    }
                    store::insert_links(tx, &links).await?;
                    let head = previous.map(|mac| (position, mac));
                    Ok::<_, VaultError>((links.len(), head))
                })
            })
            .await
    }

    /// Recomputes `tenant`'s chain and reports every event changed, deleted, inserted or moved
    /// in the linked part of its trail, events old enough that are not linked, a recorded head
    /// the chain no longer holds, and (main tenant) tenants gone without TenantDelete.
    pub async fn verify_audit_chain(
        &self,
        tenant: TenantId,
        options: VerifyOptions,
    ) -> Result<ChainReport, VaultError> {
        let keys = self.keys(tenant).await?;
        let stale = i64::try_from(options.stale_after.as_secs()).unwrap_or(i64::MAX);
        self.db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let mut report = ChainReport::default();
                    let mut previous: Option<Link> = None;
                    // The time order of the events as they are now, to find moved ones.
                    let mut previous_event: Option<(SystemTime, Uuid)> = None;
                    loop {
                        let from = match previous.as_ref().map(|l| l.position.checked_add(1)) {
                            None => 1,
                            Some(Some(next)) => next,
                            // The last possible position (the chain was altered: reported).
                            Some(None) => break,
                        };
                        let batch = store::links_with_events(tx, from, BATCH).await?;
                        let done = batch.len() < BATCH as usize;
                        for (link, event) in batch {
                            let now_at = event.as_ref().map(|e| (e.occurred_at, e.id));
                            check_link(&keys, tx, previous.as_ref(), &link, event, &mut report);
                            if let (Some(before), Some(here)) = (previous_event, now_at) {
                                if here < before {
                                    report.findings.push(Finding::Reordered {
                                        earlier: before.1,
                                        later: here.1,
                                    });
                                }
                            }
                            if now_at.is_some() {
                                previous_event = now_at;
                            }
                            report.verified += 1;
                            previous = Some(link);
                        }
                        if done {
                            break;
                        }
                    }
                    let until = previous.as_ref().map(|l| (l.occurred_at, l.event_id));
                    if let Some(until) = until {
                        for id in store::unlinked_before(tx, until, BATCH).await? {
                            report.findings.push(Finding::Inserted(id));
                        }
                    }
                    let stale = store::count_unlinked_older_than(tx, until, stale).await?;
                    if stale > 0 {
                        report.findings.push(Finding::Unlinked { count: stale });
                    }
                    if let Some(lowest) = store::lowest_position(tx).await?.filter(|p| *p < 1) {
                        report
                            .findings
                            .push(Finding::BrokenChain { position: lowest });
                    }
                    let future = store::count_future(tx, CLOCK_SKEW_SECONDS).await?;
                    if future > 0 {
                        report.findings.push(Finding::Future { count: future });
                    }
                    if let Some((position, mac)) = &options.anchor {
                        let held = store::link_at(tx, *position).await?;
                        if held.is_none_or(|link| &link.mac != mac) {
                            report.findings.push(Finding::AnchorMismatch {
                                position: *position,
                            });
                        }
                    }
                    if tx.tenant() == TenantId::MAIN {
                        for id in store::vanished_tenants(tx).await? {
                            report.findings.push(Finding::TenantVanished(id));
                        }
                    }
                    report.not_yet_linked = store::count_after(tx, until).await?;
                    Ok::<_, VaultError>(report)
                })
            })
            .await
    }
}

/// Checks one link against the one before it and the event it names.
fn check_link(
    keys: &TenantKeys,
    tx: &TenantTx<'_>,
    previous: Option<&Link>,
    link: &Link,
    event: Option<ChainEvent>,
    report: &mut ChainReport,
) {
    let expected_position = previous.map_or(Some(1), |p| p.position.checked_add(1));
    if Some(link.position) != expected_position {
        report.findings.push(Finding::BrokenChain {
            position: expected_position.unwrap_or(link.position),
        });
    }
    let Some(event) = event else {
        report.findings.push(Finding::Deleted(link.event_id));
        return;
    };
    // The link's copy of the time orders the chain; it must be the event's.
    if link.occurred_at != event.occurred_at {
        report.findings.push(Finding::BrokenChain {
            position: link.position,
        });
    }
    let mac = link_mac(
        keys,
        tx,
        previous.map(|p| p.mac.as_slice()),
        link.position,
        &event,
    );
    if mac.as_slice() != link.mac.as_slice() {
        report.findings.push(Finding::Changed(event.id));
    }
}

/// The MAC of link `position` over `event`, chained to the link before it.
fn link_mac(
    keys: &TenantKeys,
    tx: &TenantTx<'_>,
    previous: Option<&[u8]>,
    position: i64,
    event: &ChainEvent,
) -> [u8; 32] {
    let mut message = Vec::with_capacity(256);
    let mut field = |bytes: &[u8]| {
        message.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        message.extend_from_slice(bytes);
    };
    field(previous.unwrap_or_default());
    field(&tx.tenant().0.to_be_bytes());
    field(&position.to_be_bytes());
    field(event.id.as_bytes());
    field(&event.micros.to_be_bytes());
    field(event.actor_kind.as_bytes());
    field(
        event
            .actor_token_id
            .as_ref()
            .map_or(&[][..], |t| t.as_bytes()),
    );
    field(event.action.as_bytes());
    field(event.target.as_bytes());
    field(event.user_token.as_ref().map_or(&[][..], |t| t.as_bytes()));
    field(&details_mac(keys, tx.tenant(), event));
    keys.fingerprint.blind_index("audit-chain", &message)
}

/// A MAC of an event's opened details (what they say, not how they are sealed), or of the sealed
/// bytes when they do not open (so that the link still pins them down).
fn details_mac(keys: &TenantKeys, tenant: TenantId, event: &ChainEvent) -> [u8; 32] {
    let Some(sealed) = &event.details else {
        return keys.fingerprint.blind_index("audit-details-none", &[]);
    };
    let row = event.id.to_string();
    match keys.audit.open(&audit_label(tenant, &row), sealed) {
        Ok(plain) => keys.fingerprint.blind_index("audit-details", &plain),
        Err(_) => keys.fingerprint.blind_index("audit-details-sealed", sealed),
    }
}

/// Links old enough events every `every`, from every server (each tenant is linked by one server
/// at a time), remembering the heads it wrote or saw; an error is logged and the next round tries
/// again.
pub fn spawn_chainer(
    vault: Vault,
    every: Duration,
    horizon: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heads = Heads::new();
        loop {
            ticks.tick().await;
            // A round runs as a task of its own, so that a panic (a bug) costs one round, not
            // the chaining of every tenant from then on; the heads survive it.
            let (round_vault, mut round_heads) = (vault.clone(), heads.clone());
            let round = tokio::spawn(async move {
                round_vault
                    .extend_audit_chains(horizon, &mut round_heads)
                    .await;
                round_heads
            });
            match round.await {
                Ok(updated) => heads = updated,
                Err(err) => {
                    tracing::error!(error = %err, "a round of audit linking failed; will retry")
                }
            }
        }
    })
}
