//! The state resets that room v12 (state resolution v2.1) still makes, as minimal DAGs, each
//! resolved by fedlab's resolver and by ruma's: both must reset.
//!
//! The fixtures (`tests/data/resolve/v21-*-reset.json`) are the two mechanisms behind every
//! join-rule reset measured in `split-brain-power` and `threats/unrecoverable-consistency`
//! (README, Findings). In each, a newer join-rules event, sent by someone who had seen the older
//! one (it descends from it in the DAG), meets a concurrent state that still holds the older
//! one; the two are not linked by auth events, so the reverse topological power ordering puts
//! the newer one first and the older one is applied last. A state reset in the observer's sense:
//! the key goes back to an ancestor of its event while that event is still allowed.

mod common;

use common::ruma_oracle::RumaRoom;
use fedlab::proto::auth::check_auth;
use fedlab::proto::event::{Event, StateKey, StateMap};
use fedlab::proto::state_res::resolve;
use fedlab::proto::state_res::scenario::{Query, Scenario};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/data/resolve/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The join rules each resolver gives, after checking that they agree on the whole state.
struct Outcome {
    join_rules: String,
    state: StateMap,
    events: BTreeMap<String, Event>,
}

/// Resolves the fixture's state sets with fedlab and with ruma. The events are completed by
/// fedlab's scenario reader (room ids, depths, auth events chosen by the spec's selection), so
/// both resolvers see exactly the same events.
fn resolve_both(input: &Value) -> Outcome {
    let scenario = Scenario::from_value(input, None).expect("the fixture parses");
    let version = scenario.version;
    let replayed = scenario
        .replay(version.state_res)
        .expect("the fixture replays");
    assert!(
        replayed.replay.rejected().is_empty(),
        "every event of the fixture is authorized: {:?}",
        replayed.replay.rejected()
    );
    let Query::StateSets(state_sets) = &scenario.query else {
        panic!("the fixture gives state sets");
    };
    let ours = resolve(version, version.state_res, state_sets, &replayed.events)
        .expect("fedlab resolves the fixture")
        .state;
    let theirs = RumaRoom::new(version, replayed.events.values())
        .and_then(|room| room.resolve(state_sets))
        .expect("ruma resolves the fixture");
    assert_eq!(ours, theirs, "fedlab and ruma resolve the fixture alike");
    Outcome {
        join_rules: ours[&join_rules_key()].clone(),
        state: ours,
        events: replayed.events,
    }
}

fn join_rules_key() -> StateKey {
    ("m.room.join_rules".to_owned(), String::new())
}

/// Whether `ancestor` is reachable from `descendant` through prev events.
fn is_ancestor(events: &BTreeMap<String, Event>, ancestor: &str, descendant: &str) -> bool {
    let mut stack = vec![descendant];
    let mut seen = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for prev in &events[id].prev_events {
            if prev == ancestor {
                return true;
            }
            stack.push(prev);
        }
    }
    false
}

/// Asserts that the resolution put the key back from `newer` to its ancestor `older` while
/// `newer` is still allowed by the resolved state: a state reset, not a revert the room explains.
fn assert_reset(outcome: &Outcome, version_id: &str, older: &str, newer: &str) {
    assert_eq!(outcome.join_rules, older, "the join rules went back");
    assert!(
        is_ancestor(&outcome.events, older, newer),
        "{newer} was sent after {older}"
    );
    let state: BTreeMap<StateKey, &Event> = outcome
        .state
        .iter()
        .map(|(key, id)| (key.clone(), &outcome.events[id]))
        .collect();
    let version = fedlab::proto::room_version::room_version(version_id).unwrap();
    assert_eq!(
        check_auth(version, &outcome.events[newer], &state),
        Ok(()),
        "{newer} is still allowed by the resolved state"
    );
}

#[test]
fn the_creators_infinite_power_sorts_her_newer_rule_first_and_it_loses() {
    let input = fixture("v21-creator-reset");
    let outcome = resolve_both(&input);
    assert_reset(&outcome, "12", "$bob_invite_only", "$alice_reopens");
}

/// The same DAG with the creator at 100 like Bob (room v11, where the creator's power comes
/// from the power levels): the tie goes by timestamp and her newer rule stays. The reset above
/// comes from the creator's infinite power of room v12.
#[test]
fn with_the_creator_at_100_the_newer_rule_stays() {
    let mut input = fixture("v21-creator-reset");
    input["room_version"] = Value::from("11");
    let events = input["events"].as_array_mut().unwrap();
    events[0]["content"]["room_version"] = Value::from("11");
    events[2]["content"]["users"]["@alice:a.example"] = Value::from(100);
    assert_eq!(events[2]["event_id"], "$pl_initial");
    let outcome = resolve_both(&input);
    assert_eq!(outcome.join_rules, "$alice_reopens");
}

#[test]
fn a_join_in_the_auth_difference_drags_the_older_rule_last() {
    let input = fixture("v21-join-in-auth-difference-reset");
    let outcome = resolve_both(&input);
    assert_reset(&outcome, "12", "$carol_invite_only", "$bob_reopens");
}
