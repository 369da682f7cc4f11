//! The spec's standard error body (`{"errcode": "M_...", "error": "..."}`) and the decoding of
//! request and response bodies into wire types with errors that map onto it.
//!
//! Invariant: an [`ErrorCode`] serializes to exactly the string it was read from, known or not.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The error codes the federation API uses; any other code is kept as [`ErrorCode::Other`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Forbidden,
    Unauthorized,
    NotFound,
    TooLarge,
    BadJson,
    NotJson,
    LimitExceeded,
    IncompatibleRoomVersion,
    Unknown,
    MissingParam,
    InvalidParam,
    Unrecognized,
    UnableToAuthoriseJoin,
    UnableToGrantJoin,
    Other(String),
}

const NAMED_CODES: [(ErrorCode, &str); 14] = [
    (ErrorCode::Forbidden, "M_FORBIDDEN"),
    (ErrorCode::Unauthorized, "M_UNAUTHORIZED"),
    (ErrorCode::NotFound, "M_NOT_FOUND"),
    (ErrorCode::TooLarge, "M_TOO_LARGE"),
    (ErrorCode::BadJson, "M_BAD_JSON"),
    (ErrorCode::NotJson, "M_NOT_JSON"),
    (ErrorCode::LimitExceeded, "M_LIMIT_EXCEEDED"),
    (
        ErrorCode::IncompatibleRoomVersion,
        "M_INCOMPATIBLE_ROOM_VERSION",
    ),
    (ErrorCode::Unknown, "M_UNKNOWN"),
    (ErrorCode::MissingParam, "M_MISSING_PARAM"),
    (ErrorCode::InvalidParam, "M_INVALID_PARAM"),
    (ErrorCode::Unrecognized, "M_UNRECOGNIZED"),
    (
        ErrorCode::UnableToAuthoriseJoin,
        "M_UNABLE_TO_AUTHORISE_JOIN",
    ),
    (ErrorCode::UnableToGrantJoin, "M_UNABLE_TO_GRANT_JOIN"),
];

impl ErrorCode {
    pub fn as_str(&self) -> &str {
        if let Self::Other(code) = self {
            return code;
        }
        NAMED_CODES
            .iter()
            .find(|(code, _)| code == self)
            .map(|(_, name)| *name)
            .expect("every named variant is in NAMED_CODES")
    }

    pub fn parse(text: &str) -> Self {
        NAMED_CODES
            .iter()
            .find(|(_, name)| *name == text)
            .map_or_else(|| Self::Other(text.to_owned()), |(code, _)| code.clone())
    }

    /// The HTTP status the spec pairs with this code on federation endpoints. Codes it leaves
    /// open (`M_UNKNOWN` and unknown codes) get 500; callers may choose another.
    pub fn default_http_status(&self) -> u16 {
        match self {
            Self::Forbidden => 403,
            Self::Unauthorized => 401,
            Self::NotFound | Self::Unrecognized => 404,
            Self::TooLarge => 413,
            Self::LimitExceeded => 429,
            Self::BadJson
            | Self::NotJson
            | Self::IncompatibleRoomVersion
            | Self::MissingParam
            | Self::InvalidParam
            | Self::UnableToAuthoriseJoin
            | Self::UnableToGrantJoin => 400,
            Self::Unknown | Self::Other(_) => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::parse(&text))
    }
}

/// The standard error body. `room_version` accompanies `M_INCOMPATIBLE_ROOM_VERSION`;
/// `retry_after_ms` may accompany `M_LIMIT_EXCEEDED`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{errcode}: {error}")]
pub struct MatrixError {
    pub errcode: ErrorCode,
    /// The spec says senders must always include it; a peer that omits it gets `""`.
    #[serde(default)]
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl MatrixError {
    pub fn new(errcode: ErrorCode, error: impl Into<String>) -> Self {
        Self {
            errcode,
            error: error.into(),
            room_version: None,
            retry_after_ms: None,
        }
    }

    pub fn incompatible_room_version(room_version: &str, error: impl Into<String>) -> Self {
        Self {
            room_version: Some(room_version.to_owned()),
            ..Self::new(ErrorCode::IncompatibleRoomVersion, error)
        }
    }

    pub fn limit_exceeded(retry_after_ms: Option<u64>, error: impl Into<String>) -> Self {
        Self {
            retry_after_ms,
            ..Self::new(ErrorCode::LimitExceeded, error)
        }
    }

    pub fn http_status(&self) -> u16 {
        self.errcode.default_http_status()
    }
}

/// Why a body could not be read as the expected wire type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body does not have the expected shape: {0}")]
    BadJson(String),
}

impl BodyError {
    /// The error body a server answers with: `M_NOT_JSON` or `M_BAD_JSON`.
    pub fn to_matrix_error(&self) -> MatrixError {
        match self {
            Self::NotJson(_) => MatrixError::new(ErrorCode::NotJson, self.to_string()),
            Self::BadJson(_) => MatrixError::new(ErrorCode::BadJson, self.to_string()),
        }
    }
}

/// Why a well-formed response breaks a rule its schema cannot express.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("send_join response sets members_omitted but lacks servers_in_room")]
    ServersInRoomMissing,
    #[error("/event response must hold exactly 1 PDU, got {count}")]
    EventPduCount { count: usize },
    #[error("a PDU of the response is not a JSON object: {found}")]
    PduNotObject { found: String },
}

/// Reads a request or response body, telling malformed JSON apart from well-formed JSON of
/// the wrong shape (the spec has a code for each).
pub fn parse_json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    serde_json::from_slice(body).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => BodyError::BadJson(error.to_string()),
        _ => BodyError::NotJson(error.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::Transaction;
    use serde_json::json;

    #[test]
    fn spec_error_examples_deserialize() {
        let forbidden: MatrixError = serde_json::from_value(
            json!({"errcode": "M_FORBIDDEN", "error": "You are not invited to this room"}),
        )
        .unwrap();
        assert_eq!(forbidden.errcode, ErrorCode::Forbidden);
        assert_eq!(forbidden.http_status(), 403);
        let incompatible = json!({"errcode": "M_INCOMPATIBLE_ROOM_VERSION",
            "error": "Your homeserver does not support the features required to join this room",
            "room_version": "3"});
        let parsed: MatrixError = serde_json::from_value(incompatible.clone()).unwrap();
        assert_eq!(
            parsed,
            MatrixError::incompatible_room_version(
                "3",
                "Your homeserver does not support the features required to join this room"
            )
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), incompatible);
        let limited = json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests",
                             "retry_after_ms": 2000});
        let parsed: MatrixError = serde_json::from_value(limited.clone()).unwrap();
        assert_eq!(parsed.retry_after_ms, Some(2000));
        assert_eq!(parsed.http_status(), 429);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), limited);
    }

    #[test]
    fn codes_round_trip_known_and_unknown() {
        for (code, name) in NAMED_CODES.iter() {
            assert_eq!(code.as_str(), *name);
            assert_eq!(ErrorCode::parse(name), *code);
            assert_eq!(serde_json::to_value(code).unwrap(), json!(name));
        }
        let custom = ErrorCode::parse("COM.EXAMPLE_FORBIDDEN");
        assert_eq!(custom, ErrorCode::Other("COM.EXAMPLE_FORBIDDEN".into()));
        assert_eq!(custom.as_str(), "COM.EXAMPLE_FORBIDDEN");
        let missing_message: MatrixError =
            serde_json::from_value(json!({"errcode": "M_UNKNOWN"})).unwrap();
        assert_eq!(missing_message.error, "");
        assert_eq!(
            MatrixError::new(ErrorCode::TooLarge, "too big").to_string(),
            "M_TOO_LARGE: too big"
        );
    }

    #[test]
    fn body_errors_tell_syntax_from_shape() {
        let not_json = parse_json_body::<Transaction>(b"{\"origin\": ").unwrap_err();
        assert!(matches!(not_json, BodyError::NotJson(_)));
        assert_eq!(not_json.to_matrix_error().errcode, ErrorCode::NotJson);
        assert!(matches!(
            parse_json_body::<Transaction>(b"\xff\xfe"),
            Err(BodyError::NotJson(_))
        ));
        let bad = parse_json_body::<Transaction>(br#"{"origin": "a", "pdus": []}"#).unwrap_err();
        assert!(
            matches!(&bad, BodyError::BadJson(text) if text.contains("origin_server_ts")),
            "{bad}"
        );
        assert_eq!(bad.to_matrix_error().errcode, ErrorCode::BadJson);
        assert_eq!(bad.to_matrix_error().http_status(), 400);
        let ok: Transaction =
            parse_json_body(br#"{"origin": "a", "origin_server_ts": 5, "pdus": []}"#).unwrap();
        assert_eq!(ok.origin_server_ts, 5);
    }
}
