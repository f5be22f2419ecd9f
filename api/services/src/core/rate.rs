//! A rate limit as operators and root write it: `1000/s`, `600/min`, `5000/h`, or `off`.
//!
//! A rate of N per period lets one request in every period / N on average (the generic cell rate
//! algorithm the HTTP layer runs with governor), with a burst of a tenth of N, at least 10. The same text is stored for
//! a tenant's own quota (`tenants.rate_limit`, whose check constraint spells the same grammar).

use std::fmt;
use std::time::Duration;

/// The largest count a rate may have.
pub const MAX_RATE_COUNT: u32 = 1_000_000_000;

/// A number of requests per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Period,
}

/// The periods a rate may be given per.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Second,
    Minute,
    Hour,
}

impl Period {
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Period::Second => 1,
            Period::Minute => 60,
            Period::Hour => 3600,
        })
    }

    fn unit(self) -> &'static str {
        match self {
            Period::Second => "s",
            Period::Minute => "min",
            Period::Hour => "h",
        }
    }
}

/// What a rate's text is refused with (it names the grammar, never echoes the value).
pub const RATE_GRAMMAR: &str =
    "a rate is COUNT/s, COUNT/min or COUNT/h with COUNT from 1 to 1000000000, or off";

/// The pattern the OpenAPI document declares for a rate (and the column's check constraint).
pub const RATE_PATTERN: &str = "^(off|([1-9][0-9]{0,8}|1000000000)/(s|min|h))$";

impl Rate {
    /// Parses `COUNT/s`, `COUNT/min`, `COUNT/h` or `off` (none: not limited).
    pub fn parse(text: &str) -> Result<Option<Rate>, &'static str> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (count, unit) = text.split_once('/').ok_or(RATE_GRAMMAR)?;
        let period = match unit {
            "s" => Period::Second,
            "min" => Period::Minute,
            "h" => Period::Hour,
            _ => return Err(RATE_GRAMMAR),
        };
        if count.is_empty() || count.starts_with('0') || !count.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(RATE_GRAMMAR);
        }
        let count: u32 = count.parse().map_err(|_| RATE_GRAMMAR)?;
        if count > MAX_RATE_COUNT {
            return Err(RATE_GRAMMAR);
        }
        Ok(Some(Rate { count, period }))
    }

    /// The time in which one request's allowance comes back.
    pub fn replenish_every(self) -> Duration {
        self.period.duration() / self.count.max(1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.period.unit())
    }
}

/// A rate or none, as text (`off` for none).
pub fn show(rate: Option<Rate>) -> String {
    rate.map_or_else(|| "off".to_owned(), |r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_count_per_period_or_off() {
        let rate = |count, period| Ok(Some(Rate { count, period }));
        assert_eq!(Rate::parse("1000/s"), rate(1000, Period::Second));
        assert_eq!(Rate::parse(" 600/min "), rate(600, Period::Minute));
        assert_eq!(Rate::parse("1/h"), rate(1, Period::Hour));
        assert_eq!(Rate::parse("OFF"), Ok(None));
        for bad in [
            "",
            "0/s",
            "010/s",
            "-1/s",
            "1/d",
            "1/",
            "/s",
            "10",
            "1e3/s",
            "1000000001/s",
            "99999999999/s",
            "1 /s",
            "+5/s",
        ] {
            assert_eq!(Rate::parse(bad), Err(RATE_GRAMMAR), "{bad}");
        }
        assert_eq!(show(Rate::parse("25/min").unwrap()), "25/min");
        assert_eq!(show(None), "off");
        assert_eq!(
            Rate::parse("4/s").unwrap().map(Rate::replenish_every),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn the_declared_pattern_admits_what_parse_reads_as_written() {
        let pattern = regex::Regex::new(RATE_PATTERN).unwrap();
        for text in [
            "1/s",
            "1000/s",
            "600/min",
            "5/h",
            "off",
            "1000000000/s",
            "1000000001/s",
            "9999999999/s",
            "0/s",
            "01/s",
            "1/d",
            "10",
            "/s",
            "1e3/s",
            "+5/s",
            "1 /s",
            "OFF",
        ] {
            // What the pattern admits, parse reads; the parser also takes `OFF` and surrounding
            // spaces, and stores the canonical form (which the pattern admits).
            let parsed = Rate::parse(text);
            if pattern.is_match(text) {
                assert!(parsed.is_ok(), "{text}");
            }
            if let Ok(rate) = parsed {
                assert!(pattern.is_match(&show(rate)), "{text}");
            }
        }
        assert!(!pattern.is_match("0/s") && Rate::parse("0/s").is_err());
    }
}
