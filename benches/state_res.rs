//! State resolution speed, fedlab against ruma, on the same inputs in the same run.
//!
//! Each input is a room with a deep history (a long trunk of power level changes, membership
//! churn and state changes among 40 users) that forks into two busy branches; the branch
//! lengths are tuned so that the full conflicted set (conflicted state set, auth difference and,
//! for v2.1, the conflicted state subgraph) holds about 10, 100 and 1,000 events. Before timing,
//! both implementations resolve the input and the results must be equal (an input showing one of
//! the known divergences of the oracle test is replaced by the next seed's).
//!
//! Both sides are timed from the same starting point: the events stored once in each library's
//! own form, the state sets in each library's own map type. ruma leaves the auth chains and the
//! conflicted state subgraph to its caller, so computing them is inside ruma's timing, as fedlab
//! computes them inside `resolve`.
//!
//! The default run is short (few samples, short measurement) because the machine is small;
//! criterion's command-line options lengthen it. Building the inputs takes seconds, far longer
//! under an instruction-counting profiler: `FEDLAB_BENCH_ROOM_VERSIONS=11` and
//! `FEDLAB_BENCH_TARGETS=1000` (comma-separated) build and run only those.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::history::{self, BranchShape, History, Mix, Shape};
use common::judges::{FedlabJudge, describe_states};
use common::known;
use common::ruma_oracle::RumaRoom;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fedlab::proto::event::{Event, StateMap};
use fedlab::proto::room_version::{RoomVersion, room_version};
use fedlab::proto::state_res::resolve;

const CONFLICTED_TARGETS: [usize; 3] = [10, 100, 1_000];
const MEMBERS: usize = 40;
const TRUNK_ACTIONS: usize = 1_000;
const SEED: u64 = 2026;
const SEEDS_TRIED: u64 = 20;

/// One benchmark input, ready for both libraries.
struct Case {
    version: &'static RoomVersion,
    seed: u64,
    history: History,
    events: BTreeMap<String, Event>,
    ruma: RumaRoom,
    full_conflicted: usize,
}

fn shape(seed: u64, branch_actions: usize) -> Shape {
    Shape {
        seed,
        members: MEMBERS,
        trunk: (0..TRUNK_ACTIONS as u64).collect(),
        branches: (0..2_u64)
            .map(|branch| {
                BranchShape::at_end(
                    (0..branch_actions as u64)
                        .map(|index| (branch << 32) | index)
                        .collect(),
                )
            })
            .collect(),
        mix: Mix::Busy,
        merge_percent: 0,
    }
}

fn case(version: &'static RoomVersion, seed: u64, branch_actions: usize) -> Case {
    let history = history::generate(
        version,
        &shape(seed, branch_actions),
        &mut FedlabJudge::new(version),
    );
    let ruma = RumaRoom::new(version, &history.events).expect("generated events suit ruma");
    let full_conflicted = ruma
        .full_conflicted_set(&history.branch_states)
        .expect("branch states name known events")
        .len();
    Case {
        version,
        seed,
        events: history.event_map(),
        history,
        ruma,
        full_conflicted,
    }
}

/// The input from `seed` whose full conflicted set is closest to `target`, searching branch
/// lengths.
fn case_near(version: &'static RoomVersion, seed: u64, target: usize) -> Case {
    let mut branch_actions = target.div_ceil(2).max(1);
    let mut best = case(version, seed, branch_actions);
    for _ in 0..4 {
        let off_by = best.full_conflicted.abs_diff(target);
        if off_by * 10 <= target {
            break;
        }
        branch_actions = (branch_actions * target / best.full_conflicted.max(1)).max(1);
        let next = case(version, seed, branch_actions);
        if next.full_conflicted.abs_diff(target) < off_by {
            best = next;
        }
    }
    best
}

/// The first input, trying seeds in turn, on which fedlab and ruma agree: a bench compares
/// speed on equal results only. Inputs that show a known divergence (see the oracle test) are
/// skipped; any other difference stops the bench.
fn agreed_case(version: &'static RoomVersion, target: usize) -> (Case, StateMap) {
    for seed in SEED..SEED + SEEDS_TRIED {
        let case = case_near(version, seed, target);
        let state_sets = &case.history.branch_states;
        let ours = resolve(case.version, version.state_res, state_sets, &case.events)
            .expect("fedlab resolves the generated input")
            .state;
        let theirs = case
            .ruma
            .resolve(state_sets)
            .expect("ruma resolves the generated input");
        if ours == theirs {
            return (case, ours);
        }
        match known::explain_resolution(&case.history.events) {
            Some(known) => eprintln!("room v{}, seed {seed}: skipped, {known}", version.id),
            None => panic!(
                "fedlab and ruma disagree on the bench input of room v{}, seed {seed}: {}",
                version.id,
                describe_states(Ok(&ours), Ok(&theirs))
            ),
        }
    }
    panic!(
        "no agreed input for room v{} in {SEEDS_TRIED} seeds",
        version.id
    );
}

/// The comma-separated values of the environment variable `name`, if it is set.
fn env_list(name: &str) -> Option<Vec<String>> {
    let text = std::env::var(name).ok()?;
    Some(text.split(',').map(|item| item.trim().to_owned()).collect())
}

fn selected(list: &Option<Vec<String>>, item: &str) -> bool {
    list.as_ref()
        .is_none_or(|items| items.iter().any(|listed| listed == item))
}

fn bench_version(criterion: &mut Criterion, version_id: &str) {
    if !selected(&env_list("FEDLAB_BENCH_ROOM_VERSIONS"), version_id) {
        return;
    }
    let targets = env_list("FEDLAB_BENCH_TARGETS");
    let version = room_version(version_id).expect("known room version");
    let mut group = criterion.benchmark_group(format!(
        "state_res_v{version_id}_{}",
        version.state_res.name()
    ));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for target in CONFLICTED_TARGETS {
        if !selected(&targets, &target.to_string()) {
            continue;
        }
        let (case, resolved) = agreed_case(version, target);
        let state_sets = &case.history.branch_states;
        let depth = case
            .ruma
            .auth_chain_size_max(state_sets.iter().flat_map(|state| state.values().cloned()));
        eprintln!(
            "room v{version_id}, target {target}: seed {}, {} events, {} in the full conflicted \
             set, largest auth chain {depth} events, resolved state of {} keys",
            case.seed,
            case.history.events.len(),
            case.full_conflicted,
            resolved.len()
        );
        let ruma_sets = case.ruma.prepare(state_sets).expect("known events");
        group.bench_with_input(
            BenchmarkId::new("fedlab", target),
            &case,
            |bencher, case| {
                bencher.iter(|| {
                    resolve(
                        case.version,
                        case.version.state_res,
                        state_sets,
                        &case.events,
                    )
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("ruma", target), &case, |bencher, case| {
            bencher.iter(|| case.ruma.resolve_prepared(&ruma_sets))
        });
    }
    group.finish();
}

fn state_res(criterion: &mut Criterion) {
    bench_version(criterion, "11");
    bench_version(criterion, "12");
}

criterion_group!(benches, state_res);
criterion_main!(benches);
