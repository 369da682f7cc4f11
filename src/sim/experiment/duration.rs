//! Simulated durations as experiment files write them: `90s`, `5m`, `1h30m`, `250ms`, `1.5s`,
//! and signed offsets such as `-30s` for clock skew.
//!
//! Grammar: one or more `NUMBER UNIT` parts with units `h`, `m`, `s`, `ms` in decreasing order,
//! each unit at most once, no spaces; a number is digits with an optional decimal fraction.
//! Invariants: a [`SimDuration`] is a whole number of milliseconds (the simulation's tick) of at
//! most [`DURATION_MS_MAX`]; parsing is exact decimal arithmetic (no floating point), so `1.1s`
//! is exactly 1100 ms; `Display` writes a form that parses back to the same value.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// The longest duration an experiment may name: one year of simulated time.
pub const DURATION_MS_MAX: u64 = 366 * 24 * 3_600_000;

/// The units a duration may use, longest first, with their length in milliseconds.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Digits after the decimal point that we accept; more cannot matter at millisecond resolution
/// for any unit and would only risk overflow.
const FRACTION_DIGITS_MAX: u32 = 7;

const EXPECTED: &str = "expected a number followed by ms, s, m or h (for example \"90s\", \"1h30m\", \"250ms\", \"1.5s\")";

/// A span of simulated time, in whole milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimDuration {
    ms: u64,
}

impl SimDuration {
    pub const ZERO: Self = Self { ms: 0 };

    /// A duration of `ms` milliseconds; `None` above [`DURATION_MS_MAX`].
    pub fn from_ms(ms: u64) -> Option<Self> {
        (ms <= DURATION_MS_MAX).then_some(Self { ms })
    }

    /// A duration of `secs` seconds; `None` above [`DURATION_MS_MAX`].
    pub fn from_secs(secs: u64) -> Option<Self> {
        secs.checked_mul(1000).and_then(Self::from_ms)
    }

    pub fn as_ms(self) -> u64 {
        self.ms
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.ms)
    }

    pub fn is_zero(self) -> bool {
        self.ms == 0
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.ms.checked_add(other.ms).and_then(Self::from_ms)
    }

    pub fn saturating_sub(self, other: Self) -> Self {
        Self {
            ms: self.ms.saturating_sub(other.ms),
        }
    }

    /// Parses the experiment-file form; the error says what was found and what is expected.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let ms = parse_magnitude_ms(text)?;
        Self::from_ms(ms).ok_or_else(|| DurationError::too_long(text))
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_compound(f, self.ms)
    }
}

/// A signed span of simulated time in whole milliseconds, for offsets such as clock skew.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedDuration {
    ms: i64,
}

impl SignedDuration {
    pub const ZERO: Self = Self { ms: 0 };

    /// An offset of `ms` milliseconds; `None` if its magnitude exceeds [`DURATION_MS_MAX`].
    pub fn from_ms(ms: i64) -> Option<Self> {
        (ms.unsigned_abs() <= DURATION_MS_MAX).then_some(Self { ms })
    }

    pub fn as_ms(self) -> i64 {
        self.ms
    }

    pub fn is_zero(self) -> bool {
        self.ms == 0
    }

    /// Parses an optional `-` or `+` sign followed by a duration.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let magnitude = parse_magnitude_ms(rest).map_err(|error| error.with_text(text))?;
        if magnitude > DURATION_MS_MAX {
            return Err(DurationError::too_long(text));
        }
        // Cannot overflow: the magnitude is at most DURATION_MS_MAX, far below i64::MAX.
        let ms = magnitude as i64;
        Ok(Self {
            ms: if negative { -ms } else { ms },
        })
    }
}

impl fmt::Display for SignedDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ms < 0 {
            f.write_str("-")?;
        }
        write_compound(f, self.ms.unsigned_abs())
    }
}

/// A duration that does not parse, with the text and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration; {reason}")]
pub struct DurationError {
    pub text: String,
    pub reason: String,
}

impl DurationError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        Self {
            text: shorten(text),
            reason: reason.into(),
        }
    }

    fn expected(text: &str) -> Self {
        Self::new(text, EXPECTED)
    }

    fn too_long(text: &str) -> Self {
        Self::new(text, "the longest allowed is 366 days (\"8784h\")")
    }

    fn with_text(mut self, text: &str) -> Self {
        self.text = shorten(text);
        self
    }
}

/// Long inputs are cut in messages so one bad value cannot flood a terminal.
fn shorten(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 40;
    if text.chars().count() <= SHOWN_CHARS_MAX {
        return text.to_owned();
    }
    let mut shown: String = text.chars().take(SHOWN_CHARS_MAX).collect();
    shown.push('…');
    shown
}

/// Parses an unsigned compound duration into milliseconds (unbounded by the maximum, but
/// overflow-checked).
fn parse_magnitude_ms(text: &str) -> Result<u64, DurationError> {
    if text.is_empty() {
        return Err(DurationError::expected(text));
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    let mut previous_unit: Option<usize> = None;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after_unit) = after.split_at(unit_len);
        if number.is_empty() || unit.is_empty() {
            return Err(DurationError::expected(text));
        }
        let unit_index = UNITS
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(|| {
                DurationError::new(text, format!("unknown unit {unit:?}; {EXPECTED}"))
            })?;
        if previous_unit.is_some_and(|previous| previous >= unit_index) {
            return Err(DurationError::new(
                text,
                "units must go from longest to shortest, each at most once (as in \"1h30m\")",
            ));
        }
        previous_unit = Some(unit_index);
        let part_ms = decimal_times(number, UNITS[unit_index].1)
            .ok_or_else(|| DurationError::new(text, number_problem(number)))?;
        total_ms = total_ms
            .checked_add(part_ms)
            .ok_or_else(|| DurationError::too_long(text))?;
        rest = after_unit;
    }
    Ok(total_ms)
}

fn number_problem(number: &str) -> String {
    if number.matches('.').count() > 1 || number.starts_with('.') || number.ends_with('.') {
        format!("{number:?} is not a number; {EXPECTED}")
    } else {
        format!(
            "{number:?} is too long or finer than a millisecond; durations are whole milliseconds"
        )
    }
}

/// `number` (digits, optional fraction) times `unit_ms`, if the result is a whole number of
/// milliseconds that fits in a u64.
fn decimal_times(number: &str, unit_ms: u64) -> Option<u64> {
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    let well_formed = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && !(number.contains('.') && fraction.is_empty());
    let fraction_digits = u32::try_from(fraction.len()).ok()?;
    if !well_formed || fraction_digits > FRACTION_DIGITS_MAX || whole.len() > 19 {
        return None;
    }
    let scale = 10u128.pow(fraction_digits);
    let whole_value: u128 = whole.parse().ok()?;
    let fraction_value: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let scaled = (whole_value * scale + fraction_value) * u128::from(unit_ms);
    if scaled % scale != 0 {
        return None;
    }
    u64::try_from(scaled / scale).ok()
}

/// Writes `ms` as `1h30m`, `1m0s500ms`-free compact parts: only the non-zero units, or `0s`.
fn write_compound(f: &mut fmt::Formatter<'_>, ms: u64) -> fmt::Result {
    if ms == 0 {
        return f.write_str("0s");
    }
    let mut rest = ms;
    for (name, unit_ms) in UNITS {
        let count = rest / unit_ms;
        rest %= unit_ms;
        if count > 0 {
            write!(f, "{count}{name}")?;
        }
    }
    Ok(())
}

impl Serialize for SimDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Serialize for SignedDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct DurationVisitor {
    signed: bool,
}

impl Visitor<'_> for DurationVisitor {
    type Value = i128;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.signed {
            f.write_str("a signed duration string such as \"-30s\" or \"2m\"")
        } else {
            f.write_str("a duration string such as \"90s\", \"5m\", \"1h30m\" or \"250ms\"")
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<i128, E> {
        if self.signed {
            SignedDuration::parse(text)
                .map(|duration| i128::from(duration.ms))
                .map_err(E::custom)
        } else {
            SimDuration::parse(text)
                .map(|duration| i128::from(duration.ms))
                .map_err(E::custom)
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i128, E> {
        Err(E::custom(format!(
            "{value} is not a duration; write it with a unit, as in \"{value}s\" or \"{value}ms\""
        )))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i128, E> {
        Err(E::custom(format!(
            "{value} is not a duration; write it with a unit, as in \"{value}s\" or \"{value}ms\""
        )))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<i128, E> {
        Err(E::custom(format!(
            "{value} is not a duration; write it as a string with a unit, as in \"{value}s\""
        )))
    }
}

impl<'de> Deserialize<'de> for SimDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ms = deserializer.deserialize_any(DurationVisitor { signed: false })?;
        // The visitor only returns values that SimDuration::parse accepted.
        Ok(Self { ms: ms as u64 })
    }
}

impl<'de> Deserialize<'de> for SignedDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ms = deserializer.deserialize_any(DurationVisitor { signed: true })?;
        Ok(Self { ms: ms as i64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(text: &str) -> u64 {
        SimDuration::parse(text).unwrap().as_ms()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(ms("90s"), 90_000);
        assert_eq!(ms("5m"), 300_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("250ms"), 250);
        assert_eq!(ms("1.5s"), 1_500);
        assert_eq!(ms("1.1s"), 1_100);
        assert_eq!(ms("0s"), 0);
        assert_eq!(ms("2m30s500ms"), 150_500);
        assert_eq!(ms("0.5m"), 30_000);
    }

    #[test]
    fn rejects_with_the_expected_form() {
        let error = SimDuration::parse("5x").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("\"5x\" is not a duration; unknown unit \"x\"; {EXPECTED}")
        );
        for bad in [
            "",
            "5",
            "s",
            "1.s",
            ".5s",
            "1..5s",
            "5 s",
            " 5s",
            "-5s",
            "30m1h",
            "1m1m",
            "0.5ms",
            "1.0000001s",
        ] {
            assert!(SimDuration::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(SimDuration::parse("8785h").is_err());
        assert!(SimDuration::parse("99999999999999999999999h").is_err());
    }

    #[test]
    fn signed_offsets() {
        assert_eq!(SignedDuration::parse("-30s").unwrap().as_ms(), -30_000);
        assert_eq!(SignedDuration::parse("+2m").unwrap().as_ms(), 120_000);
        assert_eq!(SignedDuration::parse("1h").unwrap().as_ms(), 3_600_000);
        assert_eq!(SignedDuration::parse("-30s").unwrap().to_string(), "-30s");
        let error = SignedDuration::parse("-3q").unwrap_err();
        assert_eq!(error.text, "-3q");
        assert!(SignedDuration::parse("--3s").is_err());
    }

    #[test]
    fn display_is_compact() {
        assert_eq!(
            SimDuration::from_ms(5_400_000).unwrap().to_string(),
            "1h30m"
        );
        assert_eq!(SimDuration::from_ms(1_500).unwrap().to_string(), "1s500ms");
        assert_eq!(SimDuration::ZERO.to_string(), "0s");
    }

    proptest! {
        #[test]
        fn display_parses_back(ms in 0..=DURATION_MS_MAX) {
            let duration = SimDuration::from_ms(ms).unwrap();
            prop_assert_eq!(SimDuration::parse(&duration.to_string()).unwrap(), duration);
            let signed = SignedDuration::from_ms(-(ms as i64)).unwrap();
            prop_assert_eq!(SignedDuration::parse(&signed.to_string()).unwrap(), signed);
        }

        #[test]
        fn never_panics(text in "\\PC{0,24}") {
            let _ = SimDuration::parse(&text);
            let _ = SignedDuration::parse(&text);
        }

        #[test]
        fn never_panics_on_near_misses(text in "[0-9.+-]{0,22}(ms|s|m|h|x)?[0-9.]{0,3}(ms|s|m|h)?") {
            let _ = SimDuration::parse(&text);
            let _ = SignedDuration::parse(&text);
        }
    }
}
