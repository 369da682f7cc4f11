//! Canonical JSON, as the Matrix spec's appendix defines it.
//!
//! Keys are sorted by Unicode code point (byte order of their UTF-8 form, which is the same
//! order), there is no insignificant whitespace, non-ASCII text is written as raw UTF-8, and
//! strings use the shortest escape for each character that must be escaped.
//!
//! The serializer is written here rather than borrowed from `serde_json`'s `to_string`: that one
//! follows the map's own iteration order, which a `preserve_order` feature anywhere in the
//! dependency graph would silently change. Sorting here keeps the output independent of it.
//!
//! Invariant: for every `Value` accepted in [`Numbers::Strict`] mode, the output parses back to
//! an equal `Value` and serializing that again gives the same bytes.

use serde_json::{Map, Number, Value};
use std::fmt::Write as _;

/// The largest integer canonical JSON allows, 2^53 - 1 (and its negation is the smallest).
pub const INTEGER_MAX: i64 = (1 << 53) - 1;

/// How numbers are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Numbers {
    /// Room versions 6 and later: integers in [-(2^53)+1, 2^53-1] only; floats are errors.
    Strict,
    /// Room versions 1 to 5 tolerate what older servers sent: floats and larger integers are
    /// written in `serde_json`'s shortest form.
    Lenient,
}

/// Why a value cannot be written as canonical JSON. `path` names where, like `content.info.w`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalJsonError {
    #[error("{path}: floating-point number {value} is not allowed in canonical JSON")]
    Float { path: String, value: String },
    #[error("{path}: integer {value} is outside the canonical JSON range [-(2^53)+1, (2^53)-1]")]
    IntegerOutOfRange { path: String, value: String },
    #[error("input is not valid JSON: {0}")]
    Syntax(String),
}

/// Serializes `value` as canonical JSON bytes.
pub fn to_canonical_bytes(value: &Value, numbers: Numbers) -> Result<Vec<u8>, CanonicalJsonError> {
    Ok(to_canonical_string(value, numbers)?.into_bytes())
}

/// Serializes `value` as a canonical JSON string.
pub fn to_canonical_string(value: &Value, numbers: Numbers) -> Result<String, CanonicalJsonError> {
    let mut out = String::with_capacity(256);
    let mut path = String::new();
    write_value(&mut out, value, numbers, &mut path)?;
    Ok(out)
}

/// Serializes a JSON object as canonical JSON bytes.
pub fn object_to_canonical_bytes(
    object: &Map<String, Value>,
    numbers: Numbers,
) -> Result<Vec<u8>, CanonicalJsonError> {
    let mut out = String::with_capacity(256);
    let mut path = String::new();
    write_object(&mut out, object, numbers, &mut path)?;
    Ok(out.into_bytes())
}

/// Parses JSON text and returns its canonical form.
pub fn canonicalize_str(text: &str, numbers: Numbers) -> Result<String, CanonicalJsonError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| CanonicalJsonError::Syntax(e.to_string()))?;
    to_canonical_string(&value, numbers)
}

/// Checks that every number in `value` is an integer in the canonical range.
pub fn check_strict_numbers(value: &Value) -> Result<(), CanonicalJsonError> {
    let mut path = String::new();
    check_numbers(value, &mut path)
}

fn check_numbers(value: &Value, path: &mut String) -> Result<(), CanonicalJsonError> {
    match value {
        Value::Number(number) => check_number(number, path),
        Value::Array(items) => items.iter().enumerate().try_for_each(|(index, item)| {
            with_segment(path, &index.to_string(), |path| check_numbers(item, path))
        }),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(key, item)| with_segment(path, key, |path| check_numbers(item, path))),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

fn check_number(number: &Number, path: &str) -> Result<(), CanonicalJsonError> {
    let in_range = |i: i64| (-INTEGER_MAX..=INTEGER_MAX).contains(&i);
    if let Some(i) = number.as_i64().or_else(|| integral_float(number)) {
        if in_range(i) {
            return Ok(());
        }
    } else if number.as_u64().is_none() {
        return Err(CanonicalJsonError::Float {
            path: display_path(path),
            value: number.to_string(),
        });
    }
    Err(CanonicalJsonError::IntegerOutOfRange {
        path: display_path(path),
        value: number.to_string(),
    })
}

/// A number written with a fraction or exponent that is an integer in range, like `1e10` or
/// `-0`: the spec's own examples write these as plain integers.
fn integral_float(number: &Number) -> Option<i64> {
    let float = number.as_f64()?;
    let in_range = float.fract() == 0.0 && float.abs() <= INTEGER_MAX as f64;
    in_range.then_some(float as i64)
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "(top level)".to_owned()
    } else {
        path.to_owned()
    }
}

fn with_segment<T>(path: &mut String, segment: &str, f: impl FnOnce(&mut String) -> T) -> T {
    let before = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(segment);
    let result = f(path);
    path.truncate(before);
    result
}

fn write_value(
    out: &mut String,
    value: &Value,
    numbers: Numbers,
    path: &mut String,
) -> Result<(), CanonicalJsonError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => {
            if numbers == Numbers::Strict {
                check_number(number, path)?;
            }
            write_number(out, number);
        }
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                with_segment(path, &index.to_string(), |path| {
                    write_value(out, item, numbers, path)
                })?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, numbers, path)?,
    }
    Ok(())
}

fn write_object(
    out: &mut String,
    map: &Map<String, Value>,
    numbers: Numbers,
    path: &mut String,
) -> Result<(), CanonicalJsonError> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // Byte order of UTF-8 equals code point order, which is what the spec asks for.
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    for (index, (key, item)) in entries.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        with_segment(path, key, |path| write_value(out, item, numbers, path))?;
    }
    out.push('}');
    Ok(())
}

fn write_number(out: &mut String, number: &Number) {
    if let Some(i) = number.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = number.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = integral_float(number) {
        let _ = write!(out, "{i}");
    } else {
        // Lenient mode only: serde_json writes the shortest round-tripping form.
        out.push_str(&number.to_string());
    }
}

/// Writes a JSON string with the shortest escapes: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`,
/// and `\u00xx` (lowercase hex) for the other control characters; everything else verbatim.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canonical(text: &str) -> String {
        canonicalize_str(text, Numbers::Strict).unwrap()
    }

    /// The examples from the spec's appendix "Canonical JSON".
    #[test]
    fn spec_appendix_examples() {
        assert_eq!(canonical("{}"), "{}");
        assert_eq!(
            canonical(r#"{"one": 1, "two": "Two"}"#),
            r#"{"one":1,"two":"Two"}"#
        );
        assert_eq!(canonical(r#"{"b": "2", "a": "1"}"#), r#"{"a":"1","b":"2"}"#);
        assert_eq!(canonical(r#"{"b":"2","a":"1"}"#), r#"{"a":"1","b":"2"}"#);
        assert_eq!(
            canonical(
                r#"{
                "auth": {
                    "success": true,
                    "mxid": "@john.doe:example.com",
                    "profile": {
                        "display_name": "John Doe",
                        "three_pids": [
                            {"medium": "email", "address": "john.doe@example.org"},
                            {"medium": "msisdn", "address": "123456789"}
                        ]
                    }
                }
            }"#
            ),
            r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#
        );
        assert_eq!(canonical(r#"{"a": "日本語"}"#), r#"{"a":"日本語"}"#);
        assert_eq!(canonical(r#"{"本": 2, "日": 1}"#), r#"{"日":1,"本":2}"#);
        assert_eq!(canonical(r#"{"a": "\u65E5"}"#), r#"{"a":"日"}"#);
        assert_eq!(canonical(r#"{"a": null}"#), r#"{"a":null}"#);
        assert_eq!(
            canonical(r#"{"a": -0, "b": 1e10}"#),
            r#"{"a":0,"b":10000000000}"#
        );
    }

    #[test]
    fn escapes_are_shortest() {
        let value = json!({"s": "\"\\\u{8}\u{c}\n\r\t\u{1}\u{1f}/\u{7f}é"});
        assert_eq!(
            to_canonical_string(&value, Numbers::Strict).unwrap(),
            "{\"s\":\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f/\u{7f}é\"}"
        );
    }

    #[test]
    fn keys_sort_by_code_point_not_utf16() {
        // U+FF61 sorts before U+1F600 by code point, but after it by UTF-16 code unit.
        let value = json!({"\u{1F600}": 1, "\u{FF61}": 2});
        assert_eq!(
            to_canonical_string(&value, Numbers::Strict).unwrap(),
            "{\"\u{FF61}\":2,\"\u{1F600}\":1}"
        );
    }

    #[test]
    fn strict_numbers_reject_floats_and_large_integers_with_a_path() {
        let float = json!({"content": {"w": 1.5}});
        assert_eq!(
            to_canonical_string(&float, Numbers::Strict),
            Err(CanonicalJsonError::Float {
                path: "content.w".into(),
                value: "1.5".into()
            })
        );
        let big = json!({"a": [0, 9007199254740992_u64]});
        assert_eq!(
            to_canonical_string(&big, Numbers::Strict),
            Err(CanonicalJsonError::IntegerOutOfRange {
                path: "a.1".into(),
                value: "9007199254740992".into()
            })
        );
        assert!(to_canonical_string(&json!(INTEGER_MAX), Numbers::Strict).is_ok());
        assert!(to_canonical_string(&json!(-INTEGER_MAX), Numbers::Strict).is_ok());
        assert!(to_canonical_string(&json!(-INTEGER_MAX - 1), Numbers::Strict).is_err());
        assert_eq!(
            to_canonical_string(&big, Numbers::Lenient).unwrap(),
            r#"{"a":[0,9007199254740992]}"#
        );
        assert_eq!(
            to_canonical_string(&float, Numbers::Lenient).unwrap(),
            r#"{"content":{"w":1.5}}"#
        );
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(
            canonicalize_str("{", Numbers::Strict),
            Err(CanonicalJsonError::Syntax(_))
        ));
    }
}
