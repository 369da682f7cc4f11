//! Fetching history and state: backfill, get_missing_events, /state, /state_ids, /event and
//! /event_auth.
//!
//! Backfill and /event answer with a transaction-shaped object without EDUs
//! ([`PduTransaction`]); backfill responses have no PDU limit (the spec says so explicitly),
//! an /event response holds exactly one PDU.

use super::paths::{QueryError, all_values, encode_query, parse_query, single_value};
use super::{RawPdu, ResponseError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The spec's default for `limit` in a get_missing_events request.
pub const GET_MISSING_EVENTS_LIMIT_DEFAULT: u64 = 10;

/// `origin`, `origin_server_ts` and `pdus`: the response of backfill and of /event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PduTransaction {
    pub origin: String,
    /// Milliseconds since the Unix epoch, on the answering server.
    pub origin_server_ts: u64,
    pub pdus: Vec<RawPdu>,
}

/// The response of `GET /backfill/{roomId}`: any number of PDUs.
pub type BackfillResponse = PduTransaction;

/// The response of `GET /event/{eventId}`: exactly one PDU, see [`PduTransaction::single_pdu`].
pub type EventResponse = PduTransaction;

impl PduTransaction {
    /// The PDU of an /event response.
    pub fn single_pdu(&self) -> Result<&RawPdu, ResponseError> {
        match self.pdus.as_slice() {
            [pdu] => Ok(pdu),
            other => Err(ResponseError::EventPduCount { count: other.len() }),
        }
    }
}

/// The query of `GET /backfill/{roomId}`: start events and the number of PDUs wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackfillQuery {
    /// The event ids to backfill from (included in the response).
    pub v: Vec<String>,
    /// The most PDUs to return, counting the given events.
    pub limit: u64,
}

impl BackfillQuery {
    /// Reads a query string (without the `?`).
    pub fn from_query_string(query: &str) -> Result<Self, QueryError> {
        Self::from_pairs(&parse_query(query)?)
    }

    pub fn to_query_string(&self) -> String {
        let limit = self.limit.to_string();
        let mut pairs: Vec<(&str, &str)> = self.v.iter().map(|id| ("v", id.as_str())).collect();
        pairs.push(("limit", &limit));
        encode_query(&pairs)
    }

    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, QueryError> {
        let v: Vec<String> = all_values(pairs, "v").map(str::to_owned).collect();
        if v.is_empty() {
            return Err(QueryError::Missing { name: "v" });
        }
        let limit_text = single_value(pairs, "limit")?;
        let limit = limit_text.parse().map_err(|_| QueryError::Invalid {
            name: "limit",
            value: limit_text.to_owned(),
            expected: "a non-negative integer",
        })?;
        Ok(Self { v, limit })
    }
}

/// The body of `POST /get_missing_events/{roomId}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMissingEventsRequest {
    /// Events the requester already has; the walk does not go past them.
    pub earliest_events: Vec<String>,
    /// Events whose missing ancestors are wanted.
    pub latest_events: Vec<String>,
    #[serde(default = "get_missing_events_limit_default")]
    pub limit: u64,
    #[serde(default)]
    pub min_depth: u64,
}

fn get_missing_events_limit_default() -> u64 {
    GET_MISSING_EVENTS_LIMIT_DEFAULT
}

/// The response of `POST /get_missing_events/{roomId}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GetMissingEventsResponse {
    pub events: Vec<RawPdu>,
}

/// The query of `GET /state/{roomId}` and `GET /state_ids/{roomId}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateQuery {
    /// The event before which the state is wanted.
    pub event_id: String,
}

impl StateQuery {
    /// Reads a query string (without the `?`).
    pub fn from_query_string(query: &str) -> Result<Self, QueryError> {
        Self::from_pairs(&parse_query(query)?)
    }

    pub fn to_query_string(&self) -> String {
        encode_query(&[("event_id", &self.event_id)])
    }

    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, QueryError> {
        Ok(Self {
            event_id: single_value(pairs, "event_id")?.to_owned(),
        })
    }
}

/// The response of `GET /state_ids/{roomId}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateIdsResponse {
    pub auth_chain_ids: Vec<String>,
    pub pdu_ids: Vec<String>,
}

/// The response of `GET /state/{roomId}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateResponse {
    pub auth_chain: Vec<RawPdu>,
    pub pdus: Vec<RawPdu>,
}

/// The response of `GET /event_auth/{roomId}/{eventId}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventAuthResponse {
    pub auth_chain: Vec<RawPdu>,
}

/// The answers above, and the send_join answer ([`super::SendJoinResponse`]), written from PDU
/// texts already at hand ([`crate::proto::pdu::Pdu::json_text`]) instead of copies of their
/// JSON objects. Fields are declared in sorted order, so the bytes are exactly those
/// `serde_json` writes for the `Value` of the owned answer (a test checks).
pub mod text {
    use super::*;

    /// [`PduTransaction`] (backfill, /event).
    #[derive(Serialize)]
    pub struct PduTransactionText<'a> {
        pub origin: &'a str,
        pub origin_server_ts: u64,
        pub pdus: Vec<&'a RawValue>,
    }

    /// [`GetMissingEventsResponse`].
    #[derive(Serialize)]
    pub struct GetMissingEventsText<'a> {
        pub events: Vec<&'a RawValue>,
    }

    /// [`StateResponse`].
    #[derive(Serialize)]
    pub struct StateText<'a> {
        pub auth_chain: Vec<&'a RawValue>,
        pub pdus: Vec<&'a RawValue>,
    }

    /// [`EventAuthResponse`].
    #[derive(Serialize)]
    pub struct EventAuthText<'a> {
        pub auth_chain: Vec<&'a RawValue>,
    }

    /// [`crate::proto::wire::SendJoinResponse`] with every member listed (no `event`, `members_omitted` false, no
    /// `servers_in_room`: the fields the owned answer then leaves out).
    #[derive(Serialize)]
    pub struct SendJoinText<'a> {
        pub auth_chain: Vec<&'a RawValue>,
        pub state: Vec<&'a RawValue>,
    }

    // Written by hand from texts that are JSON already, into a string of the exact size: the
    // bytes serde_json writes for these structs (compact, fields in declaration order; a test
    // compares), without a buffer that grows by doubling (a `/get_missing_events` answer is
    // ten PDUs; the copies and the fresh pages of its growth were 2% of a 100-server run) and
    // without checking the bytes again.

    /// The length of `texts` written as a JSON array.
    fn list_len(texts: &[&RawValue]) -> usize {
        2 + texts.len().saturating_sub(1) + texts.iter().map(|text| text.get().len()).sum::<usize>()
    }

    fn push_list(out: &mut String, texts: &[&RawValue]) {
        out.push('[');
        for (index, text) in texts.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(text.get());
        }
        out.push(']');
    }

    /// `{"<a>":[..],"<b>":[..]}` for one or two lists, the exact size.
    fn lists_object(fields: &[(&str, &[&RawValue])]) -> String {
        let size = 1 + fields
            .iter()
            .map(|(name, texts)| name.len() + 4 + list_len(texts))
            .sum::<usize>();
        let mut out = String::with_capacity(size);
        out.push('{');
        for (index, (name, texts)) in fields.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
            push_list(&mut out, texts);
        }
        out.push('}');
        debug_assert_eq!(out.len(), size, "the size was worked out exactly");
        out
    }

    impl PduTransactionText<'_> {
        /// The answer as JSON text (see above).
        pub fn to_json(&self) -> String {
            use std::fmt::Write as _;
            let origin = serde_json::to_string(self.origin).expect("a string serializes");
            let mut out = String::with_capacity(64 + origin.len() + list_len(&self.pdus));
            out.push_str("{\"origin\":");
            out.push_str(&origin);
            write!(
                out,
                ",\"origin_server_ts\":{},\"pdus\":",
                self.origin_server_ts
            )
            .expect("writing to a string cannot fail");
            push_list(&mut out, &self.pdus);
            out.push('}');
            out
        }
    }

    impl GetMissingEventsText<'_> {
        /// The answer as JSON text (see above).
        pub fn to_json(&self) -> String {
            lists_object(&[("events", &self.events)])
        }
    }

    impl StateText<'_> {
        /// The answer as JSON text (see above).
        pub fn to_json(&self) -> String {
            lists_object(&[("auth_chain", &self.auth_chain), ("pdus", &self.pdus)])
        }
    }

    impl EventAuthText<'_> {
        /// The answer as JSON text (see above).
        pub fn to_json(&self) -> String {
            lists_object(&[("auth_chain", &self.auth_chain)])
        }
    }

    impl SendJoinText<'_> {
        /// The answer as JSON text (see above).
        pub fn to_json(&self) -> String {
            lists_object(&[("auth_chain", &self.auth_chain), ("state", &self.state)])
        }
    }

    // As received: each PDU kept as its JSON text, so a receiver that has seen the same bytes
    // before (see the server's PDU cache) need not build the JSON object again. A PDU that is
    // not an object is dropped alone when checked.

    /// [`PduTransaction`] as received.
    #[derive(Debug, Deserialize)]
    pub struct PduTransactionTexts {
        pub origin: String,
        pub origin_server_ts: u64,
        pub pdus: Vec<Box<RawValue>>,
    }

    impl PduTransactionTexts {
        /// The one PDU of an /event answer (see [`PduTransaction::single_pdu`]).
        pub fn single_pdu(&self) -> Result<&RawValue, ResponseError> {
            match self.pdus.as_slice() {
                [pdu] => Ok(pdu),
                other => Err(ResponseError::EventPduCount { count: other.len() }),
            }
        }
    }

    /// [`GetMissingEventsResponse`] as received.
    #[derive(Debug, Deserialize)]
    pub struct GetMissingEventsTexts {
        pub events: Vec<Box<RawValue>>,
    }

    /// [`StateResponse`] as received.
    #[derive(Debug, Deserialize)]
    pub struct StateTexts {
        pub auth_chain: Vec<Box<RawValue>>,
        pub pdus: Vec<Box<RawValue>>,
    }

    /// [`EventAuthResponse`] as received.
    #[derive(Debug, Deserialize)]
    pub struct EventAuthTexts {
        pub auth_chain: Vec<Box<RawValue>>,
    }

    /// [`crate::proto::wire::SendJoinResponse`] as received. A joining server of a large room holds this while it
    /// checks the state (for a thousand members, about a megabyte of text where the JSON
    /// objects took several).
    #[derive(Debug, Deserialize)]
    pub struct SendJoinTexts {
        pub state: Vec<Box<RawValue>>,
        pub auth_chain: Vec<Box<RawValue>>,
        #[serde(default)]
        pub event: Option<Box<RawValue>>,
        #[serde(default)]
        pub members_omitted: bool,
        #[serde(default)]
        pub servers_in_room: Option<Vec<String>>,
    }

    impl SendJoinTexts {
        /// What [`crate::proto::wire::SendJoinResponse::validate`] checks, and what reading the owned answer
        /// checks of its PDUs: each is a JSON object (`event` included), so an answer the
        /// owned form refuses is refused here too.
        pub fn validate(&self) -> Result<(), ResponseError> {
            let pdus = self.state.iter().chain(&self.auth_chain).chain(&self.event);
            if let Some(pdu) = pdus.into_iter().find(|pdu| !pdu.get().starts_with('{')) {
                return Err(ResponseError::PduNotObject {
                    found: pdu.get().chars().take(40).collect(),
                });
            }
            if self.members_omitted && self.servers_in_room.is_none() {
                return Err(ResponseError::ServersInRoomMissing);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn minimal_pdu() -> Value {
        json!({"type": "m.room.minimal_pdu", "room_id": "!somewhere:example.org",
               "content": {"see_room_version_spec":
                   "The event format changes depending on the room version."}})
    }

    fn round_trip<T>(body: Value) -> T
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        let parsed: T = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), body);
        parsed
    }

    #[test]
    fn backfill_response_has_no_pdu_limit() {
        let pdus: Vec<Value> = (0..60).map(|_| minimal_pdu()).collect();
        let response: BackfillResponse = round_trip(
            json!({"origin": "matrix.org", "origin_server_ts": 1234567890, "pdus": pdus}),
        );
        assert_eq!(response.pdus.len(), 60);
    }

    #[test]
    fn event_response_holds_exactly_one_pdu() {
        let response: EventResponse = round_trip(
            json!({"origin": "matrix.org", "origin_server_ts": 1234567890,
                   "pdus": [minimal_pdu()]}),
        );
        assert_eq!(
            response.single_pdu().unwrap()["type"],
            json!("m.room.minimal_pdu")
        );
        let empty: EventResponse =
            round_trip(json!({"origin": "matrix.org", "origin_server_ts": 1, "pdus": []}));
        assert_eq!(
            empty.single_pdu(),
            Err(ResponseError::EventPduCount { count: 0 })
        );
    }

    #[test]
    fn backfill_query_round_trips_and_requires_its_parameters() {
        let query = BackfillQuery {
            v: vec!["$abc123:matrix.org".into(), "$a+b/c".into()],
            limit: 2,
        };
        let text = query.to_query_string();
        assert_eq!(text, "v=%24abc123%3Amatrix.org&v=%24a%2Bb%2Fc&limit=2");
        assert_eq!(BackfillQuery::from_query_string(&text), Ok(query));
        let parse = |text| BackfillQuery::from_query_string(text);
        assert_eq!(parse("limit=2"), Err(QueryError::Missing { name: "v" }));
        assert_eq!(parse("v=%24e"), Err(QueryError::Missing { name: "limit" }));
        assert!(matches!(
            parse("v=%24e&limit=-1"),
            Err(QueryError::Invalid { name: "limit", .. })
        ));
    }

    #[test]
    fn get_missing_events_spec_example_and_defaults() {
        let request: GetMissingEventsRequest = round_trip(json!({
            "limit": 10, "min_depth": 0,
            "earliest_events": ["$missing_event:example.org"],
            "latest_events": ["$event_that_has_the_missing_event_as_a_previous_event:example.org"]
        }));
        assert_eq!(request.earliest_events.len(), 1);
        let defaults: GetMissingEventsRequest =
            serde_json::from_value(json!({"earliest_events": [], "latest_events": ["$e"]}))
                .unwrap();
        assert_eq!(defaults.limit, GET_MISSING_EVENTS_LIMIT_DEFAULT);
        assert_eq!(defaults.min_depth, 0);
        let error = serde_json::from_value::<GetMissingEventsRequest>(json!({"latest_events": []}))
            .unwrap_err();
        assert!(error.to_string().contains("earliest_events"), "{error}");
        let response: GetMissingEventsResponse = round_trip(json!({"events": [minimal_pdu()]}));
        assert_eq!(response.events.len(), 1);
    }

    #[test]
    fn state_responses() {
        let ids: StateIdsResponse = round_trip(json!({"auth_chain_ids": ["$an_event:example.org"],
                   "pdu_ids": ["$an_event:example.org"]}));
        assert_eq!(ids.pdu_ids, ["$an_event:example.org"]);
        let state: StateResponse =
            round_trip(json!({"auth_chain": [minimal_pdu()], "pdus": [minimal_pdu()]}));
        assert_eq!(state.pdus.len(), 1);
        assert!(serde_json::from_value::<StateResponse>(json!({"pdus": []})).is_err());
        let auth: EventAuthResponse = round_trip(json!({"auth_chain": [minimal_pdu()]}));
        assert_eq!(auth.auth_chain.len(), 1);
        let query = StateQuery {
            event_id: "$helloworld:matrix.org".into(),
        };
        assert_eq!(
            query.to_query_string(),
            "event_id=%24helloworld%3Amatrix.org"
        );
        assert_eq!(
            StateQuery::from_query_string(&query.to_query_string()),
            Ok(query)
        );
    }

    #[test]
    fn text_answers_are_the_bytes_of_the_owned_answers() {
        let pdus: Vec<RawPdu> = vec![
            minimal_pdu().as_object().unwrap().clone(),
            json!({"b": "\u{1}\"\\ é", "a": [1, -2, 3.5], "c": {"z": null, "y": true}})
                .as_object()
                .unwrap()
                .clone(),
        ];
        let texts: Vec<Box<RawValue>> = pdus
            .iter()
            .map(|pdu| serde_json::value::to_raw_value(pdu).unwrap())
            .collect();
        let refs: Vec<&RawValue> = texts.iter().map(AsRef::as_ref).collect();
        let owned = |value: &dyn erased::Ser| value.to_value().to_string();
        let cases: [(String, String); 5] = [
            (
                serde_json::to_string(&text::PduTransactionText {
                    origin: "a.example",
                    origin_server_ts: 7,
                    pdus: refs.clone(),
                })
                .unwrap(),
                owned(&PduTransaction {
                    origin: "a.example".into(),
                    origin_server_ts: 7,
                    pdus: pdus.clone(),
                }),
            ),
            (
                serde_json::to_string(&text::GetMissingEventsText {
                    events: refs.clone(),
                })
                .unwrap(),
                owned(&GetMissingEventsResponse {
                    events: pdus.clone(),
                }),
            ),
            (
                serde_json::to_string(&text::StateText {
                    auth_chain: refs[..1].to_vec(),
                    pdus: refs.clone(),
                })
                .unwrap(),
                owned(&StateResponse {
                    auth_chain: pdus[..1].to_vec(),
                    pdus: pdus.clone(),
                }),
            ),
            (
                serde_json::to_string(&text::EventAuthText {
                    auth_chain: refs.clone(),
                })
                .unwrap(),
                owned(&EventAuthResponse {
                    auth_chain: pdus.clone(),
                }),
            ),
            (
                serde_json::to_string(&text::SendJoinText {
                    auth_chain: refs[1..].to_vec(),
                    state: refs.clone(),
                })
                .unwrap(),
                owned(&crate::proto::wire::SendJoinResponse {
                    state: pdus.clone(),
                    auth_chain: pdus[1..].to_vec(),
                    event: None,
                    members_omitted: false,
                    servers_in_room: None,
                }),
            ),
        ];
        for (text, owned) in &cases {
            assert_eq!(text, owned);
        }
        let by_hand = [
            text::PduTransactionText {
                origin: "a.example",
                origin_server_ts: 7,
                pdus: refs.clone(),
            }
            .to_json(),
            text::GetMissingEventsText {
                events: refs.clone(),
            }
            .to_json(),
            text::StateText {
                auth_chain: refs[..1].to_vec(),
                pdus: refs.clone(),
            }
            .to_json(),
            text::EventAuthText {
                auth_chain: refs.clone(),
            }
            .to_json(),
            text::SendJoinText {
                auth_chain: refs[1..].to_vec(),
                state: refs.clone(),
            }
            .to_json(),
        ];
        for ((text, _), by_hand) in cases.iter().zip(by_hand) {
            assert_eq!(&by_hand, text);
        }
    }

    proptest::proptest! {
        /// Whatever the texts and the origin, the answers written by hand are the bytes
        /// serde_json writes for the same structs.
        #[test]
        fn answers_written_by_hand_are_serde_jsons_bytes(
            values in proptest::collection::vec(crate::proto::xmatrix::strategies::any_json(), 0..5),
            origin in "(?s).{0,12}",
            origin_server_ts in proptest::prelude::any::<u64>(),
            split in 0usize..5,
        ) {
            let texts: Vec<Box<RawValue>> = values
                .iter()
                .map(|value| serde_json::value::to_raw_value(value).unwrap())
                .collect();
            let refs: Vec<&RawValue> = texts.iter().map(AsRef::as_ref).collect();
            let (first, second) = refs.split_at(split.min(refs.len()));
            let (first, second) = (first.to_vec(), second.to_vec());
            let transaction = text::PduTransactionText { origin: &origin, origin_server_ts, pdus: refs.clone() };
            proptest::prop_assert_eq!(transaction.to_json(), serde_json::to_string(&transaction).unwrap());
            let missing = text::GetMissingEventsText { events: refs.clone() };
            proptest::prop_assert_eq!(missing.to_json(), serde_json::to_string(&missing).unwrap());
            let state = text::StateText { auth_chain: first.clone(), pdus: second.clone() };
            proptest::prop_assert_eq!(state.to_json(), serde_json::to_string(&state).unwrap());
            let auth = text::EventAuthText { auth_chain: first.clone() };
            proptest::prop_assert_eq!(auth.to_json(), serde_json::to_string(&auth).unwrap());
            let join = text::SendJoinText { auth_chain: first, state: second };
            proptest::prop_assert_eq!(join.to_json(), serde_json::to_string(&join).unwrap());
        }
    }

    #[test]
    fn send_join_texts_refuse_what_the_owned_answer_refuses() {
        let pdu = minimal_pdu();
        let read = |body: Value| -> Result<(), String> {
            let texts: text::SendJoinTexts =
                serde_json::from_str(&body.to_string()).map_err(|e| e.to_string())?;
            texts.validate().map_err(|e| e.to_string())
        };
        assert_eq!(read(json!({"auth_chain": [pdu], "state": [pdu]})), Ok(()));
        assert!(
            read(json!({"state": [pdu]})).is_err(),
            "auth_chain is required"
        );
        for bad in [json!(5), json!("x"), json!([pdu]), json!(null)] {
            let refused = read(json!({"auth_chain": [pdu], "state": [pdu, bad]}));
            assert!(
                refused.is_err_and(|e| e.contains("not a JSON object")),
                "{bad} is not a PDU"
            );
            assert!(read(json!({"auth_chain": [bad], "state": []})).is_err());
            if !bad.is_null() {
                assert!(read(json!({"auth_chain": [], "state": [], "event": bad})).is_err());
            }
        }
        // A null event is an absent one, in the owned answer too.
        assert_eq!(
            read(json!({"auth_chain": [], "state": [], "event": null})),
            Ok(())
        );
        assert_eq!(
            read(json!({"auth_chain": [], "state": [], "members_omitted": true})),
            Err(ResponseError::ServersInRoomMissing.to_string())
        );
        assert_eq!(
            read(
                json!({"auth_chain": [], "state": [], "members_omitted": true,
                        "servers_in_room": ["a.example"]})
            ),
            Ok(())
        );
    }

    mod erased {
        pub trait Ser {
            fn to_value(&self) -> serde_json::Value;
        }
        impl<T: serde::Serialize> Ser for T {
            fn to_value(&self) -> serde_json::Value {
                serde_json::to_value(self).unwrap()
            }
        }
    }
}
