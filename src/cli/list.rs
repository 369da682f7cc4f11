//! `fedlab list [PATH]`: one row per experiment file under PATH (default `experiments/`),
//! sorted by path, with its name, topology, server count, duration, seeds and slow marker.
//!
//! A broken file does not hide the others: every good file is listed, then the problems of
//! the broken ones go to stderr and the command exits 2. Warnings go to stderr and do not
//! change the exit code.

use super::Failure;
use crate::sim::experiment::{Experiment, load_all};
use clap::Args;
use std::path::PathBuf;

/// Where `list` looks when given no path.
pub const DEFAULT_DIR: &str = "experiments";
/// Seeds shown before the list is shortened to a count.
const SEEDS_SHOWN_MAX: usize = 4;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// A folder searched recursively for *.toml experiment files, or one file.
    pub path: Option<PathBuf>,
}

pub fn run(args: ListArgs) -> Result<(), Failure> {
    let root = args.path.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    if !root.exists() {
        return Err(Failure::bad_input(format!(
            "{} does not exist; expected a folder of experiment files or one .toml file",
            root.display()
        )));
    }
    let loaded = load_all(&root)
        .map_err(|error| Failure::bad_input(format!("cannot list {}: {error}", root.display())))?;
    if loaded.is_empty() {
        return Err(Failure::bad_input(format!(
            "no .toml experiment files under {}",
            root.display()
        )));
    }
    let mut rows = vec![header()];
    let mut broken = Vec::new();
    let mut warnings = Vec::new();
    for (path, result) in &loaded {
        match result {
            Ok(experiment) => {
                rows.push(row(path, experiment));
                warnings.extend(experiment.warnings.iter().map(ToString::to_string));
            }
            Err(error) => broken.push((path, error)),
        }
    }
    if rows.len() > 1 {
        print_table(&rows);
    }
    for warning in &warnings {
        eprintln!("{warning}");
    }
    if broken.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "{} of {} experiment files could not be loaded:",
        broken.len(),
        loaded.len()
    );
    for (_, error) in broken {
        message.push('\n');
        message.push_str(&error.to_string());
    }
    Err(Failure::bad_input(message))
}

fn header() -> Vec<String> {
    [
        "PATH",
        "NAME",
        "TOPOLOGY",
        "SERVERS",
        "DURATION",
        "SEEDS",
        "SLOW",
        "DESCRIPTION",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn row(path: &std::path::Path, experiment: &Experiment) -> Vec<String> {
    let file = &experiment.file;
    let description = match &file.out_of_model {
        Some(_) => format!("(out of model) {}", file.description),
        None => file.description.clone(),
    };
    vec![
        path.display().to_string(),
        file.name.clone(),
        experiment.topology_source.label().to_owned(),
        experiment.topology.servers.len().to_string(),
        file.duration.to_string(),
        seeds(&file.seeds),
        if file.slow { "slow" } else { "-" }.to_owned(),
        description,
    ]
}

fn seeds(seeds: &[u64]) -> String {
    if seeds.len() <= SEEDS_SHOWN_MAX {
        return seeds
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
    }
    let first: Vec<String> = seeds[..SEEDS_SHOWN_MAX - 1]
        .iter()
        .map(ToString::to_string)
        .collect();
    format!("{},... ({})", first.join(","), seeds.len())
}

/// Prints left-aligned columns; the last column is not padded.
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[column]));
            }
        }
        println!("{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_seed_lists_are_shortened() {
        assert_eq!(seeds(&[1, 2, 3]), "1,2,3");
        assert_eq!(seeds(&[1, 2, 3, 4, 5, 6]), "1,2,3,... (6)");
    }
}
