//! Data-driven state resolution scenarios: every `tests/data/resolve/NAME.json` is a resolver
//! input (with a `description` that derives the result from the spec), and
//! `NAME.expected.json` beside it maps algorithm names ("v1", "v2", "v2.1") to the expected
//! `{"rejected": [...], "state": [...]}`. Each listed algorithm is run and compared.
//!
//! The expected files were written by hand from the spec. After a reviewed change of
//! behaviour, `FEDLAB_UPDATE_EXPECT=1 cargo test --test state_res_scenarios` rewrites them with
//! the current output (for the algorithms each file already lists, or the room version's own
//! algorithm for a new scenario); review the diff before committing it.

use fedlab::proto::canonical_json::{Numbers, to_canonical_string};
use fedlab::proto::room_version::StateResAlgorithm;
use fedlab::proto::state_res::scenario::{Scenario, output_json};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/resolve")
}

fn inputs() -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .expect("tests/data/resolve exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.ends_with(".json") && !name.ends_with(".expected.json")
        })
        .collect();
    inputs.sort();
    inputs
}

fn expected_path(input: &Path) -> PathBuf {
    let stem = input.file_stem().unwrap().to_string_lossy();
    input.with_file_name(format!("{stem}.expected.json"))
}

/// The output of each algorithm for one input, in the expected file's layout.
fn outputs(input: &Path, algorithms: &[StateResAlgorithm]) -> Result<Map<String, Value>, String> {
    let text = std::fs::read_to_string(input).map_err(|e| e.to_string())?;
    let scenario = Scenario::parse(&text, None).map_err(|e| e.to_string())?;
    let mut outputs = Map::new();
    for &algorithm in algorithms {
        let resolved = scenario
            .run(algorithm)
            .map_err(|e| format!("{}: {e}", algorithm.name()))?;
        outputs.insert(algorithm.name().to_owned(), output_json(&resolved));
    }
    Ok(outputs)
}

fn algorithms_of(expected: &Map<String, Value>) -> Vec<StateResAlgorithm> {
    expected
        .keys()
        .map(|name| {
            StateResAlgorithm::parse(name)
                .unwrap_or_else(|| panic!("unknown algorithm {name:?} in an expected file"))
        })
        .collect()
}

/// One line per algorithm, so that a diff of the expected file reads well.
fn format_expected(outputs: &Map<String, Value>) -> String {
    let mut algorithms: Vec<(&String, &Value)> = outputs.iter().collect();
    algorithms.sort_by_key(|(name, _)| StateResAlgorithm::parse(name));
    let entries: Vec<String> = algorithms
        .iter()
        .map(|(name, output)| {
            let canonical = |value: &Value| to_canonical_string(value, Numbers::Strict).unwrap();
            let rows: Vec<String> = output["state"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| format!("  {}", canonical(row)))
                .collect();
            format!(
                " {}: {{\"rejected\": {}, \"state\": [\n{}\n ]}}",
                canonical(&Value::from(name.as_str())),
                canonical(&output["rejected"]),
                rows.join(",\n")
            )
        })
        .collect();
    format!("{{\n{}\n}}\n", entries.join(",\n"))
}

#[test]
fn scenarios_match_their_expected_results() {
    let update = std::env::var("FEDLAB_UPDATE_EXPECT").is_ok_and(|value| value == "1");
    let inputs = inputs();
    assert!(!inputs.is_empty(), "no scenario in tests/data/resolve");
    let mut failures = Vec::new();
    for input in &inputs {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let expected_file = expected_path(input);
        let expected: Option<Map<String, Value>> = std::fs::read_to_string(&expected_file)
            .ok()
            .map(|text| serde_json::from_str(&text).expect("expected files are JSON objects"));
        let algorithms = match &expected {
            Some(expected) => algorithms_of(expected),
            None if update => {
                let text = std::fs::read_to_string(input).unwrap();
                vec![Scenario::parse(&text, None).unwrap().version.state_res]
            }
            None => {
                failures.push(format!("{name}: no {}", expected_file.display()));
                continue;
            }
        };
        let actual = match outputs(input, &algorithms) {
            Ok(actual) => actual,
            Err(error) => {
                failures.push(format!("{name}: {error}"));
                continue;
            }
        };
        if update {
            std::fs::write(&expected_file, format_expected(&actual)).unwrap();
            continue;
        }
        let expected = expected.expect("checked above");
        for (algorithm, want) in &expected {
            let got = &actual[algorithm];
            if got != want {
                failures.push(format!(
                    "{name} with {algorithm}:\n  expected {want}\n  got      {got}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenario(s) differ (FEDLAB_UPDATE_EXPECT=1 rewrites the expectations after \
         review):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
