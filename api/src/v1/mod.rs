//! The Databunker OSS `/v1` REST API (shared/api/V1-CONTRACT.md), so that OSS clients such as the
//! npm modules `@databunker/store` and `@databunker/session-store` move over unchanged.
//!
//! `/v1` is a shape, not a second implementation: every route is translated into the `/v2`
//! commands it stands for and called in process through the very endpoint `/v2` serves
//! ([`crate::http::inprocess`]): the same authentication, tenant, row-level security, keys, policy
//! gate, masking, limits and audit. Only paths, bodies and answers are reshaped. `/v1` names no
//! tenant: a request runs in the tenant `X-Bunker-Tenant` or the Host's subdomain names, else in
//! its token's own (root's: the default tenant). Every deliberate difference from the OSS server is
//! listed in docs/v1.md.

mod routes;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bunker_services::access::Command;
use percent_encoding::percent_decode_str;
use poem::endpoint::BoxEndpoint;
use poem::http::{header, Method, StatusCode};
use poem::{Body, EndpointExt, IntoResponse, Request, Response, Route};
use serde_json::{json, Map, Value};

use crate::http::app::AppState;
use crate::http::extract::client_address;
use crate::http::inprocess::{Asker, V2};

/// The most path segments a `/v1` route has; a longer path is no route.
const MAX_SEGMENTS: usize = 6;

/// Mounts `/v1` on the server's routes (`/v1/metrics` only where `/metrics` is served too).
pub fn mount(route: Route, v2: Arc<BoxEndpoint<'static>>, metrics_here: bool) -> Route {
    let v2 = V2(v2);
    let endpoint = poem::endpoint::make(move |req: Request| {
        let v2 = v2.clone();
        async move { Ok::<_, poem::Error>(serve(v2, metrics_here, req).await) }
    });
    route.nest("/v1", endpoint.boxed())
}

/// A `/v1` refusal: its status and message, answered in the OSS envelope.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn into_response(self) -> Response {
        // The OSS server answers `not found` for everything it cannot find, and clients test
        // for it (@databunker/session-store reads a missing session so).
        let message = match self.status {
            StatusCode::NOT_FOUND => "not found".to_owned(),
            _ => self.message,
        };
        let mut response =
            poem::web::Json(json!({"status": "error", "message": message})).into_response();
        response.set_status(self.status);
        response
    }
}

/// A `/v1` request, ready to be answered by `/v2` commands.
pub struct Call {
    state: Arc<AppState>,
    v2: V2,
    metrics_here: bool,
    token: Option<String>,
    tenant: String,
    host: Option<String>,
    address: Option<IpAddr>,
    method: Method,
    /// The path after `/v1`, decoded segment by segment.
    segments: Vec<String>,
    query: HashMap<String, String>,
    body: Map<String, Value>,
}

async fn serve(v2: V2, metrics_here: bool, req: Request) -> Response {
    let Some(state) = req.data::<Arc<AppState>>().cloned() else {
        return Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    };
    let call = match Call::read(state, v2, metrics_here, req).await {
        Ok(call) => call,
        Err(refusal) => return refusal.into_response(),
    };
    match routes::answer(&call).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

impl Call {
    async fn read(
        state: Arc<AppState>,
        v2: V2,
        metrics_here: bool,
        mut req: Request,
    ) -> Result<Call, Refusal> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                // A header that is not text is a wrong value, not an absent one.
                .map(|v| v.to_str().unwrap_or("\u{0}").to_owned())
        };
        let token = header("x-bunker-token");
        let tenant_header = header("x-bunker-tenant");
        let host = header("host");
        let path = req.original_uri().path().to_owned();
        let segments = segments(path.strip_prefix("/v1").unwrap_or(&path))?;
        let query = req
            .uri()
            .query()
            .map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .rev()
            .collect();
        let address = client_address(&req);
        let method = req.method().clone();
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let bytes = req
            .take_body()
            .into_bytes_limit(state.max_body_bytes)
            .await
            .map_err(|_| {
                Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "The request body is over the limit of {} bytes",
                        state.max_body_bytes
                    ),
                )
            })?;
        let body = body_of(&content_type, &bytes)?;
        let tenant = state
            .tenancy
            .tenant_for_v1(token.as_deref(), tenant_header.as_deref(), host.as_deref())
            .await
            .map_err(|err| {
                let api = crate::http::error::ApiError::from(err);
                Refusal::new(api.status(), api.message().to_owned())
            })?;
        Ok(Call {
            state,
            v2,
            metrics_here,
            token,
            tenant: tenant.as_str().to_owned(),
            host,
            address,
            method,
            segments,
            query,
            body,
        })
    }

    fn asker(&self) -> Asker<'_> {
        Asker {
            token: self.token.as_deref(),
            tenant: Some(self.tenant.as_str()),
            host: self.host.as_deref(),
            address: self.address,
        }
    }

    /// `/v2/<command>`: its answer (status `ok`), or its refusal.
    async fn run(&self, command: &str, body: Value) -> Result<Value, Refusal> {
        let (status, answer) = self.exchange(command, body).await;
        if status.is_success() && answer.get("status").and_then(Value::as_str) == Some("ok") {
            return Ok(answer);
        }
        Err(Refusal::new(
            if status.is_success() {
                StatusCode::BAD_REQUEST
            } else {
                status
            },
            answer
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("internal error"),
        ))
    }

    /// `/v2/<command>`: its status and JSON, whatever they are.
    async fn exchange(&self, command: &str, body: Value) -> (StatusCode, Value) {
        self.v2
            .exchange(&self.state, self.asker(), command, &body)
            .await
    }

    /// A page's `offset` and `limit` from the query (limit 10 unless given, as the OSS server).
    fn page(&self) -> Result<(i64, i64), Refusal> {
        let number = |name: &str, default: i64| match self.query.get(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| Refusal::bad(format!("bad {name}"))),
        };
        Ok((number("offset", 0)?, number("limit", 10)?))
    }

    /// The body's field `name` as text (a number as its digits), if given.
    fn text(&self, name: &str) -> Option<String> {
        match self.body.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// The decoded segments of a path (`%40` is `@`; a `+` stays a `+`, as in the OSS server), a
/// trailing slash ignored.
fn segments(path: &str) -> Result<Vec<String>, Refusal> {
    let mut parts: Vec<&str> = path.split('/').skip(1).collect();
    if parts.last() == Some(&"") {
        parts.pop();
    }
    if parts.len() > MAX_SEGMENTS {
        return Err(Refusal::new(StatusCode::NOT_FOUND, "endpoint is missing"));
    }
    parts
        .into_iter()
        .map(|part| {
            percent_decode_str(part)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| Refusal::bad("bad path: not UTF-8"))
        })
        .collect()
}

/// A body as the OSS server reads one: JSON, or a form (every value text); fewer than three bytes
/// is an empty body.
fn body_of(content_type: &str, bytes: &[u8]) -> Result<Map<String, Value>, Refusal> {
    if bytes.len() < 3 || bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        // A JSON object under the form type (what `curl -d '{…}'` sends) is refused, as upstream
        // refuses it: read as a form, it would be one key and no field at all.
        if bytes.trim_ascii_start().first() == Some(&b'{') {
            return Err(Refusal::bad(
                "a JSON body needs Content-Type: application/json",
            ));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
            .map_err(|_| Refusal::bad("failed to decode request body"))?;
        return Ok(pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect());
    }
    if content_type.starts_with("multipart/") {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON or a form",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Refusal::bad("the body must be a JSON object")),
        Err(_) => Err(Refusal::bad("failed to decode request body")),
    }
}

/// An OSS duration (`^([0-9]+)([mhds])?$`, where `m` is a month of 31 days) as `/v2` reads one
/// (where `m` is a minute): months become days, the rest passes as it is.
fn duration(value: &Value) -> Result<Value, Refusal> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return Err(Refusal::bad("bad expiration")),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() || !matches!(unit, "" | "m" | "h" | "d" | "s") {
        return Err(Refusal::bad("bad expiration"));
    }
    Ok(match unit {
        "m" => {
            let months: i64 = number.parse().map_err(|_| Refusal::bad("bad expiration"))?;
            let days = months
                .checked_mul(31)
                .ok_or_else(|| Refusal::bad("bad expiration"))?;
            Value::String(format!("{days}d"))
        }
        // A bare number is seconds, as upstream reads it (never a Unix time below 2001).
        "" if number.len() < 10 => Value::String(format!("{number}s")),
        _ => Value::String(text),
    })
}

/// The public `/v1` commands a path stands for, for the per-address limits of the public
/// commands (`/v1/prelogin/…`, `/v1/login/…`, `/v1/get/…`, the expiration links' POSTs).
pub fn public_command(method: &Method, path: &str) -> Option<Command> {
    let rest = path.strip_prefix("/v1/")?;
    // Decoded as the route is matched: `/v1/%67et/…` is `/v1/get/…`.
    let mut parts = rest
        .split('/')
        .map(|part| percent_decode_str(part).decode_utf8_lossy());
    let first = parts.next()?;
    match (method, first.as_ref()) {
        (&Method::GET, "prelogin") => Some(Command::UserPrelogin),
        (&Method::GET, "login") => Some(Command::UserLogin),
        (&Method::GET, "get") => Some(Command::SharedRecordGet),
        (&Method::POST, "exp") => match parts.next()?.as_ref() {
            "retain" => Some(Command::UserExpirationRetain),
            "delete" => Some(Command::UserExpirationDelete),
            _ => None,
        },
        _ => None,
    }
}

/// The route a `/v1` path matches, for the log and the metrics (never the path itself, which
/// holds identities such as e-mail addresses).
pub fn route_name(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/v1/")?;
    let decoded: Vec<String> = rest
        .trim_end_matches('/')
        .split('/')
        .map(|part| percent_decode_str(part).decode_utf8_lossy().into_owned())
        .collect();
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    Some(match (parts.first().copied(), parts.len()) {
        (Some("user"), 1) => "/v1/user",
        (Some("user"), 3) => "/v1/user/{mode}/{identity}",
        (Some("users"), 1) => "/v1/users",
        (Some("userapp"), 3) => "/v1/userapp/{mode}/{identity}",
        (Some("userapp"), 4) => "/v1/userapp/{mode}/{identity}/{app}",
        (Some("userapps"), 1) => "/v1/userapps",
        (Some("session"), 2) => "/v1/session/{session}",
        (Some("sessions"), 3) => "/v1/sessions/{mode}/{identity}",
        (Some("agreement"), 2) => "/v1/agreement/{brief}",
        (Some("agreement"), 4) => "/v1/agreement/{brief}/{mode}/{identity}",
        (Some("agreements"), 3) => "/v1/agreements/{mode}/{identity}",
        (Some("lbasis"), 1) => "/v1/lbasis",
        (Some("lbasis"), 2) => "/v1/lbasis/{brief}",
        (Some("pactivity"), 1) => "/v1/pactivity",
        (Some("pactivity"), 2) => "/v1/pactivity/{activity}",
        (Some("pactivity"), 3) => "/v1/pactivity/{activity}/{brief}",
        (Some("sharedrecord"), 3) => "/v1/sharedrecord/{mode}/{identity}",
        (Some("get"), 2) => "/v1/get/{record}",
        (Some("requests"), 1) => "/v1/requests",
        (Some("requests"), 3) => "/v1/requests/{mode}/{identity}",
        (Some("request"), 2) => "/v1/request/{request}",
        (Some("audit"), 2) => "/v1/audit/admin",
        (Some("audit"), 3) => "/v1/audit/{list|get}/{id}",
        (Some("exp"), 3) => "/v1/exp/{retain|delete}/{exptoken}",
        (Some("exp"), 4) => "/v1/exp/{start|status|cancel}/{mode}/{identity}",
        (Some("prelogin"), 5) => "/v1/prelogin/{mode}/{identity}/{code}/{captcha}",
        (Some("login"), 4) => "/v1/login/{mode}/{identity}/{code}",
        (Some("status"), 1) => "/v1/status",
        (Some("metrics"), 1) => "/v1/metrics",
        _ => "/v1/other",
    })
}

/// `{"status":"ok", …fields}`.
fn ok(fields: Value) -> Result<Response, Refusal> {
    let mut answer = json!({"status": "ok"});
    if let (Some(answer), Value::Object(fields)) = (answer.as_object_mut(), fields) {
        answer.extend(fields);
    }
    Ok(poem::web::Json(answer).into_response())
}

/// `{"status":"ok","total":N,"rows":[…]}` of `rows`.
fn listing(total: Option<i64>, rows: Vec<Value>) -> Result<Response, Refusal> {
    let total = total.unwrap_or(rows.len() as i64);
    ok(json!({"total": total, "rows": rows}))
}

/// The array `key` of an answer.
fn rows_of(answer: &Value, key: &str) -> Vec<Value> {
    answer
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The integer `key` of an answer.
fn int_of(answer: &Value, key: &str) -> Option<i64> {
    answer.get(key).and_then(Value::as_i64)
}

/// A body for a user's command: `mode`, `identity`, and `extra`'s fields.
fn user(mode: &str, identity: &str, extra: Value) -> Value {
    let mut body = json!({"mode": mode, "identity": identity});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

/// A flag given as the OSS server takes one (`true`, `yes`, `1`, …).
fn flag(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "true" | "yes" | "1" | "on" | "y"
        ),
        _ => false,
    }
}

/// A body as text, for plain answers (`/v1/status`).
fn plain(status: StatusCode, text: &'static str) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(Body::from_string(text.to_owned()))
}
