//! How a request names a user (`mode` + `identity`), and the normalization of the indexed fields,
//! which must be the same when a profile is stored and when it is looked up.

use std::str::FromStr;

use bunker_keys::BlindIndexKey;
use phonenumber::country::Id as Region;
use serde_json::{Map, Value};
use uuid::Uuid;

use bunker_db::users::UserIndexes;

use super::grams;
use super::limits::MAX_INDEXED_CHARS;
use super::VaultError;

/// The profile keys that are indexed for lookup, each unique within a tenant.
pub const INDEXED_FIELDS: [&str; 4] = ["email", "phone", "login", "custom"];

/// How a request names a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Token,
    Email,
    Phone,
    Login,
    Custom,
}

impl FromStr for Mode {
    type Err = VaultError;

    fn from_str(mode: &str) -> Result<Self, VaultError> {
        Ok(match mode {
            "token" => Mode::Token,
            "email" => Mode::Email,
            "phone" => Mode::Phone,
            "login" => Mode::Login,
            "custom" => Mode::Custom,
            _ => {
                return Err(VaultError::BadRequest(
                    "The mode parameter has an incorrect format".into(),
                ))
            }
        })
    }
}

impl Mode {
    /// Every mode's name, as requests give them (the OpenAPI document's enum).
    pub const NAMES: [&'static str; 5] = ["token", "email", "phone", "login", "custom"];

    /// The name a request gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Token => "token",
            Mode::Email => "email",
            Mode::Phone => "phone",
            Mode::Login => "login",
            Mode::Custom => "custom",
        }
    }

    pub(crate) fn field(self) -> Option<&'static str> {
        match self {
            Mode::Token => None,
            Mode::Email => Some("email"),
            Mode::Phone => Some("phone"),
            Mode::Login => Some("login"),
            Mode::Custom => Some("custom"),
        }
    }
}

/// A user named by token, or by the blind index of one of its indexed fields.
#[derive(Clone, Copy, Debug)]
pub enum Lookup {
    Token(Uuid),
    Index(&'static str, [u8; 32]),
}

/// Normalizes indexed values: e-mail trimmed and lower-cased; phone to E.164 (numbers without a
/// country code read in the default region); login trimmed; custom as given.
#[derive(Clone, Debug)]
pub struct Normalizer {
    region: Region,
}

impl Normalizer {
    /// `region` is an ISO 3166 code such as `GB` or `US` (`BUNKER_PHONE_REGION`).
    pub fn new(region: &str) -> Result<Self, String> {
        let region = Region::from_str(&region.trim().to_ascii_uppercase())
            .map_err(|_| format!("{region} is not a region code such as GB or US"))?;
        Ok(Normalizer { region })
    }

    /// The user a request names. Errors name the problem, never the value.
    pub fn lookup(
        &self,
        key: &BlindIndexKey,
        mode: Mode,
        identity: &str,
    ) -> Result<Lookup, VaultError> {
        match mode.field() {
            None => parse_token(identity).map(Lookup::Token),
            Some(field) => {
                let value = self
                    .normalize(field, &Value::String(identity.to_owned()))?
                    .ok_or(VaultError::NotFound)?;
                Ok(Lookup::Index(
                    field,
                    key.blind_index(field, value.as_bytes()),
                ))
            }
        }
    }

    /// The blind indexes of a profile's indexed fields, and their search grams.
    pub fn indexes(
        &self,
        key: &BlindIndexKey,
        profile: &Map<String, Value>,
    ) -> Result<UserIndexes, VaultError> {
        let mut indexes = UserIndexes::default();
        for field in INDEXED_FIELDS {
            if let Some(value) = profile.get(field) {
                if let Some(normal) = self.normalize(field, value)? {
                    indexes
                        .exact
                        .push((field, key.blind_index(field, normal.as_bytes())));
                    indexes.grams.push((
                        field,
                        grams::grams(key, field, &grams::searchable(field, &normal)),
                    ));
                }
            }
        }
        Ok(indexes)
    }

    /// A profile's indexed values as search compares them (see [`grams::searchable`]).
    pub fn searchable_values(&self, profile: &Map<String, Value>) -> Vec<(&'static str, String)> {
        INDEXED_FIELDS
            .iter()
            .filter_map(|field| {
                let normal = self.normalize(field, profile.get(*field)?).ok()??;
                Some((*field, grams::searchable(field, &normal)))
            })
            .collect()
    }

    /// What a search for `identity` compares in `field`: `None` when the field cannot hold it.
    pub fn search_term(&self, field: &'static str, identity: &str) -> Option<String> {
        let normal = match field {
            // A phone search takes any written form; a partial number is searched by its digits.
            "phone" => self.phone(identity).unwrap_or_else(|_| identity.to_owned()),
            _ => identity.trim().to_owned(),
        };
        let term = grams::searchable(field, &normal);
        // Shorter terms would match a large share of any tenant and find nothing in particular.
        let shortest = if field == "phone" { 5 } else { 3 };
        (term.chars().count() >= shortest).then_some(term)
    }

    /// The normalized form of an indexed value; `None` for an empty or null one (not indexed).
    pub(crate) fn normalize(
        &self,
        field: &'static str,
        value: &Value,
    ) -> Result<Option<String>, VaultError> {
        let text = match value {
            Value::Null => return Ok(None),
            Value::String(text) => text.clone(),
            Value::Number(n) if field == "phone" || field == "custom" => n.to_string(),
            _ => {
                return Err(VaultError::BadRequest(format!(
                    "The {field} value must be a string"
                )))
            }
        };
        if text.chars().count() > MAX_INDEXED_CHARS {
            return Err(VaultError::BadRequest(format!(
                "The {field} value must be at most {MAX_INDEXED_CHARS} characters"
            )));
        }
        let normal = match field {
            "email" => text.trim().to_lowercase(),
            "login" => text.trim().to_owned(),
            "phone" if text.trim().is_empty() => String::new(),
            "phone" => self.phone(&text)?,
            _ => text,
        };
        Ok((!normal.is_empty()).then_some(normal))
    }

    fn phone(&self, text: &str) -> Result<String, VaultError> {
        let invalid =
            || VaultError::BadRequest("The phone value is not a valid phone number".into());
        let number = phonenumber::parse(Some(self.region), text.trim()).map_err(|_| invalid())?;
        if !phonenumber::is_valid(&number) {
            return Err(invalid());
        }
        Ok(number.format().mode(phonenumber::Mode::E164).to_string())
    }
}

/// A user token: any 8-4-4-4-12 hexadecimal UUID shape (version bits are not required).
pub fn parse_token(text: &str) -> Result<Uuid, VaultError> {
    let shaped = text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if !shaped {
        return Err(VaultError::BadRequest("Bad UUID".into()));
    }
    Uuid::parse_str(text).map_err(|_| VaultError::BadRequest("Bad UUID".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalizer() -> Normalizer {
        Normalizer::new("GB").unwrap()
    }

    fn normal(field: &'static str, value: Value) -> Result<Option<String>, VaultError> {
        normalizer().normalize(field, &value)
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased_logins_trimmed_custom_kept() {
        assert_eq!(
            normal("email", json!("  Jane.Doe@Example.COM "))
                .unwrap()
                .as_deref(),
            Some("jane.doe@example.com")
        );
        assert_eq!(
            normal("login", json!(" Jane ")).unwrap().as_deref(),
            Some("Jane")
        );
        assert_eq!(
            normal("custom", json!(" ID-7 ")).unwrap().as_deref(),
            Some(" ID-7 ")
        );
        assert_eq!(normal("custom", json!(42)).unwrap().as_deref(), Some("42"));
        assert_eq!(normal("email", json!("  ")).unwrap(), None);
        assert!(normal("email", json!(["x"])).is_err());
    }

    #[test]
    fn indexed_values_are_bounded_in_length() {
        let long = "a".repeat(MAX_INDEXED_CHARS + 1);
        for field in INDEXED_FIELDS {
            let err = normal(field, json!(long)).unwrap_err().to_string();
            assert!(err.contains("at most 320 characters"), "{field}: {err}");
        }
        assert!(normal("login", json!("a".repeat(MAX_INDEXED_CHARS))).is_ok());
    }

    #[test]
    fn phones_become_e164_in_the_default_region() {
        for written in [
            "07911 123456",
            "+44 7911 123456",
            "+447911123456",
            "(07911) 123-456",
        ] {
            assert_eq!(
                normal("phone", json!(written)).unwrap().as_deref(),
                Some("+447911123456"),
                "{written}"
            );
        }
        let us = Normalizer::new("us").unwrap();
        assert_eq!(
            us.normalize("phone", &json!("(650) 253-0000"))
                .unwrap()
                .as_deref(),
            Some("+16502530000")
        );
    }

    #[test]
    fn unparsable_phones_are_refused_without_echo() {
        for bad in ["not a phone", "12", "+99 123"] {
            let err = normal("phone", json!(bad)).unwrap_err();
            assert!(!err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn tokens_must_be_uuid_shaped() {
        assert!(parse_token("c6688d6a-a87e-d332-2086-31c69fef4564").is_ok());
        for bad in [
            "",
            "c6688d6a",
            "c6688d6aa87ed332208631c69fef4564",
            "c6688d6a-a87e-d332-2086-31c69fef456g",
        ] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }
}
