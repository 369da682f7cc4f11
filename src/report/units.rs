//! Numbers as people read them in tables and plot titles.
//!
//! Invariant: pure formatting; equal inputs give equal text on every machine (no locale).

/// A whole number with thousands separated by commas: `1,234,567`.
pub fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// A number with at most three decimals and no trailing zeros: `50`, `0.25`.
pub fn decimal(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// Milliseconds as seconds: `90 s`, `183.25 s`.
pub fn seconds(ms: u64) -> String {
    format!("{} s", decimal(ms as f64 / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_drop_trailing_zeros() {
        assert_eq!(decimal(50.0), "50");
        assert_eq!(decimal(0.25), "0.25");
        assert_eq!(decimal(0.1 + 0.2), "0.3");
        assert_eq!(decimal(-0.0001), "0");
    }

    #[test]
    fn grouped_separates_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
    }

    #[test]
    fn seconds_from_ms() {
        assert_eq!(seconds(90_000), "90 s");
        assert_eq!(seconds(183_250), "183.25 s");
        assert_eq!(seconds(0), "0 s");
    }
}
