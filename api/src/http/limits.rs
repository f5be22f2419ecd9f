//! Rate limits, per server (replica), with governor's generic cell rate algorithm.
//!
//! Before authentication, by client address: every request but the probes (`BUNKER_RATE_IP`), and
//! more strictly the public commands, which need no token (`BUNKER_RATE_PUBLIC`). After
//! authentication, by tenant (`BUNKER_RATE_TENANT`, or the tenant's own quota, which only root
//! sets), by access token (`BUNKER_RATE_TOKEN`), and more strictly by token for the costly
//! commands (`BUNKER_RATE_COSTLY`: search, bulk, reports, cross-tenant). A tenant's and a token's
//! allowance is spent only by requests that authenticated, so nobody without the token can use up
//! a tenant's quota.
//!
//! A refused request gets 429 with `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit`
//! headers, is counted in `bunker_rate_limited_total{kind}`, and is logged once per key and
//! minute with how many were refused since (an address only as a keyed hash: it is personal data).
//!
//! The client address is the connection's, or, when the connection comes from a network in
//! `BUNKER_TRUSTED_PROXIES`, the right-most `X-Forwarded-For` entry that is not itself a trusted
//! proxy.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bunker_db::control::TenantRecord;
use bunker_db::TenantId;
use bunker_services::access::{Command, CommandClass};
use bunker_services::core::rate::Rate;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use poem::http::HeaderMap;
use prometheus::IntCounterVec;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The limits a server applies (none: not limited).
#[derive(Clone, Debug, Default)]
pub struct RateSettings {
    /// Per tenant, unless the tenant has its own quota.
    pub tenant: Option<Rate>,
    /// Per access token.
    pub token: Option<Rate>,
    /// Per client address, every request.
    pub ip: Option<Rate>,
    /// Per client address, the public commands.
    pub public: Option<Rate>,
    /// Per access token, the costly commands.
    pub costly: Option<Rate>,
    /// Per client address, sign-in attempts (UserLogin's codes, the DPO portal's tokens).
    pub login: Option<Rate>,
    /// Networks whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Tenant,
    Token,
    Ip,
    Public,
    Costly,
    Login,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tenant => "tenant",
            Kind::Token => "token",
            Kind::Ip => "ip",
            Kind::Public => "public",
            Kind::Costly => "costly",
            Kind::Login => "login",
        }
    }

    fn whose(self) -> &'static str {
        match self {
            Kind::Tenant => "the tenant's",
            Kind::Token => "the access token's",
            Kind::Ip | Kind::Public => "the client address's",
            Kind::Login => "the client address's sign-in",
            Kind::Costly => "the access token's search, bulk and report",
        }
    }
}

/// A request over a limit.
#[derive(Clone, Copy, Debug)]
pub struct Refusal {
    pub kind: Kind,
    pub rate: Rate,
    /// When the next request would be let in.
    pub retry_after: Duration,
}

impl Refusal {
    /// `Retry-After`, whole seconds, at least 1.
    pub fn retry_seconds(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }

    pub fn message(&self) -> String {
        format!(
            "Too many requests: {} rate limit ({}) is reached; retry after {} s",
            self.kind.whose(),
            self.rate,
            self.retry_seconds().max(1)
        )
    }

    /// The IETF rate-limit headers (draft-ietf-httpapi-ratelimit-headers): the policy, and what
    /// remains of it (nothing) with the seconds until it resets.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        let name = self.kind.as_str();
        let window = self.rate.period.duration().as_secs();
        let retry = self.retry_seconds().max(1);
        [
            ("retry-after", retry.to_string()),
            (
                "ratelimit-policy",
                format!("\"{name}\";q={};w={window}", self.rate.count),
            ),
            ("ratelimit", format!("\"{name}\";r=0;t={retry}")),
        ]
    }
}

/// A limiter per key, with one rate.
struct Keyed<K: Hash + Eq + Clone> {
    rate: Rate,
    limiter: DefaultKeyedRateLimiter<K>,
}

/// A rate as governor's quota: one request back every period / count, and a burst of a tenth of
/// the period's count, but at least 10 (or the whole count, if that is smaller). A whole period's
/// worth at once would let a tenant at `1000/s` start 1,000 requests in the same instant, which
/// stalls everyone else's for as long as the database takes to work through them.
fn quota(rate: Rate) -> Quota {
    let burst = rate.count.div_ceil(10).max(rate.count.min(10));
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(rate.replenish_every())
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(rate: Option<Rate>) -> Option<Self> {
        rate.map(|rate| Keyed {
            rate,
            limiter: RateLimiter::keyed(quota(rate)),
        })
    }

    fn check(&self, key: &K, kind: Kind, clock: &DefaultClock) -> Result<(), Refusal> {
        self.limiter.check_key(key).map_err(|not_until| Refusal {
            kind,
            rate: self.rate,
            retry_after: not_until.wait_time_from(clock.now()),
        })
    }
}

/// What names a request's credentials, hashed (the token is never kept): its token, tenant header
/// and host, as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestShape([u8; 32]);

impl RequestShape {
    pub fn of(token: Option<&str>, tenant: Option<&str>, host: Option<&str>) -> Self {
        let mut hash = Sha256::new();
        for part in [token, tenant, host] {
            let part = part.unwrap_or_default();
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        RequestShape(hash.finalize().into())
    }
}

/// Credentials refused by their tenant's or token's limit at most remembered.
const MAX_REMEMBERED: usize = 100_000;

/// How long a refusal is repeated without asking the database: a new quota (root's TenantUpdate,
/// on any server) is seen within this.
const REMEMBER_AT_MOST: Duration = Duration::from_secs(1);

/// A refusal remembered: repeated until `recheck`, saying to retry at `until`.
#[derive(Clone, Copy, Debug)]
struct Remembered {
    recheck: Instant,
    until: Instant,
    refusal: Refusal,
}

/// A tenant's limiter, with the quota text it was made from.
struct TenantLimiter {
    quota: Option<String>,
    rate: Option<Rate>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

/// Every limit of one server.
pub struct Limits {
    settings: RateSettings,
    ip: Option<Keyed<IpAddr>>,
    public: Option<Keyed<IpAddr>>,
    login: Option<Keyed<IpAddr>>,
    token: Option<Keyed<Uuid>>,
    costly: Option<Keyed<Uuid>>,
    tenants: RwLock<HashMap<TenantId, TenantLimiter>>,
    clock: DefaultClock,
    refused: IntCounterVec,
    notices: Mutex<HashMap<(Kind, String), Notice>>,
    /// Credentials refused by a tenant or token limit, refused again without a database lookup
    /// until their allowance is back.
    refused_until: Mutex<HashMap<RequestShape, Remembered>>,
    /// Hashes client addresses for the log (random per process).
    address_key: [u8; 16],
}

/// When a key was last logged, and how many of its requests were refused since.
struct Notice {
    logged: Instant,
    since: u64,
}

/// How often a key's refusals are logged at most.
const NOTICE_INTERVAL: Duration = Duration::from_secs(60);
/// Keys remembered for the log at most (beyond: logged without being remembered).
const MAX_NOTICES: usize = 10_000;

impl Limits {
    pub fn new(settings: RateSettings, refused: IntCounterVec) -> Self {
        Limits {
            ip: Keyed::new(settings.ip),
            public: Keyed::new(settings.public),
            login: Keyed::new(settings.login),
            token: Keyed::new(settings.token),
            costly: Keyed::new(settings.costly),
            tenants: RwLock::new(HashMap::new()),
            clock: DefaultClock::default(),
            refused,
            notices: Mutex::new(HashMap::new()),
            refused_until: Mutex::new(HashMap::new()),
            address_key: rand::random(),
            settings,
        }
    }

    /// The client's address: the connection's, or from `X-Forwarded-For` when the connection is
    /// from a trusted proxy (the right-most entry that is not itself one; a malformed entry stops
    /// the walk at the proxy that added it).
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if !self.trusted(peer) {
            return Some(peer);
        }
        let mut client = peer;
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(value) = value.to_str() else {
                return Some(client);
            };
            for entry in value.rsplit(',') {
                match forwarded_address(entry.trim()) {
                    Some(address) => {
                        client = canonical(address);
                        if !self.trusted(client) {
                            return Some(client);
                        }
                    }
                    None => return Some(client),
                }
            }
        }
        Some(client)
    }

    /// Whether `address` is in `BUNKER_TRUSTED_PROXIES`.
    pub fn trusted(&self, address: IpAddr) -> bool {
        self.settings
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&address))
    }

    /// The limits by address, before authentication: every request, and the public commands.
    pub fn check_address(
        &self,
        address: Option<IpAddr>,
        command: Option<Command>,
    ) -> Result<(), Refusal> {
        let Some(address) = address.map(address_key) else {
            return Ok(());
        };
        if let Some(ip) = &self.ip {
            ip.check(&address, Kind::Ip, &self.clock)
                .map_err(|r| self.refuse(r, || self.address_label(address)))?;
        }
        if command.is_some_and(|c| c.class() == CommandClass::Public) {
            if let Some(public) = &self.public {
                public
                    .check(&address, Kind::Public, &self.clock)
                    .map_err(|r| self.refuse(r, || self.address_label(address)))?;
            }
        }
        Ok(())
    }

    /// The sign-in attempts of a client address (`BUNKER_RATE_LOGIN`): each UserLogin and each
    /// token tried at the DPO portal spends one, so that codes and tokens cannot be guessed
    /// faster from one address, whichever identities are tried.
    pub fn check_login(&self, address: Option<IpAddr>) -> Result<(), Refusal> {
        let (Some(address), Some(login)) = (address.map(address_key), &self.login) else {
            return Ok(());
        };
        login
            .check(&address, Kind::Login, &self.clock)
            .map_err(|r| self.refuse(r, || self.address_label(address)))
    }

    /// The limits of an authenticated request: its tenant's, its token's, and for a costly
    /// command its token's stricter one.
    pub fn check_caller(
        &self,
        tenant: &TenantRecord,
        token: Uuid,
        command: Option<Command>,
    ) -> Result<(), Refusal> {
        self.check_tenant(tenant)
            .map_err(|r| self.refuse(r, || format!("tenant {}", tenant.id)))?;
        if let Some(limit) = &self.token {
            limit
                .check(&token, Kind::Token, &self.clock)
                .map_err(|r| self.refuse(r, || format!("token {token}")))?;
        }
        if command.is_some_and(is_costly) {
            if let Some(limit) = &self.costly {
                limit
                    .check(&token, Kind::Costly, &self.clock)
                    .map_err(|r| self.refuse(r, || format!("token {token}")))?;
            }
        }
        Ok(())
    }

    /// Remembers that the credentials of `shape` met their tenant's or token's limit (not the costly
    /// one, which holds for some commands only), until their allowance is back.
    pub fn remember_refusal(&self, shape: RequestShape, refusal: &Refusal) {
        if !matches!(refusal.kind, Kind::Tenant | Kind::Token) {
            return;
        }
        if let Ok(mut remembered) = self.refused_until.lock() {
            if remembered.len() < MAX_REMEMBERED || remembered.contains_key(&shape) {
                let now = Instant::now();
                remembered.insert(
                    shape,
                    Remembered {
                        recheck: now + refusal.retry_after.min(REMEMBER_AT_MOST),
                        until: now + refusal.retry_after,
                        refusal: *refusal,
                    },
                );
            }
        }
    }

    /// The refusal of credentials refused a moment ago whose allowance is not back yet: counted
    /// and logged as the first was, and answered without asking the database again.
    pub fn still_refused(&self, shape: &RequestShape) -> Option<Refusal> {
        let now = Instant::now();
        let refusal = {
            let mut remembered = self.refused_until.lock().ok()?;
            match remembered.get(shape) {
                Some(seen) if seen.recheck > now => Refusal {
                    retry_after: seen.until - now,
                    ..seen.refusal
                },
                Some(_) => {
                    remembered.remove(shape);
                    return None;
                }
                None => return None,
            }
        };
        self.refused
            .with_label_values(&[refusal.kind.as_str()])
            .inc();
        Some(refusal)
    }

    fn check_tenant(&self, tenant: &TenantRecord) -> Result<(), Refusal> {
        let current = |limiter: &TenantLimiter| limiter.quota == tenant.rate_limit;
        let found = self.tenants.read().ok().and_then(|tenants| {
            tenants
                .get(&tenant.id)
                .filter(|l| current(l))
                .map(|l| (l.rate, l.limiter.clone()))
        });
        let (rate, limiter) = match found {
            Some(found) => found,
            None => {
                // New, or its quota changed: a fresh allowance at the quota now stored.
                let rate = match tenant.rate_limit.as_deref().map(Rate::parse) {
                    None => self.settings.tenant,
                    Some(Ok(rate)) => rate,
                    // The column's check constraint holds the same grammar; never the case.
                    Some(Err(_)) => self.settings.tenant,
                };
                let limiter = rate.map(|rate| Arc::new(RateLimiter::direct(quota(rate))));
                if let Ok(mut tenants) = self.tenants.write() {
                    tenants.insert(
                        tenant.id,
                        TenantLimiter {
                            quota: tenant.rate_limit.clone(),
                            rate,
                            limiter: limiter.clone(),
                        },
                    );
                }
                (rate, limiter)
            }
        };
        match (rate, limiter) {
            (Some(rate), Some(limiter)) => limiter.check().map_err(|not_until| Refusal {
                kind: Kind::Tenant,
                rate,
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
            _ => Ok(()),
        }
    }

    /// Counts a refusal and logs it, once per key and [`NOTICE_INTERVAL`].
    fn refuse(&self, refusal: Refusal, key: impl FnOnce() -> String) -> Refusal {
        self.refused
            .with_label_values(&[refusal.kind.as_str()])
            .inc();
        let key = (refusal.kind, key());
        if let Some(refused) = self.notice(&key) {
            tracing::warn!(
                limit = refusal.kind.as_str(),
                key = key.1,
                rate = %refusal.rate,
                refused,
                "rate limit reached (logged once a minute per key, with the refusals since)"
            );
        }
        refusal
    }

    /// Whether `key`'s refusal is to be logged now, with how many were refused since the last line
    /// (the first, and then once per [`NOTICE_INTERVAL`]).
    fn notice(&self, key: &(Kind, String)) -> Option<u64> {
        let now = Instant::now();
        let Ok(mut notices) = self.notices.lock() else {
            return None;
        };
        match notices.get_mut(key) {
            Some(notice) if now.duration_since(notice.logged) < NOTICE_INTERVAL => {
                notice.since += 1;
                None
            }
            Some(notice) => {
                let since = notice.since + 1;
                *notice = Notice {
                    logged: now,
                    since: 0,
                };
                Some(since)
            }
            None => {
                if notices.len() < MAX_NOTICES {
                    notices.insert(
                        key.clone(),
                        Notice {
                            logged: now,
                            since: 0,
                        },
                    );
                }
                Some(1)
            }
        }
    }

    /// An address as the log shows it: a keyed hash, enough to tell addresses apart.
    fn address_label(&self, address: IpAddr) -> String {
        let mut hash = Sha256::new();
        hash.update(self.address_key);
        hash.update(address.to_string().as_bytes());
        let digest = hash.finalize();
        format!(
            "address {}",
            hex::encode(digest.get(..8).unwrap_or_default())
        )
    }

    /// Forgets keys idle long enough to be back at a full allowance, and old log notices.
    pub fn housekeeping(&self) {
        for keyed in [&self.ip, &self.public, &self.login].into_iter().flatten() {
            keyed.limiter.retain_recent();
            keyed.limiter.shrink_to_fit();
        }
        for keyed in [&self.token, &self.costly].into_iter().flatten() {
            keyed.limiter.retain_recent();
            keyed.limiter.shrink_to_fit();
        }
        if let Ok(mut notices) = self.notices.lock() {
            notices.retain(|_, notice| notice.logged.elapsed() < NOTICE_INTERVAL * 2);
        }
        if let Ok(mut remembered) = self.refused_until.lock() {
            let now = Instant::now();
            remembered.retain(|_, seen| seen.recheck > now);
        }
    }

    /// Runs [`Limits::housekeeping`] every minute until aborted.
    pub fn spawn_housekeeping(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let limits = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(NOTICE_INTERVAL);
            loop {
                ticks.tick().await;
                limits.housekeeping();
            }
        })
    }
}

/// An `X-Forwarded-For` entry's address: `192.0.2.1`, `2001:db8::1`, or with a port as some
/// balancers write it (`192.0.2.1:5678`, `[2001:db8::1]:443`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
        })
}

/// An IPv4 address mapped into IPv6 is the IPv4 address (one client, one key).
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The key an address is limited by: an IPv4 address, or an IPv6 address's /64 (a single host is
/// commonly given a whole /64, and could otherwise take a fresh key per request).
pub fn address_key(address: IpAddr) -> IpAddr {
    match canonical(address) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// The commands under the stricter per-token limit: each can read or write many records.
pub fn is_costly(command: Command) -> bool {
    use Command::*;
    matches!(
        command,
        UserSearch
            | UserCreateBulk
            | UserDeleteBulk
            | TokenCreateBulk
            | SystemGetUserReport
            | SystemGetUserHTMLReport
            | SystemGetSystemStats
            | SystemGetUserProfiles
            | SystemSearchUserProfiles
            | SystemDeleteUserProfiles
            | SystemRestoreUserProfile
    ) || command.name().starts_with("Bulk")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(settings: RateSettings) -> Limits {
        let refused =
            IntCounterVec::new(prometheus::Opts::new("refused", "refused"), &["kind"]).unwrap();
        Limits::new(settings, refused)
    }

    fn rate(text: &str) -> Option<Rate> {
        Rate::parse(text).unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let limits = limits(RateSettings {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            ..RateSettings::default()
        });
        let headers = |values: &[&str]| {
            let mut map = HeaderMap::new();
            for v in values {
                map.append("x-forwarded-for", v.parse().unwrap());
            }
            map
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let spoofed = headers(&["1.1.1.1, 10.0.0.7"]);
        // From an untrusted peer, the header is ignored.
        assert_eq!(
            limits.client_address(ip("203.0.113.9"), &spoofed),
            ip("203.0.113.9")
        );
        // From a proxy: the right-most entry that is not a proxy.
        assert_eq!(
            limits.client_address(ip("10.0.0.1"), &spoofed),
            ip("1.1.1.1")
        );
        let chain = headers(&["6.6.6.6, 198.51.100.4", "10.1.1.1"]);
        assert_eq!(
            limits.client_address(ip("10.0.0.1"), &chain),
            ip("198.51.100.4")
        );
        // With a port, as some balancers write it.
        let ported = headers(&["198.51.100.7:5678, [2001:db8:9::1]:443"]);
        assert_eq!(
            limits.client_address(ip("10.0.0.1"), &ported),
            ip("2001:db8:9::1")
        );
        let ported = headers(&["198.51.100.7:5678"]);
        assert_eq!(
            limits.client_address(ip("10.0.0.1"), &ported),
            ip("198.51.100.7")
        );
        // A malformed entry stops at the proxy that added it.
        let garbage = headers(&["5.5.5.5, not-an-address"]);
        assert_eq!(
            limits.client_address(ip("10.0.0.1"), &garbage),
            ip("10.0.0.1")
        );
        // Mapped IPv4 is IPv4; a trusted IPv6 loopback proxy is believed.
        assert_eq!(
            limits.client_address(ip("::ffff:203.0.113.9"), &HeaderMap::new()),
            ip("203.0.113.9")
        );
        assert_eq!(limits.client_address(ip("::1"), &spoofed), ip("1.1.1.1"));
    }

    #[test]
    fn an_ipv6_client_is_limited_by_its_64_and_ipv4_by_its_address() {
        let limits = limits(RateSettings {
            ip: rate("2/h"),
            ..RateSettings::default()
        });
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(limits.check_address(ip("2001:db8:1:2::1"), None).is_ok());
        assert!(limits
            .check_address(ip("2001:db8:1:2:ffff::9"), None)
            .is_ok());
        assert!(limits.check_address(ip("2001:db8:1:2::3"), None).is_err());
        assert!(limits.check_address(ip("2001:db8:1:3::1"), None).is_ok());
        assert!(limits.check_address(ip("192.0.2.1"), None).is_ok());
        assert!(limits.check_address(ip("192.0.2.2"), None).is_ok());
        assert_eq!(
            address_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_burst_is_a_tenth_of_the_count_but_at_least_ten() {
        let burst = |text: &str| {
            let limiter = RateLimiter::direct(quota(rate(text).unwrap()));
            (0..2000).take_while(|_| limiter.check().is_ok()).count()
        };
        assert_eq!(burst("3/min"), 3);
        assert_eq!(burst("10/s"), 10);
        assert_eq!(burst("100/s"), 10);
        assert_eq!(burst("1000/s"), 100);
        assert_eq!(burst("600/min"), 60);
    }

    #[test]
    fn a_key_over_its_rate_is_refused_with_when_to_retry_and_others_are_not() {
        let limits = limits(RateSettings {
            ip: rate("3/min"),
            public: rate("1/h"),
            ..RateSettings::default()
        });
        let a = "192.0.2.1".parse().ok();
        let b = "192.0.2.2".parse().ok();
        for _ in 0..3 {
            assert!(limits.check_address(a, Some(Command::UserGet)).is_ok());
        }
        let refused = limits.check_address(a, Some(Command::UserGet)).unwrap_err();
        assert_eq!(refused.kind, Kind::Ip);
        // One request back every 20 s.
        assert!((19..=20).contains(&refused.retry_seconds()), "{refused:?}");
        let [retry, policy, now] = refused.headers();
        assert_eq!(policy.1, "\"ip\";q=3;w=60");
        assert_eq!(now.1, format!("\"ip\";r=0;t={}", retry.1));
        assert!(limits.check_address(b, Some(Command::UserGet)).is_ok());
        // The public commands have their own, stricter allowance.
        assert!(limits
            .check_address(b, Some(Command::TenantGetUIConf))
            .is_ok());
        let public = limits
            .check_address(b, Some(Command::CaptchaCreate))
            .unwrap_err();
        assert_eq!(public.kind, Kind::Public);
        assert_eq!(limits.refused.with_label_values(&["ip"]).get(), 1);
        assert_eq!(limits.refused.with_label_values(&["public"]).get(), 1);
    }

    #[test]
    fn a_tenants_own_quota_replaces_the_default_as_soon_as_it_changes() {
        let limits = limits(RateSettings {
            tenant: rate("2/h"),
            ..RateSettings::default()
        });
        let mut tenant = TenantRecord {
            id: TenantId(7),
            name: "acme".into(),
            org: String::new(),
            selfservice: Default::default(),
            webhook_url: None,
            rate_limit: None,
        };
        let token = Uuid::new_v4();
        assert!(limits.check_caller(&tenant, token, None).is_ok());
        assert!(limits.check_caller(&tenant, token, None).is_ok());
        assert_eq!(
            limits.check_caller(&tenant, token, None).unwrap_err().kind,
            Kind::Tenant
        );
        tenant.rate_limit = Some("off".into());
        for _ in 0..10 {
            assert!(limits.check_caller(&tenant, token, None).is_ok());
        }
        tenant.rate_limit = Some("1/h".into());
        assert!(limits.check_caller(&tenant, token, None).is_ok());
        assert!(limits.check_caller(&tenant, token, None).is_err());
    }

    #[test]
    fn a_key_is_logged_once_a_minute_with_the_refusals_since() {
        let limits = limits(RateSettings::default());
        let key = (Kind::Tenant, "tenant 7".to_owned());
        assert_eq!(limits.notice(&key), Some(1));
        for _ in 0..5 {
            assert_eq!(limits.notice(&key), None);
        }
        let other = (Kind::Token, "token x".to_owned());
        assert_eq!(limits.notice(&other), Some(1));
        if let Ok(mut notices) = limits.notices.lock() {
            if let Some(notice) = notices.get_mut(&key) {
                notice.logged = notice.logged.checked_sub(NOTICE_INTERVAL).unwrap();
            }
        }
        assert_eq!(limits.notice(&key), Some(6));
        assert_eq!(limits.notice(&key), None);
    }

    #[test]
    fn credentials_refused_by_their_tenant_are_refused_again_until_the_allowance_is_back() {
        let limits = limits(RateSettings::default());
        let shape = RequestShape::of(Some("token"), Some("acme"), None);
        let other = RequestShape::of(Some("token"), Some("globex"), None);
        let refusal = |kind, ms| Refusal {
            kind,
            rate: Rate::parse("1/s").unwrap().unwrap(),
            retry_after: Duration::from_millis(ms),
        };
        limits.remember_refusal(shape, &refusal(Kind::Costly, 500));
        assert!(
            limits.still_refused(&shape).is_none(),
            "costly holds per command"
        );
        limits.remember_refusal(shape, &refusal(Kind::Tenant, 200));
        let again = limits.still_refused(&shape).unwrap();
        assert_eq!(again.kind, Kind::Tenant);
        assert!(again.retry_after <= Duration::from_millis(200));
        assert!(limits.still_refused(&other).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(limits.still_refused(&shape).is_none());
        // A long wait is repeated for a second at most, then the database is asked again (a
        // quota root changed meanwhile applies), still saying when to retry.
        limits.remember_refusal(shape, &refusal(Kind::Token, 20_000));
        let again = limits.still_refused(&shape).unwrap();
        assert!(again.retry_after > Duration::from_secs(19));
        if let Ok(mut remembered) = limits.refused_until.lock() {
            if let Some(seen) = remembered.get_mut(&shape) {
                seen.recheck = Instant::now();
            }
        }
        assert!(limits.still_refused(&shape).is_none());
    }

    #[test]
    fn costly_commands_spend_a_stricter_allowance_per_token() {
        let limits = limits(RateSettings {
            token: rate("100/h"),
            costly: rate("1/h"),
            ..RateSettings::default()
        });
        let tenant = TenantRecord {
            id: TenantId(1),
            name: "default".into(),
            org: String::new(),
            selfservice: Default::default(),
            webhook_url: None,
            rate_limit: None,
        };
        let token = Uuid::new_v4();
        assert!(limits
            .check_caller(&tenant, token, Some(Command::UserSearch))
            .is_ok());
        let refused = limits
            .check_caller(&tenant, token, Some(Command::BulkListUsers))
            .unwrap_err();
        assert_eq!(refused.kind, Kind::Costly);
        assert!(limits
            .check_caller(&tenant, token, Some(Command::UserGet))
            .is_ok());
        assert!(limits
            .check_caller(&tenant, Uuid::new_v4(), Some(Command::UserSearch))
            .is_ok());
        assert!(is_costly(Command::BulkListAllAuditEvents) && !is_costly(Command::UserGet));
    }
}
