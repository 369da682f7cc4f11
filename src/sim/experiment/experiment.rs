//! An experiment file (`experiments/*.toml`) as written ([`ExperimentFile`]) and as checked
//! against its topology ([`Experiment`]).
//!
//! [`validate`] collects every problem it finds (not just the first), each naming the file,
//! the key path and what was expected. Invariants of an [`Experiment`]: every name it holds
//! resolves in its topology; every fault and adversary window lies before the final phase
//! (`duration - settle`) and every fault has exactly one undo by then; the room version is one
//! this crate implements; there is at least one seed and one honest user to create the room.

use super::adversary::{AdversaryFile, Attack, AttackParams, check_params};
use super::defaults;
use super::duration::SimDuration;
use super::expect::Expect;
use super::fault::{Fault, FaultFile, FaultKind, check_fault};
use super::numbers::Rate;
use super::problem::{KeyPath, Problem, Severity, at, list_names};
use super::schedule::{Undo, pair_undos};
use super::topology::{Fabric, Named, ServerId, Topology, TopologyFile, USERS_PER_SERVER_MAX};
use super::workload::Workload;
use crate::proto::room_version::{RoomVersion, room_version};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::path::{Path, PathBuf};

/// The highest rate any workload or fault may ask for, per second: above it a run would spend
/// its time generating load rather than simulating federation.
pub const RATE_PER_SECOND_MAX: f64 = 10_000.0;
/// The most users one run may have in all: each is a planned user with its own workload.
pub const USERS_TOTAL_MAX: u64 = 200_000;
/// The most seeds one experiment may list (a sweep takes ranges on the command line instead).
pub const SEEDS_MAX: usize = 1_000;
/// Above this many servers on turmoil a warning says the run will be slow (DESIGN.md measured
/// 100 hosts slower than real time).
pub const TURMOIL_SERVERS_WARN: usize = 64;

/// `topology = "name"` (a file in a `topologies/` folder) or an inline `[topology]` table.
#[derive(Clone, Debug, PartialEq)]
pub enum TopologyRef {
    Named(String),
    Inline(Box<TopologyFile>),
}

impl Serialize for TopologyRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Named(name) => serializer.serialize_str(name),
            Self::Inline(spec) => spec.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for TopologyRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RefVisitor;
        impl<'de> Visitor<'de> for RefVisitor {
            type Value = TopologyRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "the name of a file in topologies/ (such as \"mesh-5\") or a [topology] table",
                )
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<TopologyRef, E> {
                Ok(TopologyRef::Named(name.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TopologyRef, A::Error> {
                TopologyFile::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|spec| TopologyRef::Inline(Box::new(spec)))
            }
        }
        deserializer.deserialize_any(RefVisitor)
    }
}

/// A room version as written: `"12"` (a bare `12` is accepted too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomVersionId(pub String);

impl Serialize for RoomVersionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RoomVersionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = RoomVersionId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a room version such as \"12\"")
            }
            fn visit_str<E: de::Error>(self, id: &str) -> Result<RoomVersionId, E> {
                Ok(RoomVersionId(id.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, id: i64) -> Result<RoomVersionId, E> {
                Ok(RoomVersionId(id.to_string()))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// An experiment file as written. Serialising it gives a file that loads back to the same
/// value (`shrink` and `--set` rely on this).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    pub name: String,
    pub description: String,
    /// Marks a threat that is documented, not simulated, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_model: Option<String>,
    #[serde(default = "defaults::room_version")]
    pub room_version: RoomVersionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric: Option<Fabric>,
    pub duration: SimDuration,
    #[serde(default = "defaults::settle")]
    pub settle: SimDuration,
    #[serde(default = "defaults::seeds")]
    pub seeds: Vec<u64>,
    /// Left out of CI's fast set.
    #[serde(default)]
    pub slow: bool,
    pub topology: TopologyRef,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default, rename = "fault", skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultFile>,
    #[serde(default, rename = "adversary", skip_serializing_if = "Vec::is_empty")]
    pub adversaries: Vec<AdversaryFile>,
    #[serde(default)]
    pub expect: Expect,
}

/// Where an experiment's topology came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologySource {
    File { name: String, path: PathBuf },
    Inline,
}

impl TopologySource {
    pub fn label(&self) -> &str {
        match self {
            Self::File { name, .. } => name,
            Self::Inline => "(inline)",
        }
    }
}

/// Why the run uses its fabric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FabricChoice {
    Experiment,
    Topology,
    /// Neither named one: chosen by server count (turmoil up to
    /// [`defaults::TURMOIL_SERVERS_MAX`]).
    ServerCount,
}

/// A checked adversary.
#[derive(Clone, Debug, PartialEq)]
pub struct Adversary {
    pub index: usize,
    pub server: ServerId,
    pub attack: Attack,
    pub from: SimDuration,
    /// The end of the window: `until`, or the start of the final phase.
    pub until: SimDuration,
    pub params: AttackParams,
}

/// A checked experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    pub path: PathBuf,
    /// The file as written.
    pub file: ExperimentFile,
    pub topology: Topology,
    pub topology_source: TopologySource,
    pub room_version: &'static RoomVersion,
    pub fabric: Fabric,
    pub fabric_choice: FabricChoice,
    /// `duration - settle`: every fault is undone by then and the workload stops.
    pub final_phase_at: SimDuration,
    pub faults: Vec<Fault>,
    /// One per fault other than heal and restart, sorted by fault index.
    pub undos: Vec<Undo>,
    pub adversaries: Vec<Adversary>,
    /// The creator's server.
    pub creator: ServerId,
    pub warnings: Vec<Problem>,
}

impl Experiment {
    pub fn name(&self) -> &str {
        &self.file.name
    }

    pub fn duration(&self) -> SimDuration {
        self.file.duration
    }

    pub fn seeds(&self) -> &[u64] {
        &self.file.seeds
    }

    pub fn is_adversary(&self, server: ServerId) -> bool {
        self.adversaries
            .iter()
            .any(|adversary| adversary.server == server)
    }

    /// Users of `server` after the workload's override.
    pub fn users_of(&self, server: ServerId) -> u32 {
        self.file
            .workload
            .users_per_server
            .unwrap_or(self.topology.server(server).users)
    }
}

/// Checks `file` (read from `path`) against `topology`. Problems name `path`; their lines are
/// filled in by the caller, which has the text.
pub fn validate(
    path: &Path,
    file: &ExperimentFile,
    topology: Topology,
    topology_source: TopologySource,
) -> Result<Experiment, Vec<Problem>> {
    let mut check = Checker {
        path,
        problems: Vec::new(),
    };
    check.name(file);
    check.seeds(&file.seeds);
    let room_version = check.room_version(&file.room_version);
    let final_phase_at = check.times(file);
    if let Some(reason) = &file.out_of_model {
        check.out_of_model(reason, file);
    }
    let mut faults = Vec::new();
    for (index, spec) in file.faults.iter().enumerate() {
        let key = at("fault").index(index);
        check.fault_times(spec, &key, file.duration, final_phase_at);
        match check_fault(index, spec, &topology, &key) {
            Ok(fault) => faults.push(fault),
            Err(problems) => check.errors(problems),
        }
    }
    let (undos, schedule_problems) = pair_undos(&faults, &topology, final_phase_at);
    for (severity, key, message) in schedule_problems {
        check.push(severity, key, message);
    }
    let adversaries = check.adversaries(file, &topology, final_phase_at);
    let creator = check.workload(file, &topology, &adversaries, final_phase_at);
    let (fabric, fabric_choice) = choose_fabric(file.fabric, &topology);
    if fabric == Fabric::Turmoil && topology.servers.len() > TURMOIL_SERVERS_WARN {
        check.push(
            Severity::Warning,
            at("fabric"),
            format!(
                "turmoil with {} servers will run far slower than simulated time; expected fabric = \"fast\" above {TURMOIL_SERVERS_WARN} servers",
                topology.servers.len()
            ),
        );
    }
    let has_errors = check.problems.iter().any(Problem::is_error);
    match (room_version, creator, has_errors) {
        (Some(room_version), Some(creator), false) => Ok(Experiment {
            path: path.to_owned(),
            file: file.clone(),
            topology,
            topology_source,
            room_version,
            fabric,
            fabric_choice,
            final_phase_at,
            faults,
            undos,
            adversaries,
            creator,
            warnings: check.problems,
        }),
        _ => Err(check.problems),
    }
}

/// The experiment's fabric, else the topology's suggestion, else by size.
pub fn choose_fabric(experiment: Option<Fabric>, topology: &Topology) -> (Fabric, FabricChoice) {
    match (experiment, topology.fabric) {
        (Some(fabric), _) => (fabric, FabricChoice::Experiment),
        (None, Some(fabric)) => (fabric, FabricChoice::Topology),
        (None, None) if topology.servers.len() <= defaults::TURMOIL_SERVERS_MAX => {
            (Fabric::Turmoil, FabricChoice::ServerCount)
        }
        (None, None) => (Fabric::Fast, FabricChoice::ServerCount),
    }
}

struct Checker<'a> {
    path: &'a Path,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn push(&mut self, severity: Severity, key: KeyPath, message: impl Into<String>) {
        let problem = match severity {
            Severity::Error => Problem::error(self.path, key, message),
            Severity::Warning => Problem::warning(self.path, key, message),
        };
        self.problems.push(problem);
    }

    fn error(&mut self, key: KeyPath, message: impl Into<String>) {
        self.push(Severity::Error, key, message);
    }

    fn errors(&mut self, problems: Vec<(KeyPath, String)>) {
        for (key, message) in problems {
            self.error(key, message);
        }
    }

    fn name(&mut self, file: &ExperimentFile) {
        let name = &file.name;
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if !valid {
            self.error(
                at("name"),
                format!("{name:?} cannot name a results folder; expected 1 to 64 of a-z, 0-9, '-', '_' and '.', not starting with '.'"),
            );
        }
        let stem = self.path.file_stem().and_then(|stem| stem.to_str());
        if valid && stem.is_some_and(|stem| stem != name) {
            self.push(
                Severity::Warning,
                at("name"),
                format!(
                    "{name:?} differs from the file name {:?}; results go to results/{name}/",
                    stem.unwrap_or_default()
                ),
            );
        }
        if file.description.trim().is_empty() {
            self.error(
                at("description"),
                "is empty; expected a sentence saying what the experiment shows",
            );
        }
    }

    fn seeds(&mut self, seeds: &[u64]) {
        if seeds.is_empty() {
            self.error(
                at("seeds"),
                "is empty; expected at least one seed, as in [1, 2, 3]",
            );
        }
        if seeds.len() > SEEDS_MAX {
            self.error(
                at("seeds"),
                format!(
                    "{} seeds; at most {SEEDS_MAX} (use `fedlab sweep --seeds A..B` for more)",
                    seeds.len()
                ),
            );
        }
        for (index, seed) in seeds.iter().enumerate() {
            if seeds[..index].contains(seed) {
                self.error(
                    at("seeds").index(index),
                    format!("seed {seed} is listed twice; expected distinct seeds"),
                );
            }
        }
    }

    fn room_version(&mut self, id: &RoomVersionId) -> Option<&'static RoomVersion> {
        match room_version(&id.0) {
            Ok(version) => Some(version),
            Err(error) => {
                self.error(
                    at("room_version"),
                    format!("{error}, written as strings (\"1\" to \"12\")"),
                );
                None
            }
        }
    }

    /// Checks duration and settle; returns the start of the final phase.
    fn times(&mut self, file: &ExperimentFile) -> SimDuration {
        if file.duration.is_zero() {
            self.error(
                at("duration"),
                "is 0s; expected a positive duration such as \"5m\"",
            );
        }
        if file.settle > file.duration {
            self.error(
                at("settle"),
                format!(
                    "{} is longer than `duration` ({}); expected settle <= duration",
                    file.settle, file.duration
                ),
            );
        } else if file.settle.is_zero() && file.out_of_model.is_none() {
            self.push(
                Severity::Warning,
                at("settle"),
                "is 0s: the run has no quiet final phase in which to converge",
            );
        }
        file.duration.saturating_sub(file.settle)
    }

    fn out_of_model(&mut self, reason: &str, file: &ExperimentFile) {
        if reason.trim().is_empty() {
            self.error(
                at("out_of_model"),
                "is empty; expected the reason the threat is not simulated",
            );
        }
        if !file.faults.is_empty() || !file.adversaries.is_empty() {
            self.error(
                at("out_of_model"),
                "an out-of-model experiment is documented, not run; expected no [[fault]] or [[adversary]]",
            );
        }
    }

    fn fault_times(
        &mut self,
        spec: &FaultFile,
        key: &KeyPath,
        duration: SimDuration,
        final_phase_at: SimDuration,
    ) {
        let ends_the_fault = matches!(spec.kind, FaultKind::Heal | FaultKind::Restart);
        let too_late = if ends_the_fault {
            spec.at > final_phase_at
        } else {
            spec.at >= final_phase_at
        };
        if spec.at > duration {
            self.error(
                key.key("at"),
                format!(
                    "{} is after the end of the run (duration {duration}); expected a time before the final phase, which begins at {final_phase_at}",
                    spec.at
                ),
            );
        } else if too_late {
            self.error(
                key.key("at"),
                format!(
                    "{} is not before the final phase, which begins at {final_phase_at} (duration - settle); expected an earlier time",
                    spec.at
                ),
            );
        }
        let end = match (spec.until, spec.for_) {
            (Some(until), _) => Some(("until", until)),
            (None, Some(length)) => spec.at.checked_add(length).map(|end| ("for", end)),
            (None, None) => None,
        };
        if let Some((end_key, end)) = end
            && end > final_phase_at
        {
            self.error(
                key.key(end_key),
                format!(
                    "ends at {end}, after the final phase begins at {final_phase_at} (duration - settle); every fault must end by then"
                ),
            );
        }
    }

    fn adversaries(
        &mut self,
        file: &ExperimentFile,
        topology: &Topology,
        final_phase_at: SimDuration,
    ) -> Vec<Adversary> {
        let mut adversaries = Vec::new();
        for (index, spec) in file.adversaries.iter().enumerate() {
            let key = at("adversary").index(index);
            let server = match topology.lookup(&spec.server) {
                Some(Named::Server(id)) => Some(id),
                Some(Named::Group(_)) => {
                    self.error(
                        key.key("server"),
                        format!("{:?} is a group; expected one server", spec.server),
                    );
                    None
                }
                None => {
                    self.error(
                        key.key("server"),
                        format!(
                            "{:?} is not a server of the topology; expected one of {}",
                            spec.server,
                            list_names(topology.server_names())
                        ),
                    );
                    None
                }
            };
            if spec.from >= final_phase_at {
                self.error(
                    key.key("from"),
                    format!("{} is not before the final phase, which begins at {final_phase_at}; expected an earlier time", spec.from),
                );
            }
            let until = spec.until.unwrap_or(final_phase_at);
            if spec.until.is_some() && (until <= spec.from || until > final_phase_at) {
                self.error(
                    key.key("until"),
                    format!("{until}; expected a time after `from` ({}) and no later than the final phase ({final_phase_at})", spec.from),
                );
            }
            let params = match check_params(spec.attack, &spec.params, topology, &key) {
                Ok(params) => Some(params),
                Err(problems) => {
                    self.errors(problems);
                    None
                }
            };
            if let (Some(server), Some(params)) = (server, params) {
                adversaries.push(Adversary {
                    index,
                    server,
                    attack: spec.attack,
                    from: spec.from,
                    until,
                    params,
                });
            }
        }
        adversaries
    }

    /// Checks the workload; returns the creator's server.
    fn workload(
        &mut self,
        file: &ExperimentFile,
        topology: &Topology,
        adversaries: &[Adversary],
        final_phase_at: SimDuration,
    ) -> Option<ServerId> {
        let workload = &file.workload;
        let key = at("workload");
        let rates: [(&str, Rate); 4] = [
            ("messages_per_second", workload.messages_per_second),
            (
                "state_changes_per_second",
                workload.state_changes_per_second,
            ),
            ("typing_per_second", workload.typing_per_second),
            ("receipts_per_second", workload.receipts_per_second),
        ];
        for (name, rate) in rates {
            if rate.per_second() > RATE_PER_SECOND_MAX {
                self.error(
                    key.key(name),
                    format!("{rate}; at most {RATE_PER_SECOND_MAX} per second"),
                );
            }
        }
        for (index, fault) in file.faults.iter().enumerate() {
            if let Some(rate) = fault.messages_per_second
                && rate.per_second() > RATE_PER_SECOND_MAX
            {
                self.error(
                    at("fault").index(index).key("messages_per_second"),
                    format!("{rate}; at most {RATE_PER_SECOND_MAX} per second"),
                );
            }
        }
        if let Some(users) = workload.users_per_server
            && users > USERS_PER_SERVER_MAX
        {
            self.error(
                key.key("users_per_server"),
                format!("{users}; at most {USERS_PER_SERVER_MAX}"),
            );
        }
        if !workload.state_changes_per_second.is_zero() && workload.state_change_kinds.is_empty() {
            self.error(
                key.key("state_change_kinds"),
                "is empty but state_changes_per_second is not 0; expected kinds such as [\"topic\", \"power-levels\"]",
            );
        }
        if workload.join == super::workload::JoinMode::Staggered
            && workload.join_over > final_phase_at
        {
            self.error(
                key.key("join_over"),
                format!(
                    "{} is past the final phase ({final_phase_at}); expected a shorter window",
                    workload.join_over
                ),
            );
        }
        let users_of = |server: ServerId| {
            workload
                .users_per_server
                .unwrap_or(topology.server(server).users)
        };
        let users_total: u64 = (0..topology.servers.len())
            .map(|index| u64::from(users_of(ServerId(index))))
            .sum();
        if users_total > USERS_TOTAL_MAX {
            self.error(
                key.key("users_per_server"),
                format!("{users_total} users in all; at most {USERS_TOTAL_MAX} per run"),
            );
        }
        let honest_in_room = |server: &ServerId| {
            !adversaries
                .iter()
                .any(|adversary| adversary.server == *server)
        };
        match &workload.creator {
            Some(name) => match topology.lookup(name) {
                Some(Named::Server(id)) if !honest_in_room(&id) => {
                    self.error(
                        key.key("creator"),
                        format!("{name:?} is an adversary; expected an honest server"),
                    );
                    None
                }
                Some(Named::Server(id)) if users_of(id) == 0 => {
                    self.error(
                        key.key("creator"),
                        format!("{name:?} has no users; expected a server with at least one"),
                    );
                    None
                }
                Some(Named::Server(id)) => Some(id),
                _ => {
                    self.error(
                        key.key("creator"),
                        format!(
                            "{name:?} is not a server of the topology; expected one of {}",
                            list_names(topology.server_names())
                        ),
                    );
                    None
                }
            },
            None => {
                let creator = (0..topology.servers.len())
                    .map(ServerId)
                    .find(|id| honest_in_room(id) && users_of(*id) > 0);
                if creator.is_none() && file.out_of_model.is_none() {
                    self.error(
                        key.key("users_per_server"),
                        "no honest server has a user to create the room; expected at least one",
                    );
                }
                creator.or(Some(ServerId(0)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::experiment::load::parse_experiment;
    use std::path::Path;

    const TOPOLOGY: &str = "[topology]\nusers_per_server = 2\n[topology.group.hs]\ncount = 4\n[topology.group.evil]\nservers = [\"evil.test\"]\n";

    /// The problems of an experiment with `body` added to a valid head, one per line.
    fn problems(body: &str) -> String {
        let text = format!(
            "name = \"x\"\ndescription = \"t\"\nduration = \"5m\"\nsettle = \"1m\"\n{body}\n{TOPOLOGY}"
        );
        match parse_experiment(Path::new("x.toml"), &text) {
            Ok(experiment) => experiment
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            Err(error) => error.to_string(),
        }
    }

    fn assert_problem(body: &str, expected: &str) {
        let found = problems(body);
        assert!(found.contains(expected), "{expected:?} not in\n{found}");
    }

    #[test]
    fn a_valid_experiment_has_no_problems() {
        assert_eq!(problems(""), "");
    }

    #[test]
    fn settle_and_seeds() {
        let text = "name = \"x\"\ndescription = \"t\"\nduration = \"1m\"\nsettle = \"2m\"\nseeds = [3, 4, 3]\n";
        let error = parse_experiment(Path::new("x.toml"), &format!("{text}{TOPOLOGY}"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "x.toml:4: `settle`: 2m is longer than `duration` (1m); expected settle <= duration"
            ),
            "{error}"
        );
        assert!(
            error.contains("x.toml:5: `seeds[2]`: seed 3 is listed twice"),
            "{error}"
        );
        let text = format!(
            "name = \"x\"\ndescription = \"t\"\nduration = \"1m\"\nsettle = \"0s\"\n{TOPOLOGY}"
        );
        let experiment = parse_experiment(Path::new("x.toml"), &text).unwrap();
        assert_eq!(
            experiment.warnings[0].to_string(),
            "x.toml:4: warning: `settle`: is 0s: the run has no quiet final phase in which to converge"
        );
    }

    #[test]
    fn overlapping_faults_of_one_server_are_errors() {
        assert_problem(
            "[[fault]]\nat = \"1m\"\nkind = \"crash\"\nserver = \"hs1.test\"\n[[fault]]\nat = \"2m\"\nkind = \"crash\"\nserver = \"hs1.test\"\n",
            "`fault[1]`: overlaps fault[0] (crash at 1m) on the same server",
        );
        assert_problem(
            "[[fault]]\nat = \"1m\"\nfor = \"1m\"\nkind = \"clock-skew\"\nserver = \"hs1.test\"\noffset = \"5s\"\n[[fault]]\nat = \"1m30s\"\nkind = \"clock-skew\"\nserver = \"hs1.test\"\noffset = \"-5s\"\n",
            "`fault[1]`: overlaps fault[0] (clock-skew at 1m)",
        );
        assert_problem(
            "[[fault]]\nat = \"1m\"\nkind = \"latency\"\nbetween = [\"hs\", \"hs\"]\nlatency_min = \"1s\"\n[[fault]]\nat = \"2m\"\nkind = \"latency\"\nbetween = [\"hs1.test\", \"hs2.test\"]\nlatency_min = \"2s\"\n",
            "on the same links",
        );
        // One after the other is fine.
        assert_eq!(
            problems(
                "[[fault]]\nat = \"1m\"\nuntil = \"2m\"\nkind = \"crash\"\nserver = \"hs1.test\"\n[[fault]]\nat = \"2m\"\nkind = \"crash\"\nserver = \"hs1.test\"\n"
            ),
            ""
        );
    }

    #[test]
    fn fault_end_keys() {
        assert_problem(
            "[[fault]]\nat = \"1m\"\nuntil = \"2m\"\nfor = \"1m\"\nkind = \"isolate\"\nserver = \"hs1.test\"\n",
            "`fault[0].for`: given together with `until`; expected one of them",
        );
        assert_problem(
            "[[fault]]\nat = \"1m\"\nuntil = \"2m\"\nkind = \"heal\"\n",
            "`fault[0].until`: is not a key of kind = \"heal\"; expected only at, kind",
        );
        assert_problem(
            "[[fault]]\nat = \"4m\"\nkind = \"isolate\"\nserver = \"hs1.test\"\n",
            "`fault[0].at`: 4m is not before the final phase, which begins at 4m",
        );
    }

    #[test]
    fn adversaries_are_checked() {
        assert_problem(
            "[[adversary]]\nserver = \"hs\"\nattack = \"spam\"\n",
            "`adversary[0].server`: \"hs\" is a group; expected one server",
        );
        assert_problem(
            "[[adversary]]\nserver = \"evil.test\"\nattack = \"spam\"\nfrom = \"2m\"\nuntil = \"4m30s\"\n",
            "`adversary[0].until`: 4m30s; expected a time after `from` (2m) and no later than the final phase (4m)",
        );
        assert_problem(
            "[workload]\ncreator = \"evil.test\"\n[[adversary]]\nserver = \"evil.test\"\nattack = \"spam\"\n",
            "`workload.creator`: \"evil.test\" is an adversary; expected an honest server",
        );
        assert_problem(
            "[[adversary]]\nserver = \"evil.test\"\nattack = \"fake-origin\"\nparams = { victim = 3 }\n",
            "`adversary[0].params.victim`: 3 is not the name of a server of the topology",
        );
    }

    #[test]
    fn names_descriptions_and_out_of_model() {
        let text =
            format!("name = \"Bad Name\"\ndescription = \" \"\nduration = \"5m\"\n{TOPOLOGY}");
        let error = parse_experiment(Path::new("x.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`name`: \"Bad Name\" cannot name a results folder"),
            "{error}"
        );
        assert!(error.contains("`description`: is empty"), "{error}");
        let text = format!("name = \"y\"\ndescription = \"t\"\nduration = \"5m\"\n{TOPOLOGY}");
        let experiment = parse_experiment(Path::new("x.toml"), &text).unwrap();
        assert!(
            experiment.warnings[0]
                .to_string()
                .contains("differs from the file name \"x\"")
        );
        assert_problem(
            "out_of_model = \"tls\"\n[[fault]]\nat = \"1m\"\nkind = \"heal\"\n",
            "an out-of-model experiment is documented, not run",
        );
    }

    #[test]
    fn workload_limits() {
        assert_problem(
            "[workload]\nusers_per_server = 100000\n",
            "`workload.users_per_server`: 500000 users in all; at most 200000 per run",
        );
        assert_problem(
            "[workload]\nmessages_per_second = 20000\n",
            "`workload.messages_per_second`: 20000/s; at most 10000 per second",
        );
        assert_problem(
            "[workload]\nstate_changes_per_second = 1\nstate_change_kinds = []\n",
            "`workload.state_change_kinds`: is empty but state_changes_per_second is not 0",
        );
        assert_problem(
            "[workload]\njoin = \"staggered\"\njoin_over = \"4m1s\"\n",
            "`workload.join_over`: 4m1s is past the final phase (4m)",
        );
    }

    #[test]
    fn fabric_follows_experiment_then_topology_then_size() {
        use crate::sim::experiment::{Fabric, FabricChoice};
        let load = |extra: &str, topology_extra: &str| {
            let text = format!(
                "name = \"x\"\ndescription = \"t\"\nduration = \"5m\"\n{extra}\n[topology]\n{topology_extra}\n[topology.group.a]\ncount = 40\n"
            );
            let experiment = parse_experiment(Path::new("x.toml"), &text).unwrap();
            (experiment.fabric, experiment.fabric_choice)
        };
        assert_eq!(load("", ""), (Fabric::Fast, FabricChoice::ServerCount));
        assert_eq!(
            load("", "fabric = \"turmoil\""),
            (Fabric::Turmoil, FabricChoice::Topology)
        );
        assert_eq!(
            load("fabric = \"fast\"", "fabric = \"turmoil\""),
            (Fabric::Fast, FabricChoice::Experiment)
        );
    }
}
