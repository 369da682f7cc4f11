//! The nemesis: applies the plan's faults at their times and undoes each at its undo time, so
//! that every run ends with a liveness phase on a whole network. It measures what each fault
//! did (messages dropped or delayed on its links, crashes and skews applied), so that a fault
//! that silently did nothing shows up as such.
//!
//! Invariant: every start has exactly one undo applied later (the plan guarantees the pairing;
//! the nemesis applies both), and effect counts come from the network's own counters.

use crate::observe::record::FaultWindow;
use crate::sim::experiment::plan::{Action, LinkSet, Step};
use crate::sim::network::{LinkCounters, LinkProfile, NetworkModel};
use crate::sim::runner::world::World;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// A running flood: whether it goes on, and how many messages it sent.
type Flood = (Rc<std::cell::Cell<bool>>, Rc<std::cell::Cell<u64>>);

/// Counters of the links a fault acts on, when it started.
type Baseline = BTreeMap<(String, String), LinkCounters>;

/// Runs the fault schedule; returns the windows with their effects.
pub async fn run(world: Rc<World>) -> Vec<FaultWindow> {
    let mut windows: BTreeMap<usize, FaultWindow> = BTreeMap::new();
    let mut baselines: BTreeMap<usize, Baseline> = BTreeMap::new();
    let mut floods: BTreeMap<usize, Flood> = BTreeMap::new();
    let timeline: Vec<(u64, usize, Step, Action)> = world
        .plan
        .timeline()
        .into_iter()
        .map(|entry| {
            (
                entry.at.as_ms(),
                entry.fault,
                entry.step,
                entry.action.clone(),
            )
        })
        .collect();
    for (at_ms, fault_index, step, action) in timeline {
        let now = world.now_ms();
        if at_ms > now {
            tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
        }
        // `fault_index` is the fault's index in the file, which counts heal and restart entries
        // that have no plan entry of their own.
        let Some(fault) = world
            .plan
            .faults
            .iter()
            .find(|fault| fault.index == fault_index)
        else {
            continue;
        };
        let links = links_of(&world, &action);
        match step {
            Step::Start => {
                baselines.insert(fault_index, snapshot(&world, &links));
                let window = FaultWindow {
                    index: fault_index,
                    kind: fault.kind.name().to_owned(),
                    description: fault.description.clone(),
                    from_ms: at_ms,
                    until_ms: fault.undo_at.as_ms(),
                    effect_count: 0,
                    took_effect: false,
                };
                windows.insert(fault_index, window);
            }
            Step::Undo(_) => {
                let baseline = baselines.remove(&fault_index).unwrap_or_default();
                let effect = link_effect(&world, &baseline, &fault.action);
                if let Some(window) = windows.get_mut(&fault_index) {
                    window.effect_count += effect;
                }
            }
        }
        let applied = apply(&world, &action, &mut floods).await;
        if let Some(window) = windows.get_mut(&fault_index) {
            window.effect_count += applied;
        }
        world.trace(format!(
            "\"kind\":\"fault\",\"fault\":{fault_index},\"step\":\"{step:?}\",\"action\":\"{}\"",
            describe(&action)
        ));
    }
    windows
        .into_values()
        .map(|mut window| {
            window.took_effect = window.effect_count > 0;
            window
        })
        .collect()
}

fn describe(action: &Action) -> String {
    let text = format!("{action:?}");
    text.replace('"', "'")
}

/// The directed links an action touches, by server names.
fn links_of(world: &World, action: &Action) -> Vec<(String, String)> {
    let set: Option<&LinkSet> = match action {
        Action::Cut(links) | Action::Restore(links) => Some(links),
        Action::SetLatency { links, .. } | Action::ResetLatency { links } => Some(links),
        Action::SetLoss { links, .. } | Action::ResetLoss { links } => Some(links),
        _ => None,
    };
    let name =
        |id: crate::sim::experiment::topology::ServerId| world.plan.servers[id.0].name.clone();
    match set {
        Some(set) => set
            .links()
            .into_iter()
            .map(|(a, b)| (name(a), name(b)))
            .collect(),
        None => match action {
            Action::SetSlow { server, .. } => {
                let target = name(*server);
                world
                    .plan
                    .servers
                    .iter()
                    .map(|s| (s.name.clone(), target.clone()))
                    .filter(|(a, b)| a != b)
                    .collect()
            }
            _ => Vec::new(),
        },
    }
}

fn snapshot(world: &World, links: &[(String, String)]) -> Baseline {
    world.network.with_model(|model| {
        links
            .iter()
            .map(|link| (link.clone(), model.link_counters(&link.0, &link.1)))
            .collect()
    })
}

/// What a network fault did during its window: drops for cuts and loss, messages carried for
/// latency and slowness.
fn link_effect(world: &World, baseline: &Baseline, started_by: &Action) -> u64 {
    world.network.with_model(|model| {
        baseline
            .iter()
            .map(|(link, before)| {
                let now = model.link_counters(&link.0, &link.1);
                match started_by {
                    Action::Cut(_) => now.dropped_cut - before.dropped_cut,
                    Action::SetLoss { .. } => now.dropped_loss - before.dropped_loss,
                    Action::SetLatency { .. } | Action::SetSlow { .. } => {
                        now.delivered - before.delivered
                    }
                    _ => 0,
                }
            })
            .sum()
    })
}

fn base_profile(world: &World, from: &str, to: &str) -> LinkProfile {
    let id = |name: &str| {
        world
            .plan
            .servers
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.id)
    };
    match (id(from), id(to)) {
        (Some(a), Some(b)) => {
            crate::sim::runner::world::network_link(world.plan.topology.link(a, b))
        }
        _ => LinkProfile::default(),
    }
}

/// Applies one action; returns the effect it had once applied (crashes, restarts, skews: 1).
/// A crash or restart returns only once the fabric has carried it out.
async fn apply(world: &Rc<World>, action: &Action, floods: &mut BTreeMap<usize, Flood>) -> u64 {
    let links = links_of(world, action);
    let each_link = |change: &dyn Fn(&mut NetworkModel, &str, &str)| {
        world.network.with_model(|model| {
            for (from, to) in &links {
                change(model, from, to);
            }
        });
        world.network.links_changed();
    };
    match action {
        Action::Cut(_) => each_link(&|model, from, to| model.cut_one_way(from, to)),
        Action::Restore(_) => each_link(&|model, from, to| model.restore_one_way(from, to)),
        Action::SetLatency {
            latency_ms_min,
            latency_ms_max,
            ..
        } => each_link(&|model, from, to| {
            let mut profile = model.link(from, to);
            profile.latency_ms_min = *latency_ms_min;
            profile.latency_ms_max = (*latency_ms_max).max(*latency_ms_min);
            model.set_link_one_way(from, to, profile);
        }),
        Action::ResetLatency { .. } => each_link(&|model, from, to| {
            let mut profile = model.link(from, to);
            let base = base_profile(world, from, to);
            profile.latency_ms_min = base.latency_ms_min;
            profile.latency_ms_max = base.latency_ms_max;
            model.set_link_one_way(from, to, profile);
        }),
        Action::SetLoss { loss, .. } => each_link(&|model, from, to| {
            let mut profile = model.link(from, to);
            profile.loss = *loss;
            model.set_link_one_way(from, to, profile);
        }),
        Action::ResetLoss { .. } => each_link(&|model, from, to| {
            let mut profile = model.link(from, to);
            profile.loss = base_profile(world, from, to).loss;
            model.set_link_one_way(from, to, profile);
        }),
        Action::Crash {
            server,
            lose_unflushed,
        } => {
            if !world.is_up(server.0) {
                return 0;
            }
            if !lose_unflushed {
                world.slots[server.0].log().flush();
            }
            world.crash(server.0).await;
            return 1;
        }
        Action::Restart { server } => {
            if world.is_up(server.0) {
                return 0;
            }
            world.restart(server.0).await;
            crate::sim::runner::observer::check_acked_after_restart(world, server.0);
            return 1;
        }
        Action::SetClockOffset { server, offset_ms } => {
            world.slots[server.0].clock().set_skew_ms(*offset_ms);
            return u64::from(*offset_ms != 0);
        }
        Action::SetSlow {
            server,
            extra_latency_ms,
        } => {
            let name = world.plan.servers[server.0].name.clone();
            world.network.with_model(|model| {
                model.set_slow(&name, Duration::from_millis(*extra_latency_ms))
            });
        }
        Action::StartFlood {
            server,
            messages_per_second,
        } => {
            let running = Rc::new(std::cell::Cell::new(true));
            let sent = Rc::new(std::cell::Cell::new(0));
            floods.insert(server.0, (running.clone(), sent.clone()));
            let flood = crate::sim::runner::workload::flood(
                world.clone(),
                server.0,
                *messages_per_second,
                running,
                sent,
            );
            crate::server::task::spawn_local(flood);
        }
        Action::StopFlood { server } => {
            if let Some((running, sent)) = floods.remove(&server.0) {
                running.set(false);
                return sent.get();
            }
        }
    }
    0
}
