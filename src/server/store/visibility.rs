//! Which servers may see which events, and which servers are in the room.
//!
//! A server sees an event as its users would, by the `m.room.history_visibility` in force at
//! the event (default `shared`):
//! - `world_readable`: any server;
//! - `shared`: a server with a user joined at the event, or joined now;
//! - `invited`: a server with a user invited or joined at the event;
//! - `joined`: a server with a user joined at the event.
//!
//! An unknown value is read as `joined`, the strictest. "At the event" is the state before or
//! the state after it, whichever allows more: so a history visibility change is visible under
//! the old or the new setting, and a user's own membership change under the old or the new
//! membership, as the spec's visibility algorithm has it. Events held without state are seen
//! by nobody (the store cannot tell).
//!
//! Invariant: these are reads of the current state and of state groups only.

use super::room::RoomStore;
use super::state_groups::StateGroupId;
use crate::proto::event::{StateMap, server_of};
use std::collections::BTreeSet;

const MEMBER: &str = "m.room.member";

impl RoomStore {
    /// Whether `server` may be sent `event_id` (by `/event`, `/backfill`,
    /// `/get_missing_events`, `/state_ids`).
    pub fn server_may_see(&self, server: &str, event_id: &str) -> bool {
        let Some(state) = self.events.get(event_id).and_then(|record| record.state) else {
            return false;
        };
        self.visible_at(server, state.before)
            || (state.after != state.before && self.visible_at(server, state.after))
    }

    /// Whether a user of `server` is joined in the current state.
    pub fn server_in_room(&self, server: &str) -> bool {
        self.has_member_of(&self.current_state, server, |membership| {
            membership == "join"
        })
    }

    /// The servers with a user joined in the current state: the destinations of new events.
    pub fn joined_servers(&self) -> BTreeSet<String> {
        self.members(&self.current_state)
            .filter(|(_, membership)| *membership == "join")
            .map(|(user_id, _)| server_of(user_id).to_owned())
            .collect()
    }

    fn visible_at(&self, server: &str, group: StateGroupId) -> bool {
        let state = self.groups.state(group);
        let visibility = state
            .get(&("m.room.history_visibility".to_owned(), String::new()))
            .and_then(|id| self.events.get(id))
            .and_then(|record| record.pdu.event().content_str("history_visibility"))
            .unwrap_or("shared");
        let joined = |m: &str| m == "join";
        match visibility {
            "world_readable" => true,
            "shared" => self.has_member_of(&state, server, joined) || self.server_in_room(server),
            "invited" => self.has_member_of(&state, server, |m| m == "join" || m == "invite"),
            _ => self.has_member_of(&state, server, joined),
        }
    }

    /// The members of `state` with their membership.
    fn members<'a>(&'a self, state: &'a StateMap) -> impl Iterator<Item = (&'a str, &'a str)> {
        let from = (MEMBER.to_owned(), String::new());
        state
            .range(from..)
            .take_while(|((event_type, _), _)| event_type == MEMBER)
            .filter_map(|((_, user_id), event_id)| {
                let membership = self.events.get(event_id)?.pdu.event().membership()?;
                Some((user_id.as_str(), membership))
            })
    }

    /// Whether a user of `server` has a membership `wanted` accepts in `state`.
    fn has_member_of(&self, state: &StateMap, server: &str, wanted: impl Fn(&str) -> bool) -> bool {
        self.members(state)
            .any(|(user_id, membership)| server_of(user_id) == server && wanted(membership))
    }
}

#[cfg(test)]
mod tests {
    use crate::server::store::test_support::*;
    use crate::server::store::testkit::RoomBuilder;

    #[test]
    fn without_a_history_visibility_event_history_is_shared() {
        let mut room = RoomBuilder::standard(v("11"), ALICE);
        let early = room.message(ALICE, "before bob");
        room.join(BOB);
        let store = store_with_all(&room);
        assert!(store.server_may_see("b.example", early.event_id()));
        assert!(!store.server_may_see("c.example", early.event_id()));
        assert!(store.server_in_room("b.example"));
    }

    #[test]
    fn events_held_without_state_are_seen_by_nobody() {
        let mut room = RoomBuilder::standard(v("11"), ALICE);
        let join = room.join(BOB);
        let mut store = store_with_all(&RoomBuilder::standard(v("11"), ALICE));
        store.ingest_outlier(join.clone(), false).unwrap();
        assert!(!store.server_may_see("a.example", join.event_id()));
    }
}
