//! Request authentication with the `Authorization: X-Matrix ...` header.
//!
//! The sender signs a JSON object made of the request's `method`, `uri` (path and query as
//! sent), `origin`, `destination` and, when the request has a body, its parsed JSON as
//! `content`; the header carries the origin, the destination, the key id and the signature.
//! The parser follows the spec's grammar (RFC 9110 auth-params): comma-separated `name=value`
//! pairs, case-insensitive names in any order, values as tokens (colons allowed, for older
//! servers) or quoted strings with backslash escapes, spaces and tabs around commas and `=`,
//! empty list elements, and unknown parameters ignored.
//!
//! Request bodies are canonicalized with [`Numbers::Lenient`]: a transaction may carry PDUs of
//! room versions 1 to 5, which can hold floats and large integers, and both ends run the same
//! serializer, so the bytes agree.
//!
//! Invariant: for every [`XMatrix`] (built by [`XMatrix::sign`] or [`XMatrix::parse`]),
//! `XMatrix::parse(&x.to_header_value()) == Ok(x)`.

use crate::proto::base64;
use crate::proto::canonical_json::{
    CanonicalJsonError, Numbers, canonicalize_str, to_canonical_string,
};
use crate::proto::signing::{SigningError, SigningKey, VerifyingKey, check_key_id};
use crate::proto::wire::{ErrorCode, MatrixError};
use serde_json::{Map, Value};

/// The authorization scheme name.
pub const SCHEME: &str = "X-Matrix";

/// The parts of an HTTP request that its signature covers besides the server names.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HttpRequest<'a> {
    /// Upper-case HTTP method, like `PUT`.
    pub method: &'a str,
    /// The request target as sent: the path from `/_matrix/` on, with `?` and the query if any.
    pub uri: &'a str,
    /// The parsed JSON body; `None` when the request has no body.
    pub content: Option<&'a Value>,
}

/// The JSON object a request signature covers (without `signatures`).
pub fn request_json(request: &HttpRequest, origin: &str, destination: &str) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("method".into(), Value::String(request.method.to_owned()));
    object.insert("uri".into(), Value::String(request.uri.to_owned()));
    object.insert("origin".into(), Value::String(origin.to_owned()));
    object.insert("destination".into(), Value::String(destination.to_owned()));
    if let Some(content) = request.content {
        object.insert("content".into(), content.clone());
    }
    object
}

/// The bytes a request signature covers: the canonical JSON of [`request_json`].
fn request_signing_bytes(
    request: &HttpRequest,
    origin: &str,
    destination: &str,
) -> Result<Vec<u8>, XMatrixError> {
    let content = request
        .content
        .map(|content| to_canonical_string(content, Numbers::Lenient))
        .transpose()
        .map_err(|e| XMatrixError::Unsignable(e.into()))?;
    Ok(write_signed_object(
        (request.method, request.uri),
        origin,
        destination,
        content.as_deref(),
    ))
}

/// The canonical JSON of [`request_json`], written around `content_canonical`, the content's
/// canonical JSON, without copying the content into a new object first. The five keys are
/// written in canonical (byte) order: `content`, `destination`, `method`, `origin`, `uri`.
fn write_signed_object(
    (method, uri): (&str, &str),
    origin: &str,
    destination: &str,
    content_canonical: Option<&str>,
) -> Vec<u8> {
    let content_len = content_canonical.map_or(0, str::len);
    let mut out = String::with_capacity(content_len + 128);
    out.push('{');
    if let Some(content) = content_canonical {
        out.push_str("\"content\":");
        out.push_str(content);
        out.push(',');
    }
    let strings = [
        ("destination", destination),
        ("method", method),
        ("origin", origin),
        ("uri", uri),
    ];
    for (index, (name, text)) in strings.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        out.push_str(&canonical_string(text));
    }
    out.push('}');
    out.into_bytes()
}

/// A JSON string in canonical form.
fn canonical_string(text: &str) -> String {
    to_canonical_string(&Value::String(text.to_owned()), Numbers::Lenient)
        .expect("a string is always canonical JSON")
}

/// Whether serde_json's `to_string` of `value` is its canonical JSON: true when no number is
/// a float and every map iterates its keys in ascending byte order. Both writers then emit
/// the same tokens: integers in decimal, strings with the same shortest escapes (the short
/// forms of `"`, `\\`, backspace, form feed, newline, carriage return and tab, lower-case
/// `\u00xx` for other control characters, everything else verbatim), no whitespace, and keys
/// in the canonical order. Floats are left to the canonical writer, which writes integral
/// ones without a fraction where serde_json keeps `.0`; the key check keeps this true should
/// serde_json's `preserve_order` feature ever be switched on.
pub fn serializes_canonically(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(number) => !number.is_f64(),
        Value::Array(items) => items.iter().all(serializes_canonically),
        Value::Object(map) => object_serializes_canonically(map),
    }
}

/// [`serializes_canonically`] for a JSON object.
pub fn object_serializes_canonically(map: &Map<String, Value>) -> bool {
    let mut previous: Option<&str> = None;
    map.iter().all(|(key, item)| {
        let ascending = previous.is_none_or(|before| before.as_bytes() < key.as_bytes());
        previous = Some(key);
        ascending && serializes_canonically(item)
    })
}

/// A request whose body is JSON text written already; its content is the value the text
/// parses to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextRequest<'a> {
    /// Upper-case HTTP method, like `PUT`.
    pub method: &'a str,
    /// The request target as sent (see [`HttpRequest::uri`]).
    pub uri: &'a str,
    /// The body; `None` when the request has none.
    pub body: Option<&'a str>,
}

/// A parsed or freshly signed `X-Matrix` authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XMatrix {
    origin: String,
    /// Required of senders since spec v1.3; older servers leave it out.
    destination: Option<String>,
    key_id: String,
    signature: String,
}

/// Why a request cannot be signed or its signature does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XMatrixError {
    #[error("{which} server name {name:?} is empty or holds a control character")]
    BadServerName { which: &'static str, name: String },
    #[error("request cannot be signed: {0}")]
    Unsignable(SigningError),
    #[error("request is addressed to {header:?}, but this server is {ours:?}")]
    DestinationMismatch { header: String, ours: String },
    #[error("signature of {origin} with key {key_id} does not verify for this request")]
    InvalidSignature { origin: String, key_id: String },
}

/// Why an `Authorization` header value is not a well-formed X-Matrix authorization. `at` is a
/// byte offset into the header value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XMatrixParseError {
    #[error("authorization header is empty")]
    Empty,
    #[error("authorization scheme is {found:?}, expected X-Matrix")]
    WrongScheme { found: String },
    #[error("at byte {at}: expected a space after the X-Matrix scheme")]
    ExpectedSpaceAfterScheme { at: usize },
    #[error("at byte {at}: expected a parameter name, found {found:?}")]
    ExpectedName { at: usize, found: char },
    #[error("at byte {at}: expected '=' after parameter name {name:?}")]
    ExpectedEquals { name: String, at: usize },
    #[error("at byte {at}: parameter {name:?} has no value")]
    MissingValue { name: String, at: usize },
    #[error("at byte {at}: character {found:?} is not allowed in the value of {name:?}")]
    BadValueCharacter {
        name: String,
        at: usize,
        found: char,
    },
    #[error("parameter {name:?}: quoted value is not closed")]
    UnterminatedQuote { name: String },
    #[error("at byte {at}: expected ',' or the end after parameter {name:?}, found {found:?}")]
    ExpectedComma {
        name: String,
        at: usize,
        found: char,
    },
    #[error("parameter {0:?} appears more than once")]
    Duplicate(&'static str),
    #[error("parameter {0:?} is missing")]
    Missing(&'static str),
    #[error("parameter {name:?} is empty")]
    EmptyValue { name: &'static str },
    #[error("parameter \"key\": {0}")]
    BadKeyId(SigningError),
    #[error("parameter \"sig\" is not an unpadded base64 ed25519 signature (64 bytes)")]
    BadSignature,
}

impl XMatrixError {
    /// The error body a server answers with. A mismatched destination must be a 401, the spec
    /// says; a bad signature is one too. Failing to sign is our own fault, not the peer's.
    pub fn to_matrix_error(&self) -> MatrixError {
        let code = match self {
            Self::BadServerName { .. } | Self::Unsignable(_) => ErrorCode::Unknown,
            Self::DestinationMismatch { .. } | Self::InvalidSignature { .. } => {
                ErrorCode::Unauthorized
            }
        };
        MatrixError::new(code, self.to_string())
    }
}

impl XMatrixParseError {
    /// The error body a server answers with: 401 `M_UNAUTHORIZED`, since the request is not
    /// authenticated.
    pub fn to_matrix_error(&self) -> MatrixError {
        MatrixError::new(ErrorCode::Unauthorized, self.to_string())
    }
}

fn check_server_name(which: &'static str, name: &str) -> Result<(), XMatrixError> {
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(XMatrixError::BadServerName {
            which,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Checks the origin and destination a request is signed for.
fn check_server_names(origin: &str, destination: &str) -> Result<(), XMatrixError> {
    check_server_name("origin", origin)?;
    check_server_name("destination", destination)
}

impl XMatrix {
    /// Signs `request` from `origin` to `destination` with `key`.
    pub fn sign(
        request: &HttpRequest,
        origin: &str,
        destination: &str,
        key: &SigningKey,
    ) -> Result<Self, XMatrixError> {
        check_server_names(origin, destination)?;
        let bytes = request_signing_bytes(request, origin, destination)?;
        Ok(Self::signed_by(origin, destination, key, &bytes))
    }

    /// The header of the request whose signing bytes are `bytes`, signed with `key`.
    fn signed_by(origin: &str, destination: &str, key: &SigningKey, bytes: &[u8]) -> Self {
        Self {
            origin: origin.to_owned(),
            destination: Some(destination.to_owned()),
            key_id: key.key_id().to_owned(),
            signature: key.sign_bytes(bytes),
        }
    }

    /// Signs `request` as [`XMatrix::sign`] does, and returns with it the body to send:
    /// `content.to_string()`, the same bytes as before this existed, serialized once and
    /// reused as the signed content whenever they are its canonical JSON too.
    pub fn sign_serialized(
        request: &HttpRequest,
        origin: &str,
        destination: &str,
        key: &SigningKey,
    ) -> Result<(Self, Option<String>), XMatrixError> {
        check_server_names(origin, destination)?;
        let body = request.content.map(Value::to_string);
        let bytes = match (request.content, &body) {
            (Some(content), Some(text)) if serializes_canonically(content) => write_signed_object(
                (request.method, request.uri),
                origin,
                destination,
                Some(text),
            ),
            _ => request_signing_bytes(request, origin, destination)?,
        };
        debug_assert_eq!(
            bytes,
            request_signing_bytes(request, origin, destination)?,
            "the body was reused as canonical JSON where it differs from it"
        );
        let authorization = Self {
            origin: origin.to_owned(),
            destination: Some(destination.to_owned()),
            key_id: key.key_id().to_owned(),
            signature: key.sign_bytes(&bytes),
        };
        Ok((authorization, body))
    }

    /// Signs `request`, whose content is the value its body text parses to, as [`XMatrix::sign`]
    /// signs that value. With `body_canonical` the caller vouches that the body is already the
    /// canonical JSON of its content (as serde_json writes a value for which
    /// [`serializes_canonically`] holds) and it is signed as it is, with no parse; otherwise
    /// it is parsed and canonicalized first.
    pub fn sign_text(
        request: &TextRequest,
        body_canonical: bool,
        origin: &str,
        destination: &str,
        key: &SigningKey,
    ) -> Result<Self, XMatrixError> {
        check_server_names(origin, destination)?;
        let unsignable = |e: CanonicalJsonError| XMatrixError::Unsignable(e.into());
        let content = match request.body {
            Some(body) if !body_canonical => {
                Some(canonicalize_str(body, Numbers::Lenient).map_err(unsignable)?)
            }
            _ => None,
        };
        let content = content.as_deref().or(request.body);
        debug_assert_eq!(
            content,
            request
                .body
                .map(|body| canonicalize_str(body, Numbers::Lenient).expect("our own body parses"))
                .as_deref(),
            "a body vouched for as canonical JSON is not"
        );
        let bytes =
            write_signed_object((request.method, request.uri), origin, destination, content);
        Ok(Self::signed_by(origin, destination, key, &bytes))
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn destination(&self) -> Option<&str> {
        self.destination.as_deref()
    }

    /// The id of the origin's key that made the signature, like `ed25519:a_1`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The unpadded base64 signature.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// The header value, as the spec asks senders to write it: one space after the scheme,
    /// lower-case names, every value quoted, no spaces around commas.
    pub fn to_header_value(&self) -> String {
        let mut out = format!("{SCHEME} origin={}", quote(&self.origin));
        if let Some(destination) = &self.destination {
            out.push_str(",destination=");
            out.push_str(&quote(destination));
        }
        out.push_str(",key=");
        out.push_str(&quote(&self.key_id));
        out.push_str(",sig=");
        out.push_str(&quote(&self.signature));
        out
    }

    /// Parses an `Authorization` header value.
    pub fn parse(header_value: &str) -> Result<Self, XMatrixParseError> {
        let params = parse_params(header_value)?;
        let origin = params.origin.ok_or(XMatrixParseError::Missing("origin"))?;
        let key_id = params.key.ok_or(XMatrixParseError::Missing("key"))?;
        let signature = params.sig.ok_or(XMatrixParseError::Missing("sig"))?;
        if origin.is_empty() {
            return Err(XMatrixParseError::EmptyValue { name: "origin" });
        }
        if params.destination.as_deref() == Some("") {
            return Err(XMatrixParseError::EmptyValue {
                name: "destination",
            });
        }
        check_key_id(&key_id).map_err(XMatrixParseError::BadKeyId)?;
        let signature_ok = base64::decode_standard(&signature).is_ok_and(|raw| raw.len() == 64);
        if !signature_ok {
            return Err(XMatrixParseError::BadSignature);
        }
        Ok(Self {
            origin,
            destination: params.destination,
            key_id,
            signature,
        })
    }

    /// Checks that the header, if it names a destination, names `our_server_name`. The
    /// signature does not cover the header, so this is checked on its own, first.
    pub fn check_destination(&self, our_server_name: &str) -> Result<(), XMatrixError> {
        match &self.destination {
            Some(destination) if destination != our_server_name => {
                Err(XMatrixError::DestinationMismatch {
                    header: destination.clone(),
                    ours: our_server_name.to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks this authorization on a request received by `our_server_name`, with the origin's
    /// key named by [`XMatrix::key_id`] (the caller looks it up and checks its validity).
    ///
    /// A header without `destination` is accepted, as the spec asks for older servers; the
    /// signed JSON then still names `our_server_name`.
    pub fn verify(
        &self,
        request: &HttpRequest,
        our_server_name: &str,
        key: &VerifyingKey,
    ) -> Result<(), XMatrixError> {
        self.check_destination(our_server_name)?;
        let bytes = request_signing_bytes(request, &self.origin, our_server_name)?;
        if !key.verify_bytes(&bytes, &self.signature) {
            return Err(XMatrixError::InvalidSignature {
                origin: self.origin.clone(),
                key_id: self.key_id.clone(),
            });
        }
        Ok(())
    }
}

/// A quoted-string with `"` and `\` escaped.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// RFC 9110 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn is_whitespace(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `qdtext` of RFC 9110: tab, space, visible ASCII except `"` and `\`, and obs-text.
fn is_qdtext(c: char) -> bool {
    c == '\t' || c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\') || !c.is_ascii()
}

/// What may follow a backslash in a quoted-string.
fn is_quoted_pair_char(c: char) -> bool {
    c == '\t' || c == ' ' || c.is_ascii_graphic() || !c.is_ascii()
}

#[derive(Default)]
struct Params {
    origin: Option<String>,
    destination: Option<String>,
    key: Option<String>,
    sig: Option<String>,
}

impl Params {
    fn set(&mut self, name: &str, value: String) -> Result<(), XMatrixParseError> {
        let (slot, name) = match name.to_ascii_lowercase().as_str() {
            "origin" => (&mut self.origin, "origin"),
            "destination" => (&mut self.destination, "destination"),
            "key" => (&mut self.key, "key"),
            "sig" => (&mut self.sig, "sig"),
            // The spec: unknown parameters are ignored.
            _ => return Ok(()),
        };
        if slot.is_some() {
            return Err(XMatrixParseError::Duplicate(name));
        }
        *slot = Some(value);
        Ok(())
    }
}

/// A cursor over the header value.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn skip_whitespace(&mut self) -> usize {
        let start = self.at;
        while self.peek().is_some_and(is_whitespace) {
            self.bump();
        }
        self.at - start
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &str {
        let start = self.at;
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
        &self.text[start..self.at]
    }
}

fn parse_params(header_value: &str) -> Result<Params, XMatrixParseError> {
    let mut cursor = Cursor {
        text: header_value,
        at: 0,
    };
    cursor.skip_whitespace();
    let scheme = cursor.take_while(is_tchar);
    if scheme.is_empty() {
        return match cursor.peek() {
            None => Err(XMatrixParseError::Empty),
            Some(_) => Err(XMatrixParseError::WrongScheme {
                found: header_value.trim().to_owned(),
            }),
        };
    }
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(XMatrixParseError::WrongScheme {
            found: scheme.to_owned(),
        });
    }
    let mut params = Params::default();
    if cursor.skip_whitespace() == 0 && cursor.peek().is_some() {
        return Err(XMatrixParseError::ExpectedSpaceAfterScheme { at: cursor.at });
    }
    loop {
        cursor.skip_whitespace();
        match cursor.peek() {
            None => return Ok(params),
            // RFC 9110 lists may hold empty elements.
            Some(',') => {
                cursor.bump();
                continue;
            }
            Some(_) => {}
        }
        let (name, value) = parse_param(&mut cursor)?;
        params.set(&name, value)?;
        cursor.skip_whitespace();
        match cursor.bump() {
            None | Some(',') => {}
            Some(found) => {
                return Err(XMatrixParseError::ExpectedComma {
                    name,
                    at: cursor.at - found.len_utf8(),
                    found,
                });
            }
        }
    }
}

/// One `name = value` pair; the cursor stands on the first character of the name.
fn parse_param(cursor: &mut Cursor) -> Result<(String, String), XMatrixParseError> {
    let name = cursor.take_while(is_tchar).to_owned();
    if name.is_empty() {
        let found = cursor.peek().expect("caller checked for the end");
        return Err(XMatrixParseError::ExpectedName {
            at: cursor.at,
            found,
        });
    }
    cursor.skip_whitespace();
    if cursor.peek() != Some('=') {
        return Err(XMatrixParseError::ExpectedEquals {
            name,
            at: cursor.at,
        });
    }
    cursor.bump();
    cursor.skip_whitespace();
    let value = match cursor.peek() {
        Some('"') => parse_quoted(cursor, &name)?,
        _ => parse_token_value(cursor, &name)?,
    };
    Ok((name, value))
}

/// A token value; colons are allowed too, as the spec asks of recipients.
fn parse_token_value(cursor: &mut Cursor, name: &str) -> Result<String, XMatrixParseError> {
    let value = cursor.take_while(|c| is_tchar(c) || c == ':').to_owned();
    match cursor.peek() {
        None | Some(',') | Some(' ') | Some('\t') if value.is_empty() => {
            Err(XMatrixParseError::MissingValue {
                name: name.to_owned(),
                at: cursor.at,
            })
        }
        None | Some(',') | Some(' ') | Some('\t') => Ok(value),
        // Say which character needs quoting rather than that a comma is missing.
        Some(found) => Err(XMatrixParseError::BadValueCharacter {
            name: name.to_owned(),
            at: cursor.at,
            found,
        }),
    }
}

/// A quoted-string; the cursor stands on the opening quote.
fn parse_quoted(cursor: &mut Cursor, name: &str) -> Result<String, XMatrixParseError> {
    cursor.bump();
    let mut value = String::new();
    loop {
        let at = cursor.at;
        let bad = |found| XMatrixParseError::BadValueCharacter {
            name: name.to_owned(),
            at,
            found,
        };
        match cursor.bump() {
            None => {
                return Err(XMatrixParseError::UnterminatedQuote {
                    name: name.to_owned(),
                });
            }
            Some('"') => return Ok(value),
            Some('\\') => match cursor.bump() {
                None => {
                    return Err(XMatrixParseError::UnterminatedQuote {
                        name: name.to_owned(),
                    });
                }
                Some(c) if is_quoted_pair_char(c) => value.push(c),
                Some(c) => return Err(bad(c)),
            },
            Some(c) if is_qdtext(c) => value.push(c),
            Some(c) => return Err(bad(c)),
        }
    }
}

/// Strategies shared by the property tests of request signing here and of the request memo.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;
    use serde_json::Value;

    /// Any JSON value a `Value` can hold, floats, large integers and control characters
    /// included.
    pub fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            (-5_i32..5).prop_map(|i| Value::from(f64::from(i))),
            "\\PC{0,8}|[\u{0}-\u{1f}\"\\\\/\u{7f}]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    "\\PC{0,6}|[a-c\u{0}\u{1f}\u{FF61}\u{1F600}]{0,2}",
                    inner,
                    0..6
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::any_json;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn key() -> SigningKey {
        SigningKey::from_seed("ed25519:key1", &[3; 32]).unwrap()
    }

    fn put_body() -> Value {
        json!({"origin": "origin.hs.example.com", "origin_server_ts": 1, "pdus": [{"w": 1.5}]})
    }

    fn put_request(body: &Value) -> HttpRequest<'_> {
        HttpRequest {
            method: "PUT",
            uri: "/_matrix/federation/v1/send/txn1",
            content: Some(body),
        }
    }

    fn signed(request: &HttpRequest) -> XMatrix {
        XMatrix::sign(
            request,
            "origin.hs.example.com",
            "destination.hs.example.com",
            &key(),
        )
        .unwrap()
    }

    #[test]
    fn signed_json_has_the_spec_fields() {
        let body = json!({"a": 1});
        let with_body = request_json(&put_request(&body), "o", "d");
        assert_eq!(
            Value::Object(with_body),
            json!({"method": "PUT", "uri": "/_matrix/federation/v1/send/txn1",
                   "origin": "o", "destination": "d", "content": {"a": 1}})
        );
        let get = HttpRequest {
            method: "GET",
            uri: "/_matrix/federation/v1/event/%24e?x=1",
            content: None,
        };
        assert!(!request_json(&get, "o", "d").contains_key("content"));
    }

    #[test]
    fn header_has_the_spec_form_and_verifies() {
        let body = put_body();
        let request = put_request(&body);
        let auth = signed(&request);
        let header = auth.to_header_value();
        assert_eq!(
            header,
            format!(
                "X-Matrix origin=\"origin.hs.example.com\",destination=\"destination.hs.example.com\",key=\"ed25519:key1\",sig=\"{}\"",
                auth.signature()
            )
        );
        let parsed = XMatrix::parse(&header).unwrap();
        assert_eq!(parsed, auth);
        parsed
            .verify(
                &request,
                "destination.hs.example.com",
                &key().verifying_key(),
            )
            .unwrap();
    }

    #[test]
    fn verification_fails_on_any_change() {
        let body = put_body();
        let request = put_request(&body);
        let auth = signed(&request);
        let public = key().verifying_key();
        let ours = "destination.hs.example.com";
        let other_body = json!({"origin": "x"});
        let changed = [
            HttpRequest {
                method: "POST",
                ..request
            },
            HttpRequest {
                uri: "/_matrix/federation/v1/send/txn2",
                ..request
            },
            HttpRequest {
                content: Some(&other_body),
                ..request
            },
            HttpRequest {
                content: None,
                ..request
            },
        ];
        for tampered in changed {
            assert_eq!(
                auth.verify(&tampered, ours, &public),
                Err(XMatrixError::InvalidSignature {
                    origin: "origin.hs.example.com".into(),
                    key_id: "ed25519:key1".into()
                })
            );
        }
        let other_key = SigningKey::from_seed("ed25519:key1", &[4; 32]).unwrap();
        assert!(
            auth.verify(&request, ours, &other_key.verifying_key())
                .is_err()
        );
        let mismatch = auth
            .verify(&request, "elsewhere.example", &public)
            .unwrap_err();
        assert_eq!(
            mismatch,
            XMatrixError::DestinationMismatch {
                header: ours.into(),
                ours: "elsewhere.example".into()
            }
        );
        assert_eq!(mismatch.to_matrix_error().http_status(), 401);
    }

    #[test]
    fn header_without_destination_is_accepted_for_older_servers() {
        let body = put_body();
        let request = put_request(&body);
        let auth = signed(&request);
        let old_style = format!(
            "X-Matrix origin=origin.hs.example.com,key=\"ed25519:key1\",sig=\"{}\"",
            auth.signature()
        );
        let parsed = XMatrix::parse(&old_style).unwrap();
        assert_eq!(parsed.destination(), None);
        let public = key().verifying_key();
        parsed
            .verify(&request, "destination.hs.example.com", &public)
            .unwrap();
        // The signature still binds the destination.
        assert!(
            parsed
                .verify(&request, "elsewhere.example", &public)
                .is_err()
        );
    }

    #[test]
    fn parser_tolerates_what_the_grammar_allows() {
        let sig = signed(&put_request(&put_body())).signature().to_owned();
        let header = format!(
            "x-matrix \t ,KEY = ed25519:key1 ,\t, Origin=\"origin.hs.example.com\",sig=\"{sig}\", \
             unknown=\"x,y\\\"z\", destination=destination.hs.example.com:8448 ,"
        );
        let parsed = XMatrix::parse(&header).unwrap();
        assert_eq!(parsed.origin(), "origin.hs.example.com");
        assert_eq!(
            parsed.destination(),
            Some("destination.hs.example.com:8448")
        );
        assert_eq!(parsed.key_id(), "ed25519:key1");
        assert_eq!(parsed.signature(), sig);
        let escaped = format!("X-Matrix origin=\"a\\.b\\\\c\\\"d\",key=ed25519:k,sig=\"{sig}\"");
        assert_eq!(XMatrix::parse(&escaped).unwrap().origin(), "a.b\\c\"d");
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let sig = signed(&put_request(&put_body())).signature().to_owned();
        let parse = |text: &str| XMatrix::parse(text).unwrap_err();
        assert_eq!(parse(""), XMatrixParseError::Empty);
        assert_eq!(parse("").to_matrix_error().errcode, ErrorCode::Unauthorized);
        assert_eq!(
            parse("Bearer abc"),
            XMatrixParseError::WrongScheme {
                found: "Bearer".into()
            }
        );
        assert_eq!(
            parse("X-Matrix,origin=a"),
            XMatrixParseError::ExpectedSpaceAfterScheme { at: 8 }
        );
        assert_eq!(parse("X-Matrix"), XMatrixParseError::Missing("origin"));
        assert_eq!(
            parse("X-Matrix origin"),
            XMatrixParseError::ExpectedEquals {
                name: "origin".into(),
                at: 15
            }
        );
        assert_eq!(
            parse("X-Matrix origin=,key=a"),
            XMatrixParseError::MissingValue {
                name: "origin".into(),
                at: 16
            }
        );
        assert_eq!(
            parse("X-Matrix origin=[::1]"),
            XMatrixParseError::BadValueCharacter {
                name: "origin".into(),
                at: 16,
                found: '['
            }
        );
        assert_eq!(
            parse("X-Matrix origin=\"a"),
            XMatrixParseError::UnterminatedQuote {
                name: "origin".into()
            }
        );
        assert_eq!(
            parse("X-Matrix origin=\"a\" key=b"),
            XMatrixParseError::ExpectedComma {
                name: "origin".into(),
                at: 20,
                found: 'k'
            }
        );
        assert_eq!(
            parse("X-Matrix origin=a,ORIGIN=b"),
            XMatrixParseError::Duplicate("origin")
        );
        assert_eq!(
            parse("X-Matrix =a"),
            XMatrixParseError::ExpectedName { at: 9, found: '=' }
        );
        assert_eq!(
            parse(&format!("X-Matrix origin=a,sig=\"{sig}\"")),
            XMatrixParseError::Missing("key")
        );
        assert!(matches!(
            parse(&format!("X-Matrix origin=a,key=\"curve:1\",sig=\"{sig}\"")),
            XMatrixParseError::BadKeyId(_)
        ));
        assert_eq!(
            parse(&format!("X-Matrix origin=\"\",key=ed25519:k,sig=\"{sig}\"")),
            XMatrixParseError::EmptyValue { name: "origin" }
        );
        assert_eq!(
            parse("X-Matrix origin=a,key=ed25519:k,sig=\"a\u{1}\""),
            XMatrixParseError::BadValueCharacter {
                name: "sig".into(),
                at: 38,
                found: '\u{1}'
            }
        );
        assert_eq!(
            parse("X-Matrix origin=a,key=ed25519:k,sig=ab/c"),
            XMatrixParseError::BadValueCharacter {
                name: "sig".into(),
                at: 38,
                found: '/'
            }
        );
        // The spec's example header carries a placeholder signature.
        let spec_example = "X-Matrix origin=\"origin.hs.example.com\",destination=\"destination.hs.example.com\",key=\"ed25519:key1\",sig=\"ABCDEF...\"";
        assert_eq!(parse(spec_example), XMatrixParseError::BadSignature);
        let error = parse("X-Matrix origin=\"a\" key=b").to_string();
        assert_eq!(
            error,
            "at byte 20: expected ',' or the end after parameter \"origin\", found 'k'"
        );
    }

    #[test]
    fn signing_refuses_unusable_server_names() {
        let body = put_body();
        let request = put_request(&body);
        assert!(matches!(
            XMatrix::sign(&request, "", "d", &key()),
            Err(XMatrixError::BadServerName {
                which: "origin",
                ..
            })
        ));
        assert!(matches!(
            XMatrix::sign(&request, "o", "d\n", &key()),
            Err(XMatrixError::BadServerName {
                which: "destination",
                ..
            })
        ));
    }

    /// A header value the way a lax but conforming sender might write it.
    fn lax_header(params: &[(String, String)], spacing: &[(String, String)]) -> String {
        let mut out = String::from("X-MATRIX  ");
        for (index, ((name, value), (before, after))) in params.iter().zip(spacing).enumerate() {
            if index > 0 {
                out.push_str(before);
                out.push(',');
                out.push_str(after);
            }
            let token_safe = !value.is_empty() && value.chars().all(|c| is_tchar(c) || c == ':');
            let rendered = if token_safe && index % 2 == 0 {
                value.clone()
            } else {
                quote(value)
            };
            out.push_str(&format!("{name}{before}={after}{rendered}"));
        }
        out
    }

    fn server_name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
            "\\[[0-9a-f:]{2,12}\\](:[0-9]{1,5})?",
            // Anything without control characters, quotes and backslashes included.
            "[^\\p{Cc}]{1,20}",
        ]
    }

    /// The signed bytes as the spec defines them: the canonical JSON of the request object.
    fn spec_signing_bytes(request: &HttpRequest, origin: &str, destination: &str) -> Vec<u8> {
        crate::proto::signing::signing_bytes(
            &request_json(request, origin, destination),
            Numbers::Lenient,
        )
        .unwrap()
    }

    #[test]
    fn floats_and_odd_strings_sign_the_canonical_form_and_send_serde_json_text() {
        let body = json!({"b": [1.0, -0.0, 2.5, 1e300], "a": "\u{1}\u{7f}\"\\/é", "n": -3});
        let request = put_request(&body);
        let (auth, text) = XMatrix::sign_serialized(&request, "o", "d", &key()).unwrap();
        assert_eq!(text, Some(body.to_string()));
        assert!(!serializes_canonically(&body));
        assert_eq!(auth, XMatrix::sign(&request, "o", "d", &key()).unwrap());
        assert!(
            key()
                .verifying_key()
                .verify_bytes(&spec_signing_bytes(&request, "o", "d"), auth.signature())
        );
        let get = HttpRequest {
            method: "GET",
            uri: "/_matrix/x?a=%22",
            content: None,
        };
        let (auth, text) = XMatrix::sign_serialized(&get, "o", "d", &key()).unwrap();
        assert_eq!(text, None);
        assert_eq!(auth, XMatrix::sign(&get, "o", "d", &key()).unwrap());
    }

    proptest! {
        /// The signed bytes are the spec's whichever way they are written, the body sent is
        /// serde_json's text of the content, and the receiver's check of that text accepts.
        #[test]
        fn signed_bytes_are_the_canonical_request_object(
            content in prop::option::of(any_json()),
            origin in server_name(),
            destination in server_name(),
            uri in "/_matrix/[ -~]{0,30}",
        ) {
            let request = HttpRequest { method: "PUT", uri: &uri, content: content.as_ref() };
            let spec = spec_signing_bytes(&request, &origin, &destination);
            prop_assert_eq!(&request_signing_bytes(&request, &origin, &destination).unwrap(), &spec);
            let (auth, text) = XMatrix::sign_serialized(&request, &origin, &destination, &key()).unwrap();
            prop_assert_eq!(&text, &content.as_ref().map(Value::to_string));
            prop_assert!(key().verifying_key().verify_bytes(&spec, auth.signature()));
            let received = text.map(|text| serde_json::from_str::<Value>(&text).unwrap());
            prop_assert_eq!(&received, &content);
            let at_receiver = HttpRequest { content: received.as_ref(), ..request };
            prop_assert!(auth.verify(&at_receiver, &destination, &key().verifying_key()).is_ok());
        }

        /// A body signed as text is signed as its content would be, whether the caller vouches
        /// for it as canonical (when it is) or has it canonicalized.
        #[test]
        fn a_text_body_is_signed_as_its_content(
            content in prop::option::of(any_json()),
            origin in server_name(),
            destination in server_name(),
        ) {
            let uri = "/_matrix/federation/v1/send/t1";
            let body = content.as_ref().map(Value::to_string);
            let request = HttpRequest { method: "PUT", uri, content: content.as_ref() };
            let expected = XMatrix::sign(&request, &origin, &destination, &key()).unwrap();
            let text = TextRequest { method: "PUT", uri, body: body.as_deref() };
            let parsed = XMatrix::sign_text(&text, false, &origin, &destination, &key()).unwrap();
            prop_assert_eq!(&parsed, &expected);
            if content.as_ref().is_none_or(serializes_canonically) {
                let vouched = XMatrix::sign_text(&text, true, &origin, &destination, &key()).unwrap();
                prop_assert_eq!(&vouched, &expected);
            }
        }

        #[test]
        fn build_then_parse_round_trips(
            origin in server_name(),
            destination in server_name(),
            version in "[a-zA-Z0-9_]{1,12}",
            uri in "/_matrix/[ -~]{0,30}",
        ) {
            let key = SigningKey::from_seed(&format!("ed25519:{version}"), &[7; 32]).unwrap();
            let request = HttpRequest { method: "GET", uri: &uri, content: None };
            let auth = XMatrix::sign(&request, &origin, &destination, &key).unwrap();
            let parsed = XMatrix::parse(&auth.to_header_value()).unwrap();
            prop_assert_eq!(&parsed, &auth);
            prop_assert!(parsed.verify(&request, &destination, &key.verifying_key()).is_ok());
        }

        #[test]
        fn parse_ignores_case_order_spacing_and_unknown_parameters(
            origin in server_name(),
            destination in server_name(),
            version in "[a-zA-Z0-9_]{1,12}",
            upper in prop::collection::vec(any::<bool>(), 5),
            spacing in prop::collection::vec(("[ \t]{0,2}", "[ \t]{0,2}"), 5),
            order in Just(vec![0_usize, 1, 2, 3, 4]).prop_shuffle(),
        ) {
            let key = SigningKey::from_seed(&format!("ed25519:{version}"), &[7; 32]).unwrap();
            let request = HttpRequest { method: "GET", uri: "/_matrix/x", content: None };
            let auth = XMatrix::sign(&request, &origin, &destination, &key).unwrap();
            let all = [
                ("origin", auth.origin().to_owned()),
                ("destination", destination.clone()),
                ("key", auth.key_id().to_owned()),
                ("sig", auth.signature().to_owned()),
                ("org.example.extra", "ignored, \"really\"".to_owned()),
            ];
            let params: Vec<(String, String)> = order
                .iter()
                .map(|&i| {
                    let (name, value) = &all[i];
                    let name = if upper[i] { name.to_ascii_uppercase() } else { name.to_string() };
                    (name, value.clone())
                })
                .collect();
            let header = lax_header(&params, &spacing);
            prop_assert_eq!(XMatrix::parse(&header).unwrap(), auth);
        }
    }
}
