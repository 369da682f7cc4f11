//! Adapters that let the authorization rules and state resolution read the store: events by
//! id with their rejection marks, and states held as state groups or as maps.
//!
//! Invariant: the views only read; each answers from the store as it was when built.

use super::record::EventRecord;
use super::state_groups::{StateGroupId, StateGroups};
use crate::proto::auth::AuthState;
use crate::proto::event::{Event, StateMap};
use crate::proto::state_res::EventSource;
use std::collections::BTreeMap;

/// Every event of a room, for state resolution.
pub(super) struct EventsView<'a> {
    pub events: &'a BTreeMap<String, EventRecord>,
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
    pub events: &'a BTreeMap<String, EventRecord>,
}

impl AuthState for GroupState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        let key = (event_type.to_owned(), state_key.to_owned());
        let event_id = self.groups.get(self.group, &key)?;
        self.events.get(event_id).map(|record| record.pdu.event())
    }
}

/// A state held as a full map.
pub(super) struct MapState<'a> {
    pub state: &'a StateMap,
    pub events: &'a BTreeMap<String, EventRecord>,
}

impl AuthState for MapState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        let key = (event_type.to_owned(), state_key.to_owned());
        let event_id = self.state.get(&key)?;
        self.events.get(event_id).map(|record| record.pdu.event())
    }
}
