//! [`ReadOnce`]: the state as the rules read it for one event.
//!
//! The rules ask for the same few keys several times per event (the create event, the power
//! levels, the sender's membership): the room-id check, the membership check and the power
//! check each read them. `ReadOnce` reads each of the event's auth keys from the state once,
//! up front, and answers any other key from the state itself.
//!
//! Invariant: every answer equals the wrapped state's answer for the same key; only the
//! number of reads changes.

use super::selection::AuthKeys;
use super::{AuthState, same_key};
use crate::proto::event::Event;

/// The event's auth keys and the create key, each read once (see the module comment).
pub(super) struct ReadOnce<'s, 'k> {
    state: &'s dyn AuthState,
    read: Vec<(&'k str, &'k str, Option<&'s Event>)>,
}

impl<'s, 'k> ReadOnce<'s, 'k> {
    pub fn new(state: &'s dyn AuthState, keys: &AuthKeys<'k>) -> Self {
        let mut read = Vec::with_capacity(keys.as_slice().len() + 1);
        let create = ("m.room.create", "");
        for (event_type, state_key) in std::iter::once(create).chain(keys.iter()) {
            if !read
                .iter()
                .any(|&(t, k, _)| same_key((t, k), (event_type, state_key)))
            {
                read.push((event_type, state_key, state.get(event_type, state_key)));
            }
        }
        Self { state, read }
    }
}

impl AuthState for ReadOnce<'_, '_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        for &(t, k, found) in &self.read {
            if same_key((t, k), (event_type, state_key)) {
                return found;
            }
        }
        self.state.get(event_type, state_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::auth_keys_for_event;
    use crate::proto::auth::test_support::EventBuilder;
    use crate::proto::event::StateKey;
    use crate::proto::room_version::RoomVersion;
    use serde_json::Map;
    use std::cell::Cell;
    use std::collections::BTreeMap;

    /// A state that counts its reads.
    struct Counting {
        events: BTreeMap<StateKey, Event>,
        reads: Cell<usize>,
    }

    impl AuthState for Counting {
        fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
            self.reads.set(self.reads.get() + 1);
            self.events
                .get(&(event_type.to_owned(), state_key.to_owned()))
        }
    }

    fn event(event_type: &str, state_key: &str) -> Event {
        EventBuilder::state(event_type, state_key, "@u:a")
            .id(&format!("${event_type}{state_key}"))
            .build()
    }

    #[test]
    fn answers_as_the_state_does_reading_each_auth_key_once() {
        let mut events = BTreeMap::new();
        for (t, k) in [
            ("m.room.create", ""),
            ("m.room.member", "@u:a"),
            ("m.room.topic", ""),
        ] {
            events.insert((t.to_owned(), k.to_owned()), event(t, k));
        }
        let state = Counting {
            events,
            reads: Cell::new(0),
        };
        let content = Map::new();
        let version = RoomVersion::from_id("11").unwrap();
        let keys = auth_keys_for_event(version, "m.room.message", None, "@u:a", &content);
        let once = ReadOnce::new(&state, &keys);
        let reads_up_front = state.reads.get();
        for (t, k) in [
            ("m.room.create", ""),
            ("m.room.member", "@u:a"),
            ("m.room.power_levels", ""),
        ] {
            for _ in 0..3 {
                let got = once.get(t, k).map(|e| e.event_id.clone());
                let expected = state.get(t, k).map(|e| e.event_id.clone());
                assert_eq!(got, expected, "{t} {k}");
            }
        }
        // The direct reads above are the only ones after construction.
        assert_eq!(state.reads.get(), reads_up_front + 9);
        assert_eq!(
            once.get("m.room.topic", "").unwrap().event_id,
            "$m.room.topic"
        );
        assert_eq!(
            state.reads.get(),
            reads_up_front + 10,
            "other keys pass through"
        );
    }
}
