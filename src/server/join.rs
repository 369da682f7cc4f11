//! Joining a room held by other servers, both sides of it: the joining server asks a resident
//! server for a join template (`make_join`), signs it, and sends it back (`send_join`); the
//! resident checks and stores the join, answers with the room's state and auth chain, and
//! sends the join on to the other servers of the room.
//!
//! Invariants: the joining server stores the state it was given only after every event of it
//! and of its auth chain passed the signature checks; the resident accepts only a join whose
//! sender belongs to the requesting server.

use crate::proto::event::StateMap;
use crate::proto::event::server_of;
use crate::proto::pdu::{EventRef, NewEvent, Pdu, build_pdu};
use crate::proto::room_version::{self, ALL as ALL_VERSIONS};
use crate::proto::wire::paths;
use crate::proto::wire::text::{PduTransactionTexts, SendJoinText, SendJoinTexts};
use crate::proto::wire::{
    BackfillQuery, ErrorCode, MakeJoinQuery, MakeMembershipResponse, MatrixError, SendJoinQuery,
};
use crate::server::Inner;
use crate::server::history::texts;
use crate::server::http::{EndpointResult, Incoming, TextResult};
use crate::server::rooms::LocalError;
use crate::server::store::{LocalEventDraft, RoomStore, StoreError};
use crate::server::verify::{CheckedPdu, ParsedPdu};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

/// Attempts at each page of history a joining server asks for (see `backfill_page`).
const BACKFILL_ATTEMPTS_MAX: u32 = 4;
/// The pause before the second attempt; it doubles before each further one.
const BACKFILL_RETRY_PAUSE_MS_MIN: u64 = 1_000;
/// The most events of fetched history placed with the state a peer reports before them,
/// when the history does not reach what is held (see `history_cuts`).
const HISTORY_CUTS_PLACED_MAX: usize = 16;

impl Inner {
    /// The joining side.
    pub(crate) async fn join_via(
        self: Rc<Self>,
        user: &str,
        room_id: &str,
        via: &str,
    ) -> Result<(), LocalError> {
        let failed = |reason: String| LocalError::Join {
            room_id: room_id.to_owned(),
            via: via.to_owned(),
            reason,
        };
        // PDUs of the room wait until the join, history included, is done: placed during the
        // backfill, each would walk the history being fetched.
        let _joining = crate::server::inbound::JoinInProgress::begin(&self, room_id);
        let versions: Vec<String> = ALL_VERSIONS.iter().map(|v| v.id.to_owned()).collect();
        let uri = paths::make_join_path(room_id, user, &MakeJoinQuery { ver: versions });
        let template: MakeMembershipResponse = self
            .federation_request(via, "GET", &uri, None)
            .await
            .map_err(|e| failed(e.to_string()))?;
        template
            .check_template(room_id, user, "join")
            .map_err(|e| failed(e.to_string()))?;
        let version_id = template
            .room_version
            .clone()
            .unwrap_or_else(|| "1".to_owned());
        let version = room_version::room_version(&version_id).map_err(|e| failed(e.to_string()))?;
        let new = new_event_from_template(&template.event, self.clock.now_ms()).map_err(failed)?;
        let join = build_pdu(new, version, &self.config.name, &self.config.signing_key)
            .map_err(|e| failed(e.to_string()))?;
        let uri = paths::send_join_path(room_id, join.event_id(), &SendJoinQuery::default());
        let body = Value::Object(join.json().clone());
        let answer: SendJoinTexts = self
            .federation_request(via, "PUT", &uri, Some(&body))
            .await
            .map_err(|e| failed(e.to_string()))?;
        answer.validate().map_err(|e| failed(e.to_string()))?;
        // Read before the checks, which wait for keys, and the texts dropped: in a join storm
        // hundreds of joining servers hold the state of a large room at once, each as the
        // run's shared events rather than its own megabyte of text.
        let parse = |texts: Vec<Box<RawValue>>| -> Vec<ParsedPdu> {
            texts
                .iter()
                .map(|text| self.parse_received_pdu_text(text, version))
                .collect()
        };
        let mut known = parse(answer.auth_chain);
        let state = parse(answer.state);
        let state_ids: Vec<String> = state
            .iter()
            .filter_map(|parsed| parsed.pdu().ok())
            .map(|pdu| pdu.event_id().to_owned())
            .collect();
        known.extend(state);
        // Checked before the room is opened: a join whose state does not check out (a
        // signer's key could not be fetched) fails whole, leaving no half-joined room that
        // would take the room's PDUs without its state and history, and can be tried again.
        let checked: Vec<CheckedPdu> = self
            .check_parsed_batch(&known, version)
            .await
            .into_iter()
            .flatten()
            .collect();
        let checked_ids: BTreeSet<&str> = checked.iter().map(|c| c.pdu.event_id()).collect();
        let held = |id: &str| {
            let store = self.store.borrow();
            store.room(room_id).is_some_and(|room| room.contains(id))
        };
        let unchecked = state_ids
            .iter()
            .find(|id| !checked_ids.contains(id.as_str()) && !held(id));
        if let Some(unchecked) = unchecked {
            return Err(failed(format!("state event {unchecked} did not check out")));
        }
        self.store.borrow_mut().open_room(room_id, version)?;
        self.store_outliers(room_id, checked).map_err(failed)?;
        let state_before: StateMap = self.state_map_of(room_id, &state_ids).map_err(failed)?;
        let outcome = self
            .store
            .borrow_mut()
            .room_mut(room_id)?
            .ingest_with_state(Arc::new(join), false, state_before)?;
        self.count_outcome(&outcome);
        self.store.borrow().flush();
        if !outcome.is_accepted() {
            return Err(failed(format!(
                "our own join was not accepted: {:?}",
                outcome.status
            )));
        }
        self.backfill_after_join(room_id, via).await;
        Ok(())
    }

    /// Fetches the room's history before our join from `via`, as a client's first scrollback
    /// would make a server do, so that the joined server holds the same timeline. A peer
    /// answers at most a page of history per request, and history can only be placed oldest
    /// first from events held with state: so pages are asked, each from the prev events the
    /// pages so far cite but nobody holds, until the history connects to what is held or
    /// `backfill_on_join_max` events were fetched. History that does not connect (the bound
    /// was reached, or `via` stopped answering) is placed from its oldest events, each with
    /// the state before it as `via` reports it, as Synapse places backfilled events whose prev
    /// events it lacks; what lies beyond stays unknown.
    async fn backfill_after_join(self: &Rc<Self>, room_id: &str, via: &str) {
        let Ok(version) = self.room_version(room_id) else {
            return;
        };
        let mut from: Vec<String> = self
            .store
            .borrow()
            .room(room_id)
            .map(|room| room.forward_extremities().iter().cloned().collect())
            .unwrap_or_default();
        let mut fetched: BTreeMap<String, CheckedPdu> = BTreeMap::new();
        // The prev events the fetched pages cite, each once: which of them are still unheld is
        // asked again after each page (other tasks place events meanwhile).
        let mut cited: BTreeSet<String> = BTreeSet::new();
        while !from.is_empty() && (fetched.len() as u64) < self.config.backfill_on_join_max {
            let query_limit = self.config.backfill_on_join_max - fetched.len() as u64;
            let query = BackfillQuery {
                v: from,
                limit: query_limit,
            };
            let uri = paths::backfill_path(room_id, &query);
            let Some(answer) = self.backfill_page(via, &uri).await else {
                break;
            };
            let fetched_before = fetched.len();
            let taken = self.answer_events_max(query_limit);
            let mut texts = answer.pdus;
            texts.truncate(taken);
            for checked in self
                .check_texts_batch(texts, version)
                .await
                .into_iter()
                .flatten()
            {
                cited.extend(checked.pdu.event().prev_events.iter().cloned());
                fetched.insert(checked.pdu.event_id().to_owned(), checked);
            }
            if fetched.len() == fetched_before {
                break;
            }
            from = self.unheld_prev_events(room_id, &cited, &fetched);
        }
        let cuts = self.history_cuts(room_id, &fetched, via).await;
        self.place_backfilled(room_id, cuts, fetched);
        self.store.borrow().flush();
    }

    /// The oldest `fetched` events, those citing a prev event neither held with state nor
    /// fetched, each with the state before it as `via` reports it (at most
    /// `HISTORY_CUTS_PLACED_MAX`, deepest first; one whose state cannot be had is left out).
    async fn history_cuts(
        &self,
        room_id: &str,
        fetched: &BTreeMap<String, CheckedPdu>,
        via: &str,
    ) -> Vec<(Arc<Pdu>, bool, StateMap)> {
        let mut oldest: Vec<&CheckedPdu> = {
            let store = self.store.borrow();
            let Some(room) = store.room(room_id) else {
                return Vec::new();
            };
            fetched
                .values()
                .filter(|checked| {
                    checked
                        .pdu
                        .event()
                        .prev_events
                        .iter()
                        .any(|prev| !room.has_state(prev) && !fetched.contains_key(prev))
                })
                .collect()
        };
        oldest.sort_by(|a, b| {
            let key = |c: &CheckedPdu| std::cmp::Reverse(c.pdu.event().depth);
            (key(a), a.pdu.event_id()).cmp(&(key(b), b.pdu.event_id()))
        });
        oldest.truncate(HISTORY_CUTS_PLACED_MAX);
        let mut cuts = Vec::new();
        for checked in oldest {
            if let Ok(state) = self.peer_state_before(via, room_id, &checked.pdu).await {
                cuts.push((checked.pdu.clone(), checked.held_redacted, state));
            }
        }
        cuts
    }

    /// One page of history from `via`. Nothing fetches this history later if it is not
    /// fetched now, so a request that may succeed later (lost, timed out, overload) is
    /// retried a few times after a growing pause rather than given up on.
    async fn backfill_page(&self, via: &str, uri: &str) -> Option<PduTransactionTexts> {
        let mut pause_ms = BACKFILL_RETRY_PAUSE_MS_MIN;
        for attempt in 1..=BACKFILL_ATTEMPTS_MAX {
            match self.federation_request(via, "GET", uri, None).await {
                Ok(answer) => return Some(answer),
                Err(error) if error.is_transient() && attempt < BACKFILL_ATTEMPTS_MAX => {
                    tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
                    pause_ms *= 2;
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// The prev events `cited` by the `fetched` events that are neither fetched nor held
    /// with state, in order.
    fn unheld_prev_events(
        &self,
        room_id: &str,
        cited: &BTreeSet<String>,
        fetched: &BTreeMap<String, CheckedPdu>,
    ) -> Vec<String> {
        let store = self.store.borrow();
        let Some(room) = store.room(room_id) else {
            return Vec::new();
        };
        cited
            .iter()
            .filter(|prev| !room.has_state(prev) && !fetched.contains_key(*prev))
            .cloned()
            .collect()
    }

    /// Places backfilled history: the `cuts` with the states given, then the `fetched` events
    /// oldest first, each once all its prev events are held.
    fn place_backfilled(
        &self,
        room_id: &str,
        cuts: Vec<(Arc<Pdu>, bool, StateMap)>,
        fetched: BTreeMap<String, CheckedPdu>,
    ) {
        let mut ordered: Vec<CheckedPdu> = fetched.into_values().collect();
        ordered.sort_by(|a, b| {
            let key = |c: &CheckedPdu| (c.pdu.event().depth, c.pdu.event_id().to_owned());
            key(a).cmp(&key(b))
        });
        let history = ordered
            .into_iter()
            .map(|checked| (checked.pdu, checked.held_redacted))
            .collect();
        let outcomes = self
            .store
            .borrow_mut()
            .room_mut(room_id)
            .map(|room| room.ingest_history(cuts, history))
            .unwrap_or_default();
        for outcome in &outcomes {
            self.count_outcome(outcome);
        }
    }

    /// `GET /make_join/{roomId}/{userId}`: a join template for a user of the requesting server.
    pub(crate) fn on_make_join(&self, incoming: &Incoming) -> EndpointResult {
        let (room_id, user_id) = (&incoming.params[0], &incoming.params[1]);
        check_user_of_origin(user_id, &incoming.origin)?;
        let store = self.store.borrow();
        let room = store.room(room_id).ok_or_else(|| not_found(room_id))?;
        let query = MakeJoinQuery::from_pairs(&incoming.query);
        let version = room.room_version();
        if !query.supported_versions().contains(&version.id) {
            return Err(MatrixError::incompatible_room_version(
                version.id,
                "room version not supported by the joining server",
            ));
        }
        let template = self.membership_template(room, user_id, "join")?;
        let answer = MakeMembershipResponse {
            room_version: Some(version.id.to_owned()),
            event: template,
        };
        Ok(serde_json::to_value(answer).expect("serializes"))
    }

    /// send_join and send_leave alike: checks the received membership event
    /// ([`Inner::received_membership_event`]) and places it (403 when it cannot be), and
    /// returns it with the servers joined before it, to whom it is then sent on.
    pub(crate) async fn place_received_membership(
        self: Rc<Self>,
        incoming: &Incoming,
        membership: &str,
        invalid_code: ErrorCode,
    ) -> Result<(Arc<Pdu>, BTreeSet<String>), MatrixError> {
        let room_id = &incoming.params[0];
        let checked = self
            .received_membership_event(incoming, membership, invalid_code)
            .await?;
        let before = self
            .store
            .borrow()
            .room(room_id)
            .map(|r| r.joined_servers())
            .unwrap_or_default();
        let pdu = checked.pdu.clone();
        self.clone()
            .place_event(&incoming.origin, room_id, checked)
            .await
            .map_err(|reason| MatrixError::new(ErrorCode::Forbidden, reason))?;
        Ok((pdu, before))
    }

    /// The signed membership event of a `send_join` or `send_leave`, checked as both require:
    /// it parses and verifies with an intact content hash, its id and room are the path's, and
    /// it is a `membership` of its own sender, a user of the requesting server. Failures are
    /// answered with `invalid_code` (each endpoint keeps its own), an unknown room with 404.
    pub(crate) async fn received_membership_event(
        &self,
        incoming: &Incoming,
        membership: &str,
        invalid_code: ErrorCode,
    ) -> Result<CheckedPdu, MatrixError> {
        let invalid = |reason: String| MatrixError::new(invalid_code.clone(), reason);
        let room_id = &incoming.params[0];
        let version = self.room_version(room_id).map_err(|_| not_found(room_id))?;
        let Some(Value::Object(raw)) = incoming.body.clone() else {
            return Err(MatrixError::new(
                ErrorCode::BadJson,
                format!("send_{membership} body must be an event"),
            ));
        };
        let checked = self
            .check_received_pdu(raw, version)
            .await
            .map_err(|e| invalid(e.to_string()))?;
        if checked.held_redacted {
            return Err(invalid(format!(
                "the {membership}'s content hash does not match"
            )));
        }
        let event = checked.pdu.event();
        if event.event_id != incoming.params[1] || event.room_id != *room_id {
            return Err(invalid(format!(
                "the {membership}'s event id or room id does not match the path"
            )));
        }
        if event.membership() != Some(membership) {
            return Err(invalid(format!(
                "not an m.room.member event with membership {membership}"
            )));
        }
        if event.state_key.as_deref() != Some(event.sender.as_str()) {
            return Err(invalid(format!(
                "the {membership}'s state_key is not its sender"
            )));
        }
        if event.sender_server() != incoming.origin {
            return Err(invalid(format!(
                "the {membership}'s sender {} is not a user of {}",
                event.sender, incoming.origin
            )));
        }
        Ok(checked)
    }

    /// `PUT /v2/send_join/{roomId}/{eventId}`: store the join, answer with the state before it.
    /// The answer is written from the PDU texts the store holds, not from copies of their
    /// JSON objects (the same bytes, see [`SendJoinText`]).
    pub(crate) async fn on_send_join(self: Rc<Self>, incoming: Incoming) -> TextResult {
        let room_id = incoming.params[0].clone();
        let (pdu, before) = self
            .clone()
            .place_received_membership(&incoming, "join", ErrorCode::BadJson)
            .await?;
        let answer = {
            let store = self.store.borrow();
            let room = store.room(&room_id).ok_or_else(|| not_found(&room_id))?;
            let state = room
                .state_before(pdu.event_id())
                .ok_or_else(|| not_found(pdu.event_id()))?;
            let state_ids: Vec<String> = state.values().cloned().collect();
            let mut chain_roots = state_ids.clone();
            chain_roots.push(pdu.event_id().to_owned());
            let state: Vec<Arc<Pdu>> = state_ids.iter().filter_map(|id| room.event(id)).collect();
            let auth_chain = room.auth_chain(&chain_roots);
            let answer = SendJoinText {
                auth_chain: texts(&auth_chain),
                state: texts(&state),
            };
            answer.to_json()
        };
        self.store.borrow().flush();
        self.fan_out(&room_id, &pdu, before, Some(&incoming.origin));
        Ok(answer)
    }
}

impl Inner {
    /// An unsigned `m.room.member` template setting `user_id`'s membership to `membership`,
    /// checked against the room's current state (403 if the user may not do that now): what
    /// `make_join` and `make_leave` answer.
    pub(crate) fn membership_template(
        &self,
        room: &RoomStore,
        user_id: &str,
        membership: &str,
    ) -> Result<Map<String, Value>, MatrixError> {
        let draft = LocalEventDraft {
            sender: user_id.to_owned(),
            event_type: "m.room.member".into(),
            state_key: Some(user_id.to_owned()),
            content: json!({ "membership": membership })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            redacts: None,
            origin_server_ts: self.clock.now_ms(),
        };
        let new = room.prepare_local_event(draft).map_err(|e| match e {
            StoreError::NotAllowed { error, .. } => {
                MatrixError::new(ErrorCode::Forbidden, error.to_string())
            }
            other => MatrixError::new(ErrorCode::Unknown, other.to_string()),
        })?;
        Ok(template_from_new_event(&new, room.room_id()))
    }
}

pub(crate) fn not_found(what: &str) -> MatrixError {
    MatrixError::new(ErrorCode::NotFound, format!("{what} is not known here"))
}

pub(crate) fn check_user_of_origin(user_id: &str, origin: &str) -> Result<(), MatrixError> {
    if server_of(user_id) != origin {
        return Err(MatrixError::new(
            ErrorCode::Forbidden,
            format!("{user_id} is not a user of the requesting server {origin}"),
        ));
    }
    Ok(())
}

/// The unsigned event a resident offers: the fields of `new`, with `origin_server_ts` to be
/// set by the joining server.
fn template_from_new_event(new: &NewEvent, room_id: &str) -> Map<String, Value> {
    let ids = |refs: &[EventRef]| {
        Value::Array(
            refs.iter()
                .map(|r| Value::String(r.event_id.clone()))
                .collect(),
        )
    };
    let mut event = Map::new();
    event.insert("room_id".into(), Value::String(room_id.to_owned()));
    event.insert("sender".into(), Value::String(new.sender.clone()));
    event.insert("type".into(), Value::String(new.event_type.clone()));
    event.insert(
        "state_key".into(),
        Value::String(new.state_key.clone().unwrap_or_default()),
    );
    event.insert("content".into(), Value::Object(new.content.clone()));
    event.insert("prev_events".into(), ids(&new.prev_events));
    event.insert("auth_events".into(), ids(&new.auth_events));
    event.insert("depth".into(), json!(new.depth));
    event.insert("origin_server_ts".into(), json!(new.origin_server_ts));
    event
}

/// The fields of a join from a resident's template.
pub(crate) fn new_event_from_template(
    template: &Map<String, Value>,
    now_ms: u64,
) -> Result<NewEvent, String> {
    let text = |key: &str| {
        template
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("template has no string `{key}`"))
    };
    let refs = |key: &str| -> Result<Vec<EventRef>, String> {
        let list = template
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("template has no `{key}` list"))?;
        list.iter()
            .map(|item| match item {
                Value::String(id) => Ok(EventRef::from(id.as_str())),
                Value::Array(pair) => pair
                    .first()
                    .and_then(Value::as_str)
                    .map(EventRef::from)
                    .ok_or_else(|| format!("bad `{key}` entry")),
                _ => Err(format!("bad `{key}` entry")),
            })
            .collect()
    };
    Ok(NewEvent {
        room_id: Some(text("room_id")?),
        sender: text("sender")?,
        event_type: text("type")?,
        state_key: Some(text("state_key")?),
        content: template
            .get("content")
            .and_then(Value::as_object)
            .cloned()
            .ok_or("template has no `content`")?,
        prev_events: refs("prev_events")?,
        auth_events: refs("auth_events")?,
        depth: template
            .get("depth")
            .and_then(Value::as_u64)
            .ok_or("template has no `depth`")?,
        origin_server_ts: now_ms,
        redacts: None,
        event_id_opaque: None,
    })
}
