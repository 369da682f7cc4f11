//! `[[fault]]` entries: the nemesis's vocabulary. Each entry has an `at` time, a `kind`, an
//! optional end (`until` or `for`) and the keys of its kind:
//!
//! | kind | keys | effect | undone by |
//! |---|---|---|---|
//! | partition | `sides = [["eu"], ["us"]]` or `shape` | cuts every link between different sides (servers on no side keep their links) | `until`/`for`, a `heal`, or the final phase |
//! | heal | | restores every link cut by partition, isolate and cut faults in effect | |
//! | isolate | `server` | cuts the server off from every other | as partition |
//! | cut | `from`, `to`, `one_way` (default false) | cuts the links from servers of `from` to servers of `to` (and back unless one-way) | as partition |
//! | latency | `between = [A, B]`, `latency_min`, `latency_max` | sets the latency of the links between A and B (A twice: within A) | `until`/`for` or the final phase |
//! | loss | `between`, `loss` | sets the loss of those links | `until`/`for` or the final phase |
//! | crash | `server`, `lose_unflushed` (default false) | stops the server, optionally losing what it had not made durable | `until`/`for`, a `restart`, or the final phase |
//! | restart | `server` | restarts a crashed server | |
//! | clock-skew | `server`, `offset = "-30s"` | shifts the server's clock | `until`/`for` or the final phase |
//! | slow | `server`, `extra_latency` | delays every message the server receives | `until`/`for` or the final phase |
//! | flood | `server`, `messages_per_second` | the server's users send valid messages at this extra rate | `until`/`for` or the final phase |
//!
//! Names in `sides`, `from`, `to` and `between` are groups or servers of the topology.
//! Shapes (`halves`, `minority-majority`, `ring`, `bridge`) are drawn from the run's seed.
//! Invariant: [`check_fault`] turns a [`FaultFile`] into a typed [`Fault`] only when every key
//! the kind needs is present, no key of another kind is, and every name exists.

use super::duration::{SignedDuration, SimDuration};
use super::numbers::{Probability, Rate};
use super::problem::KeyPath;
use super::topology::{Named, ServerId, Topology, check_latency};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The kinds of fault; the vocabulary is small so "every fault" is one loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Partition,
    Heal,
    Isolate,
    Cut,
    Latency,
    Loss,
    Crash,
    Restart,
    ClockSkew,
    Slow,
    Flood,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Partition => "partition",
            Self::Heal => "heal",
            Self::Isolate => "isolate",
            Self::Cut => "cut",
            Self::Latency => "latency",
            Self::Loss => "loss",
            Self::Crash => "crash",
            Self::Restart => "restart",
            Self::ClockSkew => "clock-skew",
            Self::Slow => "slow",
            Self::Flood => "flood",
        }
    }

    /// The keys this kind requires, and the ones it also accepts (besides `at` and `kind`).
    fn keys(self) -> (&'static [&'static str], &'static [&'static str]) {
        const END: &[&str] = &["until", "for"];
        match self {
            // `sides` or `shape` is checked on its own: exactly one of them.
            Self::Partition => (&[], &["until", "for", "sides", "shape"]),
            Self::Heal => (&[], &[]),
            Self::Isolate => (&["server"], END),
            Self::Cut => (&["from", "to"], &["until", "for", "one_way"]),
            Self::Latency => (
                &["between", "latency_min"],
                &["until", "for", "latency_max"],
            ),
            Self::Loss => (&["between", "loss"], END),
            Self::Crash => (&["server"], &["until", "for", "lose_unflushed"]),
            Self::Restart => (&["server"], &[]),
            Self::ClockSkew => (&["server", "offset"], END),
            Self::Slow => (&["server", "extra_latency"], END),
            Self::Flood => (&["server", "messages_per_second"], END),
        }
    }

    /// Whether a `heal` fault ends faults of this kind.
    pub fn healed_by_heal(self) -> bool {
        matches!(self, Self::Partition | Self::Isolate | Self::Cut)
    }
}

/// Partition shapes drawn from the run's seed over all servers of the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// Two sides of sizes floor(n/2) and ceil(n/2).
    Halves,
    /// A minority of floor((n-1)/2) servers against the rest.
    MinorityMajority,
    /// Servers in a random cyclic order; each reaches only its two neighbours.
    Ring,
    /// Two halves and one bridge server that reaches both.
    Bridge,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Self::Halves => "halves",
            Self::MinorityMajority => "minority-majority",
            Self::Ring => "ring",
            Self::Bridge => "bridge",
        }
    }

    /// The fewest servers the shape needs to cut anything.
    pub fn servers_min(self) -> usize {
        match self {
            Self::Halves | Self::MinorityMajority => 2,
            Self::Ring => 4,
            Self::Bridge => 3,
        }
    }
}

/// One `[[fault]]` entry as written: every key of every kind, checked against its kind later
/// so a misplaced key gets a message naming the kind's keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultFile {
    pub at: SimDuration,
    pub kind: FaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<SimDuration>,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<SimDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sides: Option<Vec<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_way: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub between: Option<[String; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_min: Option<SimDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_max: Option<SimDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Probability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lose_unflushed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<SignedDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_latency: Option<SimDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_second: Option<Rate>,
}

impl FaultFile {
    /// A fault of `kind` at `at` with no other keys.
    pub fn new(at: SimDuration, kind: FaultKind) -> Self {
        Self {
            at,
            kind,
            until: None,
            for_: None,
            sides: None,
            shape: None,
            server: None,
            from: None,
            to: None,
            one_way: None,
            between: None,
            latency_min: None,
            latency_max: None,
            loss: None,
            lose_unflushed: None,
            offset: None,
            extra_latency: None,
            messages_per_second: None,
        }
    }

    /// The optional keys that are present, by their file names.
    fn present_keys(&self) -> Vec<&'static str> {
        let present = [
            ("until", self.until.is_some()),
            ("for", self.for_.is_some()),
            ("sides", self.sides.is_some()),
            ("shape", self.shape.is_some()),
            ("server", self.server.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("one_way", self.one_way.is_some()),
            ("between", self.between.is_some()),
            ("latency_min", self.latency_min.is_some()),
            ("latency_max", self.latency_max.is_some()),
            ("loss", self.loss.is_some()),
            ("lose_unflushed", self.lose_unflushed.is_some()),
            ("offset", self.offset.is_some()),
            ("extra_latency", self.extra_latency.is_some()),
            ("messages_per_second", self.messages_per_second.is_some()),
        ];
        present
            .into_iter()
            .filter(|(_, is_present)| *is_present)
            .map(|(key, _)| key)
            .collect()
    }
}

/// The servers a partition separates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionSides {
    /// Named sides, expanded to servers.
    Explicit(Vec<Vec<ServerId>>),
    /// Drawn per run.
    Shape(Shape),
}

/// A set of directed links named by two sets of servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkPair {
    pub a: Vec<ServerId>,
    pub b: Vec<ServerId>,
}

/// What a fault does, with every name resolved to servers.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultEffect {
    Partition(PartitionSides),
    Heal,
    Isolate {
        server: ServerId,
    },
    Cut {
        from: Vec<ServerId>,
        to: Vec<ServerId>,
        one_way: bool,
    },
    Latency {
        links: LinkPair,
        latency_ms_min: u64,
        latency_ms_max: u64,
    },
    Loss {
        links: LinkPair,
        loss: Probability,
    },
    Crash {
        server: ServerId,
        lose_unflushed: bool,
    },
    Restart {
        server: ServerId,
    },
    ClockSkew {
        server: ServerId,
        offset: SignedDuration,
    },
    Slow {
        server: ServerId,
        extra_latency: SimDuration,
    },
    Flood {
        server: ServerId,
        messages_per_second: Rate,
    },
}

/// A checked fault.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// Position in the file's `[[fault]]` list.
    pub index: usize,
    pub at: SimDuration,
    /// The end the entry itself gives (`until`, or `at + for`).
    pub ends_at: Option<SimDuration>,
    pub kind: FaultKind,
    pub effect: FaultEffect,
}

/// Problems of one fault entry: (key path, message).
pub type FaultProblems = Vec<(KeyPath, String)>;

/// Checks one entry against its kind and the topology.
pub fn check_fault(
    index: usize,
    spec: &FaultFile,
    topology: &Topology,
    path: &KeyPath,
) -> Result<Fault, FaultProblems> {
    let mut problems = FaultProblems::new();
    let kind = spec.kind;
    let (required, optional) = kind.keys();
    let present = spec.present_keys();
    for key in &present {
        if !required.contains(key) && !optional.contains(key) {
            let mut accepted: Vec<&str> = vec!["at", "kind"];
            accepted.extend(required);
            accepted.extend(optional);
            problems.push((
                path.key(key),
                format!(
                    "is not a key of kind = {:?}; expected only {}",
                    kind.name(),
                    accepted.join(", ")
                ),
            ));
        }
    }
    for key in required {
        if !present.contains(key) {
            problems.push((
                path.clone(),
                format!("kind = {:?} needs `{key}`", kind.name()),
            ));
        }
    }
    let ends_at = fault_end(spec, path, &mut problems);
    let mut names = Names {
        topology,
        path,
        problems: &mut problems,
    };
    let effect = effect(spec, &mut names);
    match effect {
        Some(effect) if problems.is_empty() => Ok(Fault {
            index,
            at: spec.at,
            ends_at,
            kind,
            effect,
        }),
        _ => {
            if problems.is_empty() {
                problems.push((path.clone(), "is incomplete".to_owned()));
            }
            Err(problems)
        }
    }
}

fn fault_end(
    spec: &FaultFile,
    path: &KeyPath,
    problems: &mut FaultProblems,
) -> Option<SimDuration> {
    match (spec.until, spec.for_) {
        (Some(_), Some(_)) => {
            problems.push((
                path.key("for"),
                "given together with `until`; expected one of them".to_owned(),
            ));
            None
        }
        (Some(until), None) => {
            if until <= spec.at {
                problems.push((
                    path.key("until"),
                    format!(
                        "{until} is not after `at` ({}); expected a later time",
                        spec.at
                    ),
                ));
            }
            Some(until)
        }
        (None, Some(length)) => {
            if length.is_zero() {
                problems.push((
                    path.key("for"),
                    "is 0s; expected a positive duration".to_owned(),
                ));
            }
            let end = spec.at.checked_add(length);
            if end.is_none() {
                problems.push((path.key("for"), "ends too late".to_owned()));
            }
            end
        }
        (None, None) => None,
    }
}

/// Resolves names to servers, recording problems under the fault's path.
struct Names<'a> {
    topology: &'a Topology,
    path: &'a KeyPath,
    problems: &'a mut FaultProblems,
}

impl Names<'_> {
    fn members(&mut self, key: KeyPath, name: &str) -> Option<Vec<ServerId>> {
        match self.topology.lookup(name) {
            Some(named) => Some(self.topology.members(named)),
            None => {
                self.problems.push((
                    key,
                    format!(
                        "{name:?} is not in the topology; expected {}",
                        self.topology.known_names()
                    ),
                ));
                None
            }
        }
    }

    fn server(&mut self, name: Option<&String>) -> Option<ServerId> {
        let name = name?;
        match self.topology.lookup(name) {
            Some(Named::Server(id)) => Some(id),
            Some(Named::Group(_)) => {
                self.problems.push((
                    self.path.key("server"),
                    format!("{name:?} is a group; expected one server of it"),
                ));
                None
            }
            None => {
                self.problems.push((
                    self.path.key("server"),
                    format!(
                        "{name:?} is not a server of the topology; expected one of {}",
                        super::problem::list_names(self.topology.server_names())
                    ),
                ));
                None
            }
        }
    }

    fn sides(&mut self, sides: &[Vec<String>]) -> Option<Vec<Vec<ServerId>>> {
        let key = self.path.key("sides");
        if sides.len() < 2 {
            self.problems.push((
                key.clone(),
                format!("{} side(s); a partition needs at least 2", sides.len()),
            ));
        }
        let mut seen: BTreeSet<ServerId> = BTreeSet::new();
        let mut resolved = Vec::new();
        for (side_index, side) in sides.iter().enumerate() {
            if side.is_empty() {
                self.problems.push((
                    key.index(side_index),
                    "an empty side; expected at least one group or server".to_owned(),
                ));
            }
            let mut servers = Vec::new();
            for (name_index, name) in side.iter().enumerate() {
                let name_key = key.index(side_index).index(name_index);
                for server in self.members(name_key.clone(), name).unwrap_or_default() {
                    if !seen.insert(server) {
                        self.problems.push((
                            name_key.clone(),
                            format!(
                                "server {:?} is already on a side; each server may be on one side only",
                                self.topology.server(server).name
                            ),
                        ));
                    }
                    servers.push(server);
                }
            }
            resolved.push(servers);
        }
        Some(resolved)
    }

    fn link_pair(&mut self, between: Option<&[String; 2]>) -> Option<LinkPair> {
        let [a, b] = between?;
        let key = self.path.key("between");
        let a_members = self.members(key.index(0), a);
        let b_members = self.members(key.index(1), b);
        let (a_members, b_members) = (a_members?, b_members?);
        if a == b && a_members.len() < 2 {
            self.problems.push((
                key,
                format!("names {a:?} twice, which has no links within it; expected two different servers or a group"),
            ));
            return None;
        }
        if a != b && a_members.iter().any(|server| b_members.contains(server)) {
            self.problems.push((
                key,
                format!("{a:?} and {b:?} overlap; expected disjoint groups or servers, or one group twice for the links within it"),
            ));
            return None;
        }
        Some(LinkPair {
            a: a_members,
            b: b_members,
        })
    }
}

fn effect(spec: &FaultFile, names: &mut Names<'_>) -> Option<FaultEffect> {
    Some(match spec.kind {
        FaultKind::Partition => FaultEffect::Partition(partition_sides(spec, names)?),
        FaultKind::Heal => FaultEffect::Heal,
        FaultKind::Isolate => FaultEffect::Isolate {
            server: names.server(spec.server.as_ref())?,
        },
        FaultKind::Cut => {
            let from = spec.from.as_ref()?;
            let to = spec.to.as_ref()?;
            let from_members = names.members(names.path.key("from"), from);
            let to_members = names.members(names.path.key("to"), to);
            let (from_members, to_members) = (from_members?, to_members?);
            if from_members
                .iter()
                .any(|server| to_members.contains(server))
            {
                names.problems.push((
                    names.path.key("to"),
                    format!("{from:?} and {to:?} overlap; expected disjoint groups or servers"),
                ));
                return None;
            }
            FaultEffect::Cut {
                from: from_members,
                to: to_members,
                one_way: spec.one_way.unwrap_or(false),
            }
        }
        FaultKind::Latency => {
            let links = names.link_pair(spec.between.as_ref())?;
            let latency_ms_min = spec.latency_min?.as_ms();
            let latency_ms_max = spec.latency_max.map_or(latency_ms_min, SimDuration::as_ms);
            if let Err(message) = check_latency(latency_ms_min, latency_ms_max) {
                names
                    .problems
                    .push((names.path.key("latency_max"), message));
                return None;
            }
            FaultEffect::Latency {
                links,
                latency_ms_min,
                latency_ms_max,
            }
        }
        FaultKind::Loss => FaultEffect::Loss {
            links: names.link_pair(spec.between.as_ref())?,
            loss: spec.loss?,
        },
        FaultKind::Crash => FaultEffect::Crash {
            server: names.server(spec.server.as_ref())?,
            lose_unflushed: spec.lose_unflushed.unwrap_or(false),
        },
        FaultKind::Restart => FaultEffect::Restart {
            server: names.server(spec.server.as_ref())?,
        },
        FaultKind::ClockSkew => FaultEffect::ClockSkew {
            server: names.server(spec.server.as_ref())?,
            offset: spec.offset?,
        },
        FaultKind::Slow => FaultEffect::Slow {
            server: names.server(spec.server.as_ref())?,
            extra_latency: spec.extra_latency?,
        },
        FaultKind::Flood => FaultEffect::Flood {
            server: names.server(spec.server.as_ref())?,
            messages_per_second: spec.messages_per_second?,
        },
    })
}

fn partition_sides(spec: &FaultFile, names: &mut Names<'_>) -> Option<PartitionSides> {
    match (&spec.sides, spec.shape) {
        (Some(sides), None) => names.sides(sides).map(PartitionSides::Explicit),
        (None, Some(shape)) => {
            let servers = names.topology.servers.len();
            if servers < shape.servers_min() {
                names.problems.push((
                    names.path.key("shape"),
                    format!(
                        "shape {:?} needs at least {} servers; the topology has {servers}",
                        shape.name(),
                        shape.servers_min()
                    ),
                ));
                return None;
            }
            Some(PartitionSides::Shape(shape))
        }
        (Some(_), Some(_)) => {
            names.problems.push((
                names.path.key("shape"),
                "given together with `sides`; expected one of them".to_owned(),
            ));
            None
        }
        (None, None) => {
            names.problems.push((
                names.path.clone(),
                "kind = \"partition\" needs `sides = [[...], [...]]` or `shape` (halves, minority-majority, ring, bridge)".to_owned(),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::experiment::problem::at;
    use crate::sim::experiment::topology::{TopologyFile, build_topology};
    use std::path::Path;

    fn topology() -> Topology {
        let spec: TopologyFile =
            toml::from_str("[group.eu]\ncount = 3\n[group.us]\ncount = 3\n").unwrap();
        build_topology(Path::new("t.toml"), &KeyPath::root(), &spec).unwrap()
    }

    fn check(text: &str) -> Result<Fault, Vec<String>> {
        let spec: FaultFile = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        check_fault(2, &spec, &topology(), &at("fault").index(2)).map_err(|problems| {
            problems
                .iter()
                .map(|(path, message)| format!("{path}: {message}"))
                .collect()
        })
    }

    #[test]
    fn partition_sides_expand_groups_and_servers() {
        let fault = check("at = \"1m\"\nkind = \"partition\"\nsides = [[\"eu\"], [\"us1.test\", \"us2.test\"]]\nfor = \"30s\"").unwrap();
        assert_eq!(fault.ends_at, SimDuration::from_secs(90));
        let FaultEffect::Partition(PartitionSides::Explicit(sides)) = fault.effect else {
            panic!("{fault:?}");
        };
        assert_eq!(
            sides,
            [
                vec![ServerId(0), ServerId(1), ServerId(2)],
                vec![ServerId(3), ServerId(4)]
            ]
        );
    }

    #[test]
    fn problems_name_the_key_and_what_was_expected() {
        let problems = check(
            "at = \"1m\"\nkind = \"partition\"\nsides = [[\"eu\"], [\"us\", \"eu2.test\", \"mars\"]]\nserver = \"eu1.test\"",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "fault[2].server: is not a key of kind = \"partition\"; expected only at, kind, until, for, sides, shape",
                "fault[2].sides[1][1]: server \"eu2.test\" is already on a side; each server may be on one side only",
                "fault[2].sides[1][2]: \"mars\" is not in the topology; expected a group (eu, us) or a server (eu1.test, eu2.test, eu3.test, us1.test, us2.test, us3.test)",
            ]
        );
        let problems = check("at = \"1m\"\nkind = \"isolate\"").unwrap_err();
        assert_eq!(problems, ["fault[2]: kind = \"isolate\" needs `server`"]);
        let problems =
            check("at = \"1m\"\nkind = \"crash\"\nserver = \"eu\"\nuntil = \"30s\"").unwrap_err();
        assert_eq!(
            problems,
            [
                "fault[2].until: 30s is not after `at` (1m); expected a later time",
                "fault[2].server: \"eu\" is a group; expected one server of it",
            ]
        );
    }

    #[test]
    fn link_faults_take_pairs_or_one_group_twice() {
        let fault = check(
            "at = \"1m\"\nkind = \"latency\"\nbetween = [\"eu\", \"eu\"]\nlatency_min = \"200ms\"",
        )
        .unwrap();
        let FaultEffect::Latency {
            links,
            latency_ms_max,
            ..
        } = fault.effect
        else {
            panic!();
        };
        assert_eq!((links.a.len(), links.b.len(), latency_ms_max), (3, 3, 200));
        let problems =
            check("at = \"1m\"\nkind = \"loss\"\nbetween = [\"eu\", \"eu1.test\"]\nloss = 0.5")
                .unwrap_err();
        assert!(problems[0].contains("overlap"), "{problems:?}");
        let problems = check("at = \"1m\"\nkind = \"cut\"\nfrom = \"eu1.test\"\nto = \"eu1.test\"")
            .unwrap_err();
        assert!(problems[0].starts_with("fault[2].to:"), "{problems:?}");
    }

    #[test]
    fn unknown_kinds_and_keys_are_serde_errors() {
        let error = check("at = \"1m\"\nkind = \"explode\"").unwrap_err();
        assert!(
            error[0].contains("unknown variant `explode`, expected one of `partition`"),
            "{error:?}"
        );
        let error = check("at = \"1m\"\nkind = \"heal\"\nsevrer = \"x\"").unwrap_err();
        assert!(error[0].contains("unknown field `sevrer`"), "{error:?}");
    }
}
