//! The record of one run: what the report writes and prints.
//!
//! Invariant: [`RunSummary`] and [`Sample`] hold only simulated results, so serializing them
//! gives the same bytes on every replay of the same seed; [`Perf`] holds what differs from
//! machine to machine.

use serde::Serialize;
use std::collections::BTreeMap;

/// One sample of the whole network at a moment of simulated time.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    pub t_ms: u64,
    /// Distinct current-state digests among honest servers that are up and in the room.
    pub divergence: u32,
    pub forward_extremities_max: u32,
    pub forward_extremities_mean: f64,
    pub servers_up: u32,
    /// (event, server) deliveries of honest events so far.
    pub deliveries: u64,
    /// Messages the network dropped so far (cut links and loss).
    pub messages_dropped: u64,
    /// Requests sent by all servers so far.
    pub requests: u64,
}

/// When a fault held and whether it did anything.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultWindow {
    pub index: usize,
    pub kind: String,
    pub description: String,
    pub from_ms: u64,
    pub until_ms: u64,
    /// Messages dropped or held because of it, or crashes/skews applied: its visible effect.
    pub effect_count: u64,
    pub took_effect: bool,
}

/// One `[expect]` key and its verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub key: String,
    pub expected: String,
    pub actual: String,
    pub passed: bool,
}

/// The simulated results of a run: `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    pub experiment: String,
    pub seed: u64,
    pub code_version: String,
    pub room_version: String,
    pub algorithm: String,
    pub fabric: String,
    pub servers: u32,
    pub duration_ms: u64,
    /// Every metric by name (see DESIGN.md "Metrics and oracles"), numbers or null when the
    /// metric does not apply (e.g. convergence time when it never converged).
    pub metrics: BTreeMap<String, serde_json::Value>,
    pub faults: Vec<FaultWindow>,
    pub expectations: Vec<Verdict>,
    pub passed: bool,
    /// When servers ended diverged: the keys that differ, the events each side holds, and
    /// since when.
    pub witness: Option<String>,
    /// A hash of the ordered delivery trace.
    pub trace_digest: String,
    /// The command that replays this run.
    pub replay: String,
}

/// Figures that vary between machines: `perf.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Perf {
    pub wall_ms: u64,
    pub simulated_ms: u64,
    /// Simulated time per wall time: above 1, faster than real time.
    pub simulated_per_wall: f64,
    /// (event, server) deliveries of honest events per wall second.
    pub events_delivered_per_wall_second: f64,
    /// The process's peak resident memory (Linux `VmHWM`); absent where the OS does not say.
    pub peak_memory_bytes: Option<u64>,
    /// CPU time of the thread that ran the simulation (Linux); unlike wall time it does not
    /// grow when other work shares the machine.
    pub cpu_ms: Option<u64>,
    pub simulated_per_cpu: Option<f64>,
    pub servers: u32,
    pub events_delivered: u64,
    /// How often servers shared parsing and verification of a received event; absent when
    /// the run shared nothing.
    pub pdu_cache: Option<crate::server::PduCacheStats>,
}

/// Everything a run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutput {
    pub summary: RunSummary,
    pub timeline: Vec<Sample>,
    /// Delivery latencies of honest events to honest servers, in ms, sorted ascending.
    pub delivery_latencies_ms: Vec<u64>,
    pub perf: Perf,
    /// `trace.jsonl` lines when tracing was asked for.
    pub trace: Option<Vec<String>>,
}

/// The nearest-rank percentile of ascending `sorted` values: the smallest value with at least
/// `per_mille`/1000 of all values at or below it. None for no values.
pub fn percentile_nearest_rank(sorted: &[u64], per_mille: u64) -> Option<u64> {
    assert!(per_mille <= 1000, "a percentile is at most 1000 per mille");
    let count = sorted.len() as u64;
    if count == 0 {
        return None;
    }
    let rank = (per_mille * count).div_ceil(1000).max(1);
    Some(sorted[(rank - 1) as usize])
}
