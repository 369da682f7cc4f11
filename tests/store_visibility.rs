//! Which servers may see which events, by `m.room.history_visibility` and the memberships of
//! each server's users at the event; which servers are in the room.

mod store_common;

use fedlab::proto::pdu::Pdu;
use fedlab::server::store::RoomStore;
use serde_json::json;
use std::sync::Arc;
use store_common::*;

struct History {
    store: RoomStore,
    before_invite: Arc<Pdu>,
    while_invited: Arc<Pdu>,
    carol_join: Arc<Pdu>,
    while_joined: Arc<Pdu>,
    after_leave: Arc<Pdu>,
}

/// Alice's room under `visibility`; Carol (c.example) is invited, joins, and (if `leaves`)
/// leaves, with a message by Alice at each stage.
fn history(visibility: &str, leaves: bool) -> History {
    let mut room = standard_room(v("11"));
    room.state(
        ALICE,
        "m.room.history_visibility",
        json!({"history_visibility": visibility}),
    );
    let before_invite = room.message(ALICE, "1");
    room.member(ALICE, CAROL, "invite");
    let while_invited = room.message(ALICE, "2");
    let carol_join = room.join(CAROL);
    let while_joined = room.message(ALICE, "3");
    if leaves {
        room.member(CAROL, CAROL, "leave");
    }
    let after_leave = room.message(ALICE, "4");
    History {
        store: store_with_all(&room),
        before_invite,
        while_invited,
        carol_join,
        while_joined,
        after_leave,
    }
}

/// What `server` may see of the five stages, in order.
fn seen(history: &History, server: &str) -> [bool; 5] {
    [
        &history.before_invite,
        &history.while_invited,
        &history.carol_join,
        &history.while_joined,
        &history.after_leave,
    ]
    .map(|pdu| history.store.server_may_see(server, pdu.event_id()))
}

#[test]
fn visibility_per_history_visibility_setting() {
    let c = "c.example";
    let joined = history("joined", true);
    assert_eq!(seen(&joined, c), [false, false, true, true, false]);
    let invited = history("invited", true);
    assert_eq!(seen(&invited, c), [false, true, true, true, false]);
    let shared_left = history("shared", true);
    assert_eq!(seen(&shared_left, c), [false, false, true, true, false]);
    let shared_member = history("shared", false);
    assert_eq!(
        seen(&shared_member, c),
        [true; 5],
        "a member now sees past events"
    );
    let world_readable = history("world_readable", true);
    assert_eq!(seen(&world_readable, "b.example"), [true; 5]);
    let unknown = history("sometimes", true);
    assert_eq!(
        seen(&unknown, c),
        seen(&joined, c),
        "unknown values read as joined"
    );

    // A server that never had a member sees nothing but world-readable history; the room's
    // own server sees everything.
    for history in [&joined, &invited, &shared_left, &shared_member] {
        assert_eq!(seen(history, "b.example"), [false; 5]);
        assert_eq!(seen(history, "a.example"), [true; 5]);
    }
    assert!(!joined.store.server_may_see(c, "$unknown"));
}

#[test]
fn servers_in_the_room_follow_current_state() {
    let member = history("shared", false);
    assert!(member.store.server_in_room("c.example"));
    assert!(!member.store.server_in_room("b.example"));
    assert_eq!(
        member
            .store
            .joined_servers()
            .into_iter()
            .collect::<Vec<_>>(),
        ["a.example", "c.example"]
    );
    let left = history("shared", true);
    assert!(!left.store.server_in_room("c.example"));
    assert_eq!(
        left.store.joined_servers().into_iter().collect::<Vec<_>>(),
        ["a.example"]
    );
}
