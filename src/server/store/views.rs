//! Adapters that let the authorization rules and state resolution read the store: events by
//! id with their rejection marks, and states held as state groups or as maps.
//!
//! Invariant: the views only read; each answers from the store as it was when built.

use super::current_events::CurrentEvents;
use super::records::Records;
use super::state_groups::{StateGroupId, StateGroups};
use crate::proto::auth::AuthState;
use crate::proto::event::{Event, StateMap, state_entry};
use crate::proto::state_res::EventSource;

/// Every event of a room, for state resolution.
pub(super) struct EventsView<'a> {
    pub events: &'a Records,
}

impl EventSource for EventsView<'_> {
    fn event(&self, event_id: &str) -> Option<&Event> {
        self.events.get(event_id).map(|record| record.pdu.event())
    }

    fn is_rejected(&self, event_id: &str) -> bool {
        self.events
            .get(event_id)
            .is_some_and(|record| record.status.is_rejected())
    }
}

/// The state of a state group, read key by key through its chain.
pub(super) struct GroupState<'a> {
    pub groups: &'a StateGroups,
    pub group: StateGroupId,
    pub events: &'a Records,
}

impl AuthState for GroupState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        let event_id = self.groups.get_of(self.group, event_type, state_key)?;
        self.events.get(event_id).map(|record| record.pdu.event())
    }
}

/// A state held as a full map.
pub(super) struct MapState<'a> {
    pub state: &'a StateMap,
    pub events: &'a Records,
}

impl AuthState for MapState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        let event_id = state_entry(self.state, event_type, state_key)?;
        self.events
            .get(event_id.as_str())
            .map(|record| record.pdu.event())
    }
}

/// The room's current state, read through its events by state key (see `current_events.rs`).
pub(super) struct CurrentStateView<'a> {
    pub events: &'a CurrentEvents,
}

impl AuthState for CurrentStateView<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        self.events
            .get(event_type, state_key)
            .map(|pdu| pdu.event())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::test_support::*;
    use crate::server::store::testkit::RoomBuilder;
    use serde_json::json;

    #[test]
    fn views_read_events_states_and_rejections() {
        let mut room = RoomBuilder::standard(v("11"), ALICE);
        let grab = room.state(BOB, "m.room.topic", json!({"topic": "not a member"}));
        let store = store_with_all(&room);
        let events = EventsView {
            events: &store.events,
        };
        assert!(events.is_rejected(grab.event_id()));
        assert!(!events.is_rejected(room.create_event().event_id()));
        assert!(events.event("$unknown").is_none());

        let last = room.built()[3].event_id();
        let state = store.events[last].state().unwrap();
        let by_group = GroupState {
            groups: &store.groups,
            group: state.after,
            events: &store.events,
        };
        let by_map = MapState {
            state: store.current_state(),
            events: &store.events,
        };
        for view in [&by_group as &dyn AuthState, &by_map] {
            assert_eq!(view.get("m.room.join_rules", "").unwrap().event_id, last);
            assert!(view.get("m.room.topic", "").is_none());
            assert!(view.get("m.room.member", ALICE).is_some());
        }
    }
}
