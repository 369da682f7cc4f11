//! Unit tests of `resolve` and `replay` on small rooms written as resolver input.

use super::scenario::Scenario;
use super::*;
use crate::proto::room_version::room_version;
use serde_json::{Value, json};

const ALICE: &str = "@alice:a.example";
const BOB: &str = "@bob:b.example";

/// A public room where Alice (100, or a creator's infinite power in v12) and Bob (0) joined,
/// plus `extra` events; every event is replayed so that its auth events are chosen.
fn room_with(version: &str, extra: Vec<Value>) -> BTreeMap<String, Event> {
    // Room v12 forbids listing a creator in `users`.
    let users = if version == "12" {
        json!({})
    } else {
        json!({ALICE: 100})
    };
    let mut events = vec![
        json!({"event_id": "$create", "type": "m.room.create", "state_key": "", "sender": ALICE,
               "content": {"room_version": version, "creator": ALICE}, "prev_events": [],
               "origin_server_ts": 1}),
        json!({"event_id": "$alice", "type": "m.room.member", "state_key": ALICE, "sender": ALICE,
               "content": {"membership": "join"}, "prev_events": ["$create"], "origin_server_ts": 2}),
        json!({"event_id": "$pl", "type": "m.room.power_levels", "state_key": "", "sender": ALICE,
               "content": {"users": users}, "prev_events": ["$alice"], "origin_server_ts": 3}),
        json!({"event_id": "$jr", "type": "m.room.join_rules", "state_key": "", "sender": ALICE,
               "content": {"join_rule": "public"}, "prev_events": ["$pl"], "origin_server_ts": 4}),
        json!({"event_id": "$bob", "type": "m.room.member", "state_key": BOB, "sender": BOB,
               "content": {"membership": "join"}, "prev_events": ["$jr"], "origin_server_ts": 5}),
    ];
    events.extend(extra);
    let input = json!({"room_version": version, "events": events, "at": "$create"});
    let scenario = Scenario::from_value(&input, None).unwrap();
    let algorithm = scenario.version.state_res;
    scenario.replay(algorithm).unwrap().events
}

fn state_event(id: &str, event_type: &str, sender: &str, prev: &str, ts: u64) -> Value {
    json!({"event_id": id, "type": event_type, "state_key": "", "sender": sender,
           "content": {}, "prev_events": [prev], "origin_server_ts": ts})
}

fn state_of(events: &BTreeMap<String, Event>, ids: &[&str]) -> StateMap {
    ids.iter()
        .map(|id| (events[*id].state_key_pair().unwrap(), (*id).to_owned()))
        .collect()
}

const BASE: [&str; 5] = ["$create", "$alice", "$pl", "$jr", "$bob"];

fn base_plus(extra: &[&'static str]) -> Vec<&'static str> {
    BASE.iter().chain(extra).copied().collect()
}

const ALL_ALGORITHMS: [StateResAlgorithm; 3] = [
    StateResAlgorithm::V1,
    StateResAlgorithm::V2,
    StateResAlgorithm::V2_1,
];

#[test]
fn one_state_set_resolves_to_itself() {
    let events = room_with("11", vec![]);
    let version = room_version("11").unwrap();
    let state = state_of(&events, &BASE);
    for algorithm in ALL_ALGORITHMS {
        for sets in [vec![state.clone()], vec![state.clone(), state.clone()]] {
            let resolved = resolve(version, algorithm, &sets, &events).unwrap();
            assert_eq!(resolved.state, state, "{algorithm:?}");
            assert!(resolved.rejected.is_empty());
        }
        assert_eq!(
            resolve(version, algorithm, &[], &events).unwrap(),
            Resolved::default()
        );
    }
}

#[test]
fn bad_state_sets_are_errors_that_name_the_event() {
    let events = room_with(
        "11",
        vec![
            json!({"event_id": "$msg", "type": "m.room.message", "sender": ALICE,
                    "content": {}, "prev_events": ["$bob"], "origin_server_ts": 6}),
        ],
    );
    let version = room_version("11").unwrap();
    let key = |t: &str, k: &str| (t.to_owned(), k.to_owned());
    let mut not_state = state_of(&events, &BASE);
    not_state.insert(key("m.room.message", ""), "$msg".to_owned());
    let mut misplaced = state_of(&events, &BASE);
    misplaced.insert(key("m.room.topic", ""), "$jr".to_owned());
    let mut missing = state_of(&events, &BASE);
    missing.insert(key("m.room.topic", ""), "$nowhere".to_owned());
    let cases = [
        (not_state, "state set #1: $msg is not a state event"),
        (
            misplaced,
            "state set #1: $jr holds (m.room.join_rules, ) but is listed under (m.room.topic, )",
        ),
        (
            missing,
            "event $nowhere is missing (needed by state set #1)",
        ),
    ];
    for (bad, message) in cases {
        let sets = [state_of(&events, &BASE), bad];
        let error = resolve(version, StateResAlgorithm::V2, &sets, &events).unwrap_err();
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn room_version_12_needs_the_create_event_its_room_id_names() {
    let events = room_with("12", vec![]);
    let version = room_version("12").unwrap();
    assert_eq!(events["$alice"].room_id, "!create");
    let mut without_create = events.clone();
    without_create.remove("$create");
    let sets = [state_of(&events, &BASE[1..])];
    let error = resolve(version, StateResAlgorithm::V2_1, &sets, &without_create).unwrap_err();
    assert!(
        matches!(error, ResolveError::MissingCreateEvent { ref room_id } if room_id == "!create")
    );
}

/// State resolution v1 sorts power events by ascending depth, then descending SHA-1 of the id
/// (sha1("$t1") = 94ac..., sha1("$t2") = 2907...), and other events by descending depth, then
/// ascending SHA-1: with equal depths, `$t2` ends up on top in both cases although `$t1` sorts
/// first by id.
#[test]
fn v1_breaks_depth_ties_by_sha1_of_the_event_id() {
    for (event_type, sender) in [("m.room.join_rules", ALICE), ("m.room.topic", ALICE)] {
        let events = room_with(
            "1",
            vec![
                state_event("$t1", event_type, sender, "$bob", 6),
                state_event("$t2", event_type, sender, "$bob", 7),
            ],
        );
        assert_eq!(events["$t1"].depth, events["$t2"].depth);
        let version = room_version("1").unwrap();
        let sets = [
            state_of(&events, &base_plus(&["$t1"])),
            state_of(&events, &base_plus(&["$t2"])),
        ];
        let resolved = resolve(version, StateResAlgorithm::V1, &sets, &events).unwrap();
        let key = (event_type.to_owned(), String::new());
        assert_eq!(resolved.state[&key], "$t2", "{event_type}");
        assert!(resolved.rejected.is_empty());
    }
}

/// v1 stops at the first power levels event that fails, even if a later one would pass.
#[test]
fn v1_power_levels_pass_stops_at_the_first_failure() {
    let power = |id: &str, sender: &str, prev: &str, ts: u64| {
        json!({"event_id": id, "type": "m.room.power_levels", "state_key": "", "sender": sender,
               "content": {"users": {ALICE: 100}, "ban": 60}, "prev_events": [prev],
               "origin_server_ts": ts})
    };
    let events = room_with(
        "1",
        vec![
            power("$pl_a", ALICE, "$bob", 6),
            power("$pl_b", BOB, "$pl_a", 7),
            power("$pl_c", ALICE, "$pl_b", 8),
        ],
    );
    let version = room_version("1").unwrap();
    let with_pl = |id: &str| {
        let mut state = state_of(&events, &BASE);
        state.insert(
            ("m.room.power_levels".to_owned(), String::new()),
            id.to_owned(),
        );
        state
    };
    let sets = [with_pl("$pl_c"), with_pl("$pl_a"), with_pl("$pl_b")];
    let resolved = resolve(version, StateResAlgorithm::V1, &sets, &events).unwrap();
    assert_eq!(
        resolved.state[&("m.room.power_levels".to_owned(), String::new())],
        "$pl_a"
    );
    assert_eq!(resolved.rejected, BTreeSet::from(["$pl_b".to_owned()]));
}

/// An auth event rejected on receipt is left out of the iterative auth checks: Alice's topic,
/// replayed from an empty state (v2.1), cannot find Alice's membership if that was rejected.
#[test]
fn rejected_auth_events_are_not_used_in_iterative_auth_checks() {
    let events = room_with(
        "11",
        vec![
            state_event("$topic_a", "m.room.topic", ALICE, "$bob", 6),
            state_event("$topic_b", "m.room.topic", ALICE, "$bob", 7),
        ],
    );
    let version = room_version("11").unwrap();
    let sets = [
        state_of(&events, &base_plus(&["$topic_a"])),
        state_of(&events, &base_plus(&["$topic_b"])),
    ];
    let resolved = resolve(version, StateResAlgorithm::V2_1, &sets, &events).unwrap();
    assert_eq!(
        resolved.state[&("m.room.topic".to_owned(), String::new())],
        "$topic_b"
    );

    let rejected = BTreeSet::from(["$alice".to_owned()]);
    let source = WithRejected {
        events: &events,
        rejected: &rejected,
    };
    let resolved = resolve(version, StateResAlgorithm::V2_1, &sets, &source).unwrap();
    assert!(
        !resolved
            .state
            .contains_key(&("m.room.topic".to_owned(), String::new()))
    );
    assert_eq!(resolved.rejected.len(), 2);
}

#[test]
fn replay_rejects_events_and_keeps_the_state_before_them() {
    let events = room_with(
        "11",
        vec![
            // Bob has no power to set the topic.
            state_event("$bob_topic", "m.room.topic", BOB, "$bob", 6),
            // Cites the rejected topic as an auth event: rejected as well.
            json!({"event_id": "$cites_rejected", "type": "m.room.name", "state_key": "",
                   "sender": ALICE, "content": {}, "prev_events": ["$bob_topic"],
                   "auth_events": ["$create", "$pl", "$alice", "$bob_topic"],
                   "origin_server_ts": 7}),
            state_event("$alice_topic", "m.room.topic", ALICE, "$cites_rejected", 8),
        ],
    );
    let version = room_version("11").unwrap();
    let replayed = replay(version, StateResAlgorithm::V2, &events).unwrap();
    let after = replayed.state_after("$alice_topic").unwrap();
    assert_eq!(
        after[&("m.room.topic".to_owned(), String::new())],
        "$alice_topic"
    );
    let rejected: Vec<&str> = replayed.rejected().iter().map(String::as_str).collect();
    assert_eq!(rejected, ["$bob_topic", "$cites_rejected"]);
    assert_eq!(
        replayed.state_after("$bob_topic"),
        replayed.state_after("$bob"),
        "a rejected event leaves the state as it was"
    );
}

/// In room version 12 no event cites the create event; the replay finds it through the room id.
#[test]
fn replay_in_room_version_12_finds_the_create_event_through_the_room_id() {
    let events = room_with(
        "12",
        vec![state_event("$topic", "m.room.topic", ALICE, "$bob", 6)],
    );
    assert!(
        events["$topic"]
            .auth_events
            .iter()
            .all(|id| id != "$create")
    );
    let version = room_version("12").unwrap();
    let replayed = replay(version, StateResAlgorithm::V2_1, &events).unwrap();
    assert!(replayed.rejected().is_empty());
    let after = replayed.state_after("$topic").unwrap();
    assert_eq!(after.len(), 6);
}

#[test]
fn replay_reports_missing_events_cycles_and_a_missing_create_event() {
    let mut events = room_with("11", vec![]);
    events.get_mut("$bob").unwrap().prev_events = vec!["$ghost".to_owned()];
    let version = room_version("11").unwrap();
    let error = replay(version, StateResAlgorithm::V2, &events).unwrap_err();
    assert_eq!(
        error.to_string(),
        "event $ghost is missing (needed by the prev_events of $bob)"
    );

    let mut events = room_with("11", vec![]);
    events.get_mut("$alice").unwrap().prev_events = vec!["$bob".to_owned()];
    let error = replay(version, StateResAlgorithm::V2, &events).unwrap_err();
    assert!(matches!(error, ResolveError::Cycle { ref event_ids }
        if event_ids == &["$alice", "$bob", "$jr", "$pl"]));

    let mut events = room_with("11", vec![]);
    events.remove("$create");
    for event in events.values_mut() {
        event.prev_events.retain(|id| id != "$create");
        event.auth_events.retain(|id| id != "$create");
    }
    let error = replay(version, StateResAlgorithm::V2, &events).unwrap_err();
    assert!(matches!(error, ResolveError::MissingCreateEvent { .. }));
}
