//! Data-driven state resolution scenarios: every `tests/data/resolve/NAME.json` is a resolver
//! input (with a `description` that derives the result from the spec), and
//! `NAME.expected.json` beside it maps algorithm names ("v1", "v2", "v2.1") to the expected
//! `{"rejected": [...], "state": [...]}`. Each listed algorithm is run and compared.
//!
//! The expected files were written by hand from the spec. After a reviewed change of
//! behaviour, `FEDLAB_UPDATE_EXPECT=1 cargo test --test state_res_scenarios` rewrites them with
//! the current output (for the algorithms each file already lists, or the room version's own
//! algorithm for a new scenario); review the diff before committing it.

use fedlab::proto::canonical_json::{Numbers, to_canonical_string};
use fedlab::proto::room_version::StateResAlgorithm;
use fedlab::proto::state_res::scenario::{Scenario, output_json};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/resolve")
}

fn inputs() -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .expect("tests/data/resolve exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.ends_with(".json") && !name.ends_with(".expected.json")
        })
        .collect();
    inputs.sort();
    inputs
}

fn expected_path(input: &Path) -> PathBuf {
    let stem = input.file_stem().unwrap().to_string_lossy();
    input.with_file_name(format!("{stem}.expected.json"))
}

/// The output of each algorithm for one input, in the expected file's layout.
fn outputs(input: &Path, algorithms: &[StateResAlgorithm]) -> Result<Map<String, Value>, String> {
    let text = std::fs::read_to_string(input).map_err(|e| e.to_string())?;
    let scenario = Scenario::parse(&text, None).map_err(|e| e.to_string())?;
    let mut outputs = Map::new();
    for &algorithm in algorithms {
        let resolved = scenario
            .run(algorithm)
            .map_err(|e| format!("{}: {e}", algorithm.name()))?;
        outputs.insert(algorithm.name().to_owned(), output_json(&resolved));
    }
    Ok(outputs)
}

fn algorithms_of(expected: &Map<String, Value>) -> Vec<StateResAlgorithm> {
    expected
        .keys()
        .map(|name| {
            StateResAlgorithm::parse(name)
                .unwrap_or_else(|| panic!("unknown algorithm {name:?} in an expected file"))
        })
        .collect()
}

/// One line per algorithm, so that a diff of the expected file reads well.
fn format_expected(outputs: &Map<String, Value>) -> String {
    let mut algorithms: Vec<(&String, &Value)> = outputs.iter().collect();
    algorithms.sort_by_key(|(name, _)| StateResAlgorithm::parse(name));
    let entries: Vec<String> = algorithms
        .iter()
        .map(|(name, output)| {
            let canonical = |value: &Value| to_canonical_string(value, Numbers::Strict).unwrap();
            let rows: Vec<String> = output["state"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| format!("  {}", canonical(row)))
                .collect();
            format!(
                " {}: {{\"rejected\": {}, \"state\": [\n{}\n ]}}",
                canonical(&Value::from(name.as_str())),
                canonical(&output["rejected"]),
                rows.join(",\n")
            )
        })
        .collect();
    format!("{{\n{}\n}}\n", entries.join(",\n"))
}

#[test]
fn scenarios_match_their_expected_results() {
    let update = std::env::var("FEDLAB_UPDATE_EXPECT").is_ok_and(|value| value == "1");
    let inputs = inputs();
    assert!(!inputs.is_empty(), "no scenario in tests/data/resolve");
    let mut failures = Vec::new();
    for input in &inputs {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let expected_file = expected_path(input);
        let expected: Option<Map<String, Value>> = std::fs::read_to_string(&expected_file)
            .ok()
            .map(|text| serde_json::from_str(&text).expect("expected files are JSON objects"));
        let algorithms = match &expected {
            Some(expected) => algorithms_of(expected),
            None if update => {
                let text = std::fs::read_to_string(input).unwrap();
                vec![Scenario::parse(&text, None).unwrap().version.state_res]
            }
            None => {
                failures.push(format!("{name}: no {}", expected_file.display()));
                continue;
            }
        };
        let actual = match outputs(input, &algorithms) {
            Ok(actual) => actual,
            Err(error) => {
                failures.push(format!("{name}: {error}"));
                continue;
            }
        };
        if update {
            std::fs::write(&expected_file, format_expected(&actual)).unwrap();
            continue;
        }
        let expected = expected.expect("checked above");
        for (algorithm, want) in &expected {
            let got = &actual[algorithm];
            if got != want {
                failures.push(format!(
                    "{name} with {algorithm}:\n  expected {want}\n  got      {got}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenario(s) differ (FEDLAB_UPDATE_EXPECT=1 rewrites the expectations after \
         review):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Invariants of resolution and replay on random rooms: forks and merges among four users who
/// join, leave, kick, ban, invite, change the topic, the join rules and the power levels, with
/// timestamps that tie and run backwards. Many of these events are rejected, as they would be.
mod properties {
    use fedlab::proto::event::StateMap;
    use fedlab::proto::room_version::{StateResAlgorithm, room_version};
    use fedlab::proto::state_res::scenario::{Replayed, Scenario};
    use fedlab::proto::state_res::{HeldUnconflicted, WithRejected, resolve, resolve_conflicts};
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use std::collections::BTreeSet;

    const USERS: [&str; 4] = [
        "@alice:a.example",
        "@bob:b.example",
        "@carol:c.example",
        "@dave:d.example",
    ];

    /// One random event: which earlier events it follows, who sends it, what it does.
    #[derive(Clone, Debug)]
    struct Step {
        prev_seeds: Vec<usize>,
        sender: usize,
        action: u8,
        target: usize,
        level: u8,
        ts: u64,
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        (
            prop::collection::vec(any::<usize>(), 1..=2),
            0..USERS.len(),
            0..9_u8,
            0..USERS.len(),
            0..3_u8,
            0..40_u64,
        )
            .prop_map(|(prev_seeds, sender, action, target, level, ts)| Step {
                prev_seeds,
                sender,
                action,
                target,
                level,
                ts,
            })
    }

    /// A room version and its events as resolver input (auth events and depths left out).
    fn arb_room() -> impl Strategy<Value = (&'static str, Vec<Value>)> {
        (
            prop::sample::select(vec!["11", "12"]),
            prop::collection::vec(arb_step(), 4..28),
        )
            .prop_map(|(version, steps)| (version, room_events(version, &steps)))
    }

    fn room_events(version: &str, steps: &[Step]) -> Vec<Value> {
        let alice = USERS[0];
        // Room v12 keeps creators out of `users`.
        let alice_level = if version == "12" {
            json!(null)
        } else {
            json!(100)
        };
        let levels = |bob: u64| {
            let mut users = json!({"@bob:b.example": bob});
            if !alice_level.is_null() {
                users[alice] = alice_level.clone();
            }
            users
        };
        let mut events = vec![
            json!({"event_id": "$create", "type": "m.room.create", "state_key": "", "sender": alice,
                   "content": {"room_version": version}, "prev_events": [], "origin_server_ts": 0}),
            json!({"event_id": "$alice", "type": "m.room.member", "state_key": alice, "sender": alice,
                   "content": {"membership": "join"}, "prev_events": ["$create"], "origin_server_ts": 1}),
            json!({"event_id": "$pl", "type": "m.room.power_levels", "state_key": "", "sender": alice,
                   "content": {"users": levels(50)}, "prev_events": ["$alice"], "origin_server_ts": 2}),
            json!({"event_id": "$jr", "type": "m.room.join_rules", "state_key": "", "sender": alice,
                   "content": {"join_rule": "public"}, "prev_events": ["$pl"], "origin_server_ts": 3}),
        ];
        for (index, step) in steps.iter().enumerate() {
            let mut prev: Vec<String> = step
                .prev_seeds
                .iter()
                .map(|seed| {
                    events[3 + seed % (events.len() - 3)]["event_id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            prev.sort();
            prev.dedup();
            let sender = USERS[step.sender];
            let target = USERS[step.target];
            let level = [0, 50, 100][step.level as usize];
            let (event_type, state_key, content) = match step.action {
                0 => ("m.room.member", Some(sender), json!({"membership": "join"})),
                1 => (
                    "m.room.member",
                    Some(sender),
                    json!({"membership": "leave"}),
                ),
                2 => ("m.room.member", Some(target), json!({"membership": "ban"})),
                3 => (
                    "m.room.member",
                    Some(target),
                    json!({"membership": "leave"}),
                ),
                4 => (
                    "m.room.member",
                    Some(target),
                    json!({"membership": "invite"}),
                ),
                5 => (
                    "m.room.topic",
                    Some(""),
                    json!({"topic": format!("topic {index}")}),
                ),
                6 => {
                    let mut users = levels(level);
                    users[target] = json!(level);
                    ("m.room.power_levels", Some(""), json!({"users": users}))
                }
                7 => {
                    let rule = ["public", "invite", "knock"][step.level as usize];
                    ("m.room.join_rules", Some(""), json!({"join_rule": rule}))
                }
                _ => ("m.room.message", None, json!({"body": "hi"})),
            };
            let mut event = json!({"event_id": format!("$e{index}"), "type": event_type,
                                   "sender": sender, "content": content, "prev_events": prev,
                                   "origin_server_ts": step.ts});
            if let Some(state_key) = state_key {
                event["state_key"] = json!(state_key);
            }
            events.push(event);
        }
        events
    }

    fn replayed(version: &str, events: &[Value], algorithm: StateResAlgorithm) -> Replayed {
        let input = json!({"room_version": version, "events": events, "at": "$create"});
        Scenario::from_value(&input, None)
            .expect("generated rooms are valid input")
            .replay(algorithm)
            .expect("generated rooms replay")
    }

    fn arb_algorithm() -> impl Strategy<Value = StateResAlgorithm> {
        prop::sample::select(vec![
            StateResAlgorithm::V1,
            StateResAlgorithm::V2,
            StateResAlgorithm::V2_1,
        ])
    }

    /// The states after a few events picked by `seeds`.
    fn pick_states(replayed: &Replayed, seeds: &[usize]) -> Vec<StateMap> {
        let states: Vec<&StateMap> = replayed.replay.states_after().values().collect();
        seeds
            .iter()
            .map(|seed| states[seed % states.len()].clone())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn resolution_does_not_depend_on_the_order_of_the_state_sets(
            (version, events) in arb_room(),
            algorithm in arb_algorithm(),
            seeds in prop::collection::vec(any::<usize>(), 2..5),
            rotation in any::<usize>(),
        ) {
            let replayed = replayed(version, &events, algorithm);
            let room_version = room_version(version).unwrap();
            let source = WithRejected { events: &replayed.events, rejected: replayed.replay.rejected() };
            let sets = pick_states(&replayed, &seeds);
            let expected = resolve(room_version, algorithm, &sets, &source).unwrap();
            let mut reordered = sets.clone();
            reordered.rotate_left(rotation % sets.len());
            reordered.swap(0, sets.len() - 1);
            prop_assert_eq!(&resolve(room_version, algorithm, &reordered, &source).unwrap(), &expected);
            // Giving a state set twice changes nothing either.
            reordered.push(sets[0].clone());
            prop_assert_eq!(&resolve(room_version, algorithm, &reordered, &source).unwrap(), &expected);
        }

        #[test]
        fn resolving_one_state_set_returns_it(
            (version, events) in arb_room(),
            algorithm in arb_algorithm(),
            seed in any::<usize>(),
        ) {
            let replayed = replayed(version, &events, algorithm);
            let room_version = room_version(version).unwrap();
            let source = WithRejected { events: &replayed.events, rejected: replayed.replay.rejected() };
            let sets = pick_states(&replayed, &[seed]);
            let resolved = resolve(room_version, algorithm, &sets, &source).unwrap();
            prop_assert_eq!(&resolved.state, &sets[0]);
            prop_assert!(resolved.rejected.is_empty());
        }

        #[test]
        fn unconflicted_keys_survive(
            (version, events) in arb_room(),
            algorithm in arb_algorithm(),
            seeds in prop::collection::vec(any::<usize>(), 2..5),
        ) {
            let replayed = replayed(version, &events, algorithm);
            let room_version = room_version(version).unwrap();
            let source = WithRejected { events: &replayed.events, rejected: replayed.replay.rejected() };
            let sets = pick_states(&replayed, &seeds);
            let resolved = resolve(room_version, algorithm, &sets, &source).unwrap();
            for (key, event_id) in &sets[0] {
                if sets.iter().all(|set| set.get(key) == Some(event_id)) {
                    prop_assert_eq!(resolved.state.get(key), Some(event_id), "{:?}", key);
                }
            }
        }

        #[test]
        fn replay_does_not_depend_on_the_order_of_the_input(
            (version, events) in arb_room(),
            algorithm in arb_algorithm(),
            order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        ) {
            let expected = replayed(version, &events, algorithm);
            // Shuffle the events and each event's prev_events with a small LCG on `order`.
            let mut state = order | 1;
            let mut next = move |bound: usize| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 33) as usize % bound
            };
            let mut shuffled = events.clone();
            for index in (1..shuffled.len()).rev() {
                shuffled.swap(index, next(index + 1));
            }
            for event in &mut shuffled {
                if let Some(prev) = event["prev_events"].as_array_mut() {
                    prev.reverse();
                }
            }
            let actual = replayed(version, &shuffled, algorithm);
            prop_assert_eq!(actual.replay.states_after(), expected.replay.states_after());
            prop_assert_eq!(actual.replay.rejected(), expected.replay.rejected());
            let accepted: BTreeSet<&String> = expected.events.keys()
                .filter(|id| !expected.replay.is_rejected(id)).collect();
            prop_assert!(accepted.len() >= 4, "the room's first events are accepted");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// What a server merging state groups does: resolve from the unconflicted map and the
        /// conflicted keys only, then lay the unconflicted map over the result.
        #[test]
        fn resolving_the_conflicted_part_gives_the_full_resolution(
            (version, events) in arb_room(),
            algorithm in prop::sample::select(vec![StateResAlgorithm::V2, StateResAlgorithm::V2_1]),
            seeds in prop::collection::vec(any::<usize>(), 2..5),
        ) {
            let replayed = replayed(version, &events, algorithm);
            let room_version = room_version(version).unwrap();
            let source = WithRejected { events: &replayed.events, rejected: replayed.replay.rejected() };
            let sets = pick_states(&replayed, &seeds);
            let expected = resolve(room_version, algorithm, &sets, &source).unwrap();
            let (unconflicted, conflicted) = HeldUnconflicted::split(&sets, &source).unwrap();
            let partial =
                resolve_conflicts(room_version, algorithm, &unconflicted, &conflicted, &source).unwrap();
            for key in partial.state.keys() {
                prop_assert!(!unconflicted.state.contains_key(key), "{:?} is unconflicted", key);
            }
            let mut state = unconflicted.state.clone();
            state.extend(partial.state);
            prop_assert_eq!(&state, &expected.state);
            prop_assert_eq!(&partial.rejected, &expected.rejected);
        }
    }
}
