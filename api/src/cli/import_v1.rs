//! `bunker import-v1`: moves a Databunker OSS installation's data into Bunker through both APIs.
//! It reads the OSS server's `/v1` (its legal bases, then its users page by page with
//! `list_users` on, and each user's app records and agreements) and re-creates them through
//! Bunker's `/v2` (LegalBasisCreate, UserCreate, AppdataCreate, AgreementAccept), so every write
//! goes through Bunker's checks, keys and audit. Tokens come from the environment, never the
//! command line; nothing personal is printed, only counts.

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

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

impl Client {
    /// GET (or POST) a `/v1` path of the OSS server: its JSON, which must say `ok`.
    async fn source(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}/v1{path}", self.job.from.trim_end_matches('/'));
        let response = self
            .http
            .request(method, &url)
            .header("X-Bunker-Token", &self.job.from_token)
            .send()
            .await
            .with_context(|| format!("the OSS server did not answer {}", route_of(path)))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() || at(&body, "status") != "ok" {
            bail!(
                "the OSS server refused {} ({status}): {}",
                route_of(path),
                body.get("message").and_then(Value::as_str).unwrap_or("")
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
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// A `/v2` command that must succeed.
    async fn must(&self, command: &str, body: Value) -> anyhow::Result<Value> {
        let (status, answer) = self.target(command, body).await?;
        if status != 200 || at(&answer, "status") != "ok" {
            bail!(
                "Bunker refused {command} ({status}): {}",
                answer.get("message").and_then(Value::as_str).unwrap_or("")
            );
        }
        Ok(answer)
    }
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
            (status, answer) => bail!(
                "Bunker refused a legal basis ({status}): {}",
                at(&answer, "message").as_str().unwrap_or("")
            ),
        }
    }
    let mut offset = 0;
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
        if users.is_empty() {
            break;
        }
        offset += users.len();
        for row in users {
            copy_user(&client, &row, &mut done).await?;
        }
        let total = at(&page, "total").as_u64().unwrap_or(0) as usize;
        if offset >= total {
            break;
        }
    }
    Ok(done)
}

/// One user, with their app records and agreements.
async fn copy_user(client: &Client, row: &Value, done: &mut Imported) -> anyhow::Result<()> {
    let old = at(row, "token")
        .as_str()
        .ok_or_else(|| anyhow!("a user of /v1/users has no token"))?
        .to_owned();
    // The OSS server answers the profile under `data`; some versions put its fields beside the
    // token.
    let profile = match row.get("data") {
        Some(Value::Object(data)) => Value::Object(data.clone()),
        _ => {
            let mut fields = row.as_object().cloned().unwrap_or_default();
            fields.remove("token");
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
        (status, answer) => bail!(
            "Bunker refused a user ({status}): {}",
            at(&answer, "message").as_str().unwrap_or("")
        ),
    };
    done.users += 1;
    let apps = client
        .source(reqwest::Method::GET, &format!("/userapp/token/{old}"))
        .await?;
    for app in at(&apps, "apps").as_array().cloned().unwrap_or_default() {
        let Some(app) = app.as_str() else { continue };
        let record = client
            .source(reqwest::Method::GET, &format!("/userapp/token/{old}/{app}"))
            .await?;
        client
            .must(
                "AppdataCreate",
                json!({"mode": "token", "identity": new, "appname": app,
                       "appdata": at(&record, "data").clone()}),
            )
            .await?;
        done.app_records += 1;
    }
    let agreements = client
        .source(reqwest::Method::GET, &format!("/agreements/token/{old}"))
        .await?;
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
        client.must("AgreementAccept", accept).await?;
        done.agreements += 1;
    }
    Ok(())
}

/// The field `key` of an object (null when absent).
fn at<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or(&Value::Null)
}
