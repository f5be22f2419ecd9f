//! Token types: what a value must look like, its canonical form, and a random token of the same
//! shape. A token is drawn from a CSPRNG and carries no information about the value (beyond what
//! an option keeps on purpose, such as a card's last four digits or an e-mail's domain).

use std::str::FromStr;

use rand::{Rng, RngExt};

/// The kinds of value Bunker tokenizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    CreditCard,
    Email,
    Uint32,
    Uint64,
    UnixTime,
    Text,
}

/// A value or option refused; the message names the rule, never the value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub &'static str);

/// The latest Unix time accepted and produced for `unixtime` (2100-01-01).
const UNIXTIME_END: u64 = 4_102_444_800;

impl FromStr for TokenType {
    type Err = FormatError;

    fn from_str(text: &str) -> Result<Self, FormatError> {
        Ok(match text {
            "creditcard" => TokenType::CreditCard,
            "email" => TokenType::Email,
            "uint32" => TokenType::Uint32,
            "uint64" => TokenType::Uint64,
            "unixtime" => TokenType::UnixTime,
            "text" => TokenType::Text,
            _ => {
                return Err(FormatError(
                    "tokentype must be one of creditcard, email, uint32, uint64, unixtime, text",
                ))
            }
        })
    }
}

impl TokenType {
    /// Every type's name, as requests give them (the OpenAPI document's enum).
    pub const NAMES: [&'static str; 6] = [
        "creditcard",
        "email",
        "uint32",
        "uint64",
        "unixtime",
        "text",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::CreditCard => "creditcard",
            TokenType::Email => "email",
            TokenType::Uint32 => "uint32",
            TokenType::Uint64 => "uint64",
            TokenType::UnixTime => "unixtime",
            TokenType::Text => "text",
        }
    }

    /// Whether `tokenbase` is a UUID (no format-preserving shape).
    pub fn uuid_only(self) -> bool {
        self == TokenType::Text
    }
}

/// Options of the card format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FormatOptions {
    /// Keep the card's last four digits in the token.
    pub keep_last4: bool,
    /// Make card tokens fail the Luhn check, so they can be told apart from real cards.
    pub luhn_invalid: bool,
}

/// The canonical form of a value of `ty` (what is sealed and what `unique` compares), or why it
/// is refused.
pub fn canonical(ty: TokenType, record: &str) -> Result<String, FormatError> {
    match ty {
        TokenType::CreditCard => {
            let digits: String = record.chars().filter(|c| *c != ' ' && *c != '-').collect();
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FormatError(
                    "creditcard must contain only digits, spaces and dashes",
                ));
            }
            if !(12..=19).contains(&digits.len()) {
                return Err(FormatError("creditcard must have 12 to 19 digits"));
            }
            if !luhn_valid(&digits) {
                return Err(FormatError("creditcard must pass the Luhn check"));
            }
            Ok(digits)
        }
        TokenType::Email => {
            let email = record.trim();
            let (local, domain) = email
                .rsplit_once('@')
                .ok_or(FormatError("email must look like name@domain"))?;
            // The domain is kept in the token, which is stored and shown as text: a host name
            // (internationalized domains in their ASCII form), so that no invisible or
            // direction-changing character can make it read as another domain.
            let host = domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            let valid = !local.is_empty()
                && host
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control());
            if !valid {
                return Err(FormatError(
                    "email must look like name@domain, the domain a host name in ASCII",
                ));
            }
            if email.chars().count() > 320 {
                return Err(FormatError("email must be at most 320 characters"));
            }
            Ok(email.to_owned())
        }
        TokenType::Uint32 => number(
            record,
            u64::from(u32::MAX),
            "uint32 must be a whole number from 0 to 4294967295",
        ),
        TokenType::Uint64 => number(
            record,
            u64::MAX,
            "uint64 must be a whole number from 0 to 18446744073709551615",
        ),
        TokenType::UnixTime => number(
            record,
            UNIXTIME_END - 1,
            "unixtime must be whole seconds from 0 to 4102444799",
        ),
        TokenType::Text => {
            if record.is_empty() {
                Err(FormatError("text must not be empty"))
            } else {
                Ok(record.to_owned())
            }
        }
    }
}

fn number(record: &str, max: u64, rule: &'static str) -> Result<String, FormatError> {
    let text = record.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FormatError(rule));
    }
    let n: u64 = text.parse().map_err(|_| FormatError(rule))?;
    if n > max {
        return Err(FormatError(rule));
    }
    Ok(n.to_string())
}

/// A random token of the same shape as `canonical` (never equal to it). `None` for `text`, whose
/// token is its UUID.
pub fn shaped_token(
    ty: TokenType,
    canonical: &str,
    options: FormatOptions,
    rng: &mut impl Rng,
) -> Option<String> {
    loop {
        let token = match ty {
            TokenType::CreditCard => card_token(canonical, options, rng),
            TokenType::Email => email_token(canonical, rng),
            TokenType::Uint32 => rng.random::<u32>().to_string(),
            TokenType::Uint64 => rng.random::<u64>().to_string(),
            TokenType::UnixTime => rng.random_range(0..UNIXTIME_END).to_string(),
            TokenType::Text => return None,
        };
        if token != canonical {
            return Some(token);
        }
    }
}

fn card_token(card: &str, options: FormatOptions, rng: &mut impl Rng) -> String {
    let digits: Vec<u8> = card.bytes().map(|b| b - b'0').collect();
    let n = digits.len();
    let kept_tail = if options.keep_last4 { 4 } else { 0 };
    // The digit that settles the Luhn sum: the check digit, or the one before a kept tail.
    let adjust = n - 1 - kept_tail;
    let mut token: Vec<u8> = (0..n)
        .map(|i| match i {
            0 => digits.first().copied().unwrap_or(0),
            i if i >= n - kept_tail => digits.get(i).copied().unwrap_or(0),
            _ => rng.random_range(0..10),
        })
        .collect();
    let fitting: Vec<u8> = (0..10u8)
        .filter(|d| {
            if let Some(slot) = token.get_mut(adjust) {
                *slot = *d;
            }
            luhn_sum(&token).is_multiple_of(10)
        })
        .collect();
    let valid_digit = fitting.first().copied().unwrap_or(0);
    let digit = if options.luhn_invalid {
        let mut d = rng.random_range(0..9u8);
        if d >= valid_digit {
            d += 1;
        }
        d
    } else {
        valid_digit
    };
    if let Some(slot) = token.get_mut(adjust) {
        *slot = digit;
    }
    token.iter().map(|d| char::from(b'0' + d)).collect()
}

/// The shortest random local part of an e-mail token: 36^16 (about 2^82) tokens per domain, so
/// that short addresses (`a@example.com`) do not share a space of 36.
const EMAIL_LOCAL_MIN: usize = 16;

fn email_token(email: &str, rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    let random: String = (0..local.chars().count().max(EMAIL_LOCAL_MIN))
        .map(|_| {
            let i = rng.random_range(0..ALPHABET.len());
            char::from(ALPHABET.get(i).copied().unwrap_or(b'x'))
        })
        .collect();
    format!("{random}@{domain}")
}

fn luhn_sum(digits: &[u8]) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum()
}

/// Whether a string of digits passes the Luhn check.
pub fn luhn_valid(digits: &str) -> bool {
    let values: Vec<u8> = digits.bytes().map(|b| b.wrapping_sub(b'0')).collect();
    values.iter().all(|d| *d < 10) && luhn_sum(&values).is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VISA: &str = "4111 1111 1111 1111";

    #[test]
    fn ten_thousand_card_tokens_keep_shape_and_pass_luhn() {
        let card = canonical(TokenType::CreditCard, VISA).unwrap();
        let mut rng = rand::rng();
        for options in [
            FormatOptions::default(),
            FormatOptions {
                keep_last4: true,
                luhn_invalid: false,
            },
        ] {
            for _ in 0..10_000 {
                let token = shaped_token(TokenType::CreditCard, &card, options, &mut rng).unwrap();
                assert_eq!(token.len(), card.len());
                assert_eq!(token.as_bytes()[0], b'4');
                assert!(luhn_valid(&token), "{token}");
                assert_ne!(token, card);
                if options.keep_last4 {
                    assert!(token.ends_with("1111"));
                }
            }
        }
        let invalid = FormatOptions {
            keep_last4: false,
            luhn_invalid: true,
        };
        for _ in 0..10_000 {
            let token = shaped_token(TokenType::CreditCard, &card, invalid, &mut rng).unwrap();
            assert!(!luhn_valid(&token), "{token}");
        }
    }

    #[test]
    fn invalid_values_are_refused_by_rule_without_echo() {
        let cases = [
            (TokenType::CreditCard, "4111 1111 1111 1112", "Luhn"),
            (TokenType::CreditCard, "4111", "12 to 19"),
            (TokenType::CreditCard, "4111-1111-1111-111x", "only digits"),
            (TokenType::Email, "no-at-sign", "name@domain"),
            (TokenType::Email, "a@b", "name@domain"),
            (TokenType::Email, "a@b\u{0}c.com", "name@domain"),
            (TokenType::Email, "a@b\u{202e}c.com", "name@domain"),
            (TokenType::Email, "a@b\u{200b}c.com", "name@domain"),
            (TokenType::Uint32, "4294967296", "uint32"),
            (TokenType::Uint32, "-1", "uint32"),
            (TokenType::Uint64, "1.5", "uint64"),
            (TokenType::UnixTime, "99999999999", "unixtime"),
            (TokenType::Text, "", "text"),
        ];
        for (ty, value, rule) in cases {
            let err = canonical(ty, value).unwrap_err().to_string();
            assert!(err.contains(rule), "{value}: {err}");
            if value.len() > 3 {
                assert!(!err.contains(value), "{err} echoes the value");
            }
        }
        assert!("card".parse::<TokenType>().is_err());
    }

    #[test]
    fn other_types_keep_their_shape() {
        let mut rng = rand::rng();
        let email = shaped_token(
            TokenType::Email,
            "jane.doe@example.com",
            FormatOptions::default(),
            &mut rng,
        )
        .unwrap();
        assert!(email.ends_with("@example.com"));
        assert_eq!(
            email.len(),
            16 + "@example.com".len(),
            "at least 16 random characters"
        );
        let long = shaped_token(
            TokenType::Email,
            "jane.alexandra.doe@example.com",
            FormatOptions::default(),
            &mut rng,
        )
        .unwrap();
        assert_eq!(
            long.len(),
            "jane.alexandra.doe@example.com".len(),
            "as long as the original"
        );
        for _ in 0..1000 {
            let n: u64 = shaped_token(
                TokenType::UnixTime,
                "1700000000",
                FormatOptions::default(),
                &mut rng,
            )
            .unwrap()
            .parse()
            .unwrap();
            assert!(n < UNIXTIME_END);
            let n: u64 = shaped_token(TokenType::Uint32, "7", FormatOptions::default(), &mut rng)
                .unwrap()
                .parse()
                .unwrap();
            assert!(n <= u64::from(u32::MAX));
        }
        assert_eq!(
            shaped_token(TokenType::Text, "x", FormatOptions::default(), &mut rng),
            None
        );
    }
}
