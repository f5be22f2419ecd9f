//! A tenant's webhook for user requests and consent: when a request is opened, approved or
//! cancelled, or an agreement withdrawn, revoked or expired, a delivery is queued in the same
//! transaction (`webhook_outbox`) and a background task of every server posts it:
//! `{"event", "usertoken", "requestuuid" | "brief", "time"}` — never personal data — with
//! `X-Bunker-Signature: sha256=<hex HMAC-SHA256(secret, body)>`. A failed delivery is retried with
//! exponential backoff (up to [`MAX_ATTEMPTS`]); deliveries, retries and abandoned ones are logged
//! and counted ([`counts`]). Nothing here ever holds a request: the request only writes its row.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bunker_db::audit::{self, AuditEvent, Performer};
use bunker_db::webhooks as store;
use bunker_db::{TenantId, TenantTx};
use bunker_keys::Label;
use bunker_tenancy::Caller;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::access::Command;
use crate::core::{Vault, VaultError};

/// Attempts before a delivery is given up (logged and counted as abandoned).
pub const MAX_ATTEMPTS: i32 = 8;
/// Deliveries claimed per tenant per round.
const BATCH: i64 = 5;
/// Rounds a tenant's backlog may go on for, one after another, before the next tick.
const MAX_ROUNDS: usize = 200;
/// Tenants delivered at once.
const PARALLEL: usize = 16;
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

/// A change of an agreement the tenant's backend must act on (stop processing).
#[derive(Clone, Copy, Debug)]
pub enum ConsentChange {
    Withdrawn,
    Revoked,
    Expired,
}

impl ConsentChange {
    fn name(self) -> &'static str {
        match self {
            ConsentChange::Withdrawn => "AgreementWithdrawn",
            ConsentChange::Revoked => "AgreementRevoked",
            ConsentChange::Expired => "AgreementExpired",
        }
    }
}

/// Where a tenant's webhook secret is sealed (row: the tenant's id).
pub(crate) fn secret_label(tenant: TenantId, row: &str) -> Label<'_> {
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
    enqueue(
        tx,
        json!({
            "event": event.name(),
            "usertoken": user.to_string(),
            "requestuuid": request.to_string(),
        }),
    )
    .await
}

/// Queues a delivery for a change of `user`'s agreement to `brief`, if the tenant has a webhook.
pub(crate) async fn notify_consent(
    tx: &TenantTx<'_>,
    change: ConsentChange,
    user: Uuid,
    brief: &str,
) -> Result<(), VaultError> {
    enqueue(
        tx,
        json!({
            "event": change.name(),
            "usertoken": user.to_string(),
            "brief": brief,
        }),
    )
    .await
}

/// Queues `body` with the time added, if the tenant has a webhook.
async fn enqueue(tx: &TenantTx<'_>, mut body: serde_json::Value) -> Result<(), VaultError> {
    if store::webhook(tx).await?.is_none() {
        return Ok(());
    }
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Some(map) = body.as_object_mut() {
        map.insert("time".into(), json!(time));
    }
    store::enqueue(tx, Uuid::new_v4(), &body.to_string()).await?;
    Ok(())
}

/// Whether `ip` is a public unicast address: not this machine, a private or shared network, a
/// link, documentation, benchmarking, multicast or reserved range, nor a v6 form that embeds or
/// translates to IPv4 (mapped, compatible, NAT64, 6to4, Teredo).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, c, _] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_documentation()
                || ip.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (b & 0xc0) == 64)
                || (a == 198 && (b & 0xfe) == 18)
                || (a == 192 && b == 0 && c == 0)
                || (a == 192 && b == 88 && c == 99))
        }
        IpAddr::V6(ip) => {
            let s = ip.segments();
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0)
                || (s[0] == 0
                    && s[1] == 0
                    && s[2] == 0
                    && s[3] == 0
                    && s[4] == 0xffff
                    && s[5] == 0)
                || (s[0] == 0x100 && s[1] == 0 && s[2] == 0 && s[3] == 0)
                || (s[0] == 0x2001 && s[1] == 2 && s[2] == 0)
                || (s[0] == 0x64 && s[1] == 0xff9b)
                || s[0] == 0x2002
                || (s[0] == 0x2001 && s[1] == 0)
                || (s[0] == 0x2001 && s[1] == 0xdb8))
        }
    }
}

/// Refuses a webhook URL that is not HTTPS to a public host. Only root (the operator) may name
/// this machine or a private address, or use plain HTTP (for development): a tenant admin must not
/// make Bunker's servers call into their own network. A tenant admin's webhook is held to public
/// addresses again at each connection, whatever its name resolves to ([`PublicOnly`]).
pub fn check_webhook(url: &str, secret: &str, root: bool) -> Result<(), VaultError> {
    let refused = || {
        VaultError::BadRequest(
            "webhook url must be an https:// URL to a public host (http:// only to localhost, by root)"
                .into(),
        )
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| refused())?;
    let (inner, local) = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            // Names are checked again when resolved; these never resolve anywhere else.
            let local = name == "localhost" || name.ends_with(".localhost");
            (local || !name.contains('.'), local)
        }
        Some(url::Host::Ipv4(ip)) => (!is_public(IpAddr::V4(ip)), ip.is_loopback()),
        Some(url::Host::Ipv6(ip)) => (!is_public(IpAddr::V6(ip)), ip.is_loopback()),
        None => return Err(refused()),
    };
    match parsed.scheme() {
        "https" if !inner || root => {}
        "http" if local && root => {}
        _ => return Err(refused()),
    }
    if !(32..=256).contains(&secret.chars().count()) {
        return Err(VaultError::BadRequest(
            "webhook secret must be 32 to 256 characters".into(),
        ));
    }
    Ok(())
}

/// Resolves a webhook's host to its public addresses only: a name that resolves (or is made to
/// resolve, later) to this machine or a private network reaches nothing.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err("the webhook's host has no public address".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP clients deliveries go out on: one held to public addresses (tenant admins'
/// webhooks) and one that is not (root's).
pub(crate) struct Clients {
    public: reqwest::Client,
    trusted: reqwest::Client,
}

impl Clients {
    fn new() -> Result<Self, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
        };
        Ok(Clients {
            public: builder().dns_resolver(Arc::new(PublicOnly)).build()?,
            trusted: builder().build()?,
        })
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
        let trusted = caller.is_root();
        let removed = webhook.is_none();
        if let Some((url, secret)) = &webhook {
            check_webhook(url, secret, trusted)?;
        }
        let keys = self.keys(tenant).await?;
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
                    if !store::set_webhook(tx, tenant, set, trusted).await? {
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
            .await?;
        // Removed: what was queued for it goes too (it would otherwise go to the next webhook).
        if removed {
            self.db
                .in_tenant(tenant, |tx| {
                    Box::pin(async move {
                        store::clear(tx).await?;
                        Ok::<_, VaultError>(())
                    })
                })
                .await?;
        }
        Ok(())
    }

    /// One round of deliveries for `tenant`: claims what is due, posts each, and records the
    /// outcome. Returns how many were delivered.
    async fn deliver_due(&self, http: &Clients, tenant: TenantId) -> Result<usize, VaultError> {
        let keys = self.keys(tenant).await?;
        // Long enough for the whole batch, so that no other server sends one of it meanwhile.
        let lease = TIMEOUT.as_secs_f64() * (BATCH as f64 + 2.0);
        let (webhook, due) = self
            .db
            .in_tenant(tenant, move |tx| {
                Box::pin(async move {
                    let due = store::claim_due(tx, BATCH, lease).await?;
                    if due.is_empty() {
                        return Ok::<_, VaultError>((None, due));
                    }
                    let webhook = match store::webhook(tx).await? {
                        Some(hook) => {
                            let row = tenant.0.to_string();
                            let secret = keys
                                .records
                                .open(&secret_label(tenant, &row), &hook.secret)?;
                            Some((hook.url, secret, hook.trusted))
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
                Some((url, secret, trusted)) => {
                    let client = if *trusted {
                        &http.trusted
                    } else {
                        &http.public
                    };
                    post(client, url, secret, &item.body, *trusted).await
                }
            };
            let next = match outcome {
                Outcome::Delivered => {
                    DELIVERED.fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .webhook_deliveries
                        .with_label_values(&["delivered"])
                        .inc();
                    delivered += 1;
                    None
                }
                Outcome::Drop => None,
                Outcome::Failed(why) if item.attempts + 1 >= MAX_ATTEMPTS => {
                    let abandoned = ABANDONED.fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .webhook_deliveries
                        .with_label_values(&["abandoned"])
                        .inc();
                    tracing::warn!(%tenant, delivery = %item.id, attempts = item.attempts + 1,
                        abandoned = abandoned + 1, reason = why, "webhook delivery given up");
                    None
                }
                Outcome::Failed(why) => {
                    RETRIED.fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .webhook_deliveries
                        .with_label_values(&["retried"])
                        .inc();
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
async fn post(
    http: &reqwest::Client,
    url: &str,
    secret: &[u8],
    body: &str,
    trusted: bool,
) -> Outcome {
    // An address in the URL itself is not resolved: held to public addresses here.
    let literal = reqwest::Url::parse(url).ok().and_then(|u| match u.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    });
    if !trusted && literal.is_some_and(|ip| !is_public(ip)) {
        return Outcome::Failed("the webhook's address is not public");
    }
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

/// Delivers every tenant's due webhook calls every `every`, until the task is aborted. Tenants are
/// delivered side by side (at most [`PARALLEL`] at once), each tenant's in order, so that one
/// tenant's slow or silent receiver delays only that tenant's deliveries.
pub fn spawn_webhooks(vault: Vault, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        install_tls_provider();
        let clients = match Clients::new() {
            Ok(clients) => Arc::new(clients),
            Err(err) => {
                tracing::error!(error = %err, "webhooks: no HTTP client; deliveries wait");
                return;
            }
        };
        let busy: Arc<Mutex<HashSet<TenantId>>> = Arc::default();
        let slots = Arc::new(Semaphore::new(PARALLEL));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let tenants = match vault.db.webhook_tenant_ids().await {
                Ok(tenants) => tenants,
                Err(err) => {
                    tracing::warn!(error = %err, "webhooks: tenants not listed");
                    continue;
                }
            };
            for tenant in tenants {
                if !busy.lock().map(|mut b| b.insert(tenant)).unwrap_or(false) {
                    continue;
                }
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (vault, clients, busy) = (vault.clone(), clients.clone(), busy.clone());
                tokio::spawn(async move {
                    // A backlog (a revocation of many agreements) drains round after round while
                    // every delivery of a round succeeds; a failing receiver waits for its backoff.
                    for _ in 0..MAX_ROUNDS {
                        match vault.deliver_due(&clients, tenant).await {
                            Ok(delivered) if delivered as i64 >= BATCH => continue,
                            Ok(_) => break,
                            Err(err) => {
                                tracing::warn!(%tenant, error = %err, "webhooks: a round failed");
                                break;
                            }
                        }
                    }
                    if let Ok(mut busy) = busy.lock() {
                        busy.remove(&tenant);
                    }
                    drop(slot);
                });
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.0.0.8",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.1.2.3",
            "100.64.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2001::1",
            "2001:db8::1",
            "ff02::1",
            "::ffff:0:7f00:1",
            "2001:2::1",
            "100::1",
            "192.88.99.1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(!is_public(ip), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn a_tenant_admin_names_only_public_https_hosts() {
        let secret = "s".repeat(40);
        for refused in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://127.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost./",
            "https://evil@127.0.0.1/",
            "https://vm/",
            "https://ip6-localhost/",
            "https://0.0.0.0/",
            "https://[::]/",
            "https://[64:ff9b::7f00:1]/",
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
        ] {
            assert!(check_webhook(refused, &secret, false).is_err(), "{refused}");
        }
        assert!(check_webhook("https://hooks.example.com/bunker", &secret, false).is_ok());
        // Root (the operator) may name this machine, and use plain HTTP to it.
        assert!(check_webhook("http://127.0.0.1:8080/hook", &secret, true).is_ok());
        assert!(check_webhook("http://hooks.example.com/", &secret, true).is_err());
        assert!(check_webhook("https://hooks.example.com/", "short", false).is_err());
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_this_machine_reaches_nothing() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(PublicOnly.resolve(name).await.is_err());
    }
}
