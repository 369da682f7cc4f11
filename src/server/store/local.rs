//! New events of local users: the fields the server signs, chosen from the store.
//!
//! A new event cites up to [`PREV_EVENTS_MAX`](super::PREV_EVENTS_MAX) forward extremities
//! (deepest first), gets a depth one more than the deepest of them, and cites as auth events
//! the current state's events for the keys the spec's auth events selection names. Before any
//! of that is returned, the event is checked against the current state: a user who may not
//! send it gets [`StoreError::NotAllowed`] and nothing is built.
//!
//! In room v12 the create event's room id is its own hash, so a v12 room is opened only after
//! its create event was built; that event is built without a store (no prev or auth events).
//!
//! Invariant: preparing an event changes nothing; the server ingests the signed result with
//! [`RoomStore::ingest_local`].

use super::StoreError;
use super::room::RoomStore;
use crate::proto::auth::{auth_types_for_event, check_auth};
use crate::proto::event::{Event, server_of};
use crate::proto::pdu::{EventRef, NewEvent};
use serde_json::{Map, Value};

/// What a local user asks to send.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalEventDraft {
    pub sender: String,
    pub event_type: String,
    pub state_key: Option<String>,
    pub content: Map<String, Value>,
    /// The event a redaction redacts; placed where the room version puts it.
    pub redacts: Option<String>,
    /// From the simulation's clock, not the store's (it has none).
    pub origin_server_ts: u64,
}

impl RoomStore {
    /// The fields of a new event for `draft`, if its sender may send it now.
    pub fn prepare_local_event(&self, draft: LocalEventDraft) -> Result<NewEvent, StoreError> {
        let (prev_events, depth) = self.dag().prev_events_for_new_event();
        let auth_events: Vec<String> = auth_types_for_event(
            self.version,
            &draft.event_type,
            draft.state_key.as_deref(),
            &draft.sender,
            &draft.content,
        )
        .iter()
        .filter_map(|key| self.current_state.get(key).cloned())
        .collect();
        let implied_room_id =
            self.version.room_id_from_create_event && draft.event_type == "m.room.create";
        // The rules read the event, not its id, except the redaction rule of rooms v1 and v2,
        // which compares the servers in event ids: the draft's id is on the sender's server.
        let draft_event = Event {
            event_id: format!("$draft:{}", server_of(&draft.sender)),
            room_id: if implied_room_id {
                String::new()
            } else {
                self.room_id.to_string()
            },
            sender: draft.sender.clone(),
            event_type: draft.event_type.clone(),
            state_key: draft.state_key.clone(),
            content: draft.content.clone(),
            prev_events: prev_events.clone(),
            auth_events: auth_events.clone(),
            depth,
            origin_server_ts: draft.origin_server_ts,
            redacts: draft.redacts.clone(),
        };
        check_auth(self.version, &draft_event, &self.current_state_view()).map_err(|error| {
            StoreError::NotAllowed {
                sender: draft.sender.clone(),
                error,
            }
        })?;
        Ok(NewEvent {
            room_id: (!implied_room_id).then(|| self.room_id.to_string()),
            sender: draft.sender,
            event_type: draft.event_type,
            state_key: draft.state_key,
            content: draft.content,
            prev_events: self.references(&prev_events),
            auth_events: self.references(&auth_events),
            depth,
            origin_server_ts: draft.origin_server_ts,
            redacts: draft.redacts,
            event_id_opaque: None,
        })
    }

    /// References to held events, with their reference hashes in rooms v1 and v2.
    fn references(&self, event_ids: &[String]) -> Vec<EventRef> {
        event_ids
            .iter()
            .map(|event_id| self.events[event_id.as_str()].pdu.as_reference())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::log::DurableLog;
    use crate::server::store::test_support::*;
    use crate::server::store::testkit::RoomBuilder;
    use serde_json::json;

    fn draft(sender: &str, event_type: &str, state_key: Option<&str>) -> LocalEventDraft {
        LocalEventDraft {
            sender: sender.to_owned(),
            event_type: event_type.to_owned(),
            state_key: state_key.map(str::to_owned),
            content: json!({"creator": sender}).as_object().unwrap().clone(),
            redacts: None,
            origin_server_ts: 3,
        }
    }

    #[test]
    fn a_create_event_for_an_empty_room() {
        let store = RoomStore::new("!new:a.example", v("10"), DurableLog::new());
        let new = store
            .prepare_local_event(draft(ALICE, "m.room.create", Some("")))
            .unwrap();
        assert!(new.prev_events.is_empty() && new.auth_events.is_empty());
        assert_eq!(
            (new.depth, new.room_id.as_deref()),
            (1, Some("!new:a.example"))
        );
        // The rules hold an event's room to its sender's server for a create event.
        let refused = store.prepare_local_event(draft(BOB, "m.room.create", Some("")));
        assert!(matches!(refused, Err(StoreError::NotAllowed { .. })));
    }

    #[test]
    fn auth_events_follow_the_selection_and_prepare_changes_nothing() {
        let room = RoomBuilder::standard(v("11"), ALICE);
        let store = store_with_all(&room);
        let log_len = store.log().len();
        let new = store
            .prepare_local_event(draft(ALICE, "m.room.topic", Some("")))
            .unwrap();
        let cited: Vec<&str> = new
            .auth_events
            .iter()
            .map(|r| r.event_id.as_str())
            .collect();
        let key = |t: &str, k: &str| store.current_state()[&(t.to_owned(), k.to_owned())].clone();
        assert_eq!(
            cited,
            [
                key("m.room.create", ""),
                key("m.room.power_levels", ""),
                key("m.room.member", ALICE)
            ]
        );
        assert_eq!(store.log().len(), log_len);
        let refused = store.prepare_local_event(draft(BOB, "m.room.topic", Some("")));
        assert!(matches!(refused, Err(StoreError::NotAllowed { sender, .. }) if sender == BOB));
    }
}
