//! Swarm mode on the command line: `fedlab run --swarm [--seed N]` and
//! `fedlab check --swarm N`. The experiment is drawn from the seed (see `sim::swarm`), pinned
//! keys (`--set KEY=VALUE`) are applied over the draw, and the result is printed and saved as
//! an experiment file, so `fedlab run <saved file> --seed N` replays it exactly.

use super::Failure;
use super::run::apply_overrides;
use crate::sim::experiment::parse_experiment;
use crate::sim::experiment_toml::experiment_toml;
use crate::sim::swarm;
use std::path::{Path, PathBuf};

/// Where drawn experiments are saved.
pub const SWARM_DIR: &str = "results/swarm";

/// Draws the experiment of `seed`, applies `pins`, saves it under `dir` and returns its path
/// and text.
pub fn prepare(seed: u64, pins: &[String], dir: &Path) -> Result<(PathBuf, String), Failure> {
    let path = dir.join(format!("{}.toml", swarm::name(seed)));
    let drawn = swarm::draw(seed, &path);
    let mut header = vec![
        format!("Drawn by `fedlab run --swarm --seed {seed}`."),
        format!("Replay: fedlab run {} --seed {seed}", path.display()),
    ];
    if !pins.is_empty() {
        header.insert(1, format!("Pinned: {}", pins.join(" ")));
    }
    let text = experiment_toml(&drawn, &header).map_err(Failure::bad_input)?;
    let text = if pins.is_empty() {
        text
    } else {
        // Overrides rewrite the document, which drops comments: put the header back.
        let pinned = apply_overrides(&path, &text, pins)?;
        let comments: String = header.iter().map(|line| format!("# {line}\n")).collect();
        format!("{comments}\n{pinned}")
    };
    parse_experiment(&path, &text).map_err(|e| Failure::bad_input(e.to_string()))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::bad_input(format!("cannot create {}: {e}", dir.display())))?;
    std::fs::write(&path, &text)
        .map_err(|e| Failure::bad_input(format!("cannot write {}: {e}", path.display())))?;
    Ok((path, text))
}

/// A seed for `run --swarm` without `--seed`: from the system's clock, printed so the run
/// can be replayed.
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    // Small seeds are easier to type back.
    (nanos % 1_000_000_000) as u64
}
