//! Experiment and topology files: every shipped file loads and validates; each kind of broken
//! file makes `fedlab list` exit 2 with a message naming the file, the line, the key and what
//! was expected, while the good files are still listed; loading never panics on any text.

use fedlab::sim::experiment::load::toml_files;
use fedlab::sim::experiment::{
    Attack, Experiment, ExperimentFile, Fabric, FaultKind, load_experiment, load_topology,
    parse_experiment,
};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped_experiments() -> Vec<(PathBuf, Experiment)> {
    toml_files(&repo().join("experiments"))
        .unwrap()
        .into_iter()
        .map(|path| {
            let experiment = load_experiment(&path).unwrap_or_else(|error| panic!("{error}"));
            (path, experiment)
        })
        .collect()
}

#[test]
fn every_shipped_topology_loads() {
    let files = toml_files(&repo().join("topologies")).unwrap();
    let names: BTreeSet<String> = files
        .iter()
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for required in [
        "mesh-5",
        "two-regions",
        "giant-hub",
        "wide-100",
        "wide-500",
        "wide-1000",
    ] {
        assert!(
            names.contains(required),
            "topologies/{required}.toml is missing"
        );
    }
    for path in files {
        let topology = load_topology(&path).unwrap_or_else(|error| panic!("{error}"));
        assert!(!topology.servers.is_empty(), "{}", path.display());
    }
    let count = |name: &str| {
        load_topology(&repo().join(format!("topologies/{name}.toml")))
            .unwrap()
            .servers
            .len()
    };
    assert_eq!(
        [count("mesh-5"), count("two-regions"), count("giant-hub")],
        [5, 6, 21]
    );
    assert_eq!(
        [count("wide-100"), count("wide-500"), count("wide-1000")],
        [100, 500, 1000]
    );
    let hub = load_topology(&repo().join("topologies/giant-hub.toml")).unwrap();
    let hub_users = hub.servers[0].users as u64;
    assert_eq!(hub.servers[0].name, "hub.test");
    assert!(
        hub_users * 2 > hub.users_total(),
        "the hub holds most users"
    );
}

#[test]
fn every_shipped_experiment_loads_without_warnings() {
    let experiments = shipped_experiments();
    let names: BTreeSet<&str> = experiments.iter().map(|(_, e)| e.name()).collect();
    for required in [
        "quickstart",
        "partition-heal",
        "split-brain-power",
        "crash-restart",
        "clock-skew",
        "catch-up-after-outage",
        "extremities-growth",
        "v2-vs-v21-v11",
        "v2-vs-v21-v12",
    ] {
        assert!(names.contains(required), "experiment {required} is missing");
    }
    assert_eq!(names.len(), experiments.len(), "two files share a name");
    for (path, experiment) in &experiments {
        assert!(
            experiment.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            experiment.warnings
        );
        assert!(
            experiment.file.out_of_model.is_some() || experiment.file.expect.count() >= 2,
            "{} checks too little",
            path.display()
        );
    }
}

#[test]
fn quickstart_is_small_and_shows_a_partition_healing() {
    let quickstart = load_experiment(&repo().join("experiments/quickstart.toml")).unwrap();
    assert_eq!(quickstart.topology.servers.len(), 5);
    assert_eq!(quickstart.room_version.id, "12");
    // The runner executes experiments on the fast fabric (the turmoil runner is not built yet).
    assert_eq!(quickstart.fabric, Fabric::Fast);
    assert_eq!(quickstart.duration().as_ms(), 60_000);
    assert!(!quickstart.file.slow);
    let kinds: Vec<FaultKind> = quickstart.faults.iter().map(|fault| fault.kind).collect();
    assert_eq!(kinds, [FaultKind::Partition, FaultKind::Heal]);
}

#[test]
fn threat_experiments_cover_every_row_and_attack() {
    let threats: Vec<(PathBuf, Experiment)> = shipped_experiments()
        .into_iter()
        .filter(|(path, _)| path.parent().unwrap().ends_with("threats"))
        .collect();
    assert_eq!(
        threats.len(),
        14,
        "one file per threat (the transit/within-room, unsolicited/abusive and transit/backfill \
         rows split in two)"
    );
    let out_of_model: BTreeSet<&str> = threats
        .iter()
        .filter(|(_, e)| e.file.out_of_model.is_some())
        .map(|(_, e)| e.name())
        .collect();
    assert_eq!(
        out_of_model,
        BTreeSet::from(["disclosure-during-transmission", "disclosure-within-room"])
    );
    for (path, experiment) in &threats {
        if experiment.file.out_of_model.is_none() {
            assert!(
                !experiment.faults.is_empty() || !experiment.adversaries.is_empty(),
                "{} attempts nothing",
                path.display()
            );
        }
    }
    let used: BTreeSet<Attack> = threats
        .iter()
        .flat_map(|(_, e)| e.adversaries.iter().map(|adversary| adversary.attack))
        .collect();
    for attack in Attack::ALL {
        assert!(
            used.contains(&attack),
            "no threat experiment uses {}",
            attack.name()
        );
    }
}

/// The two halves of the v2-vs-v21 comparison must run the same history: only the room
/// version, the names and the expectations may differ.
#[test]
fn v2_vs_v21_twins_differ_only_in_room_version_and_expectations() {
    let load = |version: &str| {
        load_experiment(&repo().join(format!("experiments/v2-vs-v21-v{version}.toml"))).unwrap()
    };
    let (v11, v12) = (load("11"), load("12"));
    assert_eq!(v11.room_version.state_res.name(), "v2");
    assert_eq!(v12.room_version.state_res.name(), "v2.1");
    let comparable = |experiment: &Experiment| {
        let mut file = experiment.file.clone();
        file.name.clear();
        file.description.clear();
        file.room_version.0.clear();
        file.expect = Default::default();
        file
    };
    assert_eq!(comparable(&v11), comparable(&v12));
    // v12 bounds resets by the figure measured for v2.1 (its file explains it); v11 only
    // measures them.
    assert!(v12.file.expect.state_resets_max.is_some());
    assert_eq!(v11.file.expect.state_resets_max, None);
}

/// `shrink` and `--set` write experiment files back: serialising must give a file that loads
/// to the same experiment.
#[test]
fn experiment_files_round_trip_through_toml() {
    for (path, experiment) in shipped_experiments() {
        let text = toml::to_string(&experiment.file).unwrap();
        let reparsed: ExperimentFile = toml::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}\n{text}", path.display()));
        assert_eq!(reparsed, experiment.file, "{}", path.display());
        let reloaded = parse_experiment(&path, &text).unwrap();
        assert_eq!(reloaded.faults, experiment.faults, "{}", path.display());
    }
}

/// A scratch project folder with `topologies/mesh-5.toml` and a good experiment.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "fedlab-experiment-files-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("experiments")).unwrap();
        fs::create_dir_all(dir.join("topologies")).unwrap();
        fs::copy(
            repo().join("topologies/mesh-5.toml"),
            dir.join("topologies/mesh-5.toml"),
        )
        .unwrap();
        let scratch = Self { dir };
        scratch.write(
            "experiments/good.toml",
            "name = \"good\"\ndescription = \"fine\"\ntopology = \"mesh-5\"\nduration = \"5m\"\n",
        );
        scratch
    }

    fn write(&self, relative: &str, text: &str) {
        fs::write(self.dir.join(relative), text).unwrap();
    }

    /// Runs `fedlab list experiments` here: (exit code, stdout, stderr).
    fn list(&self) -> (i32, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_fedlab"))
            .args(["list", "experiments"])
            .current_dir(&self.dir)
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

const HEAD: &str = "name = \"broken\"\ndescription = \"x\"\ntopology = \"mesh-5\"\n";

/// Writes `experiments/broken.toml` and checks that `list` exits 2, still lists the good
/// file, and prints every expected fragment on stderr.
fn assert_broken(case: &str, text: &str, expected: &[&str]) {
    let scratch = Scratch::new(case);
    scratch.write("experiments/broken.toml", text);
    let (code, stdout, stderr) = scratch.list();
    assert_eq!(code, 2, "{case}: stdout {stdout}\nstderr {stderr}");
    assert!(
        stdout.contains("experiments/good.toml"),
        "{case}: good file not listed:\n{stdout}"
    );
    assert!(
        !stdout.contains("broken.toml"),
        "{case}: broken file listed:\n{stdout}"
    );
    for fragment in expected {
        assert!(
            stderr.contains(fragment),
            "{case}: {fragment:?} not in\n{stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
}

#[test]
fn unknown_key_names_the_key_and_the_known_ones() {
    assert_broken(
        "unknown-key",
        &format!("{HEAD}duration = \"5m\"\ncolour = \"red\"\n"),
        &[
            "experiments/broken.toml:5: `colour`: unknown field `colour`, expected one of `name`, `description`",
        ],
    );
    assert_broken(
        "unknown-nested-key",
        &format!(
            "{HEAD}duration = \"5m\"\n[[fault]]\nat = \"1m\"\nkind = \"heal\"\nsevrer = \"x\"\n"
        ),
        &["experiments/broken.toml:8: `fault[0].sevrer`: unknown field `sevrer`"],
    );
    assert_broken(
        "unknown-expectation",
        &format!("{HEAD}duration = \"5m\"\n[expect]\ndelivery_ratio = 1\n"),
        &[
            "experiments/broken.toml:6: `expect.delivery_ratio`: unknown field `delivery_ratio`, expected one of",
            "`delivery_ratio_min`",
        ],
    );
}

#[test]
fn bad_duration_says_what_a_duration_is() {
    assert_broken(
        "bad-duration",
        &format!("{HEAD}duration = \"5x\"\n"),
        &[
            "experiments/broken.toml:4: `duration`: \"5x\" is not a duration",
            "expected a number followed by ms, s, m or h",
        ],
    );
}

#[test]
fn unknown_server_in_a_fault_names_the_known_ones() {
    assert_broken(
        "unknown-server",
        &format!(
            "{HEAD}duration = \"5m\"\n[[fault]]\nat = \"1m\"\nkind = \"partition\"\nsides = [[\"hs1.test\"], [\"hs2.test\", \"hs9.test\"]]\n"
        ),
        &[
            "experiments/broken.toml:8: `fault[0].sides[1][1]`: \"hs9.test\" is not in the topology; expected a group (hs) or a server (hs1.test, hs2.test, hs3.test, hs4.test, hs5.test)",
        ],
    );
}

#[test]
fn missing_topology_says_where_it_looked() {
    assert_broken(
        "missing-topology",
        "name = \"broken\"\ndescription = \"x\"\ntopology = \"mesh-6\"\nduration = \"5m\"\n",
        &[
            "experiments/broken.toml:3: `topology`: no topology named \"mesh-6\"",
            "available in topologies: mesh-5",
        ],
    );
}

#[test]
fn fault_after_the_end_names_the_final_phase() {
    assert_broken(
        "fault-after-end",
        &format!(
            "{HEAD}duration = \"5m\"\n[[fault]]\nat = \"10m\"\nkind = \"isolate\"\nserver = \"hs1.test\"\n"
        ),
        &[
            "experiments/broken.toml:6: `fault[0].at`: 10m is after the end of the run (duration 5m); expected a time before the final phase, which begins at 4m",
        ],
    );
    assert_broken(
        "fault-ends-late",
        &format!(
            "{HEAD}duration = \"5m\"\n[[fault]]\nat = \"3m\"\nfor = \"2m\"\nkind = \"isolate\"\nserver = \"hs1.test\"\n"
        ),
        &[
            "experiments/broken.toml:7: `fault[0].for`: ends at 5m, after the final phase begins at 4m",
        ],
    );
}

#[test]
fn bad_room_version_lists_the_known_ones() {
    assert_broken(
        "bad-room-version",
        &format!("{HEAD}duration = \"5m\"\nroom_version = \"13\"\n"),
        &[
            "experiments/broken.toml:5: `room_version`: unknown room version \"13\"; known versions are 1 to 12",
        ],
    );
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    assert_broken(
        "many-problems",
        &format!(
            "{HEAD}duration = \"5m\"\nseeds = []\n[[fault]]\nat = \"1m\"\nkind = \"restart\"\nserver = \"hs2.test\"\n[[fault]]\nat = \"2m\"\nkind = \"heal\"\n[[adversary]]\nserver = \"evil.test\"\nattack = \"spam\"\nparams = {{ rate = 5 }}\n"
        ),
        &[
            "`seeds`: is empty; expected at least one seed",
            "`fault[0]`: restarts \"hs2.test\", which is not crashed at 1m",
            "warning: `fault[1]`: heals nothing",
            "`adversary[0].server`: \"evil.test\" is not a server of the topology",
            "`adversary[0].params.rate`: attack \"spam\" has no parameter \"rate\"; expected one of messages_per_second",
        ],
    );
}

#[test]
fn problems_in_a_topology_file_name_that_file() {
    let scratch = Scratch::new("broken-topology");
    scratch.write("topologies/bad.toml", "[group.x]\ncount = 0\n");
    scratch.write(
        "experiments/broken.toml",
        "name = \"broken\"\ndescription = \"x\"\ntopology = \"bad\"\nduration = \"5m\"\n",
    );
    let (code, _, stderr) = scratch.list();
    assert_eq!(code, 2);
    assert!(
        stderr.contains("topologies/bad.toml:2: `group.x.count`: 0 servers; expected 1 to 10000 in the whole topology"),
        "{stderr}"
    );
}

#[test]
fn list_shows_the_shipped_experiments() {
    let output = Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .args(["list"])
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<&str> = stdout.lines().collect();
    assert!(rows[0].starts_with("PATH"), "{stdout}");
    let paths: Vec<&str> = rows[1..]
        .iter()
        .map(|row| row.split_whitespace().next().unwrap())
        .collect();
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    assert_eq!(paths, sorted, "rows are sorted by path");
    let quickstart = rows
        .iter()
        .find(|row| row.contains("quickstart.toml"))
        .unwrap();
    let cells: Vec<&str> = quickstart.split_whitespace().collect();
    assert_eq!(
        &cells[..7],
        [
            "experiments/quickstart.toml",
            "quickstart",
            "mesh-5",
            "5",
            "1m",
            "1",
            "-"
        ]
    );
    assert!(
        rows.iter()
            .any(|row| row.contains("scale-1000") && row.contains(" slow "))
    );
}

#[test]
fn list_of_a_missing_folder_is_bad_input() {
    let output = Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .args(["list", "no/such/folder"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no/such/folder does not exist"));
}

fn shipped_texts() -> Vec<(PathBuf, String)> {
    toml_files(&repo().join("experiments"))
        .unwrap()
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

/// Applies `edits` (position, bytes removed, text inserted) to `text` at char boundaries.
fn mutate(text: &str, edits: &[(usize, usize, String)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (position, removed, inserted) in edits {
        let start = position % (chars.len() + 1);
        let end = (start + removed).min(chars.len());
        chars.splice(start..end, inserted.chars());
    }
    chars.into_iter().collect()
}

fn check_never_panics(path: &Path, text: &str) {
    match parse_experiment(path, text) {
        Ok(experiment) => {
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
            let plan = experiment.resolve(1, &mut rng);
            assert!(
                plan.faults
                    .iter()
                    .all(|fault| fault.undo_at <= plan.final_phase_at)
            );
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Mutated shipped files (bytes cut, TOML punctuation and keys inserted) load or fail
    /// cleanly; whatever loads also resolves.
    #[test]
    fn loading_mutated_files_never_panics(
        file in any::<prop::sample::Index>(),
        edits in prop::collection::vec(
            (any::<usize>(), 0..12usize, "[\\[\\]{}=\"',.#\n 0-9a-z_-]{0,10}|(at|kind|sides|server|for|until|duration|settle|seeds|shape|\"-1\"|\"1h\"|1e400|-0|\\[\\[fault\\]\\]|\\[topology\\])"),
            1..4,
        ),
    ) {
        let texts = shipped_texts();
        let (path, text) = &texts[file.index(texts.len())];
        check_never_panics(path, &mutate(text, &edits));
    }

    #[test]
    fn loading_arbitrary_text_never_panics(text in "\\PC{0,300}") {
        check_never_panics(&repo().join("experiments/x.toml"), &text);
    }
}
