//! Reading experiment and topology files from disk: text to serde types to a validated
//! [`Experiment`], with every problem located by file, key path and line.
//!
//! A named topology (`topology = "mesh-5"`) is looked up as `topologies/mesh-5.toml` in the
//! experiment's folder and then in each folder above it, so `experiments/threats/x.toml` finds
//! the project's `topologies/`. A value ending in `.toml` is a path relative to the experiment.
//! Invariant: no input (any bytes, any TOML) makes loading panic; it yields a [`LoadError`].

use super::experiment::{Experiment, ExperimentFile, TopologyRef, TopologySource, validate};
use super::problem::{KeyPath, LoadError, Problem, at, list_names};
use super::source::SourceMap;
use super::topology::{Topology, TopologyFile, build_topology};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The folder named topologies are looked up in.
pub const TOPOLOGY_DIR: &str = "topologies";
/// Experiment and topology files larger than this are refused.
pub const FILE_BYTES_MAX: u64 = 1 << 20;
/// The most files one listing walks.
pub const LISTED_FILES_MAX: usize = 10_000;

/// Reads, parses and validates an experiment file and its topology.
pub fn load_experiment(path: &Path) -> Result<Experiment, LoadError> {
    let text = read_text(path)?;
    parse_experiment(path, &text)
}

/// Parses and validates experiment text as if read from `path` (which locates named
/// topologies and appears in messages).
pub fn parse_experiment(path: &Path, text: &str) -> Result<Experiment, LoadError> {
    let source = SourceMap::parse(path, text).map_err(LoadError::single)?;
    let file: ExperimentFile = toml::from_str(text)
        .map_err(|error| LoadError::single(source.problem_from_toml(&error)))?;
    let (topology, topology_source) = match &file.topology {
        TopologyRef::Inline(spec) => {
            let topology = build_topology(path, &at("topology"), spec)
                .map_err(|problems| located(&source, problems))?;
            (topology, TopologySource::Inline)
        }
        TopologyRef::Named(name) => {
            let topology_path = find_topology(path, name).map_err(|message| {
                LoadError::single(source.locate(Problem::error(path, at("topology"), message)))
            })?;
            let topology = load_topology(&topology_path)?;
            let source = TopologySource::File {
                name: name.clone(),
                path: topology_path,
            };
            (topology, source)
        }
    };
    match validate(path, &file, topology, topology_source) {
        Ok(mut experiment) => {
            experiment.warnings = experiment
                .warnings
                .into_iter()
                .map(|problem| source.locate(problem))
                .collect();
            Ok(experiment)
        }
        Err(problems) => Err(located(&source, problems)),
    }
}

/// Reads, parses and validates a topology file.
pub fn load_topology(path: &Path) -> Result<Topology, LoadError> {
    let text = read_text(path)?;
    parse_topology(path, &text)
}

/// Parses and validates topology text as if read from `path`.
pub fn parse_topology(path: &Path, text: &str) -> Result<Topology, LoadError> {
    let source = SourceMap::parse(path, text).map_err(LoadError::single)?;
    let spec: TopologyFile = toml::from_str(text)
        .map_err(|error| LoadError::single(source.problem_from_toml(&error)))?;
    build_topology(path, &KeyPath::root(), &spec).map_err(|problems| located(&source, problems))
}

fn located(source: &SourceMap<'_>, problems: Vec<Problem>) -> LoadError {
    let problems = problems
        .into_iter()
        .map(|problem| source.locate(problem))
        .collect();
    LoadError::from_problems(problems).unwrap_or_else(|| {
        LoadError::single(Problem::error(
            source.file(),
            KeyPath::root(),
            "validation failed without naming a problem (a fedlab bug)",
        ))
    })
}

fn read_text(path: &Path) -> Result<String, LoadError> {
    let fail = |message: String| LoadError::single(Problem::error(path, KeyPath::root(), message));
    let metadata = fs::metadata(path).map_err(|error| fail(describe_io(&error)))?;
    if !metadata.is_file() {
        return Err(fail("is not a file; expected a .toml file".to_owned()));
    }
    if metadata.len() > FILE_BYTES_MAX {
        return Err(fail(format!(
            "is {} bytes; at most {FILE_BYTES_MAX} are read",
            metadata.len()
        )));
    }
    let bytes = fs::read(path).map_err(|error| fail(describe_io(&error)))?;
    String::from_utf8(bytes).map_err(|error| {
        fail(format!(
            "is not UTF-8 text (invalid byte at offset {}); expected a TOML file",
            error.utf8_error().valid_up_to()
        ))
    })
}

fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "does not exist".to_owned(),
        io::ErrorKind::PermissionDenied => "cannot be read: permission denied".to_owned(),
        _ => format!("cannot be read: {error}"),
    }
}

/// The file a topology name refers to, or a message saying where it looked.
pub fn find_topology(experiment_path: &Path, name: &str) -> Result<PathBuf, String> {
    let base = experiment_path.parent().unwrap_or(Path::new(""));
    if name.ends_with(".toml") {
        let path = base.join(name);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "topology file {} does not exist; expected a path relative to the experiment file",
                path.display()
            ))
        };
    }
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if !plain {
        return Err(format!(
            "{name:?} is not a topology name; expected the name of a file in {TOPOLOGY_DIR}/ (such as \"mesh-5\"), a path ending in .toml, or a [topology] table"
        ));
    }
    let mut searched = Vec::new();
    for folder in base.ancestors() {
        let dir = folder.join(TOPOLOGY_DIR);
        let candidate = dir.join(format!("{name}.toml"));
        if candidate.is_file() {
            return Ok(candidate);
        }
        searched.push(dir);
    }
    let available = searched
        .iter()
        .find(|dir| dir.is_dir())
        .map(|dir| {
            format!(
                "; available in {}: {}",
                dir.display(),
                list_names(topology_names(dir).iter().map(String::as_str))
            )
        })
        .unwrap_or_default();
    Err(format!(
        "no topology named {name:?}: looked for {name}.toml in {}{available}",
        searched
            .iter()
            .map(|dir| dir.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn topology_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let is_toml = path
                .extension()
                .is_some_and(|extension| extension == "toml");
            is_toml
                .then(|| path.file_stem()?.to_str().map(str::to_owned))
                .flatten()
        })
        .collect();
    names.sort();
    names
}

/// Every `*.toml` file under `root` (or `root` itself if it is a file), sorted by path; hidden
/// entries are skipped.
pub fn toml_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    if root.is_file() {
        return Ok(vec![root.to_owned()]);
    }
    let mut files = Vec::new();
    let mut folders = vec![root.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder)? {
            let path = entry?.path();
            let hidden = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                folders.push(path);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "toml")
            {
                files.push(path);
            }
            if files.len() > LISTED_FILES_MAX {
                return Err(io::Error::other(format!(
                    "more than {LISTED_FILES_MAX} .toml files under {}",
                    root.display()
                )));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every experiment under `root`, sorted by path; broken files keep their errors.
pub fn load_all(root: &Path) -> io::Result<Vec<(PathBuf, Result<Experiment, LoadError>)>> {
    Ok(toml_files(root)?
        .into_iter()
        .map(|path| {
            let loaded = load_experiment(&path);
            (path, loaded)
        })
        .collect())
}
