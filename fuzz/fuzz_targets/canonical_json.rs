//! Canonical JSON on arbitrary text: never panics; the output is a fixed point, denotes the same
//! value as the input, and strict mode accepts a subset of what lenient mode accepts, writing
//! it identically.
#![no_main]

use fedlab::proto::canonical_json::{CanonicalJsonError, Numbers, canonicalize_str};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// JSON equality where numbers compare by value (canonical JSON writes `1e3` as `1000`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| same_value(x, y)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let strict = canonicalize_str(text, Numbers::Strict);
    let lenient = canonicalize_str(text, Numbers::Lenient);
    match (&strict, &lenient) {
        (Ok(strict), Ok(lenient)) => assert_eq!(strict, lenient),
        (Ok(_), Err(error)) => panic!("strict accepted what lenient refused: {error}"),
        (Err(CanonicalJsonError::Syntax(_)), Ok(_)) => {
            panic!("strict saw a syntax error lenient did not")
        }
        (Err(_), _) => {}
    }
    for (numbers, result) in [(Numbers::Strict, strict), (Numbers::Lenient, lenient)] {
        let Ok(canonical) = result else {
            continue;
        };
        let again = canonicalize_str(&canonical, numbers).expect("canonical output parses");
        assert_eq!(again, canonical, "canonical form is not a fixed point");
        let input: Value = serde_json::from_str(text).unwrap();
        let output: Value = serde_json::from_str(&canonical).unwrap();
        assert!(
            same_value(&input, &output),
            "canonical form changed the value"
        );
    }
});
