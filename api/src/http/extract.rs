//! Request extractors for the `/v2` API: the JSON body and the authenticated caller.
//!
//! Bodies are parsed here, not by poem-openapi, because the contract asks for more leniency (any or
//! no Content-Type, an empty body meaning `{}`, `null` meaning absent, numeric strings for integers)
//! and because parse errors must never echo what was sent: poem-openapi's and serde's messages quote
//! the offending value, which may be personal data.

use std::sync::Arc;

use bunker_tenancy::Caller;
use poem::http::StatusCode;
use poem::web::RequestBody;
use poem::Request;
use poem_openapi::registry::{
    MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, MetaSecurityScheme, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use crate::http::app::AppState;
use crate::http::error::ApiError;
use crate::http::limits::RequestShape;
use bunker_services::access::Command;
use bunker_services::core::limits;

/// A `/v2` request body of type `T`.
pub struct JsonBody<T>(pub T);

impl<'a, T: DeserializeOwned + Type + Send> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: T::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let bytes = read_body(body, body_limit(request)?).await?;
        Ok(JsonBody(decode(&bytes)?))
    }
}

/// How large a body the request's command takes: FileCreate carries a whole file in base64.
fn body_limit(request: &Request) -> Result<usize, ApiError> {
    let state = app_state(request)?;
    Ok(if request.uri().path().ends_with("/FileCreate") {
        state.max_file_body_bytes
    } else {
        state.max_body_bytes
    })
}

/// The request body, refused over `limit` bytes.
async fn read_body(body: &mut RequestBody, limit: usize) -> Result<bytes::Bytes, ApiError> {
    body.take()
        .map_err(|_| ApiError::internal())?
        .into_bytes_limit(limit)
        .await
        .map_err(|err| match err {
            poem::error::ReadBodyError::PayloadTooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request body is over the limit of {limit} bytes"),
            ),
            _ => ApiError::bad_request("Failed to read the request body"),
        })
}

/// Decodes a request body: empty means `{}`, top-level `null` fields are dropped (absent), unknown
/// fields are ignored. Error messages name fields, never values.
pub fn decode<T: DeserializeOwned + Type>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(bytes).map_err(|_| {
            ApiError::bad_request("Failed to decode the request body: it is not valid JSON")
        })?
    };
    let Value::Object(mut fields) = value else {
        return Err(ApiError::bad_request(
            "Failed to decode the request body: a JSON object is expected",
        ));
    };
    fields.retain(|_, v| !v.is_null());
    refuse_nul(&fields)?;
    // Sealed into every audit event of the request: bounded once, here.
    limits::check_metadata(fields.get("request_metadata")).map_err(ApiError::from)?;
    serde_path_to_error::deserialize(Value::Object(fields)).map_err(|err| {
        // Refused: the body is read again (it was consumed) to name what is missing.
        let body = serde_json::from_slice(bytes).unwrap_or_else(|_| Value::Object(Map::new()));
        match missing_field::<T>(&body, err.path()) {
            Some(field) if err.path().iter().next().is_none() => {
                ApiError::bad_request(format!("Missing API request parameters: {field}"))
            }
            Some(field) => ApiError::bad_request(format!(
                "Missing API request parameters: {}.{field}",
                err.path()
            )),
            None => ApiError::bad_request(format!("Invalid value for parameter: {}", err.path())),
        }
    })
}

/// The first field that the schema of the object at `path` requires and the body lacks there:
/// the schema `/openapi.json` shows for `T` (so a client is told what the document says), read
/// only for a refused body.
fn missing_field<T: Type>(body: &Value, path: &serde_path_to_error::Path) -> Option<&'static str> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let root = T::schema_ref();
    let mut schema = lookup(&registry, &root)?;
    let mut value = body;
    for segment in path.iter() {
        match segment {
            Segment::Map { key } => {
                let (_, property) = schema.properties.iter().find(|(name, _)| name == key)?;
                schema = lookup(&registry, property)?;
                value = value.get(key)?;
            }
            Segment::Seq { index } => {
                schema = lookup(&registry, schema.items.as_deref()?)?;
                value = value.get(index)?;
            }
            Segment::Enum { .. } | Segment::Unknown => return None,
        }
    }
    let fields = value.as_object()?;
    schema
        .required
        .iter()
        .copied()
        .find(|field| fields.get(*field).is_none_or(Value::is_null))
}

/// The schema a reference names, or the inline one.
fn lookup<'a>(registry: &'a Registry, schema: &'a MetaSchemaRef) -> Option<&'a MetaSchema> {
    match schema {
        MetaSchemaRef::Inline(schema) => Some(schema),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
    }
}

/// The fields whose values are only ever sealed or hashed, never stored as text: they may hold any
/// character (at the top level, and in each of `records`).
const SEALED_FIELDS: [&str; 6] = [
    "profile",
    "patch",
    "record",
    "request_metadata",
    "identity",
    "sessiondata",
];

/// Refuses U+0000 anywhere but in sealed fields: PostgreSQL text cannot hold it. The message names
/// the request field (`records[2].tokentype`), never what it holds.
fn refuse_nul(fields: &Map<String, Value>) -> Result<(), ApiError> {
    let refused = |field: String| {
        ApiError::bad_request(format!(
            "Invalid value for parameter: {field}: text may not contain NUL characters"
        ))
    };
    for (key, value) in fields {
        if key.contains('\0') {
            return Err(ApiError::bad_request(
                "Failed to decode the request body: a field name contains a NUL character",
            ));
        }
        if SEALED_FIELDS.contains(&key.as_str()) {
            continue;
        }
        if let (Some(items), "records") = (value.as_array(), key.as_str()) {
            for (i, item) in items.iter().enumerate() {
                match item.as_object() {
                    Some(record) => {
                        for (name, inner) in record {
                            if !SEALED_FIELDS.contains(&name.as_str()) && holds_nul(inner) {
                                return Err(refused(format!("records[{i}].{name}")));
                            }
                            if name.contains('\0') {
                                return Err(refused(format!("records[{i}]")));
                            }
                        }
                    }
                    None if holds_nul(item) => return Err(refused(format!("records[{i}]"))),
                    None => {}
                }
            }
        } else if holds_nul(value) {
            return Err(refused(key.clone()));
        }
    }
    Ok(())
}

/// Whether a NUL character is in any string or key of `value`.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The authenticated caller of a `/v2` command: tenant resolved, token checked, tenant access allowed.
pub struct Authenticated(pub Caller);

/// The name of the security scheme in the OpenAPI document.
const TOKEN_SCHEME: &str = "BunkerToken";

impl<'a> ApiExtractor<'a> for Authenticated {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            TOKEN_SCHEME,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some(
                    "The root token, a tenant's admin token, or a role or user token \
                     (XTokenCreateForRole, XTokenCreateForUser) held to its policies. The tenant is \
                     chosen by the X-Bunker-Tenant header, else by the Host's subdomain, else \
                     `default`.",
                ),
                name: Some("X-Bunker-Token"),
                key_in: Some("header"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![TOKEN_SCHEME]
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = app_state(request)?;
        let headers = request.headers();
        // A header that is not valid text is treated as a wrong value, not as an absent one.
        let token = headers
            .get("x-bunker-token")
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        let tenant = headers
            .get("x-bunker-tenant")
            .map(|v| v.to_str().unwrap_or(""));
        let host = headers.get("host").and_then(|v| v.to_str().ok());
        // A body that may be the size of a file is not read for a request that cannot be let in.
        if token.is_none() {
            return Err(ApiError::from(bunker_tenancy::TenancyError::MissingToken).into());
        }
        // The body is read before authenticating, and put back for the command's own extractor:
        // authentication opens the request's transaction, and a slow client must not hold a
        // database connection while it sends its body.
        let bytes = read_body(body, body_limit(request)?).await?;
        *body = RequestBody::new(poem::Body::from(bytes.clone()));
        // A token whose tenant's (or own) allowance ran out a moment ago is refused before the
        // database is asked again; only a request that authenticated can have put it there.
        let shape = RequestShape::of(token, tenant, host);
        if let Some(refusal) = state.limits.still_refused(&shape) {
            return Err(ApiError::too_many(&refusal).into());
        }
        let caller = state
            .tenancy
            .authenticate(token, tenant, host)
            .await
            .map_err(ApiError::from)?;
        let command = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .and_then(Command::from_name);
        if let Some(per_tenant) = &state.metrics.per_tenant {
            per_tenant.with_label_values(&[&caller.tenant.name]).inc();
        }
        state
            .limits
            .check_caller(&caller.tenant, caller.token_id, command)
            .map_err(|refusal| {
                state.limits.remember_refusal(shape, &refusal);
                ApiError::too_many(&refusal)
            })?;
        state
            .vault
            .admit(&caller, command, || request_metadata(&bytes))
            .await
            .map_err(ApiError::from)?;
        Ok(Authenticated(caller))
    }
}

/// The request's metadata, for the policies' conditions when a command is admitted. Read as the
/// command's own extractor reads it (a repeated key: the last), so that the decision and the
/// command see the same metadata.
fn request_metadata(body: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("request_metadata").map(Value::take))
        .filter(|v| !v.is_null())
}

/// The client's address, set on a request the web portals make on a browser's behalf (whose own
/// connection is the browser's).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress(pub Option<std::net::IpAddr>);

/// The request's client address: the portal's for its own requests, else the connection's (or a
/// trusted proxy's `X-Forwarded-For`).
pub fn client_address(request: &Request) -> Option<std::net::IpAddr> {
    if let Some(ClientAddress(address)) = request.data::<ClientAddress>() {
        return *address;
    }
    let state = request.data::<Arc<AppState>>()?;
    let peer = request.remote_addr().as_socket_addr().map(|a| a.ip());
    state.limits.client_address(peer, request.headers())
}

pub fn app_state(request: &Request) -> Result<&Arc<AppState>, ApiError> {
    request.data::<Arc<AppState>>().ok_or_else(|| {
        tracing::error!("application state missing from the request");
        ApiError::internal()
    })
}

/// Lenient integers: the SDKs forward ids untouched, so a numeric string is accepted too.
pub mod lenient {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// Read through a [`Value`] rather than an untagged enum: with serde_json's exact numbers
    /// (`arbitrary_precision`), untagged enums cannot read numbers.
    fn to_int<E: Error>(value: Value) -> Result<i64, E> {
        let parsed = match &value {
            Value::Number(n) => n.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| E::custom("expected an integer"))
    }

    /// A required integer.
    pub fn int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        to_int(Value::deserialize(deserializer)?)
    }

    /// An optional integer (use with `#[serde(default)]`).
    pub fn opt_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Null => Ok(None),
            value => to_int(value).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, poem_openapi::Object)]
    struct Probe {
        name: String,
        #[serde(default, deserialize_with = "lenient::opt_int")]
        count: Option<i64>,
    }

    fn message(result: Result<Probe, ApiError>) -> String {
        result
            .map(|_| String::new())
            .unwrap_or_else(|e| e.message().to_owned())
    }

    #[test]
    fn null_is_absent_and_unknown_fields_are_ignored() {
        let probe: Result<Probe, _> = decode(br#"{"name":"x","count":null,"extra":1}"#);
        assert!(matches!(probe, Ok(Probe { count: None, ref name }) if name == "x"));
        let probe: Result<Probe, _> = decode(br#"{"name":null}"#);
        assert_eq!(message(probe), "Missing API request parameters: name");
    }

    #[test]
    fn empty_body_is_an_empty_object() {
        assert_eq!(message(decode(b"")), "Missing API request parameters: name");
        assert_eq!(
            message(decode(b"  \n")),
            "Missing API request parameters: name"
        );
    }

    #[test]
    fn numbers_are_kept_exactly() {
        let body = br#"{"profile":{"big":123456789012345678901234567890,"pi":3.14159265358979323846,"e":1e400}}"#;
        let value: Value = serde_json::from_slice(body).unwrap();
        // Every digit kept; only an exponent's sign is written out.
        assert_eq!(
            serde_json::to_string(&value["profile"]).unwrap(),
            r#"{"big":123456789012345678901234567890,"e":1e+400,"pi":3.14159265358979323846}"#
        );
        let probe: Result<Probe, _> = decode(br#"{"name":"x","count":42}"#);
        assert!(matches!(
            probe,
            Ok(Probe {
                count: Some(42),
                ..
            })
        ));
        let too_big: Result<Probe, _> = decode(br#"{"name":"x","count":99999999999999999999}"#);
        assert_eq!(message(too_big), "Invalid value for parameter: count");
    }

    #[test]
    fn numeric_strings_are_integers() {
        let probe: Result<Probe, _> = decode(br#"{"name":"x","count":" 42"}"#);
        assert!(matches!(
            probe,
            Ok(Probe {
                count: Some(42),
                ..
            })
        ));
    }

    #[test]
    fn a_missing_field_is_named_from_the_schema_at_any_depth_and_a_wrong_one_by_its_path() {
        #[derive(Debug, Deserialize, poem_openapi::Object)]
        struct Inner {
            mode: String,
            note: Option<String>,
        }
        #[derive(Debug, Deserialize, poem_openapi::Object)]
        struct Outer {
            records: Vec<Inner>,
        }
        let refused = |body: &[u8]| match decode::<Outer>(body) {
            Ok(_) => String::new(),
            Err(e) => e.message().to_owned(),
        };
        assert_eq!(refused(b"{}"), "Missing API request parameters: records");
        assert_eq!(
            refused(br#"{"records":[{"mode":"x"},{"note":"y"}]}"#),
            "Missing API request parameters: records[1].mode"
        );
        assert_eq!(
            refused(br#"{"records":[{"mode":"x"},{"mode":5}]}"#),
            "Invalid value for parameter: records[1].mode"
        );
        assert_eq!(refused(br#"{"records":[{"mode":"x"}]}"#), "");
    }

    #[test]
    fn nul_characters_are_refused_by_field_except_in_sealed_values() {
        #[derive(Debug, Deserialize, poem_openapi::Object)]
        #[allow(dead_code)]
        struct Any {
            groupname: Option<String>,
            profile: Option<Value>,
            records: Option<Vec<Value>>,
            policy: Option<Value>,
        }
        let refused = |body: &str| match decode::<Any>(body.as_bytes()) {
            Ok(_) => String::new(),
            Err(e) => e.message().to_owned(),
        };
        assert!(
            refused(r#"{"groupname":"a\u0000b"}"#).contains("groupname: text may not contain NUL")
        );
        assert!(refused(r#"{"policy":{"Action":["\u0000"]}}"#).contains("policy:"));
        assert!(
            refused(r#"{"records":[{"profile":{"a":"\u0000"}},{"tokentype":"\u0000"}]}"#)
                .contains("records[1].tokentype")
        );
        assert!(refused(r#"{"x\u0000":1}"#).contains("field name"));
        for sealed in [
            r#"{"profile":{"name":"a\u0000b","k\u0000":1}}"#,
            r#"{"records":[{"profile":{"a":"\u0000"},"record":"\u0000"}]}"#,
            r#"{"request_metadata":{"why":"\u0000"}}"#,
        ] {
            assert_eq!(refused(sealed), "", "{sealed}");
        }
    }

    #[test]
    fn errors_never_echo_values() {
        let secret = "jane.doe@example.com";
        for body in [
            format!(r#"{{"name":"x","count":"{secret}"}}"#),
            format!(r#"{{"name":["{secret}"]}}"#),
            format!(r#"{{"name":"{secret}""#),
            format!(r#"["{secret}"]"#),
        ] {
            let got = message(decode(body.as_bytes()));
            assert!(!got.is_empty(), "{body} should be refused");
            assert!(!got.contains("jane"), "{got} echoes the value");
        }
    }
}
