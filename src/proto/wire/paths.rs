//! Federation endpoint paths, with path and query parameters percent-encoded.
//!
//! Each [`Endpoint`] carries the spec's path template (`/_matrix/federation/v1/send/{txnId}`,
//! the same `{name}` syntax routers use), its HTTP method and whether it needs an X-Matrix
//! signature. The helper functions fill templates so that callers never build paths by hand.
//!
//! Invariants: every byte outside the URI "unreserved" set (`A-Z a-z 0-9 - . _ ~`) of a
//! parameter is percent-encoded, so no parameter can add a path segment or a query key; and
//! [`Endpoint::match_path`] of [`Endpoint::path`] gives the parameters back.

use std::fmt::Write as _;

/// One federation endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    /// The path with `{name}` placeholders, as the spec writes it.
    pub template: &'static str,
    /// Whether requests carry an X-Matrix `Authorization` header.
    pub authenticated: bool,
}

const fn federation(method: &'static str, template: &'static str) -> Endpoint {
    Endpoint {
        method,
        template,
        authenticated: true,
    }
}

pub const SEND_TRANSACTION: Endpoint = federation("PUT", "/_matrix/federation/v1/send/{txnId}");
pub const MAKE_JOIN: Endpoint =
    federation("GET", "/_matrix/federation/v1/make_join/{roomId}/{userId}");
pub const SEND_JOIN: Endpoint =
    federation("PUT", "/_matrix/federation/v2/send_join/{roomId}/{eventId}");
pub const MAKE_LEAVE: Endpoint =
    federation("GET", "/_matrix/federation/v1/make_leave/{roomId}/{userId}");
pub const SEND_LEAVE: Endpoint = federation(
    "PUT",
    "/_matrix/federation/v2/send_leave/{roomId}/{eventId}",
);
pub const INVITE: Endpoint = federation("PUT", "/_matrix/federation/v2/invite/{roomId}/{eventId}");
pub const BACKFILL: Endpoint = federation("GET", "/_matrix/federation/v1/backfill/{roomId}");
pub const GET_MISSING_EVENTS: Endpoint =
    federation("POST", "/_matrix/federation/v1/get_missing_events/{roomId}");
pub const STATE: Endpoint = federation("GET", "/_matrix/federation/v1/state/{roomId}");
pub const STATE_IDS: Endpoint = federation("GET", "/_matrix/federation/v1/state_ids/{roomId}");
pub const EVENT: Endpoint = federation("GET", "/_matrix/federation/v1/event/{eventId}");
pub const EVENT_AUTH: Endpoint = federation(
    "GET",
    "/_matrix/federation/v1/event_auth/{roomId}/{eventId}",
);
/// A server's own keys; the one endpoint here that needs no signature.
pub const SERVER_KEYS: Endpoint = Endpoint {
    method: "GET",
    template: "/_matrix/key/v2/server",
    authenticated: false,
};

/// Every endpoint this module knows.
pub const ALL: [Endpoint; 13] = [
    SEND_TRANSACTION,
    MAKE_JOIN,
    SEND_JOIN,
    MAKE_LEAVE,
    SEND_LEAVE,
    INVITE,
    BACKFILL,
    GET_MISSING_EVENTS,
    STATE,
    STATE_IDS,
    EVENT,
    EVENT_AUTH,
    SERVER_KEYS,
];

/// Finds the endpoint whose method and path template match, with the path's parameters
/// (decoded); `None` when no endpoint matches or a parameter does not decode.
pub fn route(method: &str, path: &str) -> Option<(Endpoint, Vec<String>)> {
    ALL.iter().find_map(|endpoint| {
        if endpoint.method != method {
            return None;
        }
        match endpoint.match_path(path) {
            Ok(Some(params)) => Some((*endpoint, params)),
            _ => None,
        }
    })
}

/// One piece of a template: literal text or a placeholder.
enum Piece<'a> {
    Literal(&'a str),
    Param(&'a str),
}

fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("templates close every brace") + open;
        out.push(Piece::Literal(&rest[..open]));
        out.push(Piece::Param(&rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    out.push(Piece::Literal(rest));
    out
}

impl Endpoint {
    /// The placeholder names in order, like `["roomId", "eventId"]`.
    pub fn param_names(&self) -> Vec<&'static str> {
        pieces(self.template)
            .into_iter()
            .filter_map(|piece| match piece {
                Piece::Param(name) => Some(name),
                Piece::Literal(_) => None,
            })
            .collect()
    }

    /// Whether requests carry a JSON body (the spec requires one for PUT and POST).
    pub fn has_body(&self) -> bool {
        matches!(self.method, "PUT" | "POST")
    }

    /// Fills the template with percent-encoded `params`, in placeholder order.
    ///
    /// Panics if the number of params differs from the number of placeholders: that is a
    /// mistake in our code, not in anything a peer sent.
    pub fn path(&self, params: &[&str]) -> String {
        let names = self.param_names();
        assert_eq!(
            names.len(),
            params.len(),
            "{} takes parameters {names:?}",
            self.template
        );
        let mut values = params.iter();
        let mut out = String::with_capacity(self.template.len() + 64);
        for piece in pieces(self.template) {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Param(_) => out.push_str(&percent_encode(values.next().unwrap())),
            }
        }
        out
    }

    /// If `path` (without a query) is this endpoint, its decoded parameters in placeholder
    /// order; `Ok(None)` if it is another path.
    pub fn match_path(&self, path: &str) -> Result<Option<Vec<String>>, PercentDecodeError> {
        let mut rest = path;
        let mut encoded = Vec::new();
        let all = pieces(self.template);
        for (index, piece) in all.iter().enumerate() {
            match piece {
                Piece::Literal(text) => match rest.strip_prefix(text) {
                    Some(after) => rest = after,
                    None => return Ok(None),
                },
                Piece::Param(_) => {
                    // A parameter runs to the next literal, which always starts with '/'
                    // (or to the end); an encoded parameter never contains '/'.
                    let end = match all.get(index + 1) {
                        Some(Piece::Literal(next)) if !next.is_empty() => rest.find('/'),
                        _ => None,
                    }
                    .unwrap_or(rest.len());
                    if end == 0 || rest[..end].contains('/') {
                        return Ok(None);
                    }
                    encoded.push(&rest[..end]);
                    rest = &rest[end..];
                }
            }
        }
        if !rest.is_empty() {
            return Ok(None);
        }
        let decoded: Result<Vec<String>, _> = encoded.into_iter().map(percent_decode).collect();
        decoded.map(Some)
    }
}

/// Why a percent-encoded string cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PercentDecodeError {
    #[error("bad percent escape at byte {at} of {text:?}")]
    BadEscape { text: String, at: usize },
    #[error("percent-decoded {text:?} is not UTF-8")]
    NotUtf8 { text: String },
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes every byte outside the unreserved set, with upper-case hex digits.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for &byte in text.as_bytes() {
        if is_unreserved(byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Decodes `%XX` escapes (either case); other bytes stand for themselves.
pub fn percent_decode(text: &str) -> Result<String, PercentDecodeError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|pair| std::str::from_utf8(pair).ok())
                .filter(|pair| pair.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| PercentDecodeError::BadEscape {
                    text: text.to_owned(),
                    at: index,
                })?;
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PercentDecodeError::NotUtf8 {
        text: text.to_owned(),
    })
}

/// Why a query string does not give the parameters an endpoint needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("query parameter {name:?}: {source}")]
    Decode {
        name: String,
        source: PercentDecodeError,
    },
    #[error("query parameter {name:?} is required")]
    Missing { name: &'static str },
    #[error("query parameter {name:?} appears more than once")]
    Duplicate { name: &'static str },
    #[error("query parameter {name:?} is {value:?}; expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl QueryError {
    /// The error body a server answers with: `M_MISSING_PARAM` or `M_INVALID_PARAM`.
    pub fn to_matrix_error(&self) -> super::MatrixError {
        let code = match self {
            Self::Missing { .. } => super::ErrorCode::MissingParam,
            _ => super::ErrorCode::InvalidParam,
        };
        super::MatrixError::new(code, self.to_string())
    }
}

/// Splits a query string (without the `?`) into decoded name-value pairs, in order.
///
/// Follows `application/x-www-form-urlencoded` as servers parse query strings: `+` means a
/// space, so a literal `+` must arrive as `%2B` (which [`encode_query`] always writes).
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    let decode = |raw: &str, name: &str| {
        percent_decode(&raw.replace('+', " ")).map_err(|source| QueryError::Decode {
            name: name.to_owned(),
            source,
        })
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(raw_name, raw_name)?;
            let value = decode(raw_value, &name)?;
            Ok((name, value))
        })
        .collect()
}

/// Joins name-value pairs into a query string (without the `?`), percent-encoding both.
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect();
    encoded.join("&")
}

/// Appends `?query` unless the query is empty.
pub fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// The one value of `name`; an error if it is missing or repeated.
pub(super) fn single_value<'a>(
    pairs: &'a [(String, String)],
    name: &'static str,
) -> Result<&'a str, QueryError> {
    optional_value(pairs, name)?.ok_or(QueryError::Missing { name })
}

/// The value of `name` if present; an error if it is repeated.
pub(super) fn optional_value<'a>(
    pairs: &'a [(String, String)],
    name: &'static str,
) -> Result<Option<&'a str>, QueryError> {
    let mut values = all_values(pairs, name);
    let first = values.next();
    if values.next().is_some() {
        return Err(QueryError::Duplicate { name });
    }
    Ok(first)
}

/// Every value of `name`, in order.
pub(super) fn all_values<'a>(
    pairs: &'a [(String, String)],
    name: &'static str,
) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

pub fn send_transaction_path(txn_id: &str) -> String {
    SEND_TRANSACTION.path(&[txn_id])
}

pub fn make_join_path(room_id: &str, user_id: &str, query: &super::MakeJoinQuery) -> String {
    with_query(
        MAKE_JOIN.path(&[room_id, user_id]),
        &query.to_query_string(),
    )
}

pub fn send_join_path(room_id: &str, event_id: &str, query: &super::SendJoinQuery) -> String {
    with_query(
        SEND_JOIN.path(&[room_id, event_id]),
        &query.to_query_string(),
    )
}

pub fn make_leave_path(room_id: &str, user_id: &str) -> String {
    MAKE_LEAVE.path(&[room_id, user_id])
}

pub fn send_leave_path(room_id: &str, event_id: &str) -> String {
    SEND_LEAVE.path(&[room_id, event_id])
}

pub fn invite_path(room_id: &str, event_id: &str) -> String {
    INVITE.path(&[room_id, event_id])
}

pub fn backfill_path(room_id: &str, query: &super::BackfillQuery) -> String {
    with_query(BACKFILL.path(&[room_id]), &query.to_query_string())
}

pub fn get_missing_events_path(room_id: &str) -> String {
    GET_MISSING_EVENTS.path(&[room_id])
}

pub fn state_path(room_id: &str, query: &super::StateQuery) -> String {
    with_query(STATE.path(&[room_id]), &query.to_query_string())
}

pub fn state_ids_path(room_id: &str, query: &super::StateQuery) -> String {
    with_query(STATE_IDS.path(&[room_id]), &query.to_query_string())
}

pub fn event_path(event_id: &str) -> String {
    EVENT.path(&[event_id])
}

pub fn event_auth_path(room_id: &str, event_id: &str) -> String {
    EVENT_AUTH.path(&[room_id, event_id])
}

pub fn server_keys_path() -> String {
    SERVER_KEYS.path(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(
            send_transaction_path("S0meTransacti0nId"),
            "/_matrix/federation/v1/send/S0meTransacti0nId"
        );
        // Room v3 event ids use standard base64, whose '/' and '+' must not split the path.
        assert_eq!(
            event_auth_path("!abc123:matrix.org", "$a+b/c="),
            "/_matrix/federation/v1/event_auth/%21abc123%3Amatrix.org/%24a%2Bb%2Fc%3D"
        );
        assert_eq!(
            make_leave_path("!r:example.org", "@someone:example.org"),
            "/_matrix/federation/v1/make_leave/%21r%3Aexample.org/%40someone%3Aexample.org"
        );
        assert_eq!(
            event_path("$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"),
            "/_matrix/federation/v1/event/%24Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"
        );
        assert_eq!(server_keys_path(), "/_matrix/key/v2/server");
        assert_eq!(percent_encode("é ?&#"), "%C3%A9%20%3F%26%23");
    }

    #[test]
    fn endpoints_describe_themselves() {
        assert_eq!(EVENT_AUTH.param_names(), ["roomId", "eventId"]);
        assert!(SEND_TRANSACTION.has_body() && GET_MISSING_EVENTS.has_body());
        assert!(!BACKFILL.has_body());
        assert!(ALL.iter().filter(|e| !e.authenticated).eq([&SERVER_KEYS]));
        for endpoint in ALL {
            assert!(endpoint.template.starts_with("/_matrix/"));
        }
    }

    #[test]
    fn match_path_rejects_other_paths_and_bad_escapes() {
        assert_eq!(
            EVENT_AUTH.match_path("/_matrix/federation/v1/event_auth/%21r%3Aa/%24e"),
            Ok(Some(vec!["!r:a".to_owned(), "$e".to_owned()]))
        );
        assert_eq!(
            EVENT.match_path("/_matrix/federation/v1/event/a/b"),
            Ok(None)
        );
        assert_eq!(EVENT.match_path("/_matrix/federation/v1/event/"), Ok(None));
        assert_eq!(
            STATE.match_path("/_matrix/federation/v1/state_ids/x"),
            Ok(None)
        );
        assert!(matches!(
            EVENT.match_path("/_matrix/federation/v1/event/%2"),
            Err(PercentDecodeError::BadEscape { at: 0, .. })
        ));
        assert!(matches!(
            percent_decode("%FF"),
            Err(PercentDecodeError::NotUtf8 { .. })
        ));
        assert_eq!(percent_decode("%c3%a9x").unwrap(), "éx");
    }

    #[test]
    fn queries_decode_plus_as_space_and_report_problems() {
        assert_eq!(
            parse_query("v=%24a%2Bb&&limit=2&v=c+d&flag").unwrap(),
            [
                ("v".to_owned(), "$a+b".to_owned()),
                ("limit".to_owned(), "2".to_owned()),
                ("v".to_owned(), "c d".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        let error = parse_query("v=%zz").unwrap_err();
        assert!(
            error.to_string().starts_with("query parameter \"v\""),
            "{error}"
        );
        let pairs = parse_query("a=1&a=2").unwrap();
        assert_eq!(
            single_value(&pairs, "a"),
            Err(QueryError::Duplicate { name: "a" })
        );
        assert_eq!(
            single_value(&pairs, "b"),
            Err(QueryError::Missing { name: "b" })
        );
        assert_eq!(
            QueryError::Missing { name: "b" }.to_matrix_error().errcode,
            super::super::ErrorCode::MissingParam
        );
    }

    proptest! {
        #[test]
        fn path_parameters_round_trip(a in "\\PC*", b in "\\PC*") {
            prop_assume!(!a.is_empty() && !b.is_empty());
            let path = EVENT_AUTH.path(&[&a, &b]);
            prop_assert!(path.bytes().all(|byte| byte.is_ascii_graphic()));
            prop_assert_eq!(path.matches('/').count(), 6);
            prop_assert_eq!(EVENT_AUTH.match_path(&path), Ok(Some(vec![a, b])));
        }

        #[test]
        fn queries_round_trip(pairs in prop::collection::vec(("\\PC+", "\\PC*"), 0..5)) {
            let borrowed: Vec<(&str, &str)> =
                pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            prop_assert_eq!(parse_query(&encode_query(&borrowed)).unwrap(), pairs);
        }
    }
}
