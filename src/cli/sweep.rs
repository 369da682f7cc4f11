//! `fedlab sweep`: an experiment over a grid of (parameter point x seed), in parallel across
//! local cores, one record per run in `runs.jsonl` and `runs.csv`.
//!
//! Sharding: run `index` (point-major order, see `SweepSpec::runs`) belongs to shard
//! `index mod N`, so N machines given `--shard 0/N` .. `--shard N-1/N` share the grid with no
//! coordination. Resuming: a run already recorded complete in `--out` is skipped; each record
//! is appended with one write, and a half-written last line (an interrupted sweep) is cut off
//! and the run done again.
//!
//! Exit codes: 0 when every run of this shard is recorded (runs that fail their expectations
//! are data, not errors); 2 for bad input or a directory holding a different sweep.

use super::Failure;
use super::check::parse_seeds;
use super::run::apply_overrides;
use crate::report::sweep::{
    RUNS_CSV, RUNS_JSONL, SWEEP_JSON, Status, SweepRecord, SweepSpec, canonical, csv, parse_records,
};
use crate::sim::attempt::run_at_seed;
use crate::sim::experiment::parse_experiment;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};

/// The most runs one sweep may hold: a grid larger than this is a typo, not a plan.
pub const RUNS_MAX: usize = 1_000_000;

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The experiment file.
    pub experiment: PathBuf,
    /// Seeds as A..B (B excluded) or one number.
    #[arg(long)]
    pub seeds: String,
    /// A swept key with its values, e.g. `workload.messages_per_second=1,2,4` (repeatable).
    #[arg(long = "param", value_name = "KEY=V1,V2,...")]
    pub params: Vec<String>,
    /// This machine's share of the grid, I/N with 0 <= I < N: runs whose index mod N is I.
    #[arg(long)]
    pub shard: Option<String>,
    /// Parallel runs (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// The sweep directory: runs.jsonl, runs.csv, sweep.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// One run to do.
struct Job {
    point: usize,
    seed: u64,
}

pub fn run(args: SweepArgs) -> Result<(), Failure> {
    let spec = SweepSpec {
        experiment: args.experiment.display().to_string(),
        params: args
            .params
            .iter()
            .map(|param| parse_param(param))
            .collect::<Result<_, _>>()?,
        seeds: parse_seeds(&args.seeds)?,
    };
    let (shard, shards) = match &args.shard {
        Some(text) => parse_shard(text)?,
        None => (0, 1),
    };
    let text = std::fs::read_to_string(&args.experiment).map_err(|e| {
        Failure::bad_input(format!("{}: cannot read: {e}", args.experiment.display()))
    })?;
    let points = spec.points();
    let runs = spec.runs();
    if runs.len() > RUNS_MAX {
        return Err(Failure::bad_input(format!(
            "the grid has {} runs; at most {RUNS_MAX}",
            runs.len()
        )));
    }
    // Every point must load before anything runs: a bad value is bad input, not a failed run.
    let mut experiments = Vec::new();
    for point in &points {
        let overrides = overrides_of(point);
        let patched = apply_overrides(&args.experiment, &text, &overrides)?;
        let experiment = parse_experiment(&args.experiment, &patched)
            .map_err(|e| Failure::bad_input(format!("point {}: {e}", describe(point))))?;
        experiments.push(experiment);
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::bad_input(format!("cannot create {}: {e}", args.out.display())))?;
    check_spec(&args.out, &spec)?;
    let done = recover_records(&args.out)?;
    let done_runs: BTreeSet<(usize, u64)> = done.iter().map(|r| (r.point, r.seed)).collect();
    let jobs: Vec<Job> = runs
        .iter()
        .filter(|(index, _, _)| index % shards == shard)
        .filter(|(_, point, seed)| !done_runs.contains(&(*point, *seed)))
        .map(|&(_, point, seed)| Job { point, seed })
        .collect();
    let in_shard = runs
        .iter()
        .filter(|(index, _, _)| index % shards == shard)
        .count();
    eprintln!(
        "fedlab sweep: {} points x {} seeds = {} runs; shard {shard}/{shards} has {in_shard}, {} already recorded, {} to run",
        points.len(),
        spec.seeds.len(),
        runs.len(),
        in_shard - jobs.len(),
        jobs.len()
    );
    let threads = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let began = std::time::Instant::now();
    let count = jobs.len();
    let failed_runs = run_jobs(&args, &experiments, &points, jobs, threads)?;
    let seconds = began.elapsed().as_secs_f64();
    let records = recover_records(&args.out)?;
    write_atomic(
        &args.out.join(RUNS_CSV),
        csv(&canonical(records)).as_bytes(),
    )?;
    println!(
        "{count} runs in {seconds:.1} s ({:.2} runs/s on {threads} threads); {failed_runs} failed their expectations; records in {}",
        count as f64 / seconds.max(1e-3),
        args.out.display()
    );
    Ok(())
}

/// Runs the jobs on `threads` threads and appends each record as it completes; returns how
/// many runs failed an expectation or could not run.
fn run_jobs(
    args: &SweepArgs,
    experiments: &[crate::sim::experiment::Experiment],
    points: &[Vec<(String, String)>],
    jobs: Vec<Job>,
    threads: usize,
) -> Result<usize, Failure> {
    let bar = ProgressBar::with_draw_target(Some(jobs.len() as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("sweep {pos}/{len} runs [{elapsed_precise}, eta {eta}] {msg}")
    {
        bar.set_style(style);
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.out.join(RUNS_JSONL))
        .map_err(|e| {
            Failure::bad_input(format!(
                "cannot open {}: {e}",
                args.out.join(RUNS_JSONL).display()
            ))
        })?;
    // Popped from the back: reverse so runs start in grid order.
    let queue = Mutex::new(jobs.into_iter().rev().collect::<Vec<_>>());
    let (sender, receiver) = mpsc::channel::<SweepRecord>();
    let mut failed = 0;
    let mut write_error = None;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let sender = sender.clone();
            let queue = &queue;
            scope.spawn(move || {
                loop {
                    let next = queue.lock().expect("queue lock").pop();
                    let Some(job) = next else { return };
                    let record = run_one(
                        args,
                        &experiments[job.point],
                        &points[job.point],
                        job.point,
                        job.seed,
                    );
                    if sender.send(record).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        for record in receiver {
            if record.status != Status::Pass {
                failed += 1;
            }
            bar.inc(1);
            bar.set_message(format!("{failed} failed"));
            // One write per line: an interruption leaves at most one partial last line.
            if let Err(error) = file.write_all(record.json_line().as_bytes()) {
                write_error.get_or_insert(error);
                queue.lock().expect("queue lock").clear();
            }
        }
    });
    bar.finish_and_clear();
    match write_error {
        Some(error) => Err(Failure::bad_input(format!(
            "cannot write {}: {error}",
            args.out.join(RUNS_JSONL).display()
        ))),
        None => Ok(failed),
    }
}

fn run_one(
    args: &SweepArgs,
    experiment: &crate::sim::experiment::Experiment,
    point: &[(String, String)],
    point_index: usize,
    seed: u64,
) -> SweepRecord {
    let mut replay = format!("fedlab run {} --seed {seed}", args.experiment.display());
    for item in overrides_of(point) {
        replay.push_str(&format!(" --set '{item}'"));
    }
    match run_at_seed(experiment, seed, &replay) {
        Ok(output) => {
            SweepRecord::from_summary(point_index, point.to_vec(), &output.summary, replay)
        }
        Err(not_run) => SweepRecord {
            experiment: experiment.name().to_owned(),
            point: point_index,
            params: point.to_vec(),
            seed,
            status: Status::NotRun,
            failed: Vec::new(),
            metrics: Default::default(),
            detail: Some(not_run.to_string()),
            replay,
        },
    }
}

fn overrides_of(point: &[(String, String)]) -> Vec<String> {
    point
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect()
}

fn describe(point: &[(String, String)]) -> String {
    overrides_of(point).join(" ")
}

fn parse_param(text: &str) -> Result<(String, Vec<String>), Failure> {
    let bad = || {
        Failure::bad_input(format!(
            "--param {text:?}: expected KEY=V1,V2,... such as workload.messages_per_second=1,2,4"
        ))
    };
    let (key, values) = text.split_once('=').ok_or_else(bad)?;
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).collect();
    if key.trim().is_empty() || values.iter().any(String::is_empty) {
        return Err(bad());
    }
    Ok((key.trim().to_owned(), values))
}

/// `I/N` with `0 <= I < N`.
pub(crate) fn parse_shard(text: &str) -> Result<(usize, usize), Failure> {
    let bad = || {
        Failure::bad_input(format!(
            "--shard {text:?}: expected I/N with 0 <= I < N, such as 0/4"
        ))
    };
    let (index, count) = text.split_once('/').ok_or_else(bad)?;
    let index: usize = index.trim().parse().map_err(|_| bad())?;
    let count: usize = count.trim().parse().map_err(|_| bad())?;
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok((index, count))
}

/// Writes `sweep.json`, or checks that the one there describes the same sweep.
fn check_spec(dir: &Path, spec: &SweepSpec) -> Result<(), Failure> {
    let path = dir.join(SWEEP_JSON);
    let text = serde_json::to_string_pretty(spec).expect("a sweep spec serializes") + "\n";
    match std::fs::read_to_string(&path) {
        Ok(existing) => {
            let existing: SweepSpec = serde_json::from_str(&existing).map_err(|e| {
                Failure::bad_input(format!("{}: not a sweep definition: {e}", path.display()))
            })?;
            if &existing != spec {
                return Err(Failure::bad_input(format!(
                    "{} holds a different sweep ({} with {:?}, seeds {:?}); expected an empty directory or the same grid",
                    dir.display(),
                    existing.experiment,
                    existing.params,
                    existing.seeds
                )));
            }
            Ok(())
        }
        Err(_) => write_atomic(&path, text.as_bytes()),
    }
}

/// The complete records in `dir`; a partial last line is cut off the file so appends start
/// on a fresh line.
fn recover_records(dir: &Path) -> Result<Vec<SweepRecord>, Failure> {
    let path = dir.join(RUNS_JSONL);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(Failure::bad_input(format!(
                "cannot read {}: {error}",
                path.display()
            )));
        }
    };
    let records = parse_records(&text);
    let clean: String = records.iter().map(SweepRecord::json_line).collect();
    if clean != text {
        write_atomic(&path, clean.as_bytes())?;
    }
    Ok(records)
}

/// Writes through a temporary file and a rename, so readers never see half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| Failure::bad_input(format!("cannot write {}: {e}", path.display())))
}
