//! Placing a received event whose ancestry is incomplete: fetch missing auth events
//! (`/event_auth`), walk back missing prev events (`/get_missing_events`), and when the walk
//! does not reach known events within its bound, take the state before each missing prev
//! event from the peer (`/state_ids`, then `/event` for what is unknown) and continue from
//! there, as Synapse does.
//!
//! Invariants: every fetched event passes the same signature and hash checks as one that came
//! in a transaction; the number of requests per placed event is bounded by the configuration
//! (rounds of missing events, events fetched for a state), so a peer cannot keep us busy
//! forever.

use crate::proto::event::StateMap;
use crate::proto::pdu::Pdu;
use crate::proto::wire::paths;
use crate::proto::wire::text::{EventAuthTexts, GetMissingEventsTexts, PduTransactionTexts};
use crate::proto::wire::{
    GET_MISSING_EVENTS_LIMIT_DEFAULT, GetMissingEventsRequest, StateIdsResponse, StateQuery,
};
use crate::server::Inner;
use crate::server::verify::{CheckedPdu, ParsedPdu, ReceivedPdu};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

/// The most events fetched one by one to complete a state from `/state_ids`.
const STATE_EVENTS_FETCHED_MAX: usize = 2_000;

impl Inner {
    /// Places a checked event in `room_id`, fetching from `origin` what it lacks. Returns why
    /// it was not accepted, if it was not.
    pub(crate) async fn place_event(
        self: Rc<Self>,
        origin: &str,
        room_id: &str,
        checked: CheckedPdu,
    ) -> Result<(), String> {
        let event_id = checked.pdu.event_id().to_owned();
        if self.holds_with_state(room_id, &event_id) {
            return Ok(());
        }
        self.fetch_missing_auth_events(origin, room_id, &checked.pdu)
            .await?;
        // Asked again only after the walk: with nothing missing now, nothing can go missing
        // before the ingest below (no await in between).
        if !self.holds_prev_events(room_id, &checked.pdu) {
            self.walk_missing_events(origin, room_id, &checked.pdu)
                .await;
            for missing in self.missing_prev_events(room_id, &checked.pdu) {
                self.metrics.borrow_mut().state_ids_fallbacks += 1;
                self.clone()
                    .place_with_peer_state(origin, room_id, &missing)
                    .await?;
            }
        }
        self.ingest_checked(room_id, checked)
    }

    fn holds_with_state(&self, room_id: &str, event_id: &str) -> bool {
        self.store
            .borrow()
            .room(room_id)
            .is_some_and(|room| room.has_state(event_id))
    }

    /// Whether every prev event of `pdu` is held with state (true when the room is not held,
    /// as [`Inner::missing_prev_events`] then lists none).
    fn holds_prev_events(&self, room_id: &str, pdu: &Pdu) -> bool {
        self.store
            .borrow()
            .room(room_id)
            .is_none_or(|room| room.holds_prev_events(pdu))
    }

    fn missing_prev_events(&self, room_id: &str, pdu: &Pdu) -> Vec<String> {
        self.store
            .borrow()
            .room(room_id)
            .map(|room| room.missing_prev_events(pdu))
            .unwrap_or_default()
    }

    /// Hands an event whose ancestry is complete to the store.
    fn ingest_checked(&self, room_id: &str, checked: CheckedPdu) -> Result<(), String> {
        let mut store = self.store.borrow_mut();
        let room = store.room_mut(room_id).map_err(|e| e.to_string())?;
        let outcome = room
            .ingest(checked.pdu, checked.held_redacted)
            .map_err(|e| e.to_string())?;
        drop(store);
        self.count_outcome(&outcome);
        match &outcome.status {
            status if status.is_rejected() => Err(format!("rejected: {status:?}")),
            _ => Ok(()),
        }
    }

    /// Fetches the auth chain of `pdu` when some of its auth events are unknown.
    async fn fetch_missing_auth_events(
        &self,
        origin: &str,
        room_id: &str,
        pdu: &Pdu,
    ) -> Result<(), String> {
        let missing = self
            .store
            .borrow()
            .room(room_id)
            .map(|r| r.missing_auth_events(pdu))
            .unwrap_or_default();
        if missing.is_empty() {
            return Ok(());
        }
        let uri = paths::event_auth_path(room_id, pdu.event_id());
        let response: EventAuthTexts = self
            .federation_request(origin, "GET", &uri, None)
            .await
            .map_err(|e| format!("cannot fetch auth events {missing:?}: {e}"))?;
        let bound = self.config.auth_chain_fetched_max;
        if self.config.defences.fetch_bounds && response.auth_chain.len() > bound {
            self.metrics.borrow_mut().auth_chains_refused += 1;
            return Err(format!(
                "the auth chain of {} holds {} events; at most {bound} are taken",
                pdu.event_id(),
                response.auth_chain.len()
            ));
        }
        self.ingest_fetched_outliers(room_id, response.auth_chain)
            .await
    }

    /// Checks fetched events and stores those not yet held as outliers.
    pub(crate) async fn ingest_fetched_outliers(
        &self,
        room_id: &str,
        raws: Vec<impl ReceivedPdu>,
    ) -> Result<(), String> {
        let version = self.room_version(room_id)?;
        let parsed: Vec<ParsedPdu> = raws
            .into_iter()
            .map(|raw| raw.parse(self, version))
            .collect();
        let checked = self.check_parsed_batch(&parsed, version).await;
        self.store_outliers(room_id, checked.into_iter().flatten())
    }

    /// Stores checked events not yet held as outliers.
    pub(crate) fn store_outliers(
        &self,
        room_id: &str,
        checked: impl IntoIterator<Item = CheckedPdu>,
    ) -> Result<(), String> {
        let mut store = self.store.borrow_mut();
        let room = store.room_mut(room_id).map_err(|e| e.to_string())?;
        let batch: Vec<(Arc<Pdu>, bool)> = checked
            .into_iter()
            .filter(|checked| !room.contains(checked.pdu.event_id()))
            .map(|checked| (checked.pdu, checked.held_redacted))
            .collect();
        room.ingest_outliers(batch)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Rounds of `/get_missing_events`, placing what arrives oldest first; called only when
    /// some prev events of `pdu` are missing. Each round asks
    /// for what lies behind the fetched events that still cannot be placed, so a gap longer
    /// than one answer closes in several rounds.
    ///
    /// The first round asks for the spec's default page of `GET_MISSING_EVENTS_LIMIT_DEFAULT`
    /// events, as Synapse does: a gap is mostly an event or two still in flight to us. After
    /// it come at most `missing_events_rounds_max` rounds of `missing_events_limit` events.
    ///
    /// `earliest_events` lists our forward extremities and, as Synapse sends them, the prev
    /// events of the round's latest events that we hold with state. The answering server
    /// walks back from the latest events and stops at the earliest ones; our newest
    /// extremities are often still in flight to it, so without the held prev events it would
    /// walk on through history we hold (measured at 100 servers: about 19 fetches per event).
    async fn walk_missing_events(self: &Rc<Self>, origin: &str, room_id: &str, pdu: &Pdu) {
        let Ok(version) = self.room_version(room_id) else {
            return;
        };
        let mut waiting: BTreeMap<String, CheckedPdu> = BTreeMap::new();
        let mut latest = vec![pdu.event_id().to_owned()];
        for round in 0..=self.config.missing_events_rounds_max {
            // The caller found prev events missing just before (no await in between).
            if round > 0 && self.holds_prev_events(room_id, pdu) {
                return;
            }
            let earliest = self.walk_earliest(room_id, pdu, &latest, &waiting);
            let wanted = if round == 0 {
                GET_MISSING_EVENTS_LIMIT_DEFAULT.min(self.config.missing_events_limit)
            } else {
                self.config.missing_events_limit
            };
            // Bounded per origin, so events cited but never sent cannot bypass its rate.
            let limit = self.gap_fill_allowance(origin, wanted);
            if limit == 0 {
                return;
            }
            let request = GetMissingEventsRequest {
                earliest_events: earliest,
                latest_events: latest,
                limit,
                min_depth: 0,
            };
            self.metrics.borrow_mut().missing_events_requests += 1;
            let body = serde_json::to_value(&request).expect("request serializes");
            let uri = paths::get_missing_events_path(room_id);
            let Ok(response) = self
                .federation_request::<GetMissingEventsTexts>(origin, "POST", &uri, Some(&body))
                .await
            else {
                return;
            };
            let mut new_events = 0;
            let taken = self.answer_events_max(limit);
            let mut texts = response.events;
            texts.truncate(taken);
            for checked in self.check_texts_batch(texts, version).await {
                let Ok(checked) = checked else {
                    continue;
                };
                let event_id = checked.pdu.event_id().to_owned();
                if !self.holds_with_state(room_id, &event_id) && !waiting.contains_key(&event_id) {
                    waiting.insert(event_id, checked);
                    new_events += 1;
                }
            }
            self.charge_gap_fill(origin, new_events);
            self.place_waiting(origin, room_id, &mut waiting).await;
            if new_events == 0 {
                return;
            }
            latest = self.waiting_frontier(room_id, &waiting);
            if latest.is_empty() {
                return;
            }
        }
    }

    /// The `earliest_events` of a round: our forward extremities and the prev events of
    /// `latest` (the received `pdu` or events `waiting` to be placed) held with state.
    fn walk_earliest(
        &self,
        room_id: &str,
        pdu: &Pdu,
        latest: &[String],
        waiting: &BTreeMap<String, CheckedPdu>,
    ) -> Vec<String> {
        let store = self.store.borrow();
        let Some(room) = store.room(room_id) else {
            return Vec::new();
        };
        let mut earliest: BTreeSet<String> = room.forward_extremities().clone();
        for event_id in latest {
            let prevs = match waiting.get(event_id) {
                Some(checked) => &checked.pdu.event().prev_events,
                None if event_id == pdu.event_id() => &pdu.event().prev_events,
                None => continue,
            };
            earliest.extend(prevs.iter().filter(|prev| room.has_state(prev)).cloned());
        }
        earliest.into_iter().collect()
    }

    /// Places every waiting event whose prev events are all held, oldest first, until none
    /// is left that can be placed.
    async fn place_waiting(
        self: &Rc<Self>,
        origin: &str,
        room_id: &str,
        waiting: &mut BTreeMap<String, CheckedPdu>,
    ) {
        loop {
            let mut ready: Vec<(u64, String)> = waiting
                .iter()
                .filter(|(_, checked)| self.holds_prev_events(room_id, &checked.pdu))
                .map(|(id, checked)| (checked.pdu.event().depth, id.clone()))
                .collect();
            if ready.is_empty() {
                return;
            }
            ready.sort();
            for (_, event_id) in ready {
                let checked = waiting.remove(&event_id).expect("listed above");
                if self.holds_with_state(room_id, &event_id)
                    || !self.holds_prev_events(room_id, &checked.pdu)
                {
                    continue;
                }
                if self
                    .fetch_missing_auth_events(origin, room_id, &checked.pdu)
                    .await
                    .is_ok()
                {
                    // A rejected event is still placed (with the state before it), so the
                    // events after it can be placed too; its verdict is counted by the store.
                    let _ = self.ingest_checked(room_id, checked);
                }
            }
        }
    }

    /// The waiting events that cite an event neither held nor waiting: where the next round
    /// of the walk starts.
    fn waiting_frontier(
        &self,
        room_id: &str,
        waiting: &BTreeMap<String, CheckedPdu>,
    ) -> Vec<String> {
        waiting
            .iter()
            .filter(|(_, checked)| {
                self.missing_prev_events(room_id, &checked.pdu)
                    .iter()
                    .any(|prev| !waiting.contains_key(prev))
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Places `event_id` with the state before it as `origin` reports it.
    async fn place_with_peer_state(
        self: Rc<Self>,
        origin: &str,
        room_id: &str,
        event_id: &str,
    ) -> Result<(), String> {
        let version = self.room_version(room_id)?;
        let ids = self.fetch_state_ids(origin, room_id, event_id).await?;
        let event = self.fetch_event(origin, event_id, version).await?;
        let state_before = self
            .hold_peer_state(origin, room_id, &ids, &event.pdu)
            .await?;
        let mut store = self.store.borrow_mut();
        let room = store.room_mut(room_id).map_err(|e| e.to_string())?;
        let outcome = room
            .ingest_with_state(event.pdu, event.held_redacted, state_before)
            .map_err(|e| e.to_string())?;
        drop(store);
        self.count_outcome(&outcome);
        Ok(())
    }

    /// The state before `pdu` as `origin` reports it, held as [`Inner::hold_peer_state`]
    /// holds it.
    pub(crate) async fn peer_state_before(
        &self,
        origin: &str,
        room_id: &str,
        pdu: &Pdu,
    ) -> Result<StateMap, String> {
        let ids = self
            .fetch_state_ids(origin, room_id, pdu.event_id())
            .await?;
        self.hold_peer_state(origin, room_id, &ids, pdu).await
    }

    async fn fetch_state_ids(
        &self,
        origin: &str,
        room_id: &str,
        event_id: &str,
    ) -> Result<StateIdsResponse, String> {
        let query = StateQuery {
            event_id: event_id.to_owned(),
        };
        self.federation_request(origin, "GET", &paths::state_ids_path(room_id, &query), None)
            .await
            .map_err(|e| format!("cannot fetch the state before {event_id}: {e}"))
    }

    /// The state `ids` reports before `pdu`, with every event of it, of its auth chain and of
    /// the auth events of `pdu` held afterwards: those unknown are fetched one by one from
    /// `origin` with `/event`, at most `STATE_EVENTS_FETCHED_MAX`.
    async fn hold_peer_state(
        &self,
        origin: &str,
        room_id: &str,
        ids: &StateIdsResponse,
        pdu: &Pdu,
    ) -> Result<StateMap, String> {
        let mut wanted: BTreeSet<String> = ids.auth_chain_ids.iter().cloned().collect();
        wanted.extend(ids.pdu_ids.iter().cloned());
        wanted.extend(pdu.event().auth_events.iter().cloned());
        wanted.retain(|id| {
            !self
                .store
                .borrow()
                .room(room_id)
                .is_some_and(|r| r.contains(id))
        });
        if wanted.len() > STATE_EVENTS_FETCHED_MAX {
            return Err(format!(
                "the state before {} needs {} unknown events",
                pdu.event_id(),
                wanted.len()
            ));
        }
        let mut raws = Vec::new();
        for id in wanted {
            let uri = paths::event_path(&id);
            let response: PduTransactionTexts = self
                .federation_request(origin, "GET", &uri, None)
                .await
                .map_err(|e| format!("cannot fetch state event {id}: {e}"))?;
            raws.extend(response.pdus);
        }
        self.ingest_fetched_outliers(room_id, raws).await?;
        self.state_map_of(room_id, &ids.pdu_ids)
    }

    async fn fetch_event(
        &self,
        origin: &str,
        event_id: &str,
        version: &'static crate::proto::room_version::RoomVersion,
    ) -> Result<CheckedPdu, String> {
        let response: PduTransactionTexts = self
            .federation_request(origin, "GET", &paths::event_path(event_id), None)
            .await
            .map_err(|e| format!("cannot fetch {event_id}: {e}"))?;
        let text = response.single_pdu().map_err(|e| e.to_string())?;
        let checked = self
            .check_received_pdu_text(text, version)
            .await
            .map_err(|e| e.to_string())?;
        if checked.pdu.event_id() != event_id {
            return Err(format!(
                "asked for {event_id}, got {}",
                checked.pdu.event_id()
            ));
        }
        Ok(checked)
    }

    /// A state map from a list of held event ids.
    pub(crate) fn state_map_of(
        &self,
        room_id: &str,
        event_ids: &[String],
    ) -> Result<StateMap, String> {
        let store = self.store.borrow();
        let room = store
            .room(room_id)
            .ok_or_else(|| format!("not in room {room_id}"))?;
        let mut state = StateMap::new();
        for id in event_ids {
            let pdu = room
                .event(id)
                .ok_or_else(|| format!("state event {id} is unknown"))?;
            let key = pdu
                .event()
                .state_key_pair()
                .ok_or_else(|| format!("{id} is not a state event"))?;
            state.insert(key, id.clone());
        }
        Ok(state)
    }

    pub(crate) fn room_version(
        &self,
        room_id: &str,
    ) -> Result<&'static crate::proto::room_version::RoomVersion, String> {
        self.store
            .borrow()
            .room(room_id)
            .map(|room| room.room_version())
            .ok_or_else(|| format!("not in room {room_id}"))
    }
}
