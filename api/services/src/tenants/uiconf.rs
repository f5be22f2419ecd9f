//! A tenant's display configuration for the portals: set by its admin with TenantUpdate
//! (`uiconf`), answered to anyone by TenantGetUIConf. Names, links, colours and the login methods
//! the tenant wants; each value is checked, so that nothing else (no personal data, no secret, no
//! script) can be published through it.

use bunker_db::audit;
use bunker_db::control;
use bunker_db::TenantId;
use bunker_tenancy::{Caller, TenancyError, TenantName};
use serde_json::{Map, Value};

use super::{event, require_own_tenant, Tenants};
use crate::access::Command;
use crate::core::limits::invisible;

/// What a configuration may hold, and how each value is checked.
const FIELDS: &[(&str, Kind)] = &[
    ("companytitle", Kind::Text),
    ("logourl", Kind::Url),
    ("companylink", Kind::Url),
    ("privacypolicyurl", Kind::Url),
    ("termsofserviceurl", Kind::Url),
    ("primarycolor", Kind::Colour),
    ("accentcolor", Kind::Colour),
    ("loginemail", Kind::Switch),
    ("loginphone", Kind::Switch),
];

#[derive(Clone, Copy)]
enum Kind {
    /// 1 to 100 characters, no control characters.
    Text,
    /// An `https://` URL (or a path on this server, `/…`), at most 2048 characters.
    Url,
    /// `#rrggbb`.
    Colour,
    Switch,
}

const MAX_TEXT_CHARS: usize = 100;
const MAX_URL_CHARS: usize = 2048;

/// The login methods this server can deliver codes by (none until the end-user login lands; a
/// tenant's wish for one is kept and answered as off meanwhile).
#[derive(Clone, Copy, Debug, Default)]
pub struct LoginMethods {
    pub email: bool,
    pub phone: bool,
}

/// A change to a configuration: each given key replaces, `null` removes.
#[derive(Clone, Debug)]
pub struct UiConfChange(Map<String, Value>);

impl UiConfChange {
    /// Checks a `uiconf` object: known keys only, each value of its kind.
    pub fn parse(value: Value) -> Result<Self, TenancyError> {
        let Value::Object(map) = value else {
            return Err(TenancyError::InvalidRequest("uiconf must be a JSON object"));
        };
        for (key, value) in &map {
            let Some((_, kind)) = FIELDS.iter().find(|(name, _)| name == key) else {
                return Err(TenancyError::InvalidRequest(
                    "uiconf takes only companytitle, logourl, companylink, privacypolicyurl, \
                     termsofserviceurl, primarycolor, accentcolor, loginemail and loginphone",
                ));
            };
            if !value.is_null() && !valid(*kind, value) {
                return Err(TenancyError::InvalidRequest(refusal(*kind)));
            }
        }
        Ok(UiConfChange(map))
    }

    fn apply(self, conf: &mut Map<String, Value>) {
        for (key, value) in self.0 {
            if value.is_null() {
                conf.remove(&key);
            } else {
                conf.insert(key, value);
            }
        }
    }
}

fn valid(kind: Kind, value: &Value) -> bool {
    match (kind, value) {
        (Kind::Switch, Value::Bool(_)) => true,
        (Kind::Text, Value::String(text)) => {
            let chars = text.chars().count();
            (1..=MAX_TEXT_CHARS).contains(&chars)
                && !text
                    .chars()
                    .any(|c| c.is_control() || invisible(c) || "<>".contains(c))
                && text.chars().any(char::is_alphanumeric)
        }
        (Kind::Url, Value::String(text)) => {
            text.len() <= MAX_URL_CHARS
                && text.bytes().all(url_byte)
                && escapes_well_formed(text)
                && (text.starts_with('/') && !text.starts_with("//") || https_url(text))
        }
        (Kind::Colour, Value::String(text)) => {
            text.len() == 7
                && text.starts_with('#')
                && text[1..].bytes().all(|b| b.is_ascii_hexdigit())
        }
        _ => false,
    }
}

/// What a link may be written with: RFC 3986's unreserved and reserved characters and `%`, but
/// not `'` (nor `\`, `<`, `>`, `"`, spaces or anything else a parser or a page might read
/// otherwise).
fn url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&()*+,;=%".contains(&b)
}

/// Whether every `%` starts an escape of two hex digits.
fn escapes_well_formed(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

/// An URL written `https://<domain name>` (lower-case scheme, two slashes, no user information, a
/// host of DNS labels, not an IP address: the portals' visitors' browsers fetch it).
fn https_url(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("https://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(authority, |(host, _)| host);
    let labels: Vec<&str> = host.split('.').collect();
    let named = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()));
    named
        && url::Url::parse(text)
            .is_ok_and(|u| u.scheme() == "https" && matches!(u.host(), Some(url::Host::Domain(_))))
}

fn refusal(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => {
            "uiconf.companytitle must be 1 to 100 characters with a letter or digit, without \
             control or invisible characters, < or >"
        }
        Kind::Url => {
            "uiconf links must be https://<domain name> URLs without credentials (or paths on \
             this server, /…), at most 2048 characters of letters, digits, -._~:/?#[]@!$&()*+,;= \
             and %XX escapes"
        }
        Kind::Colour => "uiconf colours must be written #rrggbb",
        Kind::Switch => "uiconf.loginemail and uiconf.loginphone must be true or false",
    }
}

/// The configuration as answered: what the tenant set, and the login methods on (wanted by the
/// tenant, which is the default, and deliverable by this server).
pub fn answer(conf: Option<Value>, available: LoginMethods) -> Map<String, Value> {
    // Checked again on the way out: only what the rules let through is ever published, whatever
    // the row holds (a value stored under older rules, or written past the server).
    let mut shown: Map<String, Value> = match conf {
        Some(Value::Object(map)) => map
            .into_iter()
            .filter(|(key, value)| {
                FIELDS
                    .iter()
                    .any(|(name, kind)| name == key && valid(*kind, value))
            })
            .collect(),
        _ => Map::new(),
    };
    let wanted = |shown: &mut Map<String, Value>, key: &str| {
        shown.remove(key).and_then(|v| v.as_bool()).unwrap_or(true)
    };
    let email = wanted(&mut shown, "loginemail") && available.email;
    let phone = wanted(&mut shown, "loginphone") && available.phone;
    shown.insert(
        "loginmethods".to_owned(),
        serde_json::json!({ "email": email, "phone": phone }),
    );
    shown
}

impl Tenants {
    /// TenantGetUIConf (public): the configuration of the tenant `name`. A name no tenant has
    /// gets the configuration of a tenant that set nothing, so that the command does not tell
    /// which tenants exist.
    pub async fn public_ui_conf(
        &self,
        name: &TenantName,
        available: LoginMethods,
    ) -> Result<Map<String, Value>, TenancyError> {
        let conf = self.db.ui_conf(name.as_str()).await?;
        Ok(answer(conf, available))
    }

    /// Changes a tenant's display configuration: root any tenant, a tenant admin its own.
    pub async fn update_ui_conf(
        &self,
        caller: &Caller,
        id: TenantId,
        change: UiConfChange,
    ) -> Result<(), TenancyError> {
        require_own_tenant(caller, id)?;
        let actor = caller.actor();
        self.db
            .in_tenant(caller.tenant.id, |tx| {
                Box::pin(async move {
                    let mut conf = match control::ui_conf(tx, id).await? {
                        Some(Value::Object(map)) => map,
                        Some(_) => Map::new(),
                        None => return Err(TenancyError::TenantNotFound),
                    };
                    change.apply(&mut conf);
                    control::set_ui_conf(tx, id, &Value::Object(conf)).await?;
                    audit::record(tx, &event(actor, Command::TenantUpdate.audit_action(), id))
                        .await?;
                    Ok(())
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_names_links_colours_and_switches_are_taken() {
        assert!(UiConfChange::parse(json!({
            "companytitle": "Acme Ltd",
            "logourl": "https://cdn.example.com/logo.svg",
            "privacypolicyurl": "/privacy",
            "primarycolor": "#1a2B3c",
            "loginphone": false,
            "accentcolor": null,
        }))
        .is_ok());
        for refused in [
            json!({"email": "jane@example.com"}),
            json!({"logourl": "javascript:alert(1)"}),
            json!({"logourl": "http://example.com/logo.png"}),
            json!({"logourl": "//evil.example/logo.png"}),
            json!({"logourl": "/\\evil.example/logo.png"}),
            json!({"companylink": "https://evil.example\\@good.example/"}),
            json!({"companylink": "https://user:pass@evil.example/"}),
            json!({"companylink": "https://good.example@evil.example/"}),
            json!({"companylink": "https://example.com/<x>"}),
            json!({"companylink": "/path?x=1&y='a'"}),
            json!({"companylink": "https://example.com/\u{202e}"}),
            json!({"companytitle": "Acme\u{202e}"}),
            json!({"companytitle": "<script>"}),
            json!({"companytitle": "\u{3164}\u{2800}\u{00ad}"}),
            json!({"companytitle": "Acme\u{00ad}"}),
            json!({"companytitle": "Acme\u{E0041}"}),
            json!({"companytitle": "Acme\u{2028}"}),
            json!({"companylink": "https:evil.example"}),
            json!({"companylink": "https:/evil.example"}),
            json!({"companylink": "HTTPS://evil.example"}),
            json!({"companylink": "https:///evil.example"}),
            json!({"companylink": "https://@evil.example"}),
            json!({"companylink": "https://127.0.0.1/logo.png"}),
            json!({"companylink": "https://[::1]/logo.png"}),
            json!({"companylink": "https://2130706433/"}),
            json!({"companylink": "https://localhost/"}),
            json!({"companylink": "/logo%zz.png"}),
            json!({"companylink": "/logo%"}),
            json!({"primarycolor": "red; background: url(x)"}),
            json!({"companytitle": ""}),
            json!({"companytitle": "a\nb"}),
            json!({"loginemail": "yes"}),
            json!("text"),
        ] {
            assert!(UiConfChange::parse(refused.clone()).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_login_method_is_on_only_when_wanted_and_deliverable() {
        let on = LoginMethods {
            email: true,
            phone: true,
        };
        let conf = Some(json!({"companytitle": "Acme", "loginphone": false}));
        let shown = answer(conf.clone(), on);
        assert_eq!(
            shown["loginmethods"],
            json!({"email": true, "phone": false})
        );
        assert_eq!(shown["companytitle"], "Acme");
        assert!(!shown.contains_key("loginphone"));
        let shown = answer(conf, LoginMethods::default());
        assert_eq!(
            shown["loginmethods"],
            json!({"email": false, "phone": false})
        );
        // What a row holds against the rules is never published.
        let stored = json!({"companytitle": "<script>", "logourl": "javascript:x", "extra": 1,
                            "primarycolor": "#000000"});
        assert_eq!(
            Value::Object(answer(Some(stored), on)),
            json!({"primarycolor": "#000000", "loginmethods": {"email": true, "phone": true}})
        );
    }
}
