//! Differential oracle: fedlab's state resolution and authorization rules against ruma's, on
//! random forking histories.
//!
//! Each case generates a room history (see `common::history`) whose branches fork off a trunk,
//! take turns and sometimes merge; fedlab decides which attempted events are authorised, ruma is
//! asked the same, and both resolve the states at every merge and at the branch tips, for room
//! versions 10, 11 and 12. Results must be identical. On a difference proptest shrinks the
//! history and the failure message carries it in the input format of `fedlab proto resolve`.
//!
//! Differences already explained (`common::known`) skip the case unless `FEDLAB_ORACLE_STRICT=1`;
//! the fixtures at the end of this file document them. `FEDLAB_ORACLE_CASES` sets the number of
//! cases per test (default 64).

mod common;

use common::history::{self, BranchShape, History, Mix, Shape};
use common::judges::{ComparingJudge, Disagreement, RumaJudge, describe_states};
use common::known;
use common::ruma_oracle::RumaRoom;
use std::collections::BTreeMap;

use fedlab::proto::event::{Event, StateMap};
use fedlab::proto::room_version::{RoomVersion, room_version};
use fedlab::proto::state_res::resolve;
use proptest::prelude::*;

const DEFAULT_CASES: u32 = 64;

fn cases() -> u32 {
    std::env::var("FEDLAB_ORACLE_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn version(id: &str) -> &'static RoomVersion {
    room_version(id).expect("known room version")
}

/// A branch that usually leaves the trunk at its end (the trunk has under 8 actions).
fn branch_shapes() -> impl Strategy<Value = BranchShape> {
    (
        prop_oneof![3 => Just(8_usize), 1 => 0_usize..8],
        proptest::collection::vec(any::<u64>(), 1..16),
    )
        .prop_map(|(fork_after, actions)| BranchShape {
            fork_after,
            actions,
        })
}

/// Shapes small enough to read when they fail: a few members, short trunk, 2 to 4 branches.
fn shapes() -> impl Strategy<Value = Shape> {
    (
        any::<u64>(),
        1_usize..=6,
        proptest::collection::vec(any::<u64>(), 0..8),
        proptest::collection::vec(branch_shapes(), 2..=4),
        prop_oneof![Just(0_usize), 1_usize..=15],
    )
        .prop_map(|(seed, members, trunk, branches, merge_percent)| Shape {
            seed,
            members,
            trunk,
            branches,
            mix: Mix::Adversarial,
            merge_percent,
        })
}

fn ruma_history(version: &'static RoomVersion, shape: &Shape) -> History {
    history::generate(version, shape, &mut RumaJudge::new(version))
}

/// The harness itself: ruma resolving one state, or the same state twice, gives that state back.
fn check_ruma_fixed_points(
    version: &'static RoomVersion,
    shape: &Shape,
) -> Result<(), TestCaseError> {
    let history = ruma_history(version, shape);
    let room = RumaRoom::new(version, &history.events).map_err(TestCaseError::fail)?;
    for state in &history.branch_states {
        let alone = room
            .resolve(std::slice::from_ref(state))
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(&alone, state);
        let twice = room
            .resolve(&[state.clone(), state.clone()])
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(&twice, state);
    }
    Ok(())
}

/// How a disagreement reads in a failure message: what differed, the event concerned, and the
/// history with the state sets concerned in the resolver's input format.
fn describe(history: &History, disagreement: &Disagreement) -> String {
    let mut input = history.resolver_input();
    input["state_sets"] = serde_json::json!(
        disagreement
            .state_sets
            .iter()
            .map(|state| state.values().collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );
    let event = disagreement
        .event
        .as_ref()
        .map(|event| history::event_json(event).to_string())
        .unwrap_or_default();
    format!(
        "{}\nevent: {event}\nhistory and state sets (fedlab proto resolve input):\n{}",
        disagreement.what,
        serde_json::to_string_pretty(&input).expect("JSON values serialize")
    )
}

/// fedlab's authorization rules and auth events selection give ruma's verdicts on every event
/// the generator attempts.
fn check_auth_agrees(version: &'static RoomVersion, shape: &Shape) -> Result<(), TestCaseError> {
    let mut judge = ComparingJudge::new(version);
    let history = history::generate(version, shape, &mut judge);
    let Some(first) = judge.disagreements.first() else {
        return Ok(());
    };
    if let (Some(known), false) = (known::explain_auth(first), known::strict()) {
        return Err(TestCaseError::reject(known.to_string()));
    }
    Err(TestCaseError::fail(format!(
        "{} disagreement(s) with ruma on authorization; the first: {}",
        judge.disagreements.len(),
        describe(&history, first)
    )))
}

/// The first resolution in `history` (at a merge, then at the branch tips) on which fedlab and
/// ruma differ.
fn first_resolution_disagreement(
    version: &'static RoomVersion,
    judge: &ComparingJudge,
    history: &History,
) -> Result<Option<Disagreement>, TestCaseError> {
    if let Some(first) = judge.resolution_disagreements.first() {
        return Ok(Some(first.clone()));
    }
    let events = history.event_map();
    let ours = resolve(version, version.state_res, &history.branch_states, &events)
        .map(|resolved| resolved.state)
        .map_err(|error| error.to_string());
    let room = RumaRoom::new(version, &history.events).map_err(TestCaseError::fail)?;
    let theirs = room.resolve(&history.branch_states);
    Ok((ours != theirs).then(|| Disagreement {
        what: format!(
            "resolution of the branch tips: {}",
            describe_states(ours.as_ref(), theirs.as_ref())
        ),
        event: None,
        state_sets: history.branch_states.clone(),
    }))
}

/// fedlab resolves the states at every merge and the branch tip states as ruma does.
fn check_resolution_agrees(
    version: &'static RoomVersion,
    shape: &Shape,
) -> Result<(), TestCaseError> {
    let mut judge = ComparingJudge::new(version);
    let history = history::generate(version, shape, &mut judge);
    let Some(disagreement) = first_resolution_disagreement(version, &judge, &history)? else {
        return Ok(());
    };
    let known = known::explain_resolution(&history.events);
    if let (Some(known), false) = (&known, known::strict()) {
        return Err(TestCaseError::reject(known.to_string()));
    }
    Err(TestCaseError::fail(format!(
        "({} authorization disagreement(s) while generating{}) {}",
        judge.disagreements.len(),
        known.map_or_else(String::new, |known| format!("; {known}")),
        describe(&history, &disagreement)
    )))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn state_res_agrees_with_ruma_v10(shape in shapes()) {
        check_resolution_agrees(version("10"), &shape)?;
    }

    #[test]
    fn state_res_agrees_with_ruma_v11(shape in shapes()) {
        check_resolution_agrees(version("11"), &shape)?;
    }

    #[test]
    fn state_res_agrees_with_ruma_v12(shape in shapes()) {
        check_resolution_agrees(version("12"), &shape)?;
    }

    #[test]
    fn auth_agrees_with_ruma_v10(shape in shapes()) {
        check_auth_agrees(version("10"), &shape)?;
    }

    #[test]
    fn auth_agrees_with_ruma_v11(shape in shapes()) {
        check_auth_agrees(version("11"), &shape)?;
    }

    #[test]
    fn auth_agrees_with_ruma_v12(shape in shapes()) {
        check_auth_agrees(version("12"), &shape)?;
    }

    #[test]
    fn ruma_harness_fixed_points_v10(shape in shapes()) {
        check_ruma_fixed_points(version("10"), &shape)?;
    }

    #[test]
    fn ruma_harness_fixed_points_v12(shape in shapes()) {
        check_ruma_fixed_points(version("12"), &shape)?;
    }
}

/// The generator makes the histories it promises: branches really diverge, some merge, and some
/// attempts are unauthorised, so the oracle is not comparing trivial inputs.
#[test]
fn generated_histories_fork_and_reject() {
    for id in ["10", "11", "12"] {
        let mut conflicted_cases = 0;
        let mut rejected = 0;
        let mut merges = 0;
        for seed in 0..32 {
            let shape = Shape {
                seed,
                members: 4,
                trunk: vec![seed, seed + 1],
                branches: (0..3)
                    .map(|branch| BranchShape {
                        fork_after: branch as usize,
                        actions: (0..12).map(|i| seed * 100 + branch * 20 + i).collect(),
                    })
                    .collect(),
                mix: Mix::Adversarial,
                merge_percent: 10,
            };
            let history = ruma_history(version(id), &shape);
            rejected += history.rejected_attempts;
            merges += history.merges;
            if history
                .branch_states
                .windows(2)
                .any(|pair| pair[0] != pair[1])
            {
                conflicted_cases += 1;
            }
            let again = ruma_history(version(id), &shape);
            assert_eq!(history.events, again.events, "generation is deterministic");
        }
        assert!(
            conflicted_cases >= 24,
            "room v{id}: only {conflicted_cases}/32 histories diverge"
        );
        assert!(
            merges > 8,
            "room v{id}: only {merges} merges in 32 histories"
        );
        assert!(
            rejected > 32,
            "room v{id}: only {rejected} rejected attempts in 32 histories"
        );
    }
}

/// A fork where the second side is strictly newer: `$jr_alice` was sent by the room's admin after
/// `$jr_carol`, which is in its auth chain through `$alice_rejoin`. Only the join rules differ
/// between the two states. Replay with `fedlab proto resolve`; the same case, derived by hand, is
/// `tests/data/resolve/v2-ordering-inside-the-set.json`.
///
/// The v2 algorithm sorts the power events `$jr_carol` and `$jr_alice` in "reverse topological
/// power ordering ... based on the DAG formed by auth events". Synapse (`_add_event_and_auth_
/// chain_to_graph`) and ruma build that DAG from the `auth_events` links between events of the
/// full conflicted set only; `$alice_rejoin` is not in it (both states hold it, and both auth
/// chains contain it), so the two events are unrelated, the admin's goes first by power, and
/// carol's older join rules are applied last and win: a state reset. fedlab reads the spec the
/// same way, for interoperability (it used to follow the path through `$alice_rejoin` and keep
/// `$jr_alice`). Room v12 (v2.1) adds the conflicted state subgraph, which puts `$alice_rejoin`
/// in the full conflicted set, and every implementation keeps `$jr_alice`.
const ORDERING_THROUGH_UNCONFLICTED_EVENTS: &str = r#"
{"room_version": "11",
 "events": [
  {"event_id": "$create", "room_id": "!r:a.example", "type": "m.room.create", "state_key": "", "sender": "@alice:a.example", "origin_server_ts": 1, "content": {"room_version": "11"}, "prev_events": [], "auth_events": []},
  {"event_id": "$alice_join", "room_id": "!r:a.example", "type": "m.room.member", "state_key": "@alice:a.example", "sender": "@alice:a.example", "origin_server_ts": 2, "content": {"membership": "join"}, "prev_events": ["$create"], "auth_events": ["$create"]},
  {"event_id": "$pl", "room_id": "!r:a.example", "type": "m.room.power_levels", "state_key": "", "sender": "@alice:a.example", "origin_server_ts": 3, "content": {"users": {"@alice:a.example": 100, "@carol:c.example": 50}, "state_default": 50}, "prev_events": ["$alice_join"], "auth_events": ["$create", "$alice_join"]},
  {"event_id": "$jr_public", "room_id": "!r:a.example", "type": "m.room.join_rules", "state_key": "", "sender": "@alice:a.example", "origin_server_ts": 4, "content": {"join_rule": "public"}, "prev_events": ["$pl"], "auth_events": ["$create", "$pl", "$alice_join"]},
  {"event_id": "$carol_join", "room_id": "!r:a.example", "type": "m.room.member", "state_key": "@carol:c.example", "sender": "@carol:c.example", "origin_server_ts": 5, "content": {"membership": "join"}, "prev_events": ["$jr_public"], "auth_events": ["$create", "$pl", "$jr_public"]},
  {"event_id": "$jr_carol", "room_id": "!r:a.example", "type": "m.room.join_rules", "state_key": "", "sender": "@carol:c.example", "origin_server_ts": 6, "content": {"join_rule": "invite"}, "prev_events": ["$carol_join"], "auth_events": ["$create", "$pl", "$carol_join"]},
  {"event_id": "$alice_rejoin", "room_id": "!r:a.example", "type": "m.room.member", "state_key": "@alice:a.example", "sender": "@alice:a.example", "origin_server_ts": 7, "content": {"membership": "join"}, "prev_events": ["$jr_carol"], "auth_events": ["$create", "$pl", "$alice_join", "$jr_carol"]},
  {"event_id": "$topic", "room_id": "!r:a.example", "type": "m.room.topic", "state_key": "", "sender": "@alice:a.example", "origin_server_ts": 8, "content": {"topic": "hello"}, "prev_events": ["$alice_rejoin"], "auth_events": ["$create", "$pl", "$alice_rejoin"]},
  {"event_id": "$jr_alice", "room_id": "!r:a.example", "type": "m.room.join_rules", "state_key": "", "sender": "@alice:a.example", "origin_server_ts": 9, "content": {"join_rule": "public"}, "prev_events": ["$topic"], "auth_events": ["$create", "$pl", "$alice_rejoin"]}
 ],
 "state_sets": [["$create", "$pl", "$carol_join", "$alice_rejoin", "$topic", "$jr_carol"], ["$create", "$pl", "$carol_join", "$alice_rejoin", "$topic", "$jr_alice"]]}"#;

/// The events and state sets of a fixture, for room version `version_id` (the create event's
/// content and, from v12, the room ids follow it), leaving out the events in `without`.
fn fixture_input(fixture: &str, version_id: &str, without: &[&str]) -> (Vec<Event>, Vec<StateMap>) {
    let mut input: serde_json::Value = serde_json::from_str(fixture).expect("fixture is JSON");
    input["room_version"] = serde_json::json!(version_id);
    input["events"][0]["content"]["room_version"] = serde_json::json!(version_id);
    for state_set in input["state_sets"].as_array_mut().expect("state sets") {
        state_set
            .as_array_mut()
            .expect("a state set")
            .retain(|id| !without.contains(&id.as_str().expect("ids are strings")));
    }
    let mut events = history::events_from_json(&input);
    events.retain(|event| !without.contains(&event.event_id.as_str()));
    if version(version_id).room_id_from_create_event {
        // Room v12 derives the room id from the create event, which has none itself.
        let room_id = format!("!{}", &events[0].event_id[1..]);
        for event in &mut events {
            event.room_id = if event.is("m.room.create", "") {
                String::new()
            } else {
                room_id.clone()
            };
            if event.event_type != "m.room.create" {
                event.auth_events.retain(|id| id != "$create");
            }
        }
    }
    let state_sets = history::state_sets_from_json(&input, &events);
    (events, state_sets)
}

/// fedlab's and ruma's resolutions of a fixture.
fn resolve_fixture(fixture: &str, version_id: &str) -> (StateMap, StateMap) {
    let (events, state_sets) = fixture_input(fixture, version_id, &[]);
    let version = version(version_id);
    let event_map: BTreeMap<String, Event> = events
        .iter()
        .map(|event| (event.event_id.clone(), event.clone()))
        .collect();
    let ours = resolve(version, version.state_res, &state_sets, &event_map)
        .expect("fedlab resolves the fixture");
    let theirs = RumaRoom::new(version, &events)
        .and_then(|room| room.resolve(&state_sets))
        .expect("ruma resolves the fixture");
    (ours.state, theirs)
}

fn join_rules(state: &StateMap) -> Option<&str> {
    state
        .get(&("m.room.join_rules".to_owned(), String::new()))
        .map(String::as_str)
}

/// The case above as ruma resolves it, in v2 and in v2.1.
#[test]
fn ordering_through_unconflicted_events_as_ruma_resolves_it() {
    let (_, theirs) = resolve_fixture(ORDERING_THROUGH_UNCONFLICTED_EVENTS, "11");
    assert_eq!(
        join_rules(&theirs),
        Some("$jr_carol"),
        "ruma (like Synapse) resets the join rules in v2"
    );
    let (ours, theirs) = resolve_fixture(ORDERING_THROUGH_UNCONFLICTED_EVENTS, "12");
    assert_eq!(join_rules(&theirs), Some("$jr_alice"));
    assert_eq!(
        ours, theirs,
        "v2.1 resolves the case the same way everywhere"
    );
}

/// Regression for the divergence above: fedlab's v2 reverse topological power ordering used to
/// follow auth paths through events outside the full conflicted set, and resolved the fixture to
/// `$jr_alice` where Synapse and ruma give `$jr_carol`.
#[test]
fn ordering_through_unconflicted_events_matches_ruma_in_v2() {
    let (ours, theirs) = resolve_fixture(ORDERING_THROUGH_UNCONFLICTED_EVENTS, "11");
    assert_eq!(join_rules(&ours), Some("$jr_carol"));
    assert_eq!(ours, theirs);
}

/// The same fork without `$topic`, where the reading of "auth chain" decides. The spec's auth
/// chain of an event leaves the event out, so `$alice_rejoin` (in both states, but cited only by
/// the second state's `$jr_alice`) is in the auth difference; the path from `$jr_alice` to
/// `$jr_carol` then runs inside the full conflicted set and fedlab and ruma (given the spec's auth
/// chains) keep `$jr_alice`. Synapse's full auth chain of a state set holds the set's own events,
/// so `$alice_rejoin` is in both chains, outside the set, and the join rules reset to `$jr_carol`.
#[test]
fn auth_chain_reading_decides_the_fork_without_topic() {
    let version = version("11");
    let (events, state_sets) =
        fixture_input(ORDERING_THROUGH_UNCONFLICTED_EVENTS, "11", &["$topic"]);
    let event_map: BTreeMap<String, Event> = events
        .iter()
        .map(|event| (event.event_id.clone(), event.clone()))
        .collect();
    let ours =
        resolve(version, version.state_res, &state_sets, &event_map).expect("fedlab resolves");
    let spec_reading = RumaRoom::new(version, &events).and_then(|room| room.resolve(&state_sets));
    let synapse_reading = RumaRoom::new(version, &events)
        .and_then(|room| room.with_state_events_in_auth_chains().resolve(&state_sets));
    assert_eq!(join_rules(&ours.state), Some("$jr_alice"));
    assert_eq!(spec_reading.as_ref(), Ok(&ours.state));
    assert_eq!(
        join_rules(&synapse_reading.expect("ruma resolves")),
        Some("$jr_carol")
    );
}
