//! Synthetic run outputs for the report tests: a partition-and-heal run with realistic
//! shapes (divergence during the partition, extremities growing, a latency tail), and
//! builders to make it empty or failing.

#![allow(dead_code)]

use fedlab::observe::record::{FaultWindow, Perf, RunOutput, RunSummary, Sample, Verdict};
use serde_json::json;
use std::collections::BTreeMap;

/// A small deterministic generator so the synthetic data has texture without a dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

pub fn fault(
    index: usize,
    kind: &str,
    description: &str,
    from_ms: u64,
    until_ms: u64,
    effect_count: u64,
) -> FaultWindow {
    FaultWindow {
        index,
        kind: kind.into(),
        description: description.into(),
        from_ms,
        until_ms,
        effect_count,
        took_effect: effect_count > 0,
    }
}

pub fn verdict(key: &str, expected: &str, actual: &str, passed: bool) -> Verdict {
    Verdict {
        key: key.into(),
        expected: expected.into(),
        actual: actual.into(),
        passed,
    }
}

/// Five servers, two minutes, a partition from 30 s to 75 s that the network heals.
pub fn partition_run() -> RunOutput {
    let duration_ms = 120_000;
    let partition = 30_000..75_000;
    let mut random = Lcg(7);
    let mut timeline = Vec::new();
    let mut deliveries = 0;
    let mut dropped = 0;
    let mut requests = 0;
    for step in 0..=(duration_ms / 250) {
        let t_ms = step * 250;
        let split = partition.contains(&t_ms);
        let settling = (75_000..82_000).contains(&t_ms);
        let divergence = match (split, settling) {
            (true, _) if (52_000..53_000).contains(&t_ms) => 3,
            (true, _) => 2,
            (false, true) => 2,
            _ => 1,
        };
        let extremities_max = if split {
            1 + ((t_ms - partition.start) / 9_000) as u32
        } else if settling {
            2
        } else {
            1
        };
        deliveries += 15 + random.below(10);
        requests += 20 + random.below(5);
        if split {
            dropped += 8 + random.below(4);
        }
        timeline.push(Sample {
            t_ms,
            divergence,
            forward_extremities_max: extremities_max,
            forward_extremities_mean: 1.0
                + f64::from(extremities_max - 1) * 0.6
                + random.below(100) as f64 / 1000.0,
            servers_up: if (40_000..46_000).contains(&t_ms) {
                4
            } else {
                5
            },
            deliveries,
            messages_dropped: dropped,
            requests,
        });
    }
    let mut latencies: Vec<u64> = (0..4000)
        .map(|index| {
            if index % 25 == 0 {
                // Events sent during the partition arrive after the heal.
                5_000 + random.below(40_000)
            } else {
                20 + random.below(60) + random.below(120)
            }
        })
        .collect();
    latencies.sort_unstable();
    let mut metrics = BTreeMap::new();
    metrics.insert("converged".into(), json!(true));
    metrics.insert("convergence_time_ms".into(), json!(6_750));
    metrics.insert("delivery_ratio".into(), json!(1.0));
    metrics.insert("delivery_latency_ms_p50".into(), json!(92));
    metrics.insert("delivery_latency_ms_p99".into(), json!(41_250));
    metrics.insert("forward_extremities_max".into(), json!(5));
    metrics.insert("forward_extremities_mean".into(), json!(1.4375));
    metrics.insert("state_resets".into(), json!(0));
    metrics.insert("acked_lost".into(), json!(null));
    RunOutput {
        summary: RunSummary {
            experiment: "partition-heal".into(),
            seed: 7,
            code_version: "0.1.0-test".into(),
            room_version: "12".into(),
            algorithm: "v2.1".into(),
            fabric: "turmoil".into(),
            servers: 5,
            duration_ms,
            metrics,
            faults: vec![
                fault(0, "partition", "sides [eu] | [us]", 30_000, 75_000, 4_321),
                fault(1, "latency", "eu<->us 400-900 ms", 50_000, 90_000, 812),
                fault(2, "crash", "hs3 (restart at 46 s)", 40_000, 46_000, 1),
                fault(3, "loss", "10% on hs1<->hs2", 100_000, 110_000, 0),
            ],
            expectations: vec![
                verdict("converged", "true", "true", true),
                verdict("convergence_within", "60 s", "6.75 s", true),
                verdict("delivery_ratio_min", "1.0", "1.0", true),
                verdict("state_resets_max", "0", "0", true),
            ],
            passed: true,
            witness: None,
            trace_digest: "sha256:0f3a".into(),
            replay: "fedlab run experiments/partition-heal.toml --seed 7".into(),
        },
        timeline,
        delivery_latencies_ms: latencies,
        perf: Perf {
            wall_ms: 4_210,
            simulated_ms: duration_ms,
            simulated_per_wall: 28.5,
            events_delivered_per_wall_second: 950.0,
            peak_memory_bytes: Some(48_000_000),
            ..Perf::default()
        },
        trace: Some(vec![
            r#"{"t_ms":0,"kind":"send","event":"$a"}"#.into(),
            r#"{"t_ms":12,"kind":"deliver","event":"$a","to":"hs2"}"#.into(),
        ]),
    }
}

/// The same run with nothing sampled and nothing delivered.
pub fn empty_run() -> RunOutput {
    let mut output = partition_run();
    output.timeline.clear();
    output.delivery_latencies_ms.clear();
    output.trace = None;
    output
}

/// The partition run with a failed expectation and a witness.
pub fn failed_run() -> RunOutput {
    let mut output = partition_run();
    let summary = &mut output.summary;
    summary.metrics.insert("converged".into(), json!(false));
    summary.expectations[0] = verdict("converged", "true", "false", false);
    summary.expectations[2] = verdict("delivery_ratio_min", "1.0", "0.97", false);
    summary.passed = false;
    summary.witness = Some(
        "hs1 and hs4 disagree on (m.room.power_levels, \"\") since t=75.25 s: $pl_a vs $pl_b"
            .into(),
    );
    output
}

/// The partition run with many overlapping faults of many kinds, narrow latencies (a linear
/// CDF axis) and a timeline long enough to be thinned.
pub fn crowded_run() -> RunOutput {
    let mut output = partition_run();
    let kinds = [
        "partition",
        "cut",
        "latency",
        "loss",
        "crash",
        "restart",
        "clock-skew",
        "slow",
        "isolate",
    ];
    output.summary.faults = kinds
        .iter()
        .enumerate()
        .map(|(index, kind)| {
            let from_ms = 20_000 + index as u64 * 4_000;
            let effect = if *kind == "slow" {
                0
            } else {
                10 + index as u64
            };
            fault(index, kind, "", from_ms, from_ms + 15_000, effect)
        })
        .collect();
    let base = output.timeline.clone();
    output.timeline = (0..20_000u64)
        .map(|step| {
            let mut sample = base[(step as usize * base.len()) / 20_000].clone();
            sample.t_ms = step * 6;
            sample
        })
        .collect();
    output
        .delivery_latencies_ms
        .retain(|&latency| latency < 1_000);
    output
}

/// One sample only, and a single delivery.
pub fn single_sample_run() -> RunOutput {
    let mut output = partition_run();
    output.timeline.truncate(1);
    output.delivery_latencies_ms = vec![42];
    output
}
