//! The runner: executes one [`RunPlan`] (an experiment at one seed) and returns everything it
//! produced: summary, timeline, delivery latencies, perf figures and, on request, the trace.
//!
//! The plan's fabric decides where the run happens: on the fast fabric, one current-thread
//! tokio runtime with paused time whose clock jumps to the next timer; on turmoil, one host per
//! server and a driver client (see `turmoil.rs`). Workload, nemesis and observers are the same
//! code on both, acting through the [`World`].
//!
//! Invariants: the summary depends only on the plan (experiment, seed) and the code, so a
//! replay reproduces it byte for byte; wall-clock figures go to `Perf` only; a plan the runner
//! cannot execute faithfully is refused with an error, never run as something else.

pub mod adversary;
pub mod nemesis;
pub mod observer;
pub mod perf;
pub mod turmoil;
pub mod workload;
pub mod world;

use crate::observe::record::{
    FaultWindow, Perf, RunOutput, RunSummary, Verdict, percentile_nearest_rank,
};
use crate::server::config::Defences;
use crate::sim::experiment::plan::RunPlan;
use crate::sim::experiment::topology::Fabric;
use crate::sim::runner::world::{Setup, World};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::rc::Rc;

/// Why a plan cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Unsupported(String),
    /// The simulation itself failed (a bug in fedlab, not a verdict on the experiment).
    #[error("simulation failed: {0}")]
    Simulation(String),
}

/// Options that change what is recorded or how fast, never what happens.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub trace: bool,
    /// The command that replays this run, for the summary.
    pub replay: String,
    /// How servers share the parsing and verification of the events they receive.
    pub sharing: Sharing,
}

/// Whether the servers of a run share pure work on received events. Either way the results
/// are the same bytes (a test holds this); sharing only saves time and memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sharing {
    /// One cache per run: an event that reaches many servers as the same signed bytes is
    /// parsed and verified once, and stored once.
    #[default]
    Shared,
    /// Every server parses, verifies and holds its own copy, as separate processes would.
    PerServer,
}

/// Runs a plan to its end.
pub fn run(plan: RunPlan, options: &RunOptions) -> Result<RunOutput, RunError> {
    run_with_defences(plan, options, Defences::default())
}

/// Runs a plan with the honest servers' defences set as given: tests turn one off to show that
/// the attack it stops then succeeds.
pub fn run_with_defences(
    plan: RunPlan,
    options: &RunOptions,
    defences: Defences,
) -> Result<RunOutput, RunError> {
    if let Some(adversary) = plan
        .adversaries
        .iter()
        .find(|adversary| !adversary::supported(adversary.attack))
    {
        return Err(RunError::Unsupported(format!(
            "adversary {:?} on {}: this attack is not simulated yet, so this experiment \
             cannot be run honestly",
            adversary.attack.name(),
            plan.servers[adversary.server.0].name
        )));
    }
    let started = perf::Start::now();
    let duration_ms = plan.duration.as_ms();
    let setup = Setup {
        share_pdus: options.sharing == Sharing::Shared,
        defences,
    };
    // The same run without its attackers, to compare honest latency with: planned now,
    // run after the attacked run so that perf figures are the attacked run's alone.
    let baseline = (!plan.adversaries.is_empty()).then(|| adversary::baseline::plan(&plan));
    let (world, (windows, agreement, ledger)) = execute(plan, setup)?;
    let mut output = summarize(&world, windows, &agreement, options, &ledger);
    let deliveries = output.summary.metrics.get("deliveries");
    let deliveries = deliveries.and_then(Value::as_u64).unwrap_or(0);
    let cache = world.pdu_cache.as_ref().map(|cache| cache.stats());
    output.perf = started.finish(duration_ms, world.slots.len(), deliveries, cache);
    if let Some(baseline) = baseline {
        let windows = adversary::baseline::attack_windows(&world.plan);
        let (twin, _) = execute(baseline, setup)?;
        adversary::baseline::compare(&world, &twin, &windows, &mut output.summary);
    }
    Ok(output)
}

/// Runs `plan` on its fabric to its end.
fn execute(plan: RunPlan, setup: Setup) -> Result<(Rc<World>, Driven), RunError> {
    let duration_ms = plan.duration.as_ms();
    Ok(match plan.fabric {
        Fabric::Fast => run_fast(plan, setup),
        Fabric::Turmoil => self::turmoil::run(plan, setup, move |world| drive(world, duration_ms))?,
    })
}

/// What driving a world produces: the fault windows, when the servers converged for good,
/// and the adversaries' ledger.
type Driven = (Vec<FaultWindow>, observer::Agreement, Rc<adversary::Ledger>);

/// The part of a run both fabrics share: workload, adversaries, nemesis and observers over
/// `world`.
async fn drive(world: Rc<World>, duration_ms: u64) -> Driven {
    workload::start(&world);
    let ledger = adversary::start(&world);
    let nemesis = tokio::task::spawn_local(nemesis::run(world.clone()));
    let agreement = observer::run(world.clone(), duration_ms).await;
    let windows = nemesis.await.unwrap_or_default();
    (windows, agreement, ledger)
}

/// A run on the fast fabric: one current-thread runtime with paused time.
fn run_fast(plan: RunPlan, setup: Setup) -> (Rc<World>, Driven) {
    let duration_ms = plan.duration.as_ms();
    crate::server::clock::block_on_paused(async move {
        let world = World::boot(plan, setup);
        let result = drive(world.clone(), duration_ms).await;
        (world, result)
    })
}

fn summarize(
    world: &Rc<World>,
    faults: Vec<crate::observe::record::FaultWindow>,
    agreement: &observer::Agreement,
    options: &RunOptions,
    ledger: &adversary::Ledger,
) -> RunOutput {
    let plan = &world.plan;
    let servers = observer::observed(world);
    let records = world.records.borrow();
    // Sized at once: at a thousand servers this is ten million latencies, and growing it by
    // doubling made it the run's memory peak.
    let mut latencies: Vec<u64> = Vec::with_capacity(records.delivered.len());
    latencies.extend(records.delivered.values());
    latencies.sort_unstable();
    let expected_pairs: u64 = records
        .sent
        .iter()
        .map(|sent| {
            servers
                .iter()
                .filter(|&&server| server != sent.origin)
                .count() as u64
        })
        .sum();
    let delivered_pairs = records
        .delivered
        .keys()
        .filter(|(event, server)| {
            servers.contains(server) && records.sent[*event].origin != *server
        })
        .count() as u64;
    let digests: std::collections::BTreeSet<String> = servers
        .iter()
        .filter_map(|&index| {
            observer::read_room(world, index, |room| adversary::view_digest(world, room))
        })
        .collect();
    let converged = digests.len() == 1
        && servers.len()
            == plan
                .servers
                .iter()
                .filter(|s| s.honest && s.joins_room)
                .count();
    let last_heal_ms = faults
        .iter()
        .map(|window| window.until_ms)
        .max()
        .unwrap_or(0);
    // The merge is done at the first agreement after the heal; agreement for good cannot
    // begin before the workload stops, so it is reported apart.
    let since_heal = |at_ms: Option<u64>| {
        converged.then(|| at_ms.unwrap_or(last_heal_ms).saturating_sub(last_heal_ms))
    };
    let convergence_time_ms = since_heal(agreement.first_after(last_heal_ms));
    let converged_for_good_ms = since_heal(agreement.for_good_since());
    let mut totals = crate::server::metrics::ServerMetrics::default();
    for index in world.honest() {
        if let Some(server) = world.slots[index].current() {
            let m = server.metrics();
            totals.requests_sent += m.requests_sent;
            totals.pdus_rejected += m.pdus_rejected;
            totals.pdus_soft_failed += m.pdus_soft_failed;
            totals.pdus_accepted += m.pdus_accepted;
            totals.response_bytes_received += m.response_bytes_received;
            totals.request_bytes_received += m.request_bytes_received;
            totals.missing_events_requests += m.missing_events_requests;
            totals.state_ids_fallbacks += m.state_ids_fallbacks;
            totals.transactions_received += m.transactions_received;
        }
    }
    let retries: u64 = world
        .honest()
        .filter_map(|i| world.slots[i].current())
        .map(|s| s.outbound_failures())
        .sum();
    let samples = &records.samples;
    let extremities_max = samples
        .iter()
        .map(|s| s.forward_extremities_max)
        .max()
        .unwrap_or(0);
    let extremities_mean = if samples.is_empty() {
        0.0
    } else {
        samples
            .iter()
            .map(|s| s.forward_extremities_mean)
            .sum::<f64>()
            / samples.len() as f64
    };
    let delivery_ratio = if expected_pairs == 0 {
        1.0
    } else {
        delivered_pairs as f64 / expected_pairs as f64
    };
    let mut metrics: BTreeMap<String, Value> = BTreeMap::new();
    metrics.insert("converged".into(), json!(converged));
    metrics.insert("convergence_time_ms".into(), json!(convergence_time_ms));
    metrics.insert("converged_for_good_ms".into(), json!(converged_for_good_ms));
    metrics.insert(
        "divergence_max".into(),
        json!(observer::divergence_max(samples)),
    );
    metrics.insert("events_sent".into(), json!(records.sent.len()));
    metrics.insert("deliveries".into(), json!(delivered_pairs));
    metrics.insert("deliveries_expected".into(), json!(expected_pairs));
    metrics.insert("delivery_ratio".into(), json!(round6(delivery_ratio)));
    metrics.insert(
        "delivery_latency_ms_p50".into(),
        json!(percentile_nearest_rank(&latencies, 500)),
    );
    metrics.insert(
        "delivery_latency_ms_p95".into(),
        json!(percentile_nearest_rank(&latencies, 950)),
    );
    metrics.insert(
        "delivery_latency_ms_p99".into(),
        json!(percentile_nearest_rank(&latencies, 990)),
    );
    metrics.insert("delivery_latency_ms_max".into(), json!(latencies.last()));
    metrics.insert("state_resets".into(), json!(records.state_resets));
    metrics.insert("state_reset_examples".into(), json!(records.reset_examples));
    metrics.insert("forward_extremities_max".into(), json!(extremities_max));
    metrics.insert(
        "forward_extremities_mean".into(),
        json!(round6(extremities_mean)),
    );
    metrics.insert("rejected".into(), json!(totals.pdus_rejected));
    metrics.insert("soft_failed".into(), json!(totals.pdus_soft_failed));
    metrics.insert("requests".into(), json!(totals.requests_sent));
    metrics.insert(
        "bytes_received".into(),
        json!(totals.request_bytes_received + totals.response_bytes_received),
    );
    metrics.insert("retries".into(), json!(retries));
    metrics.insert(
        "missing_events_requests".into(),
        json!(totals.missing_events_requests),
    );
    metrics.insert(
        "state_ids_fallbacks".into(),
        json!(totals.state_ids_fallbacks),
    );
    metrics.insert("acked_lost".into(), json!(records.acked_lost));
    let adversary_verdicts = adversary::summarize(world, ledger, &mut metrics);
    let actions: BTreeMap<String, Value> = records
        .actions_done
        .iter()
        .map(|(name, count)| (name.clone(), json!(count)))
        .collect();
    metrics.insert("workload_actions_done".into(), json!(actions));
    let failed: BTreeMap<String, Value> = records
        .actions_failed
        .iter()
        .map(|(name, count)| (name.clone(), json!(count)))
        .collect();
    metrics.insert("workload_actions_failed".into(), json!(failed));
    let mut expectations = verdicts(plan, &metrics, &faults);
    expectations.extend(adversary_verdicts);
    let passed = expectations.iter().all(|verdict| verdict.passed);
    let witness = if converged {
        None
    } else {
        let mut text =
            observer::witness(world).unwrap_or_else(|| "servers missing from the room".into());
        if let Some(first) = samples.iter().find(|s| s.divergence > 1) {
            text.push_str(&format!(
                "\n  first seen diverged at t={:.1}s",
                first.t_ms as f64 / 1000.0
            ));
        }
        Some(text)
    };
    let summary = RunSummary {
        experiment: plan.experiment.clone(),
        seed: plan.seed,
        code_version: env!("CARGO_PKG_VERSION").to_owned(),
        room_version: plan.room_version.id.to_owned(),
        algorithm: plan.room_version.state_res.name().to_owned(),
        fabric: plan.fabric.name().to_owned(),
        servers: plan.servers.len() as u32,
        duration_ms: plan.duration.as_ms(),
        metrics,
        faults,
        expectations,
        passed,
        witness,
        trace_digest: trace_digest(world, &records.trace),
        replay: options.replay.clone(),
    };
    RunOutput {
        summary,
        timeline: records.samples.clone(),
        delivery_latencies_ms: latencies,
        perf: Perf::default(),
        trace: options.trace.then(|| records.trace.clone()),
    }
}

fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// A hash over the driver's trace and every server's log, in order.
fn trace_digest(world: &World, trace: &[String]) -> String {
    let mut hasher = Sha256::new();
    for line in trace {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    for slot in &world.slots {
        hasher.update(slot.name.as_bytes());
        hasher.update(slot.log().digest());
    }
    observer::hex(&hasher.finalize())
}

fn verdicts(
    plan: &RunPlan,
    metrics: &BTreeMap<String, Value>,
    faults: &[crate::observe::record::FaultWindow],
) -> Vec<Verdict> {
    let expect = &plan.expect;
    let mut out = Vec::new();
    let number = |key: &str| metrics.get(key).and_then(Value::as_f64);
    let mut at_most = |key: &str, metric: &str, bound: Option<u64>| {
        if let Some(bound) = bound {
            let actual = number(metric);
            out.push(Verdict {
                key: key.into(),
                expected: format!("<= {bound}"),
                actual: actual.map_or("not measured".into(), |v| format!("{v}")),
                passed: actual.is_some_and(|v| v <= bound as f64),
            });
        }
    };
    at_most("state_resets_max", "state_resets", expect.state_resets_max);
    at_most(
        "unauthorized_accepted_max",
        "unauthorized_accepted",
        expect.unauthorized_accepted_max,
    );
    at_most("acked_lost_max", "acked_lost", expect.acked_lost_max);
    at_most(
        "accepted_after_acl_max",
        "accepted_after_acl",
        expect.accepted_after_acl_max,
    );
    at_most(
        "leaked_events_max",
        "leaked_events",
        expect.leaked_events_max,
    );
    at_most(
        "victim_queue_max",
        "victim_queue_peak",
        expect.victim_queue_max,
    );
    at_most(
        "tampered_accepted_max",
        "tampered_accepted",
        expect.tampered_accepted_max,
    );
    at_most(
        "forward_extremities_max",
        "forward_extremities_max",
        expect.forward_extremities_max,
    );
    at_most(
        "latency_p99_max",
        "delivery_latency_ms_p99",
        expect.latency_p99_max.map(|d| d.as_ms()),
    );
    at_most(
        "convergence_within",
        "convergence_time_ms",
        expect.convergence_within.map(|d| d.as_ms()),
    );
    if let Some(converged) = expect.converged {
        let actual = metrics
            .get("converged")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        out.push(Verdict {
            key: "converged".into(),
            expected: converged.to_string(),
            actual: actual.to_string(),
            passed: actual == converged,
        });
    }
    if let Some(minimum) = expect.delivery_ratio_min {
        let actual = number("delivery_ratio").unwrap_or(0.0);
        out.push(Verdict {
            key: "delivery_ratio_min".into(),
            expected: format!(">= {}", minimum.value()),
            actual: format!("{actual}"),
            passed: actual >= minimum.value(),
        });
    }
    for window in faults.iter().filter(|window| !window.took_effect) {
        out.push(Verdict {
            key: format!("fault[{}] took effect", window.index),
            expected: "an effect (dropped, delayed or crashed)".into(),
            actual: "none".into(),
            passed: false,
        });
    }
    out
}
