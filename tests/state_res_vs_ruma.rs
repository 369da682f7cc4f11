//! Differential oracle: fedlab's state resolution against ruma's on random forking histories.
//!
//! Each case generates a room history (see `common::history`) that forks into 2 to 4 branches
//! and resolves the branch tip states with both implementations; the results must be identical.
//! On a difference proptest shrinks the history and the failure message carries it in the input
//! format of `fedlab proto resolve`, so it can be replayed by hand.
//!
//! `FEDLAB_ORACLE_CASES` sets the number of cases per room version (default 64).

mod common;

use common::history::{self, BranchShape, History, Mix, Shape};
use common::judges::{ComparingJudge, Disagreement, RumaJudge};
use common::ruma_oracle::RumaRoom;
use fedlab::proto::room_version::{RoomVersion, room_version};
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
    if let Some(first) = judge.disagreements.first() {
        return Err(TestCaseError::fail(format!(
            "{} disagreement(s) with ruma on authorization; the first: {}",
            judge.disagreements.len(),
            describe(&history, first)
        )));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

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
