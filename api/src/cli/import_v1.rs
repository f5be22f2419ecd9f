//! `bunker import-v1`: moves a Databunker OSS installation's data into Bunker through both APIs.
//! It reads the OSS server's `/v1` (its legal bases, then its users page by page with
//! `list_users` on, and each user's app records and agreements) and re-creates them through
//! Bunker's `/v2` (LegalBasisCreate, UserCreate, AppdataCreate, AgreementAccept), so every write
//! goes through Bunker's checks, keys and audit. Tokens come from the environment, never the
//! command line; nothing personal is printed, only counts.

use std::collections::HashSet;

use anyhow::{anyhow, bail, Context};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::http::inprocess::set;

/// What to copy from where to where.
pub struct ImportV1 {
    /// The OSS server's base URL.
    pub from: String,
    /// Its root token.
    pub from_token: String,
    /// Bunker's base URL.
    pub to: String,
    /// Bunker's token: root, or the target tenant's admin.
    pub to_token: String,
    /// The tenant to copy into (none: the token's own, or the default tenant for root).
    pub tenant: Option<String>,
    /// Users asked for per page of `/v1/users` (1 to 100).
    pub page: usize,
}

/// What was copied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub legal_bases: usize,
    pub users: usize,
    /// Users Bunker already held (a clash on e-mail, phone, login or custom): left as they are.
    pub users_skipped: usize,
    pub app_records: usize,
    pub agreements: usize,
}

/// The legal basis fields copied as they are.
const BASIS_FIELDS: [&str; 9] = [
    "brief",
    "status",
    "module",
    "fulldesc",
    "shortdesc",
    "basistype",
    "requiredmsg",
    "usercontrol",
    "requiredflag",
];

struct Client {
    http: reqwest::Client,
    job: ImportV1,
}

/// The largest answer read from either server: a page of 100 users is far below it, and a hostile
/// or broken source cannot make the import hold more.
const MAX_ANSWER_BYTES: usize = 32 << 20;

/// The longest message of a server quoted in an error.
const MAX_QUOTED_CHARS: usize = 200;

impl Client {
    /// GET (or POST) a `/v1` path of the OSS server: its JSON, which must say `ok`.
    async fn source(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}/v1{path}", self.job.from.trim_end_matches('/'));
        let route = route_of(path);
        let response = self
            .http
            .request(method, &url)
            .header("X-Bunker-Token", &self.job.from_token)
            .send()
            .await
            .with_context(|| format!("the OSS server did not answer {route}"))?;
        let status = response.status();
        let body = read_json(response)
            .await
            .with_context(|| format!("the OSS server's answer to {route} ({status})"))?;
        if !status.is_success() || at(&body, "status") != "ok" {
            bail!(
                "the OSS server refused {route} ({status}): {}",
                quoted(&body)
            );
        }
        Ok(body)
    }

    /// A `/v2` command of Bunker: its status and JSON.
    async fn target(&self, command: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}/v2/{command}", self.job.to.trim_end_matches('/'));
        let mut request = self
            .http
            .post(&url)
            .header("X-Bunker-Token", &self.job.to_token)
            .json(&body);
        if let Some(tenant) = &self.job.tenant {
            request = request.header("X-Bunker-Tenant", tenant);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("Bunker did not answer {command}"))?;
        let status = response.status().as_u16();
        let answer = read_json(response)
            .await
            .with_context(|| format!("Bunker's answer to {command} ({status})"))?;
        if status == 401 && self.job.tenant.is_none() {
            bail!(
                "Bunker refused {command} (401): {}; a tenant admin's token needs --tenant NAME",
                quoted(&answer)
            );
        }
        Ok((status, answer))
    }

    /// A `/v2` command that must succeed.
    async fn must(&self, command: &str, body: Value) -> anyhow::Result<Value> {
        let (status, answer) = self.target(command, body).await?;
        if status != 200 || at(&answer, "status") != "ok" {
            bail!("Bunker refused {command} ({status}): {}", quoted(&answer));
        }
        Ok(answer)
    }
}

/// An answer's JSON, read up to [`MAX_ANSWER_BYTES`]; a timeout, an over-long answer and one that
/// is not JSON are each said as such.
async fn read_json(mut response: reqwest::Response) -> anyhow::Result<Value> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .context("the answer was cut off or timed out")?
    {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            bail!("the answer is over {MAX_ANSWER_BYTES} bytes");
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).context("the answer is not JSON")
}

/// A server's `message`, fit to print: control characters (a terminal's escapes) dropped, cut
/// to [`MAX_QUOTED_CHARS`].
fn quoted(answer: &Value) -> String {
    let message = answer.get("message").and_then(Value::as_str).unwrap_or("");
    message
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_QUOTED_CHARS)
        .collect()
}

/// A path as a route, for messages: the first segment (a path holds identities).
fn route_of(path: &str) -> String {
    let first = path.trim_start_matches('/').split(['/', '?']).next();
    format!("/v1/{}", first.unwrap_or(""))
}

fn rows(answer: &Value) -> Vec<Value> {
    at(answer, "rows").as_array().cloned().unwrap_or_default()
}

/// Copies everything; stops at the first refusal it cannot step over, saying where.
pub async fn import_v1(job: ImportV1) -> anyhow::Result<Imported> {
    let client = Client {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(60))
            .build()?,
        job,
    };
    let mut done = Imported::default();
    for basis in rows(&client.source(reqwest::Method::GET, "/lbasis").await?) {
        let mut copy = json!({});
        for field in BASIS_FIELDS {
            if let Some(value) = basis.get(field).filter(|v| !v.is_null()) {
                set(&mut copy, field, value.clone());
            }
        }
        match client.target("LegalBasisCreate", copy).await? {
            (200, _) => done.legal_bases += 1,
            // Already there (an earlier run): kept as it is.
            (409, _) => {}
            (status, answer) => {
                bail!(
                    "Bunker refused a legal basis ({status}): {}",
                    quoted(&answer)
                )
            }
        }
    }
    let mut offset = 0;
    let mut seen = HashSet::new();
    loop {
        let page = client
            .source(
                reqwest::Method::POST,
                &format!(
                    "/users?offset={offset}&limit={}",
                    client.job.page.clamp(1, 100)
                ),
            )
            .await?;
        let users = rows(&page);
        offset += users.len();
        let mut new_here = 0;
        for row in users {
            let old = source_token(&row)?;
            // A source that answers the same users again (or pages past its end) ends the import
            // instead of looping.
            if seen.insert(old) {
                new_here += 1;
                copy_user(&client, old, &row, &mut done).await?;
            }
        }
        let total = at(&page, "total").as_u64().unwrap_or(0);
        if new_here == 0 || offset as u64 >= total {
            break;
        }
    }
    Ok(done)
}

/// A user's token at the source: a UUID, or the source is refused (it goes into the source's paths).
fn source_token(row: &Value) -> anyhow::Result<Uuid> {
    at(row, "token")
        .as_str()
        .and_then(|token| Uuid::parse_str(token).ok())
        .ok_or_else(|| anyhow!("a user of /v1/users has no token, or one that is not a UUID"))
}

/// One user, with their app records and agreements: all of them, or (a child refused) none, so
/// that a run started again after the cause is fixed copies the user whole.
async fn copy_user(
    client: &Client,
    old: Uuid,
    row: &Value,
    done: &mut Imported,
) -> anyhow::Result<()> {
    // The OSS server answers the profile under `data`; some versions put its fields beside the
    // token.
    let profile = match row.get("data") {
        Some(Value::Object(data)) => Value::Object(data.clone()),
        _ => {
            let mut fields = row.as_object().cloned().unwrap_or_default();
            fields.remove("token");
            fields.remove("data");
            Value::Object(fields)
        }
    };
    let new = match client
        .target("UserCreate", json!({"profile": profile}))
        .await?
    {
        (200, answer) => at(&answer, "token").as_str().unwrap_or_default().to_owned(),
        (409, _) => {
            done.users_skipped += 1;
            return Ok(());
        }
        (status, answer) => bail!("Bunker refused a user ({status}): {}", quoted(&answer)),
    };
    let children = copy_children(client, old, &new).await;
    match children {
        Ok((apps, agreements)) => {
            done.users += 1;
            done.app_records += apps;
            done.agreements += agreements;
            Ok(())
        }
        Err(err) => {
            // Taken back, so that a new run does not find it there and skip its records.
            let undone = client
                .target("UserDelete", json!({"mode": "token", "identity": new}))
                .await;
            match undone {
                Ok((200, _)) => Err(err.context("the user was not copied (taken back whole)")),
                _ => Err(err.context(
                    "the user was created in Bunker but its records were not all copied; \
                     delete it there before running again",
                )),
            }
        }
    }
}

/// A user's app records and agreements: how many of each were copied.
async fn copy_children(client: &Client, old: Uuid, new: &str) -> anyhow::Result<(usize, usize)> {
    let (mut app_records, mut agreement_count) = (0, 0);
    let apps = client
        .source(reqwest::Method::GET, &format!("/userapp/token/{old}"))
        .await?;
    for app in at(&apps, "apps").as_array().cloned().unwrap_or_default() {
        let Some(app) = app.as_str() else { continue };
        let segment = utf8_percent_encode(app, NON_ALPHANUMERIC);
        let record = client
            .source(
                reqwest::Method::GET,
                &format!("/userapp/token/{old}/{segment}"),
            )
            .await?;
        client
            .must(
                "AppdataCreate",
                json!({"mode": "token", "identity": new, "appname": app,
                       "appdata": at(&record, "data").clone()}),
            )
            .await?;
        app_records += 1;
    }
    let agreements = client
        .source(reqwest::Method::GET, &format!("/agreements/token/{old}"))
        .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for agreement in rows(&agreements) {
        let given = matches!(at(&agreement, "status").as_str(), Some("yes" | "active"));
        let Some(brief) = at(&agreement, "brief").as_str().filter(|_| given) else {
            continue;
        };
        let mut accept = json!({"mode": "token", "identity": new, "brief": brief});
        for field in ["agreementmethod", "referencecode", "lastmodifiedby"] {
            if let Some(value) = at(&agreement, field).as_str() {
                set(&mut accept, field, json!(value));
            }
        }
        // Its times (Unix seconds; 0 is none): a consent that ends keeps its end, and one that
        // has ended already is not given any more.
        if let Some(start) = unix_time(&agreement, "starttime")? {
            set(&mut accept, "starttime", json!(start));
        }
        if let Some(end) = unix_time(&agreement, "endtime")? {
            if end <= now {
                continue;
            }
            set(&mut accept, "finaltime", json!(end));
        }
        client.must("AgreementAccept", accept).await?;
        agreement_count += 1;
    }
    Ok((app_records, agreement_count))
}

/// An agreement's time in Unix seconds (absent, null or 0: none). One that cannot be read is an
/// error, never "no end": a consent that ends must not be copied as one that does not.
fn unix_time(agreement: &Value, field: &str) -> anyhow::Result<Option<i64>> {
    let time = match at(agreement, field) {
        Value::Null => return Ok(None),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) if s.trim().is_empty() => Some(0),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let time = time.ok_or_else(|| anyhow!("an agreement's {field} is not a Unix time"))?;
    Ok((time > 0).then_some(time))
}

/// The field `key` of an object (null when absent).
fn at<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or(&Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agreements_times_are_read_or_refused_never_dropped() {
        let row = json!({"a": 1_796_322_306, "b": 1_796_322_306.0, "c": " 1796322306 ", "d": 0,
                         "e": "", "f": "soon", "g": true, "h": null});
        for field in ["a", "b", "c"] {
            assert_eq!(
                unix_time(&row, field).unwrap(),
                Some(1_796_322_306),
                "{field}"
            );
        }
        for field in ["d", "e", "h", "absent"] {
            assert_eq!(unix_time(&row, field).unwrap(), None, "{field}");
        }
        for field in ["f", "g"] {
            assert!(unix_time(&row, field).is_err(), "{field}");
        }
    }
}
