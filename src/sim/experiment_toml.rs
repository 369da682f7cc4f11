//! Writing an experiment back out as a TOML file that the normal loader reads: what `shrink`
//! leaves behind and what swarm mode saves, so a drawn or simplified case replays exactly.
//!
//! Invariants: [`experiment_toml`] output parses back (`toml::from_str`) to the same
//! [`ExperimentFile`] it was written from; header lines become `#` comments and never change
//! the value; [`inline_topology`] makes a file self-contained, so it loads from any folder.

use super::experiment::load::find_topology;
use super::experiment::topology::TopologyFile;
use super::experiment::{Experiment, ExperimentFile, TopologyRef, TopologySource};

/// The TOML text of `file`, preceded by `header` lines as `#` comments.
pub fn experiment_toml(file: &ExperimentFile, header: &[String]) -> Result<String, String> {
    let body = toml::to_string(file).map_err(|error| format!("cannot write TOML: {error}"))?;
    let mut text = String::new();
    for line in header {
        for part in line.lines() {
            text.push_str("# ");
            text.push_str(part);
            text.push('\n');
        }
    }
    if !header.is_empty() {
        text.push('\n');
    }
    text.push_str(&body);
    Ok(text)
}

/// `experiment`'s file with a named topology replaced by its contents as an inline
/// `[topology]` table, so the file loads wherever it is saved.
pub fn inline_topology(experiment: &Experiment) -> Result<ExperimentFile, String> {
    let mut file = experiment.file.clone();
    if let (TopologyRef::Named(name), TopologySource::File { .. }) =
        (&file.topology, &experiment.topology_source)
    {
        let path = find_topology(&experiment.path, name)?;
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("{}: cannot read: {error}", path.display()))?;
        let spec: TopologyFile = toml::from_str(&text)
            .map_err(|error| format!("{}: not a topology: {error}", path.display()))?;
        file.topology = TopologyRef::Inline(Box::new(spec));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::experiment::load::{load_experiment, parse_experiment, toml_files};
    use std::path::Path;

    /// Every shipped experiment, written out (topology inlined or not), loads back equal.
    #[test]
    fn shipped_experiments_round_trip() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
        let files = toml_files(&root).unwrap();
        assert!(files.len() > 5);
        for path in files {
            let experiment = load_experiment(&path).unwrap();
            for file in [
                experiment.file.clone(),
                inline_topology(&experiment).unwrap(),
            ] {
                let text =
                    experiment_toml(&file, &["a header".into(), "two\nlines".into()]).unwrap();
                let back: ExperimentFile = toml::from_str(&text).unwrap();
                assert_eq!(back, file, "{}:\n{text}", path.display());
                let loaded = parse_experiment(&path, &text).unwrap();
                assert_eq!(loaded.topology, experiment.topology, "{}", path.display());
            }
        }
    }

    /// Every simplification the shrinker makes of every shipped experiment round-trips too:
    /// many shapes of file (fewer groups, servers, faults; other rates and times).
    #[test]
    fn shrink_candidates_round_trip() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
        let mut checked = 0;
        for path in toml_files(&root).unwrap() {
            let experiment = load_experiment(&path).unwrap();
            let file = inline_topology(&experiment).unwrap();
            for (what, candidate) in crate::sim::shrink::candidates(&file) {
                let text = experiment_toml(&candidate, &[]).unwrap();
                let back: ExperimentFile = toml::from_str(&text).unwrap();
                assert_eq!(back, candidate, "{}: {what}", path.display());
                checked += 1;
            }
        }
        assert!(checked > 100, "{checked}");
    }

    #[test]
    fn header_lines_are_comments() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart.toml");
        let experiment = load_experiment(&path).unwrap();
        let text = experiment_toml(&experiment.file, &["fails: x\ny".into()]).unwrap();
        assert!(text.starts_with("# fails: x\n# y\n\n"), "{text}");
    }
}
