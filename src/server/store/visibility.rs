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
//! membership, as the spec's visibility algorithm has it. An event held without state (an
//! outlier: an auth event, or a state event fetched to place an event with a peer's state) has
//! no known visibility, so it is read as `shared`: a server with a user joined now may see it,
//! as the reference server does. Such events are part of the state and auth chains this server
//! lists in `/state_ids` and `/event_auth`; refusing them to `/event` would leave an honest
//! peer unable to complete that state, and so unable to place the event it asked about.
//!
//! Invariant: these are reads of the current state and of state groups only.

use super::room::{JoinedServers, RoomStore};
use super::state_groups::StateGroupId;
use crate::proto::event::{StateMap, server_of};
use std::collections::BTreeSet;

const MEMBER: &str = "m.room.member";

/// A state's `m.room.history_visibility`, as the rules above read it (an unknown value is
/// `Joined`, a missing one `Shared`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HistoryVisibility {
    WorldReadable,
    Shared,
    Invited,
    Joined,
}

impl RoomStore {
    /// Whether `server` may be sent `event_id` (by `/event`, `/backfill`,
    /// `/get_missing_events`, `/state_ids`).
    pub fn server_may_see(&self, server: &str, event_id: &str) -> bool {
        let Some(record) = self.events.get(event_id) else {
            return false;
        };
        let Some(state) = record.state() else {
            return self.server_in_room(server);
        };
        self.visible_at(server, state.before)
            || (state.after != state.before && self.visible_at(server, state.after))
    }

    /// Whether a user of `server` is joined in the current state.
    pub fn server_in_room(&self, server: &str) -> bool {
        self.with_joined_servers(|servers| servers.contains(server))
    }

    /// The servers with a user joined in the current state: the destinations of new events.
    pub fn joined_servers(&self) -> BTreeSet<String> {
        self.with_joined_servers(BTreeSet::clone)
    }

    fn with_joined_servers<T>(&self, read: impl FnOnce(&BTreeSet<String>) -> T) -> T {
        // A poisoned memo only means a panic elsewhere; its content is recomputed if stale.
        let mut memo = self
            .joined_servers_memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale = memo
            .as_ref()
            .is_none_or(|joined| joined.group != self.current_group);
        if stale {
            let servers = self
                .members(&self.current_state)
                .filter(|(_, membership)| *membership == "join")
                .map(|(user_id, _)| server_of(user_id).to_owned())
                .collect();
            *memo = Some(JoinedServers {
                group: self.current_group,
                servers,
            });
        }
        read(&memo.as_ref().expect("filled above").servers)
    }

    fn visible_at(&self, server: &str, group: StateGroupId) -> bool {
        let joined = |m: &str| m == "join";
        match self.history_visibility(group) {
            HistoryVisibility::WorldReadable => true,
            HistoryVisibility::Shared => {
                self.server_in_room(server) || self.member_in_group(group, server, joined)
            }
            HistoryVisibility::Invited => {
                self.member_in_group(group, server, |m| m == "join" || m == "invite")
            }
            HistoryVisibility::Joined => self.member_in_group(group, server, joined),
        }
    }

    /// The history visibility in state group `group`. The key is rarely in a group's own
    /// delta, so reading it walks the whole chain down to the snapshot; the events served in
    /// one answer mostly share their group, so the last group's answer is kept (a group never
    /// changes, and redaction keeps `history_visibility`, so it is never stale).
    fn history_visibility(&self, group: StateGroupId) -> HistoryVisibility {
        let mut memo = self
            .visibility_memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((held, visibility)) = *memo
            && held == group
        {
            return visibility;
        }
        let visibility = self
            .groups
            .get_of(group, "m.room.history_visibility", "")
            .and_then(|id| self.events.get(id))
            .and_then(|record| record.pdu.event().content_str("history_visibility"));
        let visibility = match visibility.unwrap_or("shared") {
            "world_readable" => HistoryVisibility::WorldReadable,
            "shared" => HistoryVisibility::Shared,
            "invited" => HistoryVisibility::Invited,
            _ => HistoryVisibility::Joined,
        };
        *memo = Some((group, visibility));
        visibility
    }

    /// Whether a user of `server` has a membership `wanted` accepts in state group `group`.
    /// Reads the group's deltas in place instead of building its state: this runs for every
    /// event served to a peer.
    fn member_in_group(
        &self,
        group: StateGroupId,
        server: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> bool {
        let mut decided: Vec<&str> = Vec::new();
        for delta in self.groups.chain(group) {
            let members = delta.filter(|((event_type, _), _)| event_type == MEMBER);
            for ((_, user_id), entry) in members {
                if server_of(user_id) != server || decided.contains(&user_id.as_str()) {
                    continue;
                }
                decided.push(user_id);
                let membership = entry
                    .and_then(|event_id| self.events.get(event_id))
                    .and_then(|record| record.pdu.event().membership());
                if membership.is_some_and(&wanted) {
                    return true;
                }
            }
        }
        false
    }

    /// The members of `state` with their membership.
    fn members<'a>(&'a self, state: &'a StateMap) -> impl Iterator<Item = (&'a str, &'a str)> {
        let from = (MEMBER.to_owned(), String::new());
        state
            .range(from..)
            .take_while(|((event_type, _), _)| event_type == MEMBER)
            .filter_map(|((_, user_id), event_id)| {
                let membership = self
                    .events
                    .get(event_id.as_str())?
                    .pdu
                    .event()
                    .membership()?;
                Some((user_id.as_str(), membership))
            })
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

    /// An outlier may sit in the state this server serves by `/state_ids`: a server in the room
    /// must be able to fetch it, one outside must not.
    #[test]
    fn events_held_without_state_are_seen_by_servers_in_the_room() {
        let mut room = RoomBuilder::standard(v("11"), ALICE);
        let join = room.join(BOB);
        let mut store = store_with_all(&RoomBuilder::standard(v("11"), ALICE));
        store.ingest_outlier(join.clone(), false).unwrap();
        assert!(store.server_may_see("a.example", join.event_id()));
        assert!(!store.server_may_see("b.example", join.event_id()));
        assert!(!store.server_may_see("c.example", join.event_id()));
    }
}
