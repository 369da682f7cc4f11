//! Pairs every fault with its undo: its own `until`/`for`, a later `heal` (network faults),
//! a later `restart` (crashes), or the start of the final phase. Also finds faults that
//! contradict each other (a second crash of a crashed server, a restart of a running one, two
//! clock skews of one server at once) and heals that have nothing to heal.
//!
//! Invariant: for checked faults whose times lie before the final phase, every fault except
//! `heal` and `restart` gets exactly one [`Undo`], at or after its start and no later than
//! the final phase, so every run ends with a liveness phase.

use super::duration::SimDuration;
use super::fault::{Fault, FaultEffect, FaultKind, LinkPair};
use super::problem::{KeyPath, Severity, at};
use super::topology::Topology;
use std::collections::BTreeMap;

/// Why a fault ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UndoCause {
    /// The fault's own `until` or `for`.
    Until,
    /// The `heal` fault with this index.
    Heal { fault: usize },
    /// The `restart` fault with this index.
    Restart { fault: usize },
    /// Nothing ended it earlier: the final phase does.
    FinalPhase,
}

/// When and why one fault is undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undo {
    pub fault: usize,
    pub at: SimDuration,
    pub cause: UndoCause,
}

/// A problem found while pairing: severity, key path and message.
pub type ScheduleProblem = (Severity, KeyPath, String);

/// Pairs undos for `faults` (any order); returns them sorted by fault index.
pub fn pair_undos(
    faults: &[Fault],
    topology: &Topology,
    final_phase_at: SimDuration,
) -> (Vec<Undo>, Vec<ScheduleProblem>) {
    let mut order: Vec<&Fault> = faults.iter().collect();
    order.sort_by_key(|fault| (fault.at, fault.index));
    let mut pairing = Pairing::default();
    for fault in order {
        pairing.expire_before(fault.at);
        match fault.kind {
            FaultKind::Heal => pairing.heal(fault),
            FaultKind::Restart => pairing.restart(fault, topology),
            _ => pairing.start(fault),
        }
    }
    for fault in std::mem::take(&mut pairing.active) {
        let undo = match fault.ends_at {
            Some(end) if end <= final_phase_at => Undo {
                fault: fault.index,
                at: end,
                cause: UndoCause::Until,
            },
            _ => Undo {
                fault: fault.index,
                at: final_phase_at,
                cause: UndoCause::FinalPhase,
            },
        };
        pairing.undos.insert(fault.index, undo);
    }
    (pairing.undos.into_values().collect(), pairing.problems)
}

#[derive(Default)]
struct Pairing<'a> {
    active: Vec<&'a Fault>,
    undos: BTreeMap<usize, Undo>,
    problems: Vec<ScheduleProblem>,
}

impl<'a> Pairing<'a> {
    fn problem(&mut self, severity: Severity, fault: &Fault, message: String) {
        self.problems
            .push((severity, at("fault").index(fault.index), message));
    }

    /// Ends the faults whose own end has come by `now`.
    fn expire_before(&mut self, now: SimDuration) {
        let (ended, active): (Vec<&Fault>, Vec<&Fault>) = self
            .active
            .iter()
            .partition(|fault| fault.ends_at.is_some_and(|end| end <= now));
        self.active = active;
        for fault in ended {
            let end = fault.ends_at.unwrap_or(now);
            self.undos.insert(
                fault.index,
                Undo {
                    fault: fault.index,
                    at: end,
                    cause: UndoCause::Until,
                },
            );
        }
    }

    fn end_now(&mut self, ended: Vec<&Fault>, at: SimDuration, cause: UndoCause) {
        for fault in ended {
            self.undos.insert(
                fault.index,
                Undo {
                    fault: fault.index,
                    at,
                    cause,
                },
            );
        }
    }

    fn heal(&mut self, heal: &'a Fault) {
        let (healed, active): (Vec<&Fault>, Vec<&Fault>) = self
            .active
            .iter()
            .partition(|fault| fault.kind.healed_by_heal());
        self.active = active;
        if healed.is_empty() {
            self.problem(
                Severity::Warning,
                heal,
                format!(
                    "heals nothing: no partition, isolate or cut is in effect at {}",
                    heal.at
                ),
            );
        }
        self.end_now(healed, heal.at, UndoCause::Heal { fault: heal.index });
    }

    fn restart(&mut self, restart: &'a Fault, topology: &Topology) {
        let FaultEffect::Restart { server } = restart.effect else {
            return;
        };
        let crash = self.active.iter().position(|fault| {
            matches!(fault.effect, FaultEffect::Crash { server: crashed, .. } if crashed == server)
        });
        match crash {
            Some(position) => {
                let crash = self.active.remove(position);
                self.end_now(
                    vec![crash],
                    restart.at,
                    UndoCause::Restart {
                        fault: restart.index,
                    },
                );
            }
            None => self.problem(
                Severity::Error,
                restart,
                format!(
                    "restarts {:?}, which is not crashed at {}; expected an earlier `kind = \"crash\"` of it still in effect",
                    topology.server(server).name,
                    restart.at
                ),
            ),
        }
    }

    fn start(&mut self, fault: &'a Fault) {
        if let Some(other) = self.active.iter().find(|other| conflicts(other, fault)) {
            let message = format!(
                "overlaps fault[{}] ({} at {}) on the same {}; expected it to start after that one ends",
                other.index,
                other.kind.name(),
                other.at,
                if matches!(fault.kind, FaultKind::Latency | FaultKind::Loss) {
                    "links"
                } else {
                    "server"
                }
            );
            self.problem(Severity::Error, fault, message);
            return;
        }
        self.active.push(fault);
    }
}

/// Two faults that cannot both be in effect: their undos would clobber each other.
fn conflicts(a: &Fault, b: &Fault) -> bool {
    if a.kind != b.kind {
        return false;
    }
    match (&a.effect, &b.effect) {
        (FaultEffect::Crash { server: x, .. }, FaultEffect::Crash { server: y, .. })
        | (FaultEffect::ClockSkew { server: x, .. }, FaultEffect::ClockSkew { server: y, .. })
        | (FaultEffect::Slow { server: x, .. }, FaultEffect::Slow { server: y, .. })
        | (FaultEffect::Flood { server: x, .. }, FaultEffect::Flood { server: y, .. }) => x == y,
        (FaultEffect::Latency { links: x, .. }, FaultEffect::Latency { links: y, .. }) => {
            links_overlap(x, y)
        }
        (FaultEffect::Loss { links: x, .. }, FaultEffect::Loss { links: y, .. }) => {
            links_overlap(x, y)
        }
        _ => false,
    }
}

fn links_overlap(x: &LinkPair, y: &LinkPair) -> bool {
    let meets = |p: &[_], q: &[_]| p.iter().any(|server| q.contains(server));
    (meets(&x.a, &y.a) && meets(&x.b, &y.b)) || (meets(&x.a, &y.b) && meets(&x.b, &y.a))
}
