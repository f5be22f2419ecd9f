//! The OpenAPI document as served (`/openapi.json`, and Swagger UI at `/docs`): poem-openapi's,
//! made precise where the code's types cannot say it.
//!
//! - `X-Bunker-Tenant` is a second API-key scheme, optional beside the token, so that Swagger UI
//!   and generated clients can reach any tenant; the public commands ask for no token.
//! - Optional fields are `nullable`: the server writes an absent value as `null` and reads `null`
//!   as absent.
//! - The rules the server enforces are declared from the constants its validation uses: the modes
//!   and token types, identity and name lengths, the tenant-name and rate patterns, bulk and patch
//!   sizes; free JSON (`profile`, `appdata`, ...) is typed as the object or array it must be.
//! - The main commands carry an example body (`api/src/http/examples.json`), which a test sends.
//! - Public commands document no 401; every command documents 429.

use bunker_services::access::{Command, CommandClass};
use bunker_services::core::limits::{MAX_BULK_ITEMS, MAX_INDEXED_CHARS, MAX_PATCH_OPERATIONS};
use bunker_services::core::rate::RATE_PATTERN;
use bunker_services::core::Mode;
use bunker_services::requests::MAX_REASON_CHARS;
use bunker_services::tenants::MAX_ORG_LEN;
use bunker_services::tokens::format::TokenType;
use bunker_tenancy::TenantName;
use serde_json::{json, Map, Value};

use crate::http::app::MAX_REQUEST_ID_LEN;

/// The name of the tenant scheme.
const TENANT_SCHEME: &str = "BunkerTenant";

/// Example request bodies, by command.
const EXAMPLES: &str = include_str!("examples.json");

/// The refined document.
pub fn refine(raw: &str) -> Value {
    let Ok(mut doc) = serde_json::from_str::<Value>(raw) else {
        return Value::Null;
    };
    if let Some(schemes) = doc
        .pointer_mut("/components/securitySchemes")
        .and_then(Value::as_object_mut)
    {
        schemes.insert(
            TENANT_SCHEME.to_owned(),
            json!({
                "type": "apiKey",
                "in": "header",
                "name": "X-Bunker-Tenant",
                "description": "The tenant a request works in (its name). Without it the Host's \
                    subdomain under BUNKER_DOMAIN names the tenant, else `default`. A tenant's \
                    own tokens work only in their tenant; root's in any.",
            }),
        );
    }
    let examples: Map<String, Value> = serde_json::from_str(EXAMPLES).unwrap_or_default();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let command = path.trim_start_matches('/');
            let Some(operation) = item.get_mut("post").and_then(Value::as_object_mut) else {
                continue;
            };
            refine_operation(command, operation, examples.get(command));
        }
    }
    let requests = request_schemas(&doc);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in schemas.iter_mut() {
            refine_schema(name, schema, requests.contains(name));
        }
    }
    doc
}

/// The schemas a request body uses, directly or within another: the server's input rules are
/// declared on those (an answer may echo what a request sent, e.g. a refused identity).
fn request_schemas(doc: &Value) -> std::collections::BTreeSet<String> {
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(name) = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    found.push(name.to_owned());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let mut pending = Vec::new();
    for item in doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|paths| paths.values())
    {
        if let Some(body) = item.pointer("/post/requestBody") {
            refs(body, &mut pending);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if seen.insert(name.clone()) {
            if let Some(schema) = doc.pointer(&format!("/components/schemas/{name}")) {
                refs(schema, &mut pending);
            }
        }
    }
    seen
}

fn refine_operation(command: &str, operation: &mut Map<String, Value>, example: Option<&Value>) {
    operation.insert("operationId".to_owned(), json!(command));
    let public = Command::from_name(command).is_some_and(|c| c.class() == CommandClass::Public);
    let security = if public {
        // No token; a tenant may be named.
        json!([{}, {TENANT_SCHEME: []}])
    } else {
        json!([{"BunkerToken": [], TENANT_SCHEME: []}, {"BunkerToken": []}])
    };
    operation.insert("security".to_owned(), security);
    if let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    {
        if public {
            responses.remove("401");
        }
        for response in responses.values_mut() {
            if let Some(object) = response.as_object_mut() {
                object.insert(
                    "headers".to_owned(),
                    json!({"X-Request-Id": {
                        "description": "The request's id, also on every log line of the request",
                        "schema": {"type": "string", "maxLength": MAX_REQUEST_ID_LEN},
                    }}),
                );
            }
        }
        if let Some(limited) = responses.get_mut("429").and_then(Value::as_object_mut) {
            if let Some(headers) = limited.get_mut("headers").and_then(Value::as_object_mut) {
                headers.insert(
                    "Retry-After".to_owned(),
                    json!({"description": "Seconds until a request would be let in",
                           "schema": {"type": "integer", "minimum": 1}}),
                );
                headers.insert(
                    "RateLimit-Policy".to_owned(),
                    json!({"description": "The limit reached: `\"KIND\";q=COUNT;w=SECONDS`",
                           "schema": {"type": "string"}}),
                );
                headers.insert(
                    "RateLimit".to_owned(),
                    json!({"description": "What is left of it: `\"KIND\";r=0;t=SECONDS`",
                           "schema": {"type": "string"}}),
                );
            }
        }
    }
    operation.insert(
        "parameters".to_owned(),
        json!([{
            "name": "X-Request-Id",
            "in": "header",
            "required": false,
            "description": "An id for the request, kept if it is 1-64 letters, digits or `-_.:` \
                (else one is made); returned in the answer's X-Request-Id",
            "schema": {"type": "string", "maxLength": MAX_REQUEST_ID_LEN,
                       "pattern": "^[A-Za-z0-9._:-]{1,64}$"},
        }]),
    );
    if let (Some(example), Some(body)) = (
        example,
        operation
            .get_mut("requestBody")
            .and_then(|b| b.pointer_mut("/content/application~1json"))
            .and_then(Value::as_object_mut),
    ) {
        body.insert("example".to_owned(), example.clone());
    }
}

/// What a property of this name must be, wherever it appears (`schema` names the object, for the
/// few whose rule differs).
fn constraint(schema: &str, property: &str) -> Option<Value> {
    let modes: Vec<&str> = match schema {
        // A cross-tenant lookup names no token (tokens are per tenant).
        "CrossTenantLookup" => Mode::NAMES
            .iter()
            .copied()
            .filter(|m| *m != "token")
            .collect(),
        // Accepted and ignored.
        _ => Mode::NAMES.to_vec(),
    };
    if schema == "UserSearchRequest" && property == "mode" {
        // Accepted and ignored.
        return None;
    }
    Some(match property {
        "mode" => json!({"type": "string", "enum": modes}),
        "tokentype" => json!({"type": "string", "enum": TokenType::NAMES}),
        "identity" => json!({"type": "string", "maxLength": MAX_INDEXED_CHARS}),
        "tenantname" => json!({"type": "string", "pattern": TenantName::PATTERN, "maxLength": 63}),
        "tenantorg" => json!({"type": "string", "maxLength": MAX_ORG_LEN}),
        "ratelimit" if schema.ends_with("Request") => json!({
            "type": "string",
            "pattern": format!("^(default|{})$", RATE_PATTERN.trim_start_matches('^').trim_end_matches('$')),
        }),
        "reason" => json!({"type": "string", "maxLength": MAX_REASON_CHARS}),
        "offset" => json!({"type": "integer", "format": "int64", "minimum": 0}),
        "records" | "users" => json!({"maxItems": MAX_BULK_ITEMS}),
        "patch" => json!({"type": "array", "maxItems": MAX_PATCH_OPERATIONS,
                          "items": {"type": "object"}}),
        "profile" | "appdata" | "sessiondata" | "policy" | "uiconf" | "ui" | "change"
        | "original" | "data" | "details" | "before" | "after" | "report" => {
            json!({"type": "object"})
        }
        "finaltime" | "slidingtime" | "starttime" => json!({
            "oneOf": [
                {"type": "integer", "format": "int64"},
                {"type": "string", "description": "a duration such as `30d`, `12h`, `10m`, or a number of seconds"},
            ],
        }),
        "tags" => json!({"type": "array", "items": {"type": "string"}}),
        _ => return None,
    })
}

fn refine_schema(name: &str, schema: &mut Value, request: bool) {
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (property, value) in properties.iter_mut() {
        let Some(object) = value.as_object_mut() else {
            continue;
        };
        if let Some(Value::Object(rule)) = constraint(name, property).filter(|_| request) {
            let typed = object.contains_key("type") || object.contains_key("$ref");
            // The type first: whether a size applies depends on it.
            let mut rule: Vec<(String, Value)> = rule.into_iter().collect();
            rule.sort_by_key(|(key, _)| !(key == "type" || key == "oneOf"));
            for (key, v) in rule {
                // A type the code declared stays (the rule may only add to it, or type free JSON).
                let adds_type = key == "type" || key == "oneOf";
                if adds_type && typed && !(key == "type" && object.get("type") == Some(&v)) {
                    continue;
                }
                if key == "maxItems" && object.get("type") != Some(&json!("array")) {
                    continue;
                }
                object.insert(key, v);
            }
        }
        if !required.contains(property) {
            if let Some(reference) = object.remove("$ref") {
                object.insert("allOf".to_owned(), json!([{"$ref": reference}]));
            }
            object.insert("nullable".to_owned(), json!(true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_are_nullable_and_rules_come_from_the_code() {
        let mut schema = json!({
            "type": "object",
            "required": ["mode"],
            "properties": {
                "mode": {"type": "string"},
                "tokentype": {"type": "string"},
                "profile": {},
                "webhook": {"$ref": "#/components/schemas/WebhookChange"},
                "tenantname": {"type": "string"},
                "patch": {},
            },
        });
        refine_schema("UserGetRequest", &mut schema, true);
        let p = &schema["properties"];
        assert_eq!(p["mode"]["enum"], json!(Mode::NAMES));
        assert!(p["mode"].get("nullable").is_none());
        assert_eq!(p["tokentype"]["nullable"], true);
        assert_eq!(p["profile"]["type"], "object");
        assert_eq!(
            p["webhook"],
            json!({"allOf": [{"$ref": "#/components/schemas/WebhookChange"}], "nullable": true})
        );
        assert_eq!(p["tenantname"]["pattern"], TenantName::PATTERN);
        assert_eq!(p["patch"]["type"], "array");
        assert_eq!(p["patch"]["maxItems"], MAX_PATCH_OPERATIONS);
        let mut search =
            json!({"properties": {"mode": {"type": "string"}, "identity": {"type": "string"}}});
        refine_schema("UserSearchRequest", &mut search, true);
        assert!(search["properties"]["mode"].get("enum").is_none());
        assert_eq!(
            search["properties"]["identity"]["maxLength"],
            MAX_INDEXED_CHARS
        );
        let mut lookup = json!({"properties": {"mode": {"type": "string"}}, "required": ["mode"]});
        refine_schema("CrossTenantLookup", &mut lookup, true);
        assert!(!lookup["properties"]["mode"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("token")));
        // An answer's schema gets no input rules (it may echo what was refused), only nullability.
        let mut answer = json!({"properties": {"identity": {"type": "string"}}});
        refine_schema("DeleteError", &mut answer, false);
        assert_eq!(
            answer["properties"]["identity"],
            json!({"type": "string", "nullable": true})
        );
    }

    #[test]
    fn every_example_names_a_command_and_is_an_object() {
        let examples: Map<String, Value> = serde_json::from_str(EXAMPLES).unwrap();
        assert!(examples.len() >= 10);
        for (command, body) in examples {
            assert!(Command::from_name(&command).is_some(), "{command}");
            assert!(body.is_object(), "{command}");
        }
    }
}
