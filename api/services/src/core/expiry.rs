//! `slidingtime` and `finaltime`: durations such as `30d`, `12h`, `15m` (minutes), `10s`, `1y`
//! (365 days), or a number of seconds; `finaltime` may also be an absolute Unix time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::VaultError;

/// A user's expiry as requested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expiry {
    /// The sliding window, renewed on every access.
    pub sliding_seconds: Option<i64>,
    /// The hard cutoff.
    pub final_at: Option<SystemTime>,
}

impl Expiry {
    /// Parses the request fields (strings, or numbers of seconds).
    pub fn parse(sliding: Option<&Value>, final_time: Option<&Value>) -> Result<Self, VaultError> {
        // A window of decades is a Unix time sent by mistake, not a retention period.
        let sliding_seconds = sliding
            .map(|v| {
                seconds(v)
                    .filter(|s| *s < UNIX_TIME_FLOOR as i64)
                    .ok_or_else(|| {
                        VaultError::BadRequest(
                            "The slidingtime value must be a duration such as 30d, 12h, 15m or \
                             10s, shorter than 1,000,000,000 seconds (about 31 years)"
                                .into(),
                        )
                    })
            })
            .transpose()?;
        let final_at = final_time
            .map(|v| final_instant(v, SystemTime::now()).ok_or_else(|| invalid("finaltime")))
            .transpose()?;
        Ok(Expiry {
            sliding_seconds,
            final_at,
        })
    }

    /// The hard cutoff in Unix seconds, as the database is given it.
    pub fn final_unix(&self) -> Option<i64> {
        self.final_at.map(|at| {
            at.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        })
    }
}

/// The longest duration, and the furthest time, accepted: 100 years. Beyond it PostgreSQL's
/// intervals and timestamps overflow, and no retention period needs it.
const MAX_SECONDS: i64 = 100 * 365 * 86_400;

fn invalid(field: &str) -> VaultError {
    VaultError::BadRequest(format!(
        "The {field} value must be a duration such as 30d, 12h, 15m or 10s, or a future Unix \
         time or date (2027-01-31), at most 100 years away"
    ))
}

/// A bare number from this on is a Unix time (2001-09-09), never a duration: a deadline that has
/// just passed must not be read as a lifetime of decades.
const UNIX_TIME_FLOOR: u64 = 1_000_000_000;

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A positive duration in seconds, at most [`MAX_SECONDS`] (a bare number is seconds).
pub(crate) fn seconds(value: &Value) -> Option<i64> {
    let text = text(value)?;
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    number
        .checked_mul(scale)
        .filter(|s| (1..=MAX_SECONDS).contains(s))
}

/// A bare number from [`UNIX_TIME_FLOOR`] on is a Unix time, and a date or RFC 3339 time is
/// one too: in the future and at most [`MAX_SECONDS`] away. Anything else is a duration from now.
fn final_instant(value: &Value, now: SystemTime) -> Option<SystemTime> {
    let now_secs = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let furthest = now_secs.checked_add(u64::try_from(MAX_SECONDS).ok()?)?;
    let absolute = |unix: u64| {
        (unix > now_secs && unix <= furthest).then(|| UNIX_EPOCH + Duration::from_secs(unix))
    };
    let text = text(value)?;
    if let Ok(unix) = text.parse::<u64>() {
        if unix >= UNIX_TIME_FLOOR {
            return absolute(unix);
        }
    }
    match seconds(&Value::String(text.clone())) {
        Some(secs) => now.checked_add(Duration::from_secs(u64::try_from(secs).ok()?)),
        None => absolute(u64::try_from(crate::consent::iso_time(&text)?).ok()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_have_units() {
        assert_eq!(seconds(&json!("30d")), Some(30 * 86_400));
        assert_eq!(seconds(&json!("12h")), Some(12 * 3_600));
        assert_eq!(seconds(&json!("15m")), Some(900));
        assert_eq!(seconds(&json!("10s")), Some(10));
        assert_eq!(seconds(&json!("1y")), Some(365 * 86_400));
        assert_eq!(seconds(&json!(90)), Some(90));
        for bad in [
            json!("0d"),
            json!("d"),
            json!("3w"),
            json!("-5m"),
            json!(true),
            json!("1.5h"),
            json!("101y"),
            json!("9223372036854775807"),
            json!(9223372036854775807i64),
            json!("99999999999999999999d"),
        ] {
            assert_eq!(seconds(&bad), None, "{bad}");
        }
        assert_eq!(seconds(&json!("100y")), Some(MAX_SECONDS));
    }

    #[test]
    fn times_past_a_hundred_years_are_refused_by_field() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for far in [
            json!("10000000000000"),
            json!(10000000000000u64),
            json!("101y"),
        ] {
            assert_eq!(final_instant(&far, now), None, "{far}");
        }
        for (sliding, finaltime, field) in [
            (Some(json!("9223372036854775807")), None, "slidingtime"),
            (None, Some(json!("10000000000000")), "finaltime"),
        ] {
            let err = Expiry::parse(sliding.as_ref(), finaltime.as_ref()).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn finaltime_is_a_duration_or_a_future_unix_time() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            final_instant(&json!("1h"), now),
            Some(now + Duration::from_secs(3_600))
        );
        assert_eq!(
            final_instant(&json!("1900000000"), now),
            Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000))
        );
        assert_eq!(
            final_instant(&json!(60), now),
            Some(now + Duration::from_secs(60))
        );
        assert_eq!(
            final_instant(&json!("2030-01-01"), now),
            Some(UNIX_EPOCH + Duration::from_secs(1_893_456_000))
        );
    }

    #[test]
    fn a_unix_time_or_date_that_has_passed_is_refused_not_read_as_a_duration() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for past in [
            json!(1_799_996_400u64),
            json!("1799999940"),
            json!(1_000_000_000u64),
            json!("2020-01-01"),
            json!("1800000000"),
        ] {
            assert_eq!(final_instant(&past, now), None, "{past}");
        }
        let err = Expiry::parse(None, Some(&json!(1_000_000_000u64))).unwrap_err();
        assert!(err.to_string().contains("future Unix time"), "{err}");
        // Nor is a Unix time a sliding window.
        for time in [
            json!(1_796_170_282u64),
            json!("1000000000"),
            json!("31710d"),
        ] {
            let err = Expiry::parse(Some(&time), None).unwrap_err();
            assert!(err.to_string().contains("about 31 years"), "{time}: {err}");
        }
        assert!(Expiry::parse(Some(&json!("10y")), None).is_ok());
    }
}
