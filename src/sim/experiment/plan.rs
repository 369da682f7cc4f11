//! The resolved form of an experiment for one seed: concrete servers and users, the fault
//! schedule as concrete actions each with its undo, adversary windows and the workload rates.
//! The runner executes a [`RunPlan`] and never reads experiment files.
//!
//! Invariants: [`Experiment::resolve`] is pure and deterministic: the same experiment, seed and
//! RNG state give the same plan, and the RNG is drawn from only for partition shapes, in fault
//! order. Every fault's undo happens at or after its start and no later than
//! `final_phase_at`, so every run ends with a liveness phase. Applying the actions of
//! [`RunPlan::timeline`] in order leaves the network, clocks and servers as the topology
//! describes them by the final phase, provided cuts nest (a link stays cut while more `Cut`s
//! than `Restore`s cover it).

use super::adversary::{Attack, AttackParams};
use super::duration::SimDuration;
use super::expect::Expect;
use super::experiment::{Experiment, FabricChoice};
use super::fault::{FaultEffect, FaultKind, LinkPair, PartitionSides, Shape};
use super::problem::list_names;
use super::schedule::UndoCause;
use super::topology::{Fabric, ServerId, Topology};
use super::workload::{JoinMode, StateChangeKind, StateChangers};
use crate::proto::room_version::RoomVersion;
use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// A set of directed links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkSet {
    /// Both directions of every link between servers on different sides. Servers on no side
    /// are not touched.
    Across(Vec<Vec<ServerId>>),
    /// Both directions of every link between two distinct servers of the list.
    Within(Vec<ServerId>),
    /// Every link between servers of a ring except those between neighbours in the ring order
    /// (the first and last are neighbours).
    RingGaps(Vec<ServerId>),
    /// Exactly these directed links.
    Directed(Vec<(ServerId, ServerId)>),
}

impl LinkSet {
    /// Whether the directed link `from -> to` is in the set.
    pub fn contains(&self, from: ServerId, to: ServerId) -> bool {
        if from == to {
            return false;
        }
        match self {
            Self::Across(sides) => {
                let side_of = |server| sides.iter().position(|side| side.contains(&server));
                matches!((side_of(from), side_of(to)), (Some(a), Some(b)) if a != b)
            }
            Self::Within(servers) => servers.contains(&from) && servers.contains(&to),
            Self::RingGaps(order) => {
                let position = |server| order.iter().position(|member| *member == server);
                match (position(from), position(to)) {
                    (Some(a), Some(b)) => {
                        let distance = a.abs_diff(b);
                        distance != 1 && distance != order.len() - 1
                    }
                    _ => false,
                }
            }
            Self::Directed(links) => links.contains(&(from, to)),
        }
    }

    /// Every directed link of the set, sorted. Its size grows with the square of the servers
    /// involved (500,000 links for halves of 1000 servers), while [`LinkSet::contains`] costs
    /// a scan of the listed servers per call: a runner on a large topology expands once into
    /// its own lookup structure.
    pub fn links(&self) -> Vec<(ServerId, ServerId)> {
        let mut links = match self {
            Self::Across(sides) => {
                let mut links = Vec::new();
                for (a_index, a_side) in sides.iter().enumerate() {
                    for (b_index, b_side) in sides.iter().enumerate() {
                        if a_index != b_index {
                            links.extend(
                                a_side
                                    .iter()
                                    .flat_map(|a| b_side.iter().map(move |b| (*a, *b))),
                            );
                        }
                    }
                }
                links
            }
            Self::Within(servers) | Self::RingGaps(servers) => servers
                .iter()
                .flat_map(|a| servers.iter().map(move |b| (*a, *b)))
                .filter(|(a, b)| self.contains(*a, *b))
                .collect(),
            Self::Directed(links) => links.clone(),
        };
        links.sort_unstable();
        links.dedup();
        links
    }
}

/// One concrete change to the simulated world.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Drop every message on these links.
    Cut(LinkSet),
    /// Undo one `Cut` of these links.
    Restore(LinkSet),
    SetLatency {
        links: LinkSet,
        latency_ms_min: u64,
        latency_ms_max: u64,
    },
    /// Back to the topology's latency ([`Topology::link`]).
    ResetLatency {
        links: LinkSet,
    },
    SetLoss {
        links: LinkSet,
        loss: f64,
    },
    /// Back to the topology's loss.
    ResetLoss {
        links: LinkSet,
    },
    /// Stop the server; with `lose_unflushed`, what it had not made durable is lost.
    Crash {
        server: ServerId,
        lose_unflushed: bool,
    },
    Restart {
        server: ServerId,
    },
    /// The server's clock reads simulated time plus this offset (0 resets it).
    SetClockOffset {
        server: ServerId,
        offset_ms: i64,
    },
    /// Extra delay on every message the server receives (0 resets it).
    SetSlow {
        server: ServerId,
        extra_latency_ms: u64,
    },
    /// The server's honest users send valid messages at this extra rate.
    StartFlood {
        server: ServerId,
        messages_per_second: f64,
    },
    StopFlood {
        server: ServerId,
    },
}

/// One fault of the file with its concrete action and undo.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedFault {
    /// Position in the file's `[[fault]]` list (`fault[index]` in messages).
    pub index: usize,
    pub kind: FaultKind,
    pub at: SimDuration,
    pub action: Action,
    pub undo_at: SimDuration,
    pub undo: Action,
    pub undone_by: UndoCause,
    /// For the start-of-run listing: "partition [eu1.test, eu2.test] | [us1.test]".
    pub description: String,
}

/// Whether a timed action starts a fault or undoes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Start,
    Undo(UndoCause),
}

/// One entry of the flattened schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimedAction<'plan> {
    pub at: SimDuration,
    /// Index of the fault in the file.
    pub fault: usize,
    pub step: Step,
    pub action: &'plan Action,
}

/// One user of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedUser {
    pub localpart: String,
    /// `@localpart:server`.
    pub user_id: String,
    /// Power 100 (the creator, and `admins_per_server` users per server).
    pub admin: bool,
    pub sends_messages: bool,
    /// May change state (only what its power allows; see `WorkloadPlan::state_changes_by`).
    pub changes_state: bool,
    pub join_at: SimDuration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedServer {
    pub id: ServerId,
    pub name: String,
    pub group: String,
    /// False when an `[[adversary]]` controls it: its users generate no honest traffic and the
    /// metrics leave it out.
    pub honest: bool,
    /// False for attackers that must stay outside the room.
    pub joins_room: bool,
    pub users: Vec<PlannedUser>,
}

/// A user by server and position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRef {
    pub server: ServerId,
    pub user: usize,
}

/// The workload's rates and roles.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadPlan {
    /// Creates the room at time 0.
    pub creator: UserRef,
    /// Rates for the whole room, spread over the users allowed to act.
    pub messages_per_second: f64,
    pub state_changes_per_second: f64,
    pub typing_per_second: f64,
    pub receipts_per_second: f64,
    pub state_changes_by: StateChangers,
    pub state_change_kinds: Vec<StateChangeKind>,
    pub join: JoinMode,
    /// The workload stops here (the final phase begins) so convergence is judged on a quiet room.
    pub stops_at: SimDuration,
}

/// One adversary window.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedAdversary {
    /// Position in the file's `[[adversary]]` list.
    pub index: usize,
    pub server: ServerId,
    pub attack: Attack,
    pub from: SimDuration,
    pub until: SimDuration,
    pub params: AttackParams,
}

/// Everything a runner needs for one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPlan {
    pub experiment: String,
    pub seed: u64,
    pub room_version: &'static RoomVersion,
    pub fabric: Fabric,
    pub fabric_choice: FabricChoice,
    pub duration: SimDuration,
    pub settle: SimDuration,
    /// `duration - settle`: all faults are undone, adversaries and workload stop.
    pub final_phase_at: SimDuration,
    /// Groups, servers and base link profiles (`topology.link(from, to)`).
    pub topology: Topology,
    /// Indexed by `ServerId`.
    pub servers: Vec<PlannedServer>,
    pub workload: WorkloadPlan,
    /// Sorted by start time, then file order. Heal and restart entries of the file appear as
    /// the `undone_by` of the faults they end.
    pub faults: Vec<PlannedFault>,
    pub adversaries: Vec<PlannedAdversary>,
    pub expect: Expect,
}

impl RunPlan {
    /// Every start and undo, in the order to apply them: by time; at one instant, undos of
    /// faults that began earlier, then starts, then undos of faults that began at that instant.
    pub fn timeline(&self) -> Vec<TimedAction<'_>> {
        let mut entries: Vec<(u8, TimedAction<'_>)> = Vec::new();
        for fault in &self.faults {
            entries.push((
                1,
                TimedAction {
                    at: fault.at,
                    fault: fault.index,
                    step: Step::Start,
                    action: &fault.action,
                },
            ));
            let rank = if fault.undo_at == fault.at { 2 } else { 0 };
            entries.push((
                rank,
                TimedAction {
                    at: fault.undo_at,
                    fault: fault.index,
                    step: Step::Undo(fault.undone_by),
                    action: &fault.undo,
                },
            ));
        }
        entries.sort_by_key(|(rank, entry)| (entry.at, *rank, entry.fault));
        entries.into_iter().map(|(_, entry)| entry).collect()
    }

    pub fn server_name(&self, id: ServerId) -> &str {
        &self.servers[id.0].name
    }

    /// Honest servers whose users join the room.
    pub fn honest_servers(&self) -> impl Iterator<Item = &PlannedServer> {
        self.servers
            .iter()
            .filter(|server| server.honest && server.joins_room)
    }

    /// One line per drawn or derived parameter, for the start of a run: what will happen and
    /// when, including the shapes drawn for this seed.
    pub fn describe(&self) -> Vec<String> {
        let users: usize = self.servers.iter().map(|server| server.users.len()).sum();
        let fabric_reason = match self.fabric_choice {
            FabricChoice::Experiment => "set by the experiment",
            FabricChoice::Topology => "suggested by the topology",
            FabricChoice::ServerCount => "chosen by server count",
        };
        let mut lines = vec![
            format!("experiment {} seed {}", self.experiment, self.seed),
            format!(
                "room version {} (state resolution {}), fabric {} ({fabric_reason})",
                self.room_version.id,
                self.room_version.state_res.name(),
                self.fabric.name()
            ),
            format!(
                "{} servers, {users} users; duration {}, final phase from {}",
                self.servers.len(),
                self.duration,
                self.final_phase_at
            ),
            format!(
                "workload: {} messages/s, {} state changes/s, creator {}",
                self.workload.messages_per_second,
                self.workload.state_changes_per_second,
                self.servers
                    .get(self.workload.creator.server.0)
                    .and_then(|server| server.users.get(self.workload.creator.user))
                    .map_or("(none)", |user| user.user_id.as_str())
            ),
        ];
        for fault in &self.faults {
            let undone_by = match fault.undone_by {
                UndoCause::Until => "its own end".to_owned(),
                UndoCause::Heal { fault } => format!("heal fault[{fault}]"),
                UndoCause::Restart { fault } => format!("restart fault[{fault}]"),
                UndoCause::FinalPhase => "the final phase".to_owned(),
            };
            lines.push(format!(
                "fault[{}] {}..{}: {} (undone by {undone_by})",
                fault.index, fault.at, fault.undo_at, fault.description
            ));
        }
        for adversary in &self.adversaries {
            lines.push(format!(
                "adversary[{}] {}..{}: {} runs {}",
                adversary.index,
                adversary.from,
                adversary.until,
                self.server_name(adversary.server),
                adversary.attack.name()
            ));
        }
        lines
    }
}

impl Experiment {
    /// Resolves this experiment for `seed`. `rng` is drawn from only to place partition shapes;
    /// pass the run's RNG for the component that plans (the caller seeds it from `seed`).
    pub fn resolve(&self, seed: u64, rng: &mut ChaCha8Rng) -> RunPlan {
        let servers = self.planned_servers();
        let workload = &self.file.workload;
        let mut faults: Vec<PlannedFault> = self
            .faults
            .iter()
            .filter_map(|fault| {
                let undo = self.undos.iter().find(|undo| undo.fault == fault.index)?;
                let (action, undo_action, description) =
                    concrete(&fault.effect, &self.topology, rng)?;
                Some(PlannedFault {
                    index: fault.index,
                    kind: fault.kind,
                    at: fault.at,
                    action,
                    undo_at: undo.at,
                    undo: undo_action,
                    undone_by: undo.cause,
                    description,
                })
            })
            .collect();
        faults.sort_by_key(|fault| (fault.at, fault.index));
        RunPlan {
            experiment: self.file.name.clone(),
            seed,
            room_version: self.room_version,
            fabric: self.fabric,
            fabric_choice: self.fabric_choice,
            duration: self.file.duration,
            settle: self.file.settle,
            final_phase_at: self.final_phase_at,
            topology: self.topology.clone(),
            servers,
            workload: WorkloadPlan {
                creator: UserRef {
                    server: self.creator,
                    user: 0,
                },
                messages_per_second: workload.messages_per_second.per_second(),
                state_changes_per_second: workload.state_changes_per_second.per_second(),
                typing_per_second: workload.typing_per_second.per_second(),
                receipts_per_second: workload.receipts_per_second.per_second(),
                state_changes_by: workload.state_changes_by,
                state_change_kinds: workload.state_change_kinds.clone(),
                join: workload.join,
                stops_at: self.final_phase_at,
            },
            faults,
            adversaries: self
                .adversaries
                .iter()
                .map(|adversary| PlannedAdversary {
                    index: adversary.index,
                    server: adversary.server,
                    attack: adversary.attack,
                    from: adversary.from,
                    until: adversary.until,
                    params: adversary.params.clone(),
                })
                .collect(),
            expect: self.file.expect.clone(),
        }
    }

    fn planned_servers(&self) -> Vec<PlannedServer> {
        let workload = &self.file.workload;
        let join_order = self.staggered_join_order();
        let joiners = join_order.len().max(1) as u64;
        let join_at = |server: ServerId, user: usize| -> SimDuration {
            if workload.join == JoinMode::AtStart {
                return SimDuration::ZERO;
            }
            let rank = join_order.get(&(server, user)).copied().unwrap_or_default() as u64;
            // The creator is alone at 0; joiner `rank` comes at (rank + 1) / joiners of the window,
            // the last one at its end. rank < joiners <= 2^32 and join_over < 2^35 ms: no overflow.
            SimDuration::from_ms(workload.join_over.as_ms() * (rank + 1) / joiners)
                .unwrap_or_default()
        };
        self.topology
            .servers
            .iter()
            .enumerate()
            .map(|(index, server)| {
                let id = ServerId(index);
                let attacks: Vec<Attack> = self
                    .adversaries
                    .iter()
                    .filter(|adversary| adversary.server == id)
                    .map(|adversary| adversary.attack)
                    .collect();
                let honest = attacks.is_empty();
                let joins_room = attacks.iter().all(|attack| attack.joins_room());
                let users = (0..self.users_of(id) as usize)
                    .map(|position| {
                        let localpart = format!("u{}", position + 1);
                        let is_creator = id == self.creator && position == 0;
                        let admin = honest
                            && (is_creator || position < workload.admins_per_server as usize);
                        let sends_messages = honest
                            && workload
                                .senders_per_server
                                .is_none_or(|senders| position < senders as usize);
                        let changes_state = honest
                            && match workload.state_changes_by {
                                StateChangers::Admins => admin,
                                StateChangers::AnyoneAllowed => true,
                            };
                        PlannedUser {
                            user_id: format!("@{localpart}:{}", server.name),
                            localpart,
                            admin,
                            sends_messages,
                            changes_state,
                            join_at: if is_creator {
                                SimDuration::ZERO
                            } else {
                                join_at(id, position)
                            },
                        }
                    })
                    .collect();
                PlannedServer {
                    id,
                    name: server.name.clone(),
                    group: self.topology.groups[server.group.0].name.clone(),
                    honest,
                    joins_room,
                    users,
                }
            })
            .collect()
    }

    /// The order of staggered joins: first users of every server, then second users, ...,
    /// so servers fill up together; the creator is not in it (it creates the room at 0).
    fn staggered_join_order(&self) -> BTreeMap<(ServerId, usize), usize> {
        let counts: Vec<usize> = (0..self.topology.servers.len())
            .map(|index| self.users_of(ServerId(index)) as usize)
            .collect();
        let deepest = counts.iter().copied().max().unwrap_or(0);
        let mut order = BTreeMap::new();
        for position in 0..deepest {
            for (index, count) in counts.iter().enumerate() {
                let is_creator = ServerId(index) == self.creator && position == 0;
                if position < *count && !is_creator {
                    let rank = order.len();
                    order.insert((ServerId(index), position), rank);
                }
            }
        }
        order
    }
}

/// A fault's action, its undo and a description. `None` for heal and restart, which are
/// undos of other faults.
fn concrete(
    effect: &FaultEffect,
    topology: &Topology,
    rng: &mut ChaCha8Rng,
) -> Option<(Action, Action, String)> {
    let name = |id: ServerId| topology.server(id).name.clone();
    Some(match effect {
        FaultEffect::Heal | FaultEffect::Restart { .. } => return None,
        FaultEffect::Partition(sides) => {
            let (links, description) = partition_links(sides, topology, rng);
            (
                Action::Cut(links.clone()),
                Action::Restore(links),
                description,
            )
        }
        FaultEffect::Isolate { server } => {
            let others: Vec<ServerId> = (0..topology.servers.len())
                .map(ServerId)
                .filter(|other| other != server)
                .collect();
            let links = LinkSet::Across(vec![vec![*server], others]);
            (
                Action::Cut(links.clone()),
                Action::Restore(links),
                format!("isolate {}", name(*server)),
            )
        }
        FaultEffect::Cut { from, to, one_way } => {
            let links = if *one_way {
                LinkSet::Directed(
                    from.iter()
                        .flat_map(|a| to.iter().map(move |b| (*a, *b)))
                        .collect(),
                )
            } else {
                LinkSet::Across(vec![from.clone(), to.clone()])
            };
            let arrow = if *one_way { "->" } else { "<->" };
            let description = format!(
                "cut {} {arrow} {}",
                names(from, topology),
                names(to, topology)
            );
            (
                Action::Cut(links.clone()),
                Action::Restore(links),
                description,
            )
        }
        FaultEffect::Latency {
            links,
            latency_ms_min,
            latency_ms_max,
        } => {
            let set = pair_links(links);
            (
                Action::SetLatency {
                    links: set.clone(),
                    latency_ms_min: *latency_ms_min,
                    latency_ms_max: *latency_ms_max,
                },
                Action::ResetLatency { links: set },
                format!(
                    "latency {latency_ms_min}-{latency_ms_max}ms between {}",
                    pair_names(links, topology)
                ),
            )
        }
        FaultEffect::Loss { links, loss } => {
            let set = pair_links(links);
            (
                Action::SetLoss {
                    links: set.clone(),
                    loss: loss.value(),
                },
                Action::ResetLoss { links: set },
                format!("loss {loss} between {}", pair_names(links, topology)),
            )
        }
        FaultEffect::Crash {
            server,
            lose_unflushed,
        } => (
            Action::Crash {
                server: *server,
                lose_unflushed: *lose_unflushed,
            },
            Action::Restart { server: *server },
            format!(
                "crash {}{}",
                name(*server),
                if *lose_unflushed {
                    " losing unflushed writes"
                } else {
                    ""
                }
            ),
        ),
        FaultEffect::ClockSkew { server, offset } => (
            Action::SetClockOffset {
                server: *server,
                offset_ms: offset.as_ms(),
            },
            Action::SetClockOffset {
                server: *server,
                offset_ms: 0,
            },
            format!("clock of {} off by {offset}", name(*server)),
        ),
        FaultEffect::Slow {
            server,
            extra_latency,
        } => (
            Action::SetSlow {
                server: *server,
                extra_latency_ms: extra_latency.as_ms(),
            },
            Action::SetSlow {
                server: *server,
                extra_latency_ms: 0,
            },
            format!("{} slow by {extra_latency}", name(*server)),
        ),
        FaultEffect::Flood {
            server,
            messages_per_second,
        } => (
            Action::StartFlood {
                server: *server,
                messages_per_second: messages_per_second.per_second(),
            },
            Action::StopFlood { server: *server },
            format!("flood from {} at {messages_per_second}", name(*server)),
        ),
    })
}

fn names(servers: &[ServerId], topology: &Topology) -> String {
    format!(
        "[{}]",
        list_names(servers.iter().map(|id| topology.server(*id).name.as_str()))
    )
}

fn pair_links(pair: &LinkPair) -> LinkSet {
    if pair.a == pair.b {
        LinkSet::Within(pair.a.clone())
    } else {
        LinkSet::Across(vec![pair.a.clone(), pair.b.clone()])
    }
}

fn pair_names(pair: &LinkPair, topology: &Topology) -> String {
    if pair.a == pair.b {
        format!("servers of {}", names(&pair.a, topology))
    } else {
        format!(
            "{} and {}",
            names(&pair.a, topology),
            names(&pair.b, topology)
        )
    }
}

fn partition_links(
    sides: &PartitionSides,
    topology: &Topology,
    rng: &mut ChaCha8Rng,
) -> (LinkSet, String) {
    let describe = |sides: &[Vec<ServerId>]| {
        sides
            .iter()
            .map(|side| names(side, topology))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let shape = match sides {
        PartitionSides::Explicit(sides) => {
            return (
                LinkSet::Across(sides.clone()),
                format!("partition {}", describe(sides)),
            );
        }
        PartitionSides::Shape(shape) => *shape,
    };
    let mut servers: Vec<ServerId> = (0..topology.servers.len()).map(ServerId).collect();
    shuffle(&mut servers, rng);
    let split = |mut servers: Vec<ServerId>, at: usize| {
        let right = servers.split_off(at);
        let mut sides = vec![servers, right];
        for side in &mut sides {
            side.sort_unstable();
        }
        sides
    };
    let count = servers.len();
    match shape {
        Shape::Halves => {
            let sides = split(servers, count / 2);
            let description = format!("partition (halves) {}", describe(&sides));
            (LinkSet::Across(sides), description)
        }
        Shape::MinorityMajority => {
            let sides = split(servers, ((count - 1) / 2).max(1));
            let description = format!("partition (minority-majority) {}", describe(&sides));
            (LinkSet::Across(sides), description)
        }
        Shape::Ring => {
            let description = format!("partition (ring) in order {}", names(&servers, topology));
            (LinkSet::RingGaps(servers), description)
        }
        Shape::Bridge => {
            let bridge = servers.remove(0);
            let sides = split(servers, (count - 1) / 2);
            let description = format!(
                "partition (bridge {}) {}",
                topology.server(bridge).name,
                describe(&sides)
            );
            (LinkSet::Across(sides), description)
        }
    }
}

/// Fisher-Yates, written out so the draw sequence is ours and stable across rand releases'
/// shuffle implementations.
fn shuffle(servers: &mut [ServerId], rng: &mut ChaCha8Rng) {
    for last in (1..servers.len()).rev() {
        let pick = rng.random_range(0..=last);
        servers.swap(last, pick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::experiment::load::parse_experiment;
    use crate::sim::experiment::numbers::Rate;
    use proptest::prelude::*;
    use rand::SeedableRng as _;
    use std::collections::BTreeSet;
    use std::path::Path;

    const MESH: &str = "[topology]\nusers_per_server = 3\n[topology.group.hs]\ncount = 5\n";

    fn experiment(body: &str) -> Experiment {
        let text = format!(
            "name = \"x\"\ndescription = \"test\"\nduration = \"5m\"\nsettle = \"1m\"\n{body}\n{MESH}"
        );
        parse_experiment(Path::new("x.toml"), &text).unwrap_or_else(|error| panic!("{error}"))
    }

    fn plan(body: &str, rng_seed: u64) -> RunPlan {
        experiment(body).resolve(7, &mut ChaCha8Rng::seed_from_u64(rng_seed))
    }

    fn s(index: usize) -> ServerId {
        ServerId(index)
    }

    #[test]
    fn every_fault_gets_its_undo_and_cause() {
        let plan = plan(
            "[[fault]]\nat = \"10s\"\nkind = \"partition\"\nsides = [[\"hs1.test\"], [\"hs2.test\", \"hs3.test\"]]\n\
             [[fault]]\nat = \"40s\"\nkind = \"heal\"\n\
             [[fault]]\nat = \"20s\"\nkind = \"crash\"\nserver = \"hs4.test\"\nlose_unflushed = true\n\
             [[fault]]\nat = \"1m\"\nkind = \"restart\"\nserver = \"hs4.test\"\n\
             [[fault]]\nat = \"2m\"\nkind = \"crash\"\nserver = \"hs5.test\"\n\
             [[fault]]\nat = \"30s\"\nfor = \"15s\"\nkind = \"clock-skew\"\nserver = \"hs2.test\"\noffset = \"-30s\"\n",
            1,
        );
        let summary: Vec<(usize, u64, u64, UndoCause)> = plan
            .faults
            .iter()
            .map(|fault| {
                (
                    fault.index,
                    fault.at.as_ms(),
                    fault.undo_at.as_ms(),
                    fault.undone_by,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (0, 10_000, 40_000, UndoCause::Heal { fault: 1 }),
                (2, 20_000, 60_000, UndoCause::Restart { fault: 3 }),
                (5, 30_000, 45_000, UndoCause::Until),
                (4, 120_000, 240_000, UndoCause::FinalPhase),
            ]
        );
        assert_eq!(plan.final_phase_at.as_ms(), 240_000);
        let crash = &plan.faults[1];
        assert_eq!(
            crash.action,
            Action::Crash {
                server: s(3),
                lose_unflushed: true
            }
        );
        assert_eq!(crash.undo, Action::Restart { server: s(3) });
        assert_eq!(
            plan.faults[2].action,
            Action::SetClockOffset {
                server: s(1),
                offset_ms: -30_000
            }
        );
        assert_eq!(
            plan.faults[2].undo,
            Action::SetClockOffset {
                server: s(1),
                offset_ms: 0
            }
        );
        let Action::Cut(links) = &plan.faults[0].action else {
            panic!("{:?}", plan.faults[0].action);
        };
        assert_eq!(
            links.links(),
            [(s(0), s(1)), (s(0), s(2)), (s(1), s(0)), (s(2), s(0))]
        );
        assert_eq!(plan.faults[0].undo, Action::Restore(links.clone()));
    }

    #[test]
    fn describe_lists_every_drawn_parameter() {
        let plan = plan(
            "[[fault]]\nat = \"10s\"\nkind = \"partition\"\nshape = \"minority-majority\"\n[[fault]]\nat = \"40s\"\nkind = \"heal\"\n",
            1,
        );
        let lines = plan.describe();
        assert_eq!(lines[0], "experiment x seed 7");
        assert_eq!(
            lines[1],
            "room version 12 (state resolution v2.1), fabric turmoil (chosen by server count)"
        );
        assert_eq!(
            lines[2],
            "5 servers, 15 users; duration 5m, final phase from 4m"
        );
        assert!(lines[3].ends_with("creator @u1:hs1.test"), "{}", lines[3]);
        assert!(
            lines[4].starts_with("fault[0] 10s..40s: partition (minority-majority) [")
                && lines[4].ends_with("(undone by heal fault[1])"),
            "{}",
            lines[4]
        );
    }

    #[test]
    fn timeline_undoes_earlier_faults_before_starting_new_ones() {
        let plan = plan(
            "[[fault]]\nat = \"10s\"\nuntil = \"30s\"\nkind = \"isolate\"\nserver = \"hs1.test\"\n\
             [[fault]]\nat = \"30s\"\nkind = \"isolate\"\nserver = \"hs2.test\"\n\
             [[fault]]\nat = \"30s\"\nkind = \"heal\"\n",
            1,
        );
        let steps: Vec<(u64, usize, Step)> = plan
            .timeline()
            .iter()
            .map(|entry| (entry.at.as_ms() / 1000, entry.fault, entry.step))
            .collect();
        assert_eq!(
            steps,
            [
                (10, 0, Step::Start),
                (30, 0, Step::Undo(UndoCause::Until)),
                (30, 1, Step::Start),
                (30, 1, Step::Undo(UndoCause::Heal { fault: 2 })),
            ]
        );
    }

    #[test]
    fn shapes_are_drawn_from_the_rng_and_reproducible() {
        let body = "[[fault]]\nat = \"10s\"\nkind = \"partition\"\nshape = \"halves\"\n";
        assert_eq!(plan(body, 3), plan(body, 3));
        let sides = |rng_seed| match &plan(body, rng_seed).faults[0].action {
            Action::Cut(LinkSet::Across(sides)) => sides.clone(),
            other => panic!("{other:?}"),
        };
        let drawn: BTreeSet<Vec<Vec<ServerId>>> = (0..20).map(sides).collect();
        assert!(drawn.len() > 1, "20 seeds drew one partition: {drawn:?}");
        for sides in drawn {
            assert_eq!((sides[0].len(), sides[1].len()), (2, 3));
            let all: BTreeSet<ServerId> = sides.iter().flatten().copied().collect();
            assert_eq!(all.len(), 5);
        }
    }

    #[test]
    fn shape_geometry() {
        let action = |shape: &str| {
            let body =
                format!("[[fault]]\nat = \"10s\"\nkind = \"partition\"\nshape = \"{shape}\"\n");
            match &plan(&body, 9).faults[0].action {
                Action::Cut(links) => links.clone(),
                other => panic!("{other:?}"),
            }
        };
        let LinkSet::Across(sides) = action("minority-majority") else {
            panic!()
        };
        assert_eq!((sides[0].len(), sides[1].len()), (2, 3));
        let LinkSet::Across(sides) = action("bridge") else {
            panic!()
        };
        assert_eq!((sides[0].len(), sides[1].len()), (2, 2));
        let bridge = (0..5)
            .map(s)
            .find(|id| !sides.iter().flatten().any(|x| x == id))
            .unwrap();
        let cut = LinkSet::Across(sides);
        assert!((0..5).all(|other| !cut.contains(bridge, s(other))));
        let ring = action("ring");
        for server in 0..5 {
            let reachable =
                (0..5).filter(|other| *other != server && !ring.contains(s(server), s(*other)));
            assert_eq!(reachable.count(), 2, "server {server} in {ring:?}");
        }
        assert_eq!(ring.links().len(), 5 * 2);
    }

    #[test]
    fn users_roles_and_adversaries() {
        let text = format!(
            "name = \"x\"\ndescription = \"t\"\nduration = \"5m\"\n\
             [workload]\nadmins_per_server = 1\nsenders_per_server = 2\ncreator = \"hs2.test\"\n\
             [[adversary]]\nserver = \"hs5.test\"\nattack = \"peek-outside-room\"\n{MESH}"
        );
        let experiment = parse_experiment(Path::new("x.toml"), &text).unwrap();
        let plan = experiment.resolve(1, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(
            plan.workload.creator,
            UserRef {
                server: s(1),
                user: 0
            }
        );
        let hs1 = &plan.servers[0];
        assert_eq!(hs1.users.len(), 3);
        assert_eq!(hs1.users[0].user_id, "@u1:hs1.test");
        let roles: Vec<(bool, bool, bool)> = hs1
            .users
            .iter()
            .map(|user| (user.admin, user.sends_messages, user.changes_state))
            .collect();
        assert_eq!(
            roles,
            [
                (true, true, true),
                (false, true, false),
                (false, false, false)
            ]
        );
        let evil = &plan.servers[4];
        assert!(!evil.honest && !evil.joins_room);
        assert!(
            evil.users
                .iter()
                .all(|user| !user.sends_messages && !user.admin)
        );
        assert_eq!(plan.honest_servers().count(), 4);
        assert_eq!(plan.adversaries[0].until, plan.final_phase_at);
        assert_eq!(
            plan.adversaries[0]
                .params
                .rate("requests_per_second")
                .map(Rate::per_second),
            Some(2.0)
        );
    }

    #[test]
    fn staggered_joins_spread_over_the_window_and_interleave_servers() {
        let plan = plan("[workload]\njoin = \"staggered\"\njoin_over = \"30s\"\n", 1);
        assert_eq!(plan.servers[0].users[0].join_at, SimDuration::ZERO);
        let mut times: Vec<(u64, String)> = plan
            .servers
            .iter()
            .flat_map(|server| server.users.iter())
            .map(|user| (user.join_at.as_ms(), user.user_id.clone()))
            .collect();
        times.sort();
        assert!(times.iter().all(|(ms, _)| *ms <= 30_000));
        assert_eq!(times.last().map(|(ms, _)| *ms), Some(30_000));
        let distinct: BTreeSet<u64> = times.iter().map(|(ms, _)| *ms).collect();
        assert_eq!(
            distinct.len(),
            15,
            "creator at 0 and 14 joiners at distinct times"
        );
        assert_eq!(times[1].1, "@u1:hs2.test");
        assert_eq!(times[2].1, "@u1:hs3.test");
    }

    /// What the simulated world looks like after applying a timeline, for the invariant that
    /// every run ends as the topology describes it.
    #[derive(Default, PartialEq, Debug)]
    struct World {
        cuts: BTreeMap<(ServerId, ServerId), i64>,
        latency: BTreeSet<(ServerId, ServerId)>,
        loss: BTreeSet<(ServerId, ServerId)>,
        crashed: BTreeSet<ServerId>,
        offsets: BTreeMap<ServerId, i64>,
        slow: BTreeMap<ServerId, u64>,
        floods: BTreeSet<ServerId>,
    }

    impl World {
        fn apply(&mut self, action: &Action) {
            match action {
                Action::Cut(links) => links
                    .links()
                    .into_iter()
                    .for_each(|link| *self.cuts.entry(link).or_default() += 1),
                Action::Restore(links) => links
                    .links()
                    .into_iter()
                    .for_each(|link| *self.cuts.entry(link).or_default() -= 1),
                Action::SetLatency { links, .. } => self.latency.extend(links.links()),
                Action::ResetLatency { links } => links.links().iter().for_each(|link| {
                    self.latency.remove(link);
                }),
                Action::SetLoss { links, .. } => self.loss.extend(links.links()),
                Action::ResetLoss { links } => links.links().iter().for_each(|link| {
                    self.loss.remove(link);
                }),
                Action::Crash { server, .. } => {
                    assert!(self.crashed.insert(*server), "double crash")
                }
                Action::Restart { server } => {
                    assert!(self.crashed.remove(server), "restart of a running server")
                }
                Action::SetClockOffset { server, offset_ms } => {
                    self.offsets.insert(*server, *offset_ms);
                }
                Action::SetSlow {
                    server,
                    extra_latency_ms,
                } => {
                    self.slow.insert(*server, *extra_latency_ms);
                }
                Action::StartFlood { server, .. } => assert!(self.floods.insert(*server)),
                Action::StopFlood { server } => assert!(self.floods.remove(server)),
            }
        }

        fn is_baseline(&self) -> bool {
            self.cuts.values().all(|count| *count == 0)
                && self.latency.is_empty()
                && self.loss.is_empty()
                && self.crashed.is_empty()
                && self.offsets.values().all(|offset| *offset == 0)
                && self.slow.values().all(|extra| *extra == 0)
                && self.floods.is_empty()
        }
    }

    fn fault_text() -> impl Strategy<Value = String> {
        let server = (1..=5u8).prop_map(|n| format!("hs{n}.test"));
        let kind = prop_oneof![
            Just("kind = \"partition\"\nshape = \"halves\"".to_owned()),
            Just("kind = \"partition\"\nshape = \"ring\"".to_owned()),
            Just("kind = \"heal\"".to_owned()),
            server
                .clone()
                .prop_map(|s| format!("kind = \"isolate\"\nserver = \"{s}\"")),
            (server.clone(), server.clone()).prop_map(|(a, b)| format!(
                "kind = \"cut\"\nfrom = \"{a}\"\nto = \"{b}\"\none_way = true"
            )),
            (server.clone(), server.clone()).prop_map(|(a, b)| format!(
                "kind = \"latency\"\nbetween = [\"{a}\", \"{b}\"]\nlatency_min = \"100ms\""
            )),
            Just("kind = \"loss\"\nbetween = [\"hs\", \"hs\"]\nloss = 0.1".to_owned()),
            server
                .clone()
                .prop_map(|s| format!("kind = \"crash\"\nserver = \"{s}\"")),
            server
                .clone()
                .prop_map(|s| format!("kind = \"restart\"\nserver = \"{s}\"")),
            server
                .clone()
                .prop_map(|s| format!("kind = \"clock-skew\"\nserver = \"{s}\"\noffset = \"-5s\"")),
            server
                .clone()
                .prop_map(|s| format!("kind = \"slow\"\nserver = \"{s}\"\nextra_latency = \"1s\"")),
            server.prop_map(|s| format!(
                "kind = \"flood\"\nserver = \"{s}\"\nmessages_per_second = 20"
            )),
        ];
        let length = prop_oneof![Just(None), (1..120u64).prop_map(Some)];
        (0..240u64, length, kind).prop_map(|(at, length, kind)| {
            let end = length
                .map(|seconds| format!("for = \"{seconds}s\"\n"))
                .unwrap_or_default();
            format!("[[fault]]\nat = \"{at}s\"\n{end}{kind}\n")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Every valid schedule ends, by the final phase, with the world as the topology
        /// describes it; undos never precede their fault.
        #[test]
        fn valid_schedules_return_to_baseline(faults in prop::collection::vec(fault_text(), 1..7), rng_seed in 0..1000u64) {
            let text = format!("name = \"x\"\ndescription = \"t\"\nduration = \"5m\"\nsettle = \"1m\"\n{}\n{MESH}", faults.concat());
            let Ok(experiment) = parse_experiment(Path::new("x.toml"), &text) else {
                return Ok(());
            };
            let plan = experiment.resolve(1, &mut ChaCha8Rng::seed_from_u64(rng_seed));
            let mut world = World::default();
            let mut last = SimDuration::ZERO;
            for entry in plan.timeline() {
                prop_assert!(entry.at >= last, "timeline out of order");
                prop_assert!(entry.at <= plan.final_phase_at);
                last = entry.at;
                world.apply(entry.action);
            }
            for fault in &plan.faults {
                prop_assert!(fault.at <= fault.undo_at);
            }
            prop_assert!(world.is_baseline(), "{world:?}");
        }
    }
}
