//! `fedlab run`: one experiment at one seed, with its summary, result files and the exact
//! command that replays it.

use super::Failure;
use crate::sim::experiment::parse_experiment;
use crate::sim::runner::{self, RunOptions};
use clap::Args;
use std::path::{Path, PathBuf};

/// The experiment `fedlab run` runs when given none.
pub const QUICKSTART: &str = "experiments/quickstart.toml";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file (default: experiments/quickstart.toml).
    pub experiment: Option<PathBuf>,
    /// The seed (default: the experiment's first seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override a key of the experiment file, e.g. `--set duration=2m --set workload.messages_per_second=5`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Where results go (default: results/<experiment>/seed-<N>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write trace.jsonl with every send, fault and room event the driver saw.
    #[arg(long)]
    pub trace: bool,
    /// Draw every parameter not pinned by --set from the seed; the drawn experiment is printed
    /// and saved under results/swarm/ for replay.
    #[arg(long, conflicts_with = "experiment")]
    pub swarm: bool,
    /// Every server parses, verifies and stores its own copy of each event and resolves every
    /// merge itself instead of sharing the work with the run's other servers: slower, same
    /// results (for checking that sharing changes nothing).
    #[arg(long)]
    pub no_sharing: bool,
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    if args.swarm {
        let seed = args.seed.unwrap_or_else(super::swarm::fresh_seed);
        let (path, text) =
            super::swarm::prepare(seed, &args.overrides, Path::new(super::swarm::SWARM_DIR))?;
        print!("{text}");
        eprintln!(
            "fedlab run --swarm: seed {seed}, drawn experiment saved to {}",
            path.display()
        );
        return run(RunArgs {
            experiment: Some(path),
            seed: Some(seed),
            overrides: Vec::new(),
            swarm: false,
            ..args
        });
    }
    let path = args
        .experiment
        .clone()
        .unwrap_or_else(|| PathBuf::from(QUICKSTART));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::bad_input(format!("{}: cannot read: {e}", path.display())))?;
    let text = apply_overrides(&path, &text, &args.overrides)?;
    let experiment =
        parse_experiment(&path, &text).map_err(|e| Failure::bad_input(e.to_string()))?;
    for warning in &experiment.warnings {
        eprintln!("{warning}");
    }
    let seed = args
        .seed
        .or_else(|| experiment.file.seeds.first().copied())
        .unwrap_or(1);
    let mut rng = runner::world::component_rng(seed, "plan");
    let plan = experiment.resolve(seed, &mut rng);
    let replay = replay_command(&path, seed, &args.overrides);
    eprintln!(
        "fedlab run: {} (seed {seed}): {} servers, room v{}, {} fabric, {} simulated, {} faults",
        plan.experiment,
        plan.servers.len(),
        plan.room_version.id,
        plan.fabric.name(),
        format_ms(plan.duration.as_ms()),
        plan.faults.len()
    );
    let name = plan.experiment.clone();
    let options = RunOptions {
        trace: args.trace,
        replay: replay.clone(),
        sharing: if args.no_sharing {
            runner::Sharing::PerServer
        } else {
            runner::Sharing::Shared
        },
    };
    let output = runner::run(plan, &options)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("results")
            .join(&name)
            .join(format!("seed-{seed}"))
    });
    crate::report::write_run(&out, &output).map_err(|e| {
        Failure::bad_input(format!("cannot write results to {}: {e}", out.display()))
    })?;
    let mut stdout = std::io::stdout();
    crate::report::print_summary(&output, &mut stdout)
        .map_err(|e| Failure::bad_input(format!("cannot print the summary: {e}")))?;
    println!("results: {}", out.display());
    match crate::report::first_failure(&output.summary) {
        None => Ok(()),
        Some(failure) => Err(Failure::failed(format!(
            "{name} seed {seed}: {failure}; replay: {replay}"
        ))),
    }
}

fn format_ms(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// The command line that replays this run exactly.
pub(super) fn replay_command(path: &Path, seed: u64, overrides: &[String]) -> String {
    let mut command = format!("fedlab run {} --seed {seed}", path.display());
    for item in overrides {
        command.push_str(&format!(" --set '{item}'"));
    }
    command
}

/// Applies `KEY=VALUE` overrides to the experiment's TOML text. VALUE is read as TOML (a
/// number, a boolean, a quoted string, an array), or as a bare string when it is not.
pub(crate) fn apply_overrides(
    path: &Path,
    text: &str,
    overrides: &[String],
) -> Result<String, Failure> {
    if overrides.is_empty() {
        return Ok(text.to_owned());
    }
    let mut document: toml::Table = toml::from_str(text)
        .map_err(|e| Failure::bad_input(format!("{}: not valid TOML: {e}", path.display())))?;
    for item in overrides {
        let (key, raw) = item.split_once('=').ok_or_else(|| {
            Failure::bad_input(format!(
                "--set {item:?}: expected KEY=VALUE, e.g. duration=2m"
            ))
        })?;
        let value = parse_value(raw);
        set_dotted(&mut document, key.trim(), value)
            .map_err(|problem| Failure::bad_input(format!("--set {item:?}: {problem}")))?;
    }
    toml::to_string(&document).map_err(|e| Failure::bad_input(format!("--set: {e}")))
}

fn parse_value(raw: &str) -> toml::Value {
    let wrapped = format!("value = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut table) => table
            .remove("value")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts
        .pop()
        .filter(|part| !part.is_empty())
        .ok_or("empty key")?;
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{part}` is not a table"))?;
    }
    current.insert(last.to_owned(), value);
    Ok(())
}
