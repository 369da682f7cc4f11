//! Swarm mode: an experiment drawn from a seed. Server count, topology shape (groups, users,
//! link latencies and loss), room version, workload rates, run and settle times and the fault
//! schedule (kinds, targets, times) all come from the seed, so many seeds explore many
//! different worlds instead of one world many times.
//!
//! Adversaries are not drawn: the runner does not simulate Byzantine servers yet, and a drawn
//! experiment it refuses would test nothing.
//!
//! Invariants: [`draw`] depends on the seed alone (its RNG is the seed's `"swarm"` component,
//! apart from the run's own RNG); what it returns passes validation (a fault schedule the
//! loader rejects is redrawn, a bounded number of times, then left out); the expectations are
//! the ones every honest run must meet after its settle phase: convergence, no acknowledged
//! event lost, every honest event delivered, and no state reset unless the specification itself
//! makes one in the drawn world (see [`state_resets_max`]).

use super::experiment::duration::{SignedDuration, SimDuration};
use super::experiment::expect::Expect;
use super::experiment::experiment::RoomVersionId;
use super::experiment::fault::{FaultFile, FaultKind, Shape};
use super::experiment::numbers::{Probability, Rate};
use super::experiment::topology::{BetweenFile, Fabric, GroupFile, LinkFile, LinksFile};
use super::experiment::topology::{TopologyFile, UsersPerServer};
use super::experiment::workload::Workload;
use super::experiment::{ExperimentFile, TopologyRef, parse_experiment};
use super::runner::world::component_rng;
use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::Path;

/// Group names, in order; a drawn topology uses the first few.
const GROUPS: [&str; 3] = ["a", "b", "c"];
/// Room versions drawn (the runner's default and the two before it).
const ROOM_VERSIONS: [&str; 3] = ["10", "11", "12"];
/// Fault schedules drawn before giving up on faults for this seed.
const SCHEDULE_DRAWS_MAX: u32 = 16;
/// Most faults one drawn experiment holds.
const FAULTS_MAX: usize = 3;

/// The name of the experiment drawn from `seed` (also its file stem when saved).
pub fn name(seed: u64) -> String {
    format!("swarm-seed{seed}")
}

/// The experiment drawn from `seed`, checked as if saved at `path`.
pub fn draw(seed: u64, path: &Path) -> ExperimentFile {
    let mut rng = component_rng(seed, "swarm");
    let topology = draw_topology(&mut rng);
    let servers = server_names(&topology);
    let active_s = rng.random_range(30..=120u64);
    let settle_s = rng.random_range(60..=90u64);
    let mut file = ExperimentFile {
        name: name(seed),
        description: format!(
            "Drawn by swarm mode from seed {seed}: {} servers in {} groups.",
            servers.len(),
            topology.group.len()
        ),
        out_of_model: None,
        room_version: RoomVersionId(
            ROOM_VERSIONS[rng.random_range(0..ROOM_VERSIONS.len())].to_owned(),
        ),
        fabric: Some(Fabric::Fast),
        duration: secs(active_s + settle_s),
        settle: secs(settle_s),
        seeds: vec![seed],
        slow: false,
        topology: TopologyRef::Inline(Box::new(topology)),
        workload: draw_workload(&mut rng),
        faults: Vec::new(),
        adversaries: Vec::new(),
        expect: Expect {
            converged: Some(true),
            delivery_ratio_min: Probability::new(1.0),
            state_resets_max: Some(0),
            acked_lost_max: Some(0),
            ..Expect::default()
        },
    };
    let groups: Vec<String> = match &file.topology {
        TopologyRef::Inline(topology) => topology.group.keys().cloned().collect(),
        TopologyRef::Named(_) => Vec::new(),
    };
    for _ in 0..SCHEDULE_DRAWS_MAX {
        let count = rng.random_range(0..=FAULTS_MAX);
        file.faults = (0..count)
            .map(|_| draw_fault(&mut rng, &servers, &groups, active_s))
            .collect();
        file.faults.sort_by_key(|fault| fault.at);
        let rate = file.workload.messages_per_second.per_second();
        if !file
            .faults
            .iter()
            .all(|fault| has_traffic_to_act_on(fault, rate))
        {
            continue;
        }
        file.expect.state_resets_max = state_resets_max(&file);
        let text = toml::to_string(&file).expect("a drawn experiment serializes");
        if parse_experiment(path, &text).is_ok() {
            return file;
        }
    }
    file.faults.clear();
    file.expect.state_resets_max = state_resets_max(&file);
    file
}

/// Messages the room sends, on average, during a fault's window before the fault is drawn
/// again: a fault that acts on traffic (drops, holds or delays messages) must act on some, or
/// its `took effect` verdict fails the run although nothing went wrong. Loss needs this many
/// messages times the loss probability, so that a few are likely dropped.
const FAULT_WINDOW_MESSAGES_MIN: f64 = 8.0;

/// Whether the workload likely sends enough during `fault`'s window for it to take effect.
/// A clock skew, a crash and a flood take effect whatever the traffic.
fn has_traffic_to_act_on(fault: &FaultFile, messages_per_second: f64) -> bool {
    let window_s = fault.for_.map_or(0, SimDuration::as_ms) as f64 / 1000.0;
    let messages = messages_per_second * window_s;
    match fault.kind {
        FaultKind::ClockSkew | FaultKind::Crash | FaultKind::Flood => true,
        FaultKind::Loss => {
            let loss = fault.loss.map_or(0.0, Probability::value);
            messages * loss >= FAULT_WINDOW_MESSAGES_MIN / 2.0
        }
        _ => messages >= FAULT_WINDOW_MESSAGES_MIN,
    }
}

/// No state reset is expected, except where a clock skew meets state changes: there the
/// specification itself resets state, so the count is measured, not bounded. State resolution
/// (v2 and v2.1 alike) orders conflicted events of one mainline position by
/// `origin_server_ts`; a server whose clock runs ahead stamps its events late, so one of them
/// can sort after a later event of the same sender, such as its leave, and then fail the
/// authorization rules (the sender is not joined) although it came first. Its key goes back to
/// the older value on every server (seed 39 does this: a name set by the skewed creator before
/// it left and rejoined).
fn state_resets_max(file: &ExperimentFile) -> Option<u64> {
    let skewed = file
        .faults
        .iter()
        .any(|fault| fault.kind == FaultKind::ClockSkew);
    let changes_state = !file.workload.state_changes_per_second.is_zero();
    (!(skewed && changes_state)).then_some(0)
}

fn secs(value: u64) -> SimDuration {
    SimDuration::from_secs(value).expect("drawn times are short")
}

fn millis(value: u64) -> SimDuration {
    SimDuration::from_ms(value).expect("drawn times are short")
}

fn draw_link(rng: &mut ChaCha8Rng, low_ms: u64, high_ms: u64) -> LinkFile {
    let latency_min = rng.random_range(low_ms..=high_ms);
    let latency_max = latency_min + rng.random_range(0..=high_ms);
    LinkFile {
        latency_min: millis(latency_min),
        latency_max: Some(millis(latency_max)),
        loss: if rng.random_bool(0.25) {
            Probability::new(f64::from(rng.random_range(1..=5u32)) / 100.0)
                .expect("a few percent is a probability")
        } else {
            Probability::ZERO
        },
    }
}

fn draw_topology(rng: &mut ChaCha8Rng) -> TopologyFile {
    let group_count = rng.random_range(1..=GROUPS.len());
    let mut group = BTreeMap::new();
    for name in &GROUPS[..group_count] {
        let within = draw_link(rng, 1, 30);
        group.insert(
            (*name).to_owned(),
            GroupFile {
                count: Some(rng.random_range(1..=4)),
                link: Some(within),
                ..GroupFile::default()
            },
        );
    }
    // At least two servers, so there is federation to test.
    if group_count == 1 {
        if let Some(only) = group.get_mut(GROUPS[0]) {
            only.count = Some(only.count.unwrap_or(1).max(2));
        }
    }
    let mut between = Vec::new();
    for (index, first) in GROUPS[..group_count].iter().enumerate() {
        for second in &GROUPS[index + 1..group_count] {
            let link = draw_link(rng, 20, 150);
            between.push(BetweenFile {
                groups: [(*first).to_owned(), (*second).to_owned()],
                latency_min: link.latency_min,
                latency_max: link.latency_max,
                loss: link.loss,
            });
        }
    }
    TopologyFile {
        description: String::new(),
        fabric: None,
        users_per_server: UsersPerServer::one(rng.random_range(1..=3)),
        group,
        links: LinksFile {
            default: LinkFile::default(),
            between,
        },
    }
}

fn server_names(topology: &TopologyFile) -> Vec<String> {
    topology
        .group
        .iter()
        .flat_map(|(name, group)| {
            (1..=group.count.unwrap_or(0)).map(move |n| format!("{name}{n}.test"))
        })
        .collect()
}

fn draw_workload(rng: &mut ChaCha8Rng) -> Workload {
    let rate = |rng: &mut ChaCha8Rng, tenths_max: u32| {
        Rate::new(f64::from(rng.random_range(0..=tenths_max)) / 10.0).expect("a drawn rate")
    };
    Workload {
        messages_per_second: Rate::new(f64::from(rng.random_range(1..=40u32)) / 10.0)
            .expect("a drawn rate"),
        state_changes_per_second: rate(rng, 3),
        admins_per_server: rng.random_range(0..=1),
        ..Workload::default()
    }
}

/// A fault at a drawn time before the final phase, with a drawn `for` that ends before it.
fn draw_fault(
    rng: &mut ChaCha8Rng,
    servers: &[String],
    groups: &[String],
    active_s: u64,
) -> FaultFile {
    const KINDS: [FaultKind; 9] = [
        FaultKind::Partition,
        FaultKind::Isolate,
        FaultKind::Cut,
        FaultKind::Latency,
        FaultKind::Loss,
        FaultKind::Crash,
        FaultKind::ClockSkew,
        FaultKind::Slow,
        FaultKind::Flood,
    ];
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let at_s = rng.random_range(1..active_s.saturating_sub(6).max(2));
    let for_s = rng.random_range(5..=30u64).min(active_s - at_s - 1).max(1);
    let mut fault = FaultFile::new(secs(at_s), kind);
    fault.for_ = Some(secs(for_s));
    let server = |rng: &mut ChaCha8Rng| servers[rng.random_range(0..servers.len())].clone();
    let name = |rng: &mut ChaCha8Rng| {
        if groups.len() > 1 && rng.random_bool(0.5) {
            groups[rng.random_range(0..groups.len())].clone()
        } else {
            servers[rng.random_range(0..servers.len())].clone()
        }
    };
    match kind {
        FaultKind::Partition => {
            if groups.len() > 1 && rng.random_bool(0.5) {
                let split = rng.random_range(1..groups.len());
                fault.sides = Some(vec![groups[..split].to_vec(), groups[split..].to_vec()]);
            } else {
                let shapes = [
                    Shape::Halves,
                    Shape::MinorityMajority,
                    Shape::Ring,
                    Shape::Bridge,
                ];
                let fitting: Vec<Shape> = shapes
                    .into_iter()
                    .filter(|shape| shape.servers_min() <= servers.len())
                    .collect();
                fault.shape = Some(fitting[rng.random_range(0..fitting.len())]);
            }
        }
        FaultKind::Isolate | FaultKind::Crash => fault.server = Some(server(rng)),
        FaultKind::Cut => {
            fault.from = Some(name(rng));
            fault.to = Some(name(rng));
            fault.one_way = Some(rng.random_bool(0.5));
        }
        FaultKind::Latency => {
            fault.between = Some([name(rng), name(rng)]);
            let low = rng.random_range(100..=2_000u64);
            fault.latency_min = Some(millis(low));
            fault.latency_max = Some(millis(low + rng.random_range(0..=2_000u64)));
        }
        FaultKind::Loss => {
            fault.between = Some([name(rng), name(rng)]);
            fault.loss = Probability::new(f64::from(rng.random_range(1..=9u32)) / 10.0);
        }
        FaultKind::ClockSkew => {
            fault.server = Some(server(rng));
            let magnitude = rng.random_range(1..=120i64) * 1_000;
            let sign = if rng.random_bool(0.5) { -1 } else { 1 };
            fault.offset = SignedDuration::from_ms(sign * magnitude);
        }
        FaultKind::Slow => {
            fault.server = Some(server(rng));
            fault.extra_latency = Some(millis(rng.random_range(100..=3_000u64)));
        }
        FaultKind::Flood => {
            fault.server = Some(server(rng));
            fault.messages_per_second = Rate::new(f64::from(rng.random_range(5..=50u32)));
        }
        FaultKind::Heal | FaultKind::Restart => {}
    }
    fault
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::experiment_toml::experiment_toml;

    #[test]
    fn draws_are_valid_deterministic_and_varied() {
        let path = Path::new("swarm.toml");
        let mut servers = std::collections::BTreeSet::new();
        let mut kinds = std::collections::BTreeSet::new();
        let mut bounded_resets = 0;
        let mut unbounded_resets = 0;
        for seed in 0..60 {
            let file = draw(seed, path);
            assert_eq!(file, draw(seed, path), "seed {seed}");
            let text = experiment_toml(&file, &[]).unwrap();
            let experiment = parse_experiment(path, &text)
                .unwrap_or_else(|error| panic!("seed {seed}: {error}\n{text}"));
            assert_eq!(experiment.file, file);
            servers.insert(experiment.topology.servers.len());
            kinds.extend(file.faults.iter().map(|fault| fault.kind));
            let rate = file.workload.messages_per_second.per_second();
            assert!(
                file.faults
                    .iter()
                    .all(|fault| has_traffic_to_act_on(fault, rate)),
                "seed {seed}"
            );
            let skewed = file
                .faults
                .iter()
                .any(|fault| fault.kind == FaultKind::ClockSkew);
            if skewed && !file.workload.state_changes_per_second.is_zero() {
                assert_eq!(file.expect.state_resets_max, None, "seed {seed}");
                unbounded_resets += 1;
            } else {
                assert_eq!(file.expect.state_resets_max, Some(0), "seed {seed}");
                bounded_resets += 1;
            }
        }
        assert!(servers.len() >= 5, "{servers:?}");
        assert!(
            bounded_resets > 0 && unbounded_resets > 0,
            "{bounded_resets} {unbounded_resets}"
        );
        assert!(kinds.len() >= 7, "{kinds:?}");
    }
}
