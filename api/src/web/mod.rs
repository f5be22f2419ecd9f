//! The web portals, served by `bunker serve` from templates and assets compiled into the binary:
//! the privacy portal at `/` (a data subject signs in with a code sent by e-mail) and the DPO portal
//! at `/admin` (signed in with an admin or role token).
//!
//! Everything a portal does is a `/v2` command, called in process through the same endpoint the API
//! serves (authentication, policies, masking, rate limits, audit), with the session's token: a role
//! token sees in the portal exactly what it may see through `/v2`. The token stays on the server,
//! sealed in the session's row; the browser holds only a signed JWT naming the session
//! ([`session`]), in an `HttpOnly; Secure; SameSite=Strict` cookie, and every form that changes
//! anything carries a CSRF token. Pages are server-rendered; htmx (vendored, `web/assets`) only
//! boosts links and forms. Every answer carries a CSP of `'self'`, `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer`, `nosniff` and `Cache-Control: no-store`.

mod admin;
mod assets;
mod page;
mod session;
mod user;

use std::net::IpAddr;
use std::sync::Arc;

use askama::Template;
use bunker_db::TenantId;
use bunker_services::access::Command;
use bunker_services::portal::PortalKind;
use bunker_tenancy::TenantName;
use poem::endpoint::BoxEndpoint;
use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::http::app::AppState;
use crate::http::extract::client_address;
use crate::http::inprocess::{Asker, V2};
use page::{NavItem, Page, Section};

/// The portals' handle on the `/v2` endpoint.
pub struct Portal {
    v2: V2,
}

/// The portals' routes, added to the server's.
pub fn mount(route: Route, v2: Arc<BoxEndpoint<'static>>) -> Route {
    let portal = Arc::new(Portal { v2: V2(v2) });
    let wrap = |endpoint: BoxEndpoint<'static>| -> BoxEndpoint<'static> {
        endpoint
            .with(poem::middleware::CookieJarManager::new())
            .data(portal.clone())
            .around(|next, req| async move { Ok(secure_headers(next.call(req).await?.into_response())) })
            .boxed()
    };
    let mut route = route;
    for (path, endpoint) in user::routes()
        .into_iter()
        .chain(admin::routes())
        .chain(assets::routes())
    {
        route = route.at(path, wrap(endpoint));
    }
    route
}

/// The portals' paths, for the log and the metrics (a route, never a made-up path).
pub fn route_name(path: &str) -> Option<&'static str> {
    user::PATHS
        .iter()
        .chain(admin::PATHS)
        .chain(assets::PATHS)
        .find(|known| **known == path)
        .copied()
}

/// The command a portal path stands for, for the per-address limits of the public commands.
pub fn public_command(method: &Method, path: &str) -> Option<Command> {
    if method != Method::POST {
        return None;
    }
    match path {
        "/login" => Some(Command::UserPrelogin),
        "/login/code" | "/admin/signin" => Some(Command::UserLogin),
        _ => None,
    }
}

/// The portals' content security policy.
const POLICY: &str =
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
     object-src 'none'";

/// Whether `path` is the portals' (anything but the API, its documents and the probes): its
/// answers, refusals by the server's own layers (404, 405, 429) among them, carry the portals'
/// headers.
pub fn portal_path(path: &str) -> bool {
    let api = ["/v2", "/v1", "/docs", "/openapi.json", "/metrics"];
    !api.iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
        && !matches!(path, "/health" | "/status" | "/ready")
}

/// What every portal answer carries (more than once does no harm).
pub fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let has_policy = headers
        .get_all("content-security-policy")
        .iter()
        .any(|value| value == POLICY);
    if !has_policy {
        // An answer with a policy of its own (a file's `sandbox`) keeps it: browsers enforce both.
        headers.append("content-security-policy", HeaderValue::from_static(POLICY));
    }
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The browser's request: its tenant and address.
pub struct Visit {
    pub name: TenantName,
    pub tenant: Option<TenantId>,
    /// The tenant's title, else its name.
    pub brand: String,
    pub address: Option<IpAddr>,
    host: Option<String>,
    /// Whether the tenant's users can sign in by e-mail, and by phone (TenantGetUIConf's
    /// `loginmethods`).
    pub login_email: bool,
    pub login_phone: bool,
}

impl Visit {
    /// The request's tenant, as the API chooses it (the X-Bunker-Tenant header, else the Host's
    /// subdomain, else `default`).
    async fn of(state: &AppState, req: &Request) -> Result<Visit, Response> {
        let name = crate::v2::login::tenant_name(state, req).map_err(|_| {
            simple(
                StatusCode::BAD_REQUEST,
                "This address names no tenant this server serves.",
            )
        })?;
        let tenant = state
            .db
            .tenant_by_name(name.as_str())
            .await
            .map_err(|_| unavailable())?;
        let ui = state
            .tenants
            .public_ui_conf(&name, crate::v2::login::deliverable(state))
            .await
            .map_err(|_| unavailable())?;
        let brand = ui
            .get("companytitle")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .map_or_else(|| name.as_str().to_owned(), str::to_owned);
        let method = |key: &str| {
            ui.get("loginmethods")
                .and_then(|m| m.get(key))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        Ok(Visit {
            login_email: method("email"),
            login_phone: method("phone"),
            brand,
            tenant,
            address: client_address(req),
            host: req.header("host").map(str::to_owned),
            name,
        })
    }
}

pub use crate::http::inprocess::Refused;

impl Portal {
    fn asker<'a>(visit: &'a Visit, token: Option<&'a str>) -> Asker<'a> {
        Asker {
            token,
            tenant: Some(visit.name.as_str()),
            host: visit.host.as_deref(),
            address: visit.address,
        }
    }

    /// Calls `/v2/<command>` with `body`, as `token` (none: a public command), for the visit's
    /// tenant; the answer's JSON, or its refusal.
    async fn call(
        &self,
        state: &Arc<AppState>,
        visit: &Visit,
        token: Option<&str>,
        command: &str,
        body: Value,
    ) -> Result<Value, Refused> {
        self.v2
            .call(state, Self::asker(visit, token), command, &body)
            .await
    }

    /// Calls `/v2/<command>` as [`Portal::call`] does; a successful answer as it is (the bytes of
    /// a file, with its headers), a refusal as its message.
    async fn answer(
        &self,
        state: &Arc<AppState>,
        visit: &Visit,
        token: Option<&str>,
        command: &str,
        body: Value,
    ) -> Result<Response, Refused> {
        self.v2
            .answer(state, Self::asker(visit, token), command, &body)
            .await
    }
}

/// The fields of a submitted form (at most 64 KiB).
pub struct Fields(Vec<(String, String)>);

impl Fields {
    async fn read(body: Body) -> Result<Fields, Response> {
        let bytes = body.into_bytes_limit(64 * 1024).await.map_err(|_| {
            simple(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is larger than this page accepts.",
            )
        })?;
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .map(Fields)
            .map_err(|_| simple(StatusCode::BAD_REQUEST, "The form could not be read."))
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0.iter().filter_map(move |(key, value)| {
            key.strip_prefix(prefix).map(|name| (name, value.as_str()))
        })
    }
}

/// Whether a POST comes from one of this server's own pages: the browser says it is same-origin
/// (when it says anything), and the form carries the expected CSRF token.
fn same_origin_post(req: &Request, fields: &Fields, expected: &str) -> bool {
    if let Some(site) = req.header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    if let (Some(origin), Some(host)) = (req.header("origin"), req.header("host")) {
        let bare = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .unwrap_or("");
        if bare != host {
            return false;
        }
    }
    session::same(fields.get("csrf"), expected)
}

/// The refusal of a form without its CSRF token.
fn forged() -> Response {
    simple(
        StatusCode::FORBIDDEN,
        "This form was not sent from this site's own page, or the page is too old: reload it and try again.",
    )
}

/// A session cookie: `HttpOnly; Secure; SameSite=Strict`, for the whole site.
fn cookie(name: &str, value: &str, seconds: i64) -> Cookie {
    let mut cookie = Cookie::new_with_str(name, value);
    cookie.set_http_only(true);
    cookie.set_secure(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/");
    cookie.set_max_age(std::time::Duration::from_secs(
        u64::try_from(seconds).unwrap_or(0),
    ));
    cookie
}

/// Removes a cookie.
fn clear(jar: &CookieJar, name: &str) {
    jar.add(cookie(name, "", 0));
}

/// The random value of a sign-in form's CSRF cookie (before there is a session), set if missing.
fn login_csrf(jar: &CookieJar, name: &str) -> String {
    if let Some(existing) = jar.get(name) {
        let value = existing.value_str().to_owned();
        if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return value;
        }
    }
    let value = hex::encode(rand::random::<[u8; 32]>());
    jar.add(cookie(name, &value, 3600));
    value
}

/// A signed-in portal session.
pub struct Signed {
    pub token: Zeroizing<String>,
    pub user: Option<uuid::Uuid>,
    pub csrf: String,
    pub tenant: TenantId,
    session: String,
}

/// The visit's live session of `kind` in `cookie_name`, if any (an invalid one is cleared).
async fn signed(
    state: &AppState,
    visit: &Visit,
    jar: &CookieJar,
    kind: PortalKind,
    cookie_name: &str,
) -> Result<Option<Signed>, Response> {
    let Some(jwt) = jar.get(cookie_name) else {
        return Ok(None);
    };
    let Some(tenant) = visit.tenant else {
        clear(jar, cookie_name);
        return Ok(None);
    };
    let Some(reference) = session::verify(&state.vault, tenant, kind, jwt.value_str()) else {
        clear(jar, cookie_name);
        return Ok(None);
    };
    let open = state
        .vault
        .portal_session(tenant, kind, &reference.id)
        .await
        .map_err(|_| unavailable())?;
    let Some(open) = open else {
        clear(jar, cookie_name);
        return Ok(None);
    };
    Ok(Some(Signed {
        token: open.token,
        user: open.user,
        csrf: session::csrf(&state.vault, tenant, &reference),
        tenant,
        session: reference.id,
    }))
}

/// Opens a session and sets its cookie.
async fn sign_in(
    state: &AppState,
    jar: &CookieJar,
    tenant: TenantId,
    kind: PortalKind,
    cookie_name: &str,
    user: Option<uuid::Uuid>,
    token: &str,
) -> Result<(), Response> {
    let id = state
        .vault
        .open_portal_session(tenant, kind, user, token, session::SESSION_SECONDS)
        .await
        .map_err(|_| unavailable())?;
    let jwt = session::sign(&state.vault, tenant, kind, &id).ok_or_else(unavailable)?;
    jar.add(cookie(cookie_name, &jwt, session::SESSION_SECONDS));
    Ok(())
}

/// Ends a session and clears its cookie.
async fn sign_out(state: &AppState, jar: &CookieJar, signed: &Signed, cookie_name: &str) {
    let _ = state
        .vault
        .close_portal_session(signed.tenant, &signed.session)
        .await;
    clear(jar, cookie_name);
}

/// A page, rendered.
/// `response` as the answer to a request over a rate limit: 429, with when to retry.
fn limited(mut response: Response, refusal: &crate::http::limits::Refusal) -> Response {
    response.set_status(StatusCode::TOO_MANY_REQUESTS);
    for (name, value) in refusal.headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn render(page: &Page) -> Response {
    match page.render() {
        Ok(html) => Response::builder()
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(err) => {
            tracing::error!(%err, "a portal page could not be rendered");
            simple(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be shown.",
            )
        }
    }
}

/// A plain page saying one thing (an error, before a page can be built).
fn simple(status: StatusCode, message: &str) -> Response {
    let page = Page {
        brand: "Bunker".to_owned(),
        portal: "",
        base: "",
        title: message.to_owned(),
        nav: Vec::new(),
        signed_in: false,
        csrf: String::new(),
        notice: None,
        problem: None,
        sections: vec![Section::new(
            "What now",
            vec![page::Block::Links(vec![page::Link {
                href: "/".to_owned(),
                label: "Back to the start".to_owned(),
                download: false,
            }])],
        )],
        footer: String::new(),
    };
    let mut response = render(&page);
    response.set_status(status);
    response
}

fn unavailable() -> Response {
    simple(
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is unavailable at the moment; try again shortly.",
    )
}

/// A redirect after a form (303: the browser follows with a GET).
fn see_other(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .finish()
}

/// The navigation of a portal, the current page marked.
fn nav(items: &[(&str, &'static str)], current: &str) -> Vec<NavItem> {
    items
        .iter()
        .map(|(href, label)| NavItem {
            href: (*href).to_owned(),
            label,
            current: *href == current,
        })
        .collect()
}

/// A notice carried over a redirect as a fixed code in the query (`?done=saved`), never text.
fn notice_of(req: &Request, notices: &[(&str, &str)]) -> Option<String> {
    let query = req.uri().query()?;
    let done = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("done="))?;
    notices
        .iter()
        .find(|(code, _)| *code == done)
        .map(|(_, text)| (*text).to_owned())
}

/// A query parameter, decoded.
fn query(req: &Request, name: &str) -> String {
    req.uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
        .unwrap_or_default()
}

/// The brand stylesheet: the tenant's primary and accent colours, when they are plain colours.
fn brand_css(ui: &serde_json::Map<String, Value>) -> String {
    let colour = |key: &str| {
        ui.get(key)
            .and_then(Value::as_str)
            .filter(|c| {
                let hex = c.strip_prefix('#').unwrap_or("");
                matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())
            })
            .map(str::to_owned)
    };
    match colour("primarycolor") {
        Some(primary) => format!(":root {{ --accent: {primary}; }}\n"),
        None => String::from("/* no brand colour set */\n"),
    }
}
