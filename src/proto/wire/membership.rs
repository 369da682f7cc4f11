//! The membership handshakes: make_join / send_join (v2), make_leave / send_leave (v2) and
//! invite (v2).
//!
//! The request body of send_join and send_leave is the signed membership PDU itself, a
//! [`RawPdu`]. [`MakeMembershipResponse::check_template`] performs the checks the spec requires
//! of a make_join / make_leave template before the joining server signs it.

use super::paths::{QueryError, all_values, encode_query, optional_value, parse_query};
use super::{RawPdu, ResponseError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The query of `GET /make_join`: the room versions the joining server supports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MakeJoinQuery {
    pub ver: Vec<String>,
}

impl MakeJoinQuery {
    /// Reads a query string (without the `?`).
    pub fn from_query_string(query: &str) -> Result<Self, QueryError> {
        Ok(Self::from_pairs(&parse_query(query)?))
    }

    /// The supported versions; the spec's default when none are listed is `["1"]`.
    pub fn supported_versions(&self) -> Vec<&str> {
        if self.ver.is_empty() {
            vec!["1"]
        } else {
            self.ver.iter().map(String::as_str).collect()
        }
    }

    pub fn to_query_string(&self) -> String {
        let pairs: Vec<(&str, &str)> = self.ver.iter().map(|v| ("ver", v.as_str())).collect();
        encode_query(&pairs)
    }

    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        Self {
            ver: all_values(pairs, "ver").map(str::to_owned).collect(),
        }
    }
}

/// The query of `PUT /v2/send_join`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendJoinQuery {
    /// Ask for a reduced response without membership events (spec v1.6).
    pub omit_members: bool,
}

impl SendJoinQuery {
    /// Reads a query string (without the `?`).
    pub fn from_query_string(query: &str) -> Result<Self, QueryError> {
        Self::from_pairs(&parse_query(query)?)
    }

    pub fn to_query_string(&self) -> String {
        if self.omit_members {
            encode_query(&[("omit_members", "true")])
        } else {
            String::new()
        }
    }

    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, QueryError> {
        let omit_members = match optional_value(pairs, "omit_members")? {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(QueryError::Invalid {
                    name: "omit_members",
                    value: other.to_owned(),
                    expected: "true or false",
                });
            }
        };
        Ok(Self { omit_members })
    }
}

/// The 200 response of `GET /make_join` and `GET /make_leave`: an unsigned event template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MakeMembershipResponse {
    /// Absent from old servers, meaning room version 1 or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_version: Option<String>,
    pub event: RawPdu,
}

/// Why a make_join / make_leave template must be discarded, as the spec requires.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template field {field} is {found:?}; expected {expected:?}")]
    FieldMismatch {
        field: &'static str,
        found: Option<String>,
        expected: String,
    },
}

impl MakeMembershipResponse {
    /// The spec's checks before signing: `room_id` is the requested room, `sender` and
    /// `state_key` are the requested user, `type` is `m.room.member` and `content.membership`
    /// is `membership` (`join` or `leave`).
    pub fn check_template(
        &self,
        room_id: &str,
        user_id: &str,
        membership: &str,
    ) -> Result<(), TemplateError> {
        let content_membership = self
            .event
            .get("content")
            .and_then(|content| content.get("membership"));
        let checks = [
            ("room_id", self.event.get("room_id"), room_id),
            ("sender", self.event.get("sender"), user_id),
            ("state_key", self.event.get("state_key"), user_id),
            ("type", self.event.get("type"), "m.room.member"),
            ("content.membership", content_membership, membership),
        ];
        for (field, found, expected) in checks {
            if found.and_then(Value::as_str) != Some(expected) {
                return Err(TemplateError::FieldMismatch {
                    field,
                    found: found.map(|value| match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    }),
                    expected: expected.to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// The 200 response of `PUT /v2/send_join`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendJoinResponse {
    /// The resolved room state before the join (without memberships if `members_omitted`).
    pub state: Vec<RawPdu>,
    /// The auth chains of the join event and of the events in `state`.
    pub auth_chain: Vec<RawPdu>,
    /// The join event with the resident server's signature, for restricted joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<RawPdu>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub members_omitted: bool,
    /// Servers with joined members before the join; required when `members_omitted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers_in_room: Option<Vec<String>>,
}

impl SendJoinResponse {
    pub fn validate(&self) -> Result<(), ResponseError> {
        if self.members_omitted && self.servers_in_room.is_none() {
            return Err(ResponseError::ServersInRoomMissing);
        }
        Ok(())
    }
}

/// The 200 response of `PUT /v2/send_leave`: an empty object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendLeaveResponse {}

/// The body of `PUT /v2/invite`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteRequest {
    pub room_version: String,
    /// The invite event, signed by the inviting server.
    pub event: RawPdu,
    /// State events that help the invitee identify the room; must hold the create event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invite_room_state: Vec<RawPdu>,
}

/// The 200 response of `PUT /v2/invite`: the event with the invited server's signature added.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteResponse {
    pub event: RawPdu,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal_pdu() -> Value {
        json!({"type": "m.room.minimal_pdu", "room_id": "!somewhere:example.org",
               "content": {"see_room_version_spec":
                   "The event format changes depending on the room version."}})
    }

    /// The spec's make_join example.
    fn make_join_example() -> Value {
        json!({"room_version": "2", "event": {
            "room_id": "!somewhere:example.org", "type": "m.room.member",
            "state_key": "@someone:example.org", "origin": "example.org",
            "origin_server_ts": 1549041175876_u64, "sender": "@someone:example.org",
            "content": {"membership": "join",
                        "join_authorised_via_users_server": "@anyone:resident.example.org"}}})
    }

    #[test]
    fn make_join_spec_example_passes_the_template_checks() {
        let response: MakeMembershipResponse = serde_json::from_value(make_join_example()).unwrap();
        assert_eq!(response.room_version.as_deref(), Some("2"));
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            make_join_example()
        );
        response
            .check_template("!somewhere:example.org", "@someone:example.org", "join")
            .unwrap();
        assert_eq!(
            response.check_template("!somewhere:example.org", "@someone:example.org", "leave"),
            Err(TemplateError::FieldMismatch {
                field: "content.membership",
                found: Some("join".into()),
                expected: "leave".into()
            })
        );
        let error = response
            .check_template("!other:example.org", "@someone:example.org", "join")
            .unwrap_err();
        assert!(
            error.to_string().starts_with("template field room_id"),
            "{error}"
        );
    }

    #[test]
    fn make_leave_spec_example_and_template_mismatches() {
        let body = json!({"room_version": "2", "event": {
            "room_id": "!somewhere:example.org", "type": "m.room.member",
            "state_key": "@someone:example.org", "origin": "example.org",
            "origin_server_ts": 1549041175876_u64, "sender": "@someone:example.org",
            "content": {"membership": "leave"}}});
        let mut response: MakeMembershipResponse = serde_json::from_value(body).unwrap();
        response
            .check_template("!somewhere:example.org", "@someone:example.org", "leave")
            .unwrap();
        response
            .event
            .insert("state_key".into(), json!("@victim:example.org"));
        assert!(matches!(
            response.check_template("!somewhere:example.org", "@someone:example.org", "leave"),
            Err(TemplateError::FieldMismatch {
                field: "state_key",
                ..
            })
        ));
        response.event.remove("state_key");
        response.event.insert("type".into(), json!(5));
        assert_eq!(
            response.check_template("!somewhere:example.org", "@someone:example.org", "leave"),
            Err(TemplateError::FieldMismatch {
                field: "state_key",
                found: None,
                expected: "@someone:example.org".into()
            })
        );
        // Old servers leave out the room version.
        let old: MakeMembershipResponse = serde_json::from_value(json!({"event": {}})).unwrap();
        assert_eq!(old.room_version, None);
    }

    #[test]
    fn send_join_spec_example_and_members_omitted_rule() {
        let body = json!({"auth_chain": [minimal_pdu()], "state": [minimal_pdu()],
            "event": {"type": "m.room.member", "state_key": "@alice:example.com",
                      "content": {"membership": "join"}},
            "members_omitted": true, "servers_in_room": ["matrix.org", "example.com"]});
        let response: SendJoinResponse = serde_json::from_value(body.clone()).unwrap();
        response.validate().unwrap();
        assert_eq!(serde_json::to_value(&response).unwrap(), body);
        let minimal: SendJoinResponse =
            serde_json::from_value(json!({"auth_chain": [], "state": []})).unwrap();
        assert!(!minimal.members_omitted);
        minimal.validate().unwrap();
        assert_eq!(
            serde_json::to_value(&minimal).unwrap(),
            json!({"auth_chain": [], "state": []})
        );
        let omitted_without_servers = SendJoinResponse {
            members_omitted: true,
            ..minimal
        };
        assert_eq!(
            omitted_without_servers.validate(),
            Err(ResponseError::ServersInRoomMissing)
        );
        assert!(serde_json::from_value::<SendJoinResponse>(json!({"state": []})).is_err());
    }

    #[test]
    fn send_leave_response_is_an_empty_object() {
        assert_eq!(
            serde_json::to_value(SendLeaveResponse {}).unwrap(),
            json!({})
        );
        assert!(serde_json::from_value::<SendLeaveResponse>(json!({"extra": 1})).is_ok());
    }

    #[test]
    fn invite_spec_examples() {
        let event = json!({"room_id": "!somewhere:example.org", "type": "m.room.member",
            "state_key": "@someone:example.org", "origin": "example.org",
            "origin_server_ts": 1549041175876_u64, "sender": "@someone:example.org",
            "unsigned": {"invite_room_state": [minimal_pdu(),
                {"type": "m.room.create", "content": {"see_room_version_spec":
                    "The event format changes depending on the room version."}}]},
            "content": {"membership": "invite"},
            "signatures": {"example.com": {"ed25519:key_version": "SomeSignatureHere"},
                           "elsewhere.com": {"ed25519:k3y_versi0n": "SomeOtherSignatureHere"}}});
        let response: InviteResponse =
            serde_json::from_value(json!({"event": event.clone()})).unwrap();
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"event": event})
        );
        let request = json!({"room_version": "2", "event": event,
                             "invite_room_state": [minimal_pdu()]});
        let parsed: InviteRequest = serde_json::from_value(request.clone()).unwrap();
        assert_eq!(parsed.invite_room_state.len(), 1);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), request);
        assert!(serde_json::from_value::<InviteRequest>(json!({"event": {}})).is_err());
    }

    #[test]
    fn join_queries() {
        let query = MakeJoinQuery {
            ver: vec!["1".into(), "12".into()],
        };
        assert_eq!(query.to_query_string(), "ver=1&ver=12");
        assert_eq!(MakeJoinQuery::from_query_string("ver=1&ver=12"), Ok(query));
        assert_eq!(MakeJoinQuery::default().supported_versions(), ["1"]);
        let omit = SendJoinQuery { omit_members: true };
        let parsed = SendJoinQuery::from_query_string(&omit.to_query_string());
        assert_eq!(parsed, Ok(omit));
        assert_eq!(SendJoinQuery::default().to_query_string(), "");
        assert!(matches!(
            SendJoinQuery::from_query_string("omit_members=yes"),
            Err(QueryError::Invalid {
                name: "omit_members",
                ..
            })
        ));
    }
}
