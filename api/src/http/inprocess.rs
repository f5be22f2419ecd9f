//! The `/v2` endpoint called in process, by the web portals and by `/v1`: the same
//! authentication, policy gate, masking, per-token limits and audit as a request from outside,
//! with the caller's token, tenant and address carried over.

use std::net::IpAddr;
use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::http::{Method, StatusCode};
use poem::{Body, Endpoint, Request, Response};
use serde_json::Value;

use crate::http::app::AppState;
use crate::http::extract::ClientAddress;

/// A handle on the `/v2` endpoint.
#[derive(Clone)]
pub struct V2(pub Arc<BoxEndpoint<'static>>);

/// Who asks, and where.
#[derive(Clone, Copy, Debug, Default)]
pub struct Asker<'a> {
    /// The access token (none: a public command).
    pub token: Option<&'a str>,
    /// The tenant by name (`X-Bunker-Tenant`); none: as the Host chooses.
    pub tenant: Option<&'a str>,
    pub host: Option<&'a str>,
    /// The client's address, for the per-address limits and the audit.
    pub address: Option<IpAddr>,
}

/// A `/v2` command refused: its status and message.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

impl V2 {
    /// `/v2/<command>` with `body`, answered as to a client.
    async fn send(
        &self,
        state: &Arc<AppState>,
        asker: Asker<'_>,
        command: &str,
        body: &Value,
    ) -> Response {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri_str(format!("/{command}"))
            .header("content-type", "application/json");
        if let Some(tenant) = asker.tenant {
            builder = builder.header("x-bunker-tenant", tenant);
        }
        if let Some(host) = asker.host {
            builder = builder.header("host", host);
        }
        if let Some(token) = asker.token {
            builder = builder.header("x-bunker-token", token);
        }
        let mut req = builder.body(Body::from_vec(serde_json::to_vec(body).unwrap_or_default()));
        req.set_data(state.clone());
        req.set_data(ClientAddress(asker.address));
        match self.0.call(req).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        }
    }

    /// `/v2/<command>` with `body`; a successful answer as it is (a file's bytes with their
    /// headers), a refusal as its status and message.
    pub async fn answer(
        &self,
        state: &Arc<AppState>,
        asker: Asker<'_>,
        command: &str,
        body: &Value,
    ) -> Result<Response, Refused> {
        let response = self.send(state, asker, command, body).await;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        Err(Refused {
            status,
            message: message_of(&read_json(response).await?),
        })
    }

    /// `/v2/<command>` with `body`: its status and its JSON, whatever they are.
    pub async fn exchange(
        &self,
        state: &Arc<AppState>,
        asker: Asker<'_>,
        command: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let response = self.send(state, asker, command, body).await;
        let status = response.status();
        match read_json(response).await {
            Ok(value) => (status, value),
            Err(refused) => (
                refused.status,
                serde_json::json!({"status": "error", "message": refused.message}),
            ),
        }
    }

    /// `/v2/<command>` with `body`: the answer's JSON (`status` `ok`), or its refusal.
    pub async fn call(
        &self,
        state: &Arc<AppState>,
        asker: Asker<'_>,
        command: &str,
        body: &Value,
    ) -> Result<Value, Refused> {
        let response = self.answer(state, asker, command, body).await?;
        let value = read_json(response).await?;
        if value.get("status").and_then(Value::as_str) != Some("ok") {
            return Err(Refused {
                status: StatusCode::BAD_REQUEST,
                message: message_of(&value),
            });
        }
        Ok(value)
    }
}

async fn read_json(response: Response) -> Result<Value, Refused> {
    let bytes = response
        .into_body()
        .into_bytes()
        .await
        .map_err(|_| Refused {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "The answer could not be read".to_owned(),
        })?;
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn message_of(value: &Value) -> String {
    value
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("The request failed")
        .to_owned()
}

/// Sets `key` of the object `body` (a command's body being built); nothing if it is no object.
pub fn set(body: &mut Value, key: &str, value: Value) {
    if let Some(object) = body.as_object_mut() {
        object.insert(key.to_owned(), value);
    }
}
