//! Read paths for peers: `/event`, `/state`, `/state_ids`, `/event_auth`, `/backfill` and
//! `/get_missing_events`.
//!
//! Invariant: an event, a state or a piece of history leaves this server only toward a server
//! that may see it under the room's history visibility (a server with no member in the room
//! gets 403), checked per event on every path. Independently of that check, every event (or
//! event id) served to a server that had no joined member, neither now nor at the event, is
//! counted in `events_leaked`: the oracle of the disclosure threat, which must stay 0 and
//! does not when a test turns the check off.

use crate::proto::pdu::Pdu;
use crate::proto::wire::text::{
    EventAuthText, GetMissingEventsText, PduTransactionText, StateText,
};
use crate::proto::wire::{
    BackfillQuery, ErrorCode, GetMissingEventsRequest, MatrixError, StateIdsResponse, StateQuery,
};
use crate::server::Inner;
use crate::server::http::{EndpointResult, Incoming, TextResult};
use crate::server::join::not_found;
use crate::server::store::RoomStore;
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Arc;

fn forbidden(origin: &str, what: &str) -> MatrixError {
    MatrixError::new(ErrorCode::Forbidden, format!("{origin} may not see {what}"))
}

fn bad_query(error: impl std::fmt::Display) -> MatrixError {
    MatrixError::new(ErrorCode::InvalidParam, error.to_string())
}

impl Inner {
    /// The transaction-shaped answer of `/backfill` and `/event`.
    fn pdu_transaction(&self, pdus: &[Arc<Pdu>]) -> String {
        let answer = PduTransactionText {
            origin: &self.config.name,
            origin_server_ts: self.clock.now_ms(),
            pdus: texts(pdus),
        };
        answer.to_json()
    }

    /// Runs `read` on the room, or answers 404.
    fn with_room<T>(
        &self,
        room_id: &str,
        read: impl FnOnce(&RoomStore) -> Result<T, MatrixError>,
    ) -> Result<T, MatrixError> {
        let store = self.store.borrow();
        let room = store.room(room_id).ok_or_else(|| not_found(room_id))?;
        read(room)
    }

    pub(crate) fn on_event(&self, incoming: &Incoming) -> TextResult {
        let event_id = &incoming.params[0];
        let store = self.store.borrow();
        let room = store
            .rooms()
            .map(|(_, room)| room)
            .find(|room| room.contains(event_id))
            .ok_or_else(|| not_found(event_id))?;
        if !self.may_see(room, &incoming.origin, event_id) {
            return Err(forbidden(&incoming.origin, event_id));
        }
        let pdu = room.event(event_id).ok_or_else(|| not_found(event_id))?;
        self.count_leaks(room, &incoming.origin, std::iter::once(event_id.as_str()));
        Ok(self.pdu_transaction(&[pdu]))
    }

    /// The state before the queried event and its auth chain, as ids, if `origin` may see it:
    /// what `/state_ids` answers, and what `/state` answers with the events themselves.
    fn visible_state_at<T>(
        &self,
        incoming: &Incoming,
        answer: impl FnOnce(&RoomStore, Vec<String>, Vec<String>) -> T,
    ) -> Result<T, MatrixError> {
        let query = StateQuery::from_pairs(&incoming.query).map_err(bad_query)?;
        self.with_room(&incoming.params[0], |room| {
            if !self.may_see(room, &incoming.origin, &query.event_id) {
                return Err(forbidden(&incoming.origin, &query.event_id));
            }
            let (pdu_ids, auth_chain_ids) = room
                .state_ids_at(&query.event_id)
                .map_err(|e| not_found(&e.to_string()))?;
            let served = pdu_ids.iter().chain(&auth_chain_ids).map(String::as_str);
            self.count_leaks(room, &incoming.origin, served);
            Ok(answer(room, pdu_ids, auth_chain_ids))
        })
    }

    pub(crate) fn on_state_ids(&self, incoming: &Incoming) -> EndpointResult {
        self.visible_state_at(incoming, |_, pdu_ids, auth_chain_ids| {
            serde_json::to_value(StateIdsResponse {
                auth_chain_ids,
                pdu_ids,
            })
            .expect("serializes")
        })
    }

    pub(crate) fn on_state(&self, incoming: &Incoming) -> TextResult {
        self.visible_state_at(incoming, |room, pdu_ids, auth_chain_ids| {
            let held =
                |ids: &[String]| -> Vec<_> { ids.iter().filter_map(|id| room.event(id)).collect() };
            let (auth_chain, pdus) = (held(&auth_chain_ids), held(&pdu_ids));
            let answer = StateText {
                auth_chain: texts(&auth_chain),
                pdus: texts(&pdus),
            };
            answer.to_json()
        })
    }

    pub(crate) fn on_event_auth(&self, incoming: &Incoming) -> TextResult {
        let event_id = &incoming.params[1];
        self.with_room(&incoming.params[0], |room| {
            if !self.may_see(room, &incoming.origin, event_id) {
                return Err(forbidden(&incoming.origin, event_id));
            }
            let chain = room.auth_chain(std::slice::from_ref(event_id));
            self.count_leaks(
                room,
                &incoming.origin,
                chain.iter().map(|pdu| pdu.event_id()),
            );
            let answer = EventAuthText {
                auth_chain: texts(&chain),
            };
            Ok(answer.to_json())
        })
    }

    pub(crate) fn on_backfill(&self, incoming: &Incoming) -> TextResult {
        let query = BackfillQuery::from_pairs(&incoming.query).map_err(bad_query)?;
        let pdus = self.with_room(&incoming.params[0], |room| {
            if !self.may_see_room(room, &incoming.origin)
                && !query
                    .v
                    .iter()
                    .any(|id| self.may_see(room, &incoming.origin, id))
            {
                return Err(forbidden(&incoming.origin, "this room's history"));
            }
            let events = room.backfill(&query.v, query.limit as usize);
            Ok(self.visible(room, &incoming.origin, events))
        })?;
        Ok(self.pdu_transaction(&pdus))
    }

    pub(crate) fn on_get_missing_events(&self, incoming: &Incoming) -> TextResult {
        let body = incoming.body.clone().unwrap_or(Value::Null);
        let request: GetMissingEventsRequest = serde_json::from_value(body)
            .map_err(|e| MatrixError::new(ErrorCode::BadJson, e.to_string()))?;
        let events = self.with_room(&incoming.params[0], |room| {
            if !request
                .latest_events
                .iter()
                .any(|id| self.may_see(room, &incoming.origin, id))
            {
                return Err(forbidden(&incoming.origin, "this room's history"));
            }
            let events = room.missing_events(
                &request.earliest_events,
                &request.latest_events,
                request.limit as usize,
                request.min_depth,
            );
            Ok(self.visible(room, &incoming.origin, events))
        })?;
        let answer = GetMissingEventsText {
            events: texts(&events),
        };
        Ok(answer.to_json())
    }
}

impl Inner {
    /// Whether `origin` may see `event_id`: the room's visibility rules, unless a test turned
    /// the check off.
    fn may_see(&self, room: &RoomStore, origin: &str, event_id: &str) -> bool {
        !self.config.defences.read_membership_checks || room.server_may_see(origin, event_id)
    }

    /// Whether `origin` has a member in the room now (or the check is off).
    fn may_see_room(&self, room: &RoomStore, origin: &str) -> bool {
        !self.config.defences.read_membership_checks || room.server_in_room(origin)
    }

    /// The events `origin` may see, in the given order.
    fn visible(&self, room: &RoomStore, origin: &str, events: Vec<Arc<Pdu>>) -> Vec<Arc<Pdu>> {
        let visible: Vec<_> = events
            .into_iter()
            .filter(|pdu| self.may_see(room, origin, pdu.event_id()))
            .collect();
        self.count_leaks(room, origin, visible.iter().map(|pdu| pdu.event_id()));
        visible
    }

    /// Counts the served events that `origin` had no joined member for.
    fn count_leaks<'a>(
        &self,
        room: &RoomStore,
        origin: &str,
        served: impl Iterator<Item = &'a str>,
    ) {
        if room.server_in_room(origin) {
            return;
        }
        let leaked = served
            .filter(|event_id| !joined_at(room, origin, event_id))
            .count() as u64;
        self.metrics.borrow_mut().events_leaked += leaked;
    }
}

/// Whether a user of `server` was joined in the state before or after `event_id`.
fn joined_at(room: &RoomStore, server: &str, event_id: &str) -> bool {
    let joined_in = |state: Option<crate::proto::event::StateMap>| {
        state.is_some_and(|state| {
            state.iter().any(|((event_type, user_id), member_id)| {
                event_type == "m.room.member"
                    && crate::proto::event::server_of(user_id) == server
                    && room
                        .event(member_id)
                        .is_some_and(|pdu| pdu.event().membership() == Some("join"))
            })
        })
    };
    joined_in(room.state_before(event_id)) || joined_in(room.state_after(event_id))
}

/// The JSON texts of `pdus`, in order (each written once per PDU, see [`Pdu::json_text`]).
pub(super) fn texts(pdus: &[Arc<Pdu>]) -> Vec<&RawValue> {
    pdus.iter().map(|pdu| pdu.json_text()).collect()
}
