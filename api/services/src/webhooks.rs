//! A tenant's webhook for user requests: when a request is opened, approved or cancelled, a
//! delivery is queued in the same transaction (`webhook_outbox`) and a background task of every
//! server posts it: `{"event", "usertoken", "requestuuid", "time"}` — never personal data — with
//! `X-Bunker-Signature: sha256=<hex HMAC-SHA256(secret, body)>`. A failed delivery is retried with
//! exponential backoff (up to [`MAX_ATTEMPTS`]); deliveries, retries and abandoned ones are logged
//! and counted ([`counts`]). Nothing here ever holds a request: the request only writes its row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::webhooks as store;
use bunker_db::{TenantId, TenantTx};
use bunker_keys::Label;
use bunker_tenancy::Caller;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::access::Command;
use crate::core::{Vault, VaultError};

/// Attempts before a delivery is given up (logged and counted as abandoned).
pub const MAX_ATTEMPTS: i32 = 8;
/// Deliveries claimed per tenant per round.
const BATCH: i64 = 20;
/// How long a receiver may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

static DELIVERED: AtomicU64 = AtomicU64::new(0);
static RETRIED: AtomicU64 = AtomicU64::new(0);
static ABANDONED: AtomicU64 = AtomicU64::new(0);

/// Deliveries made, attempts that failed and were retried, and deliveries given up, since start.
pub fn counts() -> (u64, u64, u64) {
    (
        DELIVERED.load(Ordering::Relaxed),
        RETRIED.load(Ordering::Relaxed),
        ABANDONED.load(Ordering::Relaxed),
    )
}

/// What happened to a request.
#[derive(Clone, Copy, Debug)]
pub enum RequestEvent {
    Opened,
    Approved,
    Cancelled,
}

impl RequestEvent {
    fn name(self) -> &'static str {
        match self {
            RequestEvent::Opened => "UserRequestCreated",
            RequestEvent::Approved => "UserRequestApproved",
            RequestEvent::Cancelled => "UserRequestCancelled",
        }
    }
}

fn secret_label(tenant: TenantId, row: &str) -> Label<'_> {
    Label {
        tenant: tenant.0,
        kind: "webhook_secret",
        row,
    }
}

/// Queues a delivery for `event` in the transaction, if the tenant has a webhook.
pub(crate) async fn notify(
    tx: &TenantTx<'_>,
    event: RequestEvent,
    user: Uuid,
    request: Uuid,
) -> Result<(), VaultError> {
    if store::webhook(tx).await?.is_none() {
        return Ok(());
    }
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = json!({
        "event": event.name(),
        "usertoken": user.to_string(),
        "requestuuid": request.to_string(),
        "time": time,
    })
    .to_string();
    store::enqueue(tx, Uuid::new_v4(), &body).await?;
    Ok(())
}

/// Refuses a webhook URL that is not HTTPS to a public host. Only root (the operator) may name
/// this machine or a private address, and only root may use plain HTTP (to this machine, for
/// development): a tenant admin must not make Bunker's servers call into their own network.
/// (A public name that resolves to a private address is not caught here: see docs/api.md.)
fn check_url(url: &str, root: bool) -> Result<(), VaultError> {
    let refused = || {
        VaultError::BadRequest(
            "webhook url must be an https:// URL to a public host (http:// only to localhost, by root)"
                .into(),
        )
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| refused())?;
    let inner = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64
        }
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some()
        }
        None => return Err(refused()),
    };
    match parsed.scheme() {
        "https" if !inner || root => Ok(()),
        "http" if inner && root => Ok(()),
        _ => Err(refused()),
    }
}

impl Vault {
    /// Sets (or removes) the webhook of `tenant`: root for any tenant, a tenant admin for its own.
    /// The secret (32 to 256 characters, shared with the receiver) is stored sealed.
    pub async fn set_webhook(
        &self,
        caller: &Caller,
        tenant: TenantId,
        webhook: Option<(String, String)>,
    ) -> Result<(), VaultError> {
        let allowed = caller.is_root() || (caller.is_admin() && caller.tenant.id == tenant);
        if !allowed {
            return Err(VaultError::Forbidden(
                "only root or the tenant's admin token may do this",
            ));
        }
        if let Some((url, secret)) = &webhook {
            check_url(url, caller.is_root())?;
            if !(32..=256).contains(&secret.chars().count()) {
                return Err(VaultError::BadRequest(
                    "webhook secret must be 32 to 256 characters".into(),
                ));
            }
        }
        let keys = self.keys(tenant);
        let actor = caller.actor();
        self.db
            .in_tenant(caller.tenant.id, move |tx| {
                Box::pin(async move {
                    let row = tenant.0.to_string();
                    let sealed = webhook
                        .as_ref()
                        .map(|(_, secret)| {
                            keys.records
                                .seal(&secret_label(tenant, &row), secret.as_bytes())
                        })
                        .transpose()?;
                    let set = webhook
                        .as_ref()
                        .zip(sealed.as_deref())
                        .map(|((url, _), sealed)| (url.as_str(), sealed));
                    if !store::set_webhook(tx, tenant, set).await? {
                        return Err(VaultError::NotFound);
                    }
                    let event = AuditEvent::about(
                        Performer::Token(actor),
                        Command::TenantUpdate.audit_action(),
                        format!("tenant:{tenant}/webhook"),
                    );
                    audit::record(tx, &event).await?;
                    Ok(())
                })
            })
            .await
    }

    /// One round of deliveries for `tenant`: claims what is due, posts each, and records the
    /// outcome. Returns how many were delivered.
    async fn deliver_due(
        &self,
        http: &reqwest::Client,
        tenant: TenantId,
    ) -> Result<usize, VaultError> {
        let keys = self.keys(tenant);
        let lease = TIMEOUT.as_secs_f64() * 2.0;
        let (webhook, due) = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let due = store::claim_due(tx, BATCH, lease).await?;
                    if due.is_empty() {
                        return Ok::<_, VaultError>((None, due));
                    }
                    let webhook = match store::webhook(tx).await? {
                        Some((url, sealed)) => {
                            let row = tenant.0.to_string();
                            let secret = keys.records.open(&secret_label(tenant, &row), &sealed)?;
                            Some((url, secret))
                        }
                        None => None,
                    };
                    Ok((webhook, due))
                })
            })
            .await?;
        let mut delivered = 0;
        for item in due {
            let outcome = match &webhook {
                // The webhook was removed since: nothing to deliver to.
                None => Outcome::Drop,
                Some((url, secret)) => post(http, url, secret, &item.body).await,
            };
            let next = match outcome {
                Outcome::Delivered => {
                    DELIVERED.fetch_add(1, Ordering::Relaxed);
                    delivered += 1;
                    None
                }
                Outcome::Drop => None,
                Outcome::Failed(why) if item.attempts + 1 >= MAX_ATTEMPTS => {
                    let (_, _, abandoned) = counts();
                    ABANDONED.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%tenant, delivery = %item.id, attempts = item.attempts + 1,
                        abandoned = abandoned + 1, reason = why, "webhook delivery given up");
                    None
                }
                Outcome::Failed(why) => {
                    RETRIED.fetch_add(1, Ordering::Relaxed);
                    let wait = self
                        .settings
                        .webhook_backoff
                        .saturating_mul(
                            2u32.saturating_pow(u32::try_from(item.attempts).unwrap_or(0)),
                        )
                        .min(MAX_BACKOFF);
                    tracing::info!(%tenant, delivery = %item.id, attempt = item.attempts + 1,
                        retry_in_ms = wait.as_millis() as u64, reason = why, "webhook delivery failed");
                    Some(wait)
                }
            };
            let id = item.id;
            self.db
                .in_tenant(tenant, move |tx| {
                    Box::pin(async move {
                        match next {
                            None => store::remove(tx, id).await?,
                            Some(wait) => store::retry_later(tx, id, wait.as_secs_f64()).await?,
                        }
                        Ok::<_, VaultError>(())
                    })
                })
                .await?;
        }
        if delivered > 0 {
            let (total, retried, abandoned) = counts();
            tracing::info!(%tenant, delivered, total, retried, abandoned, "webhook deliveries");
        }
        Ok(delivered)
    }
}

enum Outcome {
    Delivered,
    Drop,
    Failed(&'static str),
}

/// Posts one delivery, signed.
async fn post(http: &reqwest::Client, url: &str, secret: &[u8], body: &str) -> Outcome {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return Outcome::Failed("unusable secret");
    };
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let sent = http
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Bunker-Signature", format!("sha256={signature}"))
        .body(body.to_owned())
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => Outcome::Delivered,
        Ok(_) => Outcome::Failed("the receiver answered with an error status"),
        Err(err) if err.is_timeout() => Outcome::Failed("the receiver did not answer in time"),
        Err(_) => Outcome::Failed("the receiver could not be reached"),
    }
}

/// Makes AWS-LC the process's TLS provider for HTTP clients (reqwest takes the process default;
/// building one without it panics). Harmless if one is set already. Every process that builds an
/// HTTP client calls it first (the server's webhook task, the test kit, the bench).
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Delivers every tenant's due webhook calls every `every`, until the task is aborted.
pub fn spawn_webhooks(vault: Vault, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        install_tls_provider();
        let http = match reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(http) => http,
            Err(err) => {
                tracing::error!(error = %err, "webhooks: no HTTP client; deliveries wait");
                return;
            }
        };
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let tenants = match vault.db.tenant_ids().await {
                Ok(tenants) => tenants,
                Err(err) => {
                    tracing::warn!(error = %err, "webhooks: tenants not listed");
                    continue;
                }
            };
            for tenant in tenants {
                if let Err(err) = vault.deliver_due(&http, tenant).await {
                    tracing::warn!(%tenant, error = %err, "webhooks: a round failed");
                }
            }
        }
    })
}
