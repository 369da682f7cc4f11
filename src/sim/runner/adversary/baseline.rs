//! The baseline of an attacked run: the same experiment at the same seed with its attackers
//! taken out, run after it, so that what an attack cost honest users is a measured ratio
//! rather than a guess (`honest_latency_p99_ratio`: the p99 delivery latency of honest events
//! sent while an adversary window was open, over the same figure of the baseline).
//!
//! Invariants: the baseline keeps every server, user, fault and workload draw of the attacked
//! plan; an attacker server stays booted but idle and outside the room, and every message to
//! or from it draws from its own network stream (`world::network_model`), so the honest
//! servers see the same random draws in both runs and differ only by what the attack did;
//! both runs are deterministic, so the figures replay byte for byte.

use crate::observe::record::{RunSummary, Verdict, percentile_nearest_rank};
use crate::sim::experiment::plan::RunPlan;
use crate::sim::runner::world::{Records, World};
use serde_json::json;

/// The attacked plan without its attackers: no adversary window, and every server an
/// adversary controlled kept (so indices, names and faults stay valid) but idle: it joins
/// nothing, sends nothing and, not honest, is left out of every metric.
pub fn plan(attacked: &RunPlan) -> RunPlan {
    let mut baseline = attacked.clone();
    for adversary in &attacked.adversaries {
        baseline.servers[adversary.server.0].joins_room = false;
    }
    baseline.adversaries.clear();
    baseline
}

/// The windows in which some adversary attacked, in simulated ms: each from its start to its
/// end or the final phase, whichever comes first.
pub fn attack_windows(plan: &RunPlan) -> Vec<(u64, u64)> {
    let final_ms = plan.final_phase_at.as_ms();
    plan.adversaries
        .iter()
        .map(|adversary| {
            (
                adversary.from.as_ms(),
                adversary.until.as_ms().min(final_ms),
            )
        })
        .collect()
}

/// The p99 delivery latency of honest events sent inside one of `windows`, or `None` when
/// no such event was delivered.
pub fn latency_p99_in(records: &Records, windows: &[(u64, u64)]) -> Option<u64> {
    let mut latencies: Vec<u64> = records
        .delivered
        .iter()
        .filter(|((event, _), _)| {
            let sent_at = records.sent[*event].sent_at_ms;
            windows
                .iter()
                .any(|(from, until)| (*from..*until).contains(&sent_at))
        })
        .map(|(_, latency)| latency)
        .collect();
    latencies.sort_unstable();
    percentile_nearest_rank(&latencies, 990)
}

/// The p99 delivery latency of every honest event of a run.
fn latency_p99(records: &Records) -> Option<u64> {
    let mut latencies: Vec<u64> = records.delivered.values().collect();
    latencies.sort_unstable();
    percentile_nearest_rank(&latencies, 990)
}

/// Adds the baseline's figures and their ratio to the attacked run's summary, and checks
/// `honest_latency_p99_ratio_max` when the experiment sets it.
pub fn compare(
    attacked: &World,
    baseline: &World,
    windows: &[(u64, u64)],
    summary: &mut RunSummary,
) {
    let during = latency_p99_in(&attacked.records.borrow(), windows);
    let baseline_records = baseline.records.borrow();
    let baseline_during = latency_p99_in(&baseline_records, windows);
    let ratio = match (during, baseline_during) {
        (Some(during), Some(base)) if base > 0 => {
            Some((during as f64 / base as f64 * 1e6).round() / 1e6)
        }
        _ => None,
    };
    let metrics = &mut summary.metrics;
    metrics.insert(
        "baseline_delivery_latency_ms_p99".into(),
        json!(latency_p99(&baseline_records)),
    );
    metrics.insert(
        "baseline_delivery_latency_ms_p99_during_attacks".into(),
        json!(baseline_during),
    );
    metrics.insert("honest_latency_p99_ratio".into(), json!(ratio));
    if let Some(bound) = attacked.plan.expect.honest_latency_p99_ratio_max {
        summary.expectations.push(Verdict {
            key: "honest_latency_p99_ratio_max".into(),
            expected: format!("<= {bound}"),
            actual: ratio.map_or_else(
                || "not measured".to_owned(),
                |ratio| {
                    format!(
                        "{ratio} ({} ms / {} ms)",
                        show(during),
                        show(baseline_during)
                    )
                },
            ),
            passed: ratio.is_some_and(|ratio| ratio <= bound),
        });
        summary.passed = summary.expectations.iter().all(|verdict| verdict.passed);
    }
}

fn show(ms: Option<u64>) -> String {
    ms.map_or_else(|| "none".to_owned(), |ms| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::runner::world::SentEvent;

    fn sent(at_ms: u64) -> SentEvent {
        SentEvent {
            event_id: format!("$e{at_ms}"),
            sent_at_ms: at_ms,
            origin: 0,
        }
    }

    #[test]
    fn only_events_sent_inside_a_window_count() {
        let mut records = Records {
            sent: vec![sent(500), sent(1_500), sent(2_500)],
            ..Records::default()
        };
        records.delivered.insert((0, 1), 9_000);
        records.delivered.insert((1, 1), 700);
        records.delivered.insert((2, 1), 800);
        assert_eq!(latency_p99_in(&records, &[(1_000, 3_000)]), Some(800));
        assert_eq!(latency_p99_in(&records, &[(0, 1_000)]), Some(9_000));
        assert_eq!(latency_p99_in(&records, &[(3_000, 4_000)]), None);
        assert_eq!(latency_p99(&records), Some(9_000));
    }
}
