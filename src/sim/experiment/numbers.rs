//! Checked numbers of experiment files: rates (events per second, finite and >= 0) and
//! probabilities (loss, in [0, 1]). Both accept TOML integers and floats.
//!
//! Invariant: a value of these types is always finite and within its range, so the runner can
//! use it without checking again.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A rate in events per second: finite and at least 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Rate(f64);

impl Rate {
    pub const ZERO: Self = Self(0.0);

    pub fn new(per_second: f64) -> Option<Self> {
        (per_second.is_finite() && per_second >= 0.0).then_some(Self(per_second))
    }

    pub fn per_second(self) -> f64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0.0
    }
}

/// A probability in [0, 1].
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Probability(f64);

impl Probability {
    pub const ZERO: Self = Self(0.0);

    pub fn new(value: f64) -> Option<Self> {
        (0.0..=1.0).contains(&value).then_some(Self(value))
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.0)
    }
}

impl fmt::Display for Probability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

struct NumberVisitor {
    what: &'static str,
    expected: &'static str,
    check: fn(f64) -> bool,
}

impl Visitor<'_> for NumberVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<f64, E> {
        if (self.check)(value) {
            Ok(value)
        } else {
            Err(E::custom(format!(
                "{value} is not {}; expected {}",
                self.what, self.expected
            )))
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<f64, E> {
        // Integers beyond 2^53 lose precision, which no rate or probability can need.
        self.visit_f64(value as f64)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<f64, E> {
        self.visit_f64(value as f64)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(NumberVisitor {
                what: "a rate",
                expected: "a finite number of events per second, at least 0",
                check: |value| Rate::new(value).is_some(),
            })
            .map(Self)
    }
}

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(NumberVisitor {
                what: "a probability",
                expected: "a number from 0 to 1 (0.01 is one message in a hundred)",
                check: |value| Probability::new(value).is_some(),
            })
            .map(Self)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

impl Serialize for Probability {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        rate: Option<Rate>,
        loss: Option<Probability>,
    }

    fn parse(text: &str) -> Result<Holder, String> {
        toml::from_str(text).map_err(|error| error.message().to_owned())
    }

    #[test]
    fn accepts_integers_and_floats() {
        assert_eq!(parse("rate = 4").unwrap().rate, Rate::new(4.0));
        assert_eq!(parse("rate = 0.2").unwrap().rate, Rate::new(0.2));
        assert_eq!(parse("loss = 1").unwrap().loss, Probability::new(1.0));
    }

    #[test]
    fn rejects_out_of_range_with_the_expectation() {
        assert_eq!(
            parse("rate = -1").unwrap_err(),
            "-1 is not a rate; expected a finite number of events per second, at least 0"
        );
        assert!(parse("rate = nan").is_err());
        assert!(parse("rate = inf").is_err());
        assert!(parse("loss = 1.5").unwrap_err().contains("from 0 to 1"));
        assert!(parse("loss = \"x\"").is_err());
    }
}
