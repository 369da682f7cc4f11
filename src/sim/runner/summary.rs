//! The summary of a finished run: the metrics of `summary.json`, computed from what the
//! observers recorded and from the honest servers' counters, and the verdicts on the
//! experiment's expectations.
//!
//! Invariants: everything here reads simulated results only (no wall clock, no iteration in
//! an order that is not the plan's or a sorted map's), so a replay writes the same bytes;
//! the metrics map is a `BTreeMap`, so the order in which they are inserted never reaches the
//! output.

use super::{RunOptions, adversary, observer};
use crate::observe::record::{
    FaultWindow, Perf, RunOutput, RunSummary, Verdict, percentile_nearest_rank,
};
use crate::server::metrics::ServerMetrics;
use crate::sim::experiment::plan::RunPlan;
use crate::sim::runner::world::{Records, World};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Everything a run produced but its perf figures (filled in by the caller).
pub(super) fn summarize(
    world: &Rc<World>,
    faults: Vec<FaultWindow>,
    agreement: &observer::Agreement,
    options: &RunOptions,
    ledger: &adversary::Ledger,
) -> RunOutput {
    let plan = &world.plan;
    let records = world.records.borrow();
    let mut metrics: BTreeMap<String, Value> = BTreeMap::new();
    let servers = observer::observed(world);
    let latencies = insert_delivery_metrics(world, &servers, &records, &mut metrics);
    let converged = insert_convergence_metrics(world, &servers, &faults, agreement, &mut metrics);
    insert_state_metrics(&records, &mut metrics);
    insert_honest_totals(world, &mut metrics);
    metrics.insert("acked_lost".into(), json!(records.acked_lost));
    let adversary_verdicts = adversary::summarize(world, ledger, &mut metrics);
    metrics.insert(
        "workload_actions_done".into(),
        counts_json(&records.actions_done),
    );
    metrics.insert(
        "workload_actions_failed".into(),
        counts_json(&records.actions_failed),
    );
    let mut expectations = verdicts(plan, &metrics, &faults);
    expectations.extend(adversary_verdicts);
    let passed = expectations.iter().all(|verdict| verdict.passed);
    let witness = (!converged).then(|| witness(world, &records));
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

/// Deliveries (event, server) of the observed servers against those expected, and the
/// latency percentiles; returns the sorted latencies for `latencies.csv`.
fn insert_delivery_metrics(
    world: &World,
    servers: &[usize],
    records: &Records,
    metrics: &mut BTreeMap<String, Value>,
) -> Vec<u64> {
    // Looked up once per delivered pair: ten million at a thousand servers.
    let mut observed = vec![false; world.slots.len()];
    for &server in servers {
        observed[server] = true;
    }
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
        .filter(|(event, server)| observed[*server] && records.sent[*event].origin != *server)
        .count() as u64;
    let delivery_ratio = if expected_pairs == 0 {
        1.0
    } else {
        delivered_pairs as f64 / expected_pairs as f64
    };
    metrics.insert("events_sent".into(), json!(records.sent.len()));
    metrics.insert("deliveries".into(), json!(delivered_pairs));
    metrics.insert("deliveries_expected".into(), json!(expected_pairs));
    metrics.insert("delivery_ratio".into(), json!(round6(delivery_ratio)));
    for (metric, per_mille) in [
        ("delivery_latency_ms_p50", 500),
        ("delivery_latency_ms_p95", 950),
        ("delivery_latency_ms_p99", 990),
    ] {
        metrics.insert(
            metric.into(),
            json!(percentile_nearest_rank(&latencies, per_mille)),
        );
    }
    metrics.insert("delivery_latency_ms_max".into(), json!(latencies.last()));
    latencies
}

/// Whether every honest server that joins the room ended with the same view of it, and how
/// long after the last heal they first agreed and agreed for good; returns the first.
fn insert_convergence_metrics(
    world: &World,
    servers: &[usize],
    faults: &[FaultWindow],
    agreement: &observer::Agreement,
    metrics: &mut BTreeMap<String, Value>,
) -> bool {
    let digests: BTreeSet<String> = servers
        .iter()
        .filter_map(|&index| {
            observer::read_room(world, index, |room| adversary::view_digest(world, room))
        })
        .collect();
    let joining = world.plan.servers.iter();
    let converged =
        digests.len() == 1 && servers.len() == joining.filter(|s| s.honest && s.joins_room).count();
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
    metrics.insert("converged".into(), json!(converged));
    metrics.insert("convergence_time_ms".into(), json!(convergence_time_ms));
    metrics.insert("converged_for_good_ms".into(), json!(converged_for_good_ms));
    converged
}

/// Divergence, state resets and forward extremities, from the observers' samples.
fn insert_state_metrics(records: &Records, metrics: &mut BTreeMap<String, Value>) {
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
    metrics.insert(
        "divergence_max".into(),
        json!(observer::divergence_max(samples)),
    );
    metrics.insert("state_resets".into(), json!(records.state_resets));
    metrics.insert("state_reset_examples".into(), json!(records.reset_examples));
    metrics.insert("forward_extremities_max".into(), json!(extremities_max));
    metrics.insert(
        "forward_extremities_mean".into(),
        json!(round6(extremities_mean)),
    );
}

/// A counter of one server's metrics, to be summed over the honest servers.
pub(super) type Counter = fn(&ServerMetrics) -> u64;

/// `of` summed over the honest servers that are up.
fn honest_sum(world: &World, of: Counter) -> u64 {
    world
        .honest()
        .filter_map(|index| world.slots[index].current())
        .map(|server| of(&server.metrics()))
        .sum()
}

/// Each counter summed over the honest servers, under its metric name.
pub(super) fn insert_honest_sums(
    world: &World,
    metrics: &mut BTreeMap<String, Value>,
    counters: &[(&str, Counter)],
) {
    for (metric, of) in counters {
        metrics.insert((*metric).into(), json!(honest_sum(world, *of)));
    }
}

/// The honest servers' counters summed: verdicts on events, requests, bytes, retries.
fn insert_honest_totals(world: &World, metrics: &mut BTreeMap<String, Value>) {
    let counters: [(&str, Counter); 6] = [
        ("rejected", |m| m.pdus_rejected),
        ("soft_failed", |m| m.pdus_soft_failed),
        ("requests", |m| m.requests_sent),
        ("missing_events_requests", |m| m.missing_events_requests),
        ("state_ids_fallbacks", |m| m.state_ids_fallbacks),
        ("bytes_received", |m| {
            m.request_bytes_received + m.response_bytes_received
        }),
    ];
    insert_honest_sums(world, metrics, &counters);
    let retries: u64 = world
        .honest()
        .filter_map(|index| world.slots[index].current())
        .map(|server| server.outbound_failures())
        .sum();
    metrics.insert("retries".into(), json!(retries));
}

fn counts_json(counts: &BTreeMap<String, u64>) -> Value {
    let counts: BTreeMap<&String, Value> = counts
        .iter()
        .map(|(name, count)| (name, json!(count)))
        .collect();
    json!(counts)
}

/// Why the servers did not converge: the observers' witness and when divergence began.
fn witness(world: &World, records: &Records) -> String {
    let mut text =
        observer::witness(world).unwrap_or_else(|| "servers missing from the room".into());
    if let Some(first) = records.samples.iter().find(|s| s.divergence > 1) {
        text.push_str(&format!(
            "\n  first seen diverged at t={:.1}s",
            first.t_ms as f64 / 1000.0
        ));
    }
    text
}

fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// A hash over the driver's trace and every server's log, in order.
pub(super) fn trace_digest(world: &World, trace: &[String]) -> String {
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
