//! The runner's side of adversaries: puts each attacker's interceptor in front of its
//! handler, joins the attacker's user to the room when the attack is made from inside, runs
//! each `[[adversary]]` window's rounds, and at the end judges every crafted event on every
//! honest server and computes the adversary metrics and verdicts.
//!
//! Invariants: every verdict comes from an attack that happened: an adversary whose attack
//! had no effect (nothing crafted reached an honest server, nothing was asked of it, nothing
//! was rewritten) fails its `adversary[i] took effect` verdict, as a fault that never took
//! effect does; the oracle reads the honest stores after the run and never changes them.
//!
//! Code map: this file (the ledger, scheduling, rounds of crafted events and their delivery),
//! `scenarios` (the attacks that need a scene: stale power, a join through the attacker, a
//! deep chain, reads by a non-member, spam, abuse then a server ACL), `oracle` (judging and
//! metrics), `baseline` (the same run without the attackers, and the latency ratio).
//!
//! Everything an attacker sends leaves from its own server's context (`on_attacker`, a slot
//! action), so on turmoil its requests come from its own host, as its interceptor sits in
//! front of that host's handler (`TurmoilNetwork::intercept`).
//!
//! Limitation: on the fast fabric the interceptor is put in front of the attacker's handler
//! once, at the start; an attacker that a fault crashes and restarts comes back without it
//! there (on turmoil it keeps it; no threat experiment crashes its attacker).

use crate::sim::adversary::attacks::{self, Crafted, Judge, Scene};
use crate::sim::adversary::craft::{CraftError, Crafter, RoomView};
use crate::sim::adversary::intercept::Interceptor;
use crate::sim::experiment::adversary::Attack;
use crate::sim::experiment::plan::PlannedAdversary;
use crate::sim::runner::workload::join_or_rejoin;
use crate::sim::runner::world::{Network, World, component_rng};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

pub mod baseline;
mod oracle;
mod scenarios;

pub use oracle::{Fate, summarize, view_digest, view_digest_with_state};
use scenarios::{
    abuse_then_acl, deep_chain_round, gap_spam_round, peek, spam, stale_power_ban,
    tamper_in_backfill,
};

/// How long a stalling attacker holds each answer to a gap-filling request: under the
/// asking server's request timeout, so the asker keeps waiting instead of giving up.
pub const STALL: Duration = Duration::from_secs(5);

/// How often an attacker that needs the room checks whether it exists yet.
const ROOM_POLL: Duration = Duration::from_millis(200);

/// What one adversary did.
#[derive(Debug, Default)]
pub struct Tally {
    /// Crafted events sent, with how each must be judged.
    pub events: BTreeMap<String, Judge>,
    /// Requests the attacker sent, and the answers by HTTP status (0: no answer).
    pub requests: u64,
    pub answers: BTreeMap<u16, u64>,
    /// Rounds that could not craft their events, by reason.
    pub craft_errors: BTreeMap<String, u64>,
    /// A deep auth chain, crafted once and cited by every round.
    pub chain: Option<Rc<Vec<crate::proto::pdu::Pdu>>>,
    /// The server ACL an honest admin sent against the attacker, once sent.
    pub acl_event: Option<String>,
}

/// Everything the adversaries of one run did.
#[derive(Default)]
pub struct Ledger {
    pub tallies: BTreeMap<usize, RefCell<Tally>>,
    /// Interceptors by attacker server index.
    pub interceptors: BTreeMap<usize, Rc<Interceptor>>,
}

impl Ledger {
    fn tally(&self, index: usize) -> std::cell::RefMut<'_, Tally> {
        self.tallies[&index].borrow_mut()
    }
}

/// Installs interceptors and starts every adversary's task.
pub fn start(world: &Rc<World>) -> Rc<Ledger> {
    let mut ledger = Ledger::default();
    for adversary in &world.plan.adversaries {
        ledger.tallies.insert(adversary.index, RefCell::default());
        let server = adversary.server.0;
        if ledger.interceptors.contains_key(&server) {
            continue;
        }
        let name = &world.plan.servers[server].name;
        let rng = component_rng(world.plan.seed, &format!("intercept/{name}"));
        let interceptor = Interceptor::new(name, rng);
        match &world.network {
            Network::Fast(network, _) => {
                if let Some(current) = world.slots[server].current() {
                    network.attach(name, interceptor.wrap(current.http_handler()));
                }
            }
            Network::Turmoil(network) => network.intercept(server, interceptor.clone()),
        }
        ledger.interceptors.insert(server, interceptor);
    }
    let ledger = Rc::new(ledger);
    let mut joining = BTreeSet::new();
    for adversary in &world.plan.adversaries {
        let server = adversary.server.0;
        if world.plan.servers[server].joins_room && joining.insert(server) {
            crate::server::task::spawn_local(join_attacker(world.clone(), server));
        }
        crate::server::task::spawn_local(run_adversary(
            world.clone(),
            ledger.clone(),
            adversary.clone(),
        ));
    }
    ledger
}

/// Whether the runner can carry out `attack` faithfully; a plan with any other is refused.
pub fn supported(attack: Attack) -> bool {
    matches!(
        attack,
        Attack::ForgeBan
            | Attack::FakeOrigin
            | Attack::InvalidAuthEvents
            | Attack::UnknownPrevEvents
            | Attack::WithheldAuthEvents
            | Attack::OversizedPdus
            | Attack::OverfullTransactions
            | Attack::TransactionFlood
            | Attack::Spam
            | Attack::GapFillSpam
            | Attack::TamperInTransit
            | Attack::Equivocation
            | Attack::StalePowerBan
            | Attack::NonMemberEvents
            | Attack::PeekOutsideRoom
            | Attack::DeepAuthChain
            | Attack::TamperInBackfill
            | Attack::AbuseThenAcl
    )
}

/// The user an attacker speaks as.
fn attacker_user(world: &World, server: usize) -> String {
    world.plan.servers[server].users.first().map_or_else(
        || format!("@u1:{}", world.plan.servers[server].name),
        |u| u.user_id.clone(),
    )
}

async fn wait_for_room(world: &World) -> String {
    loop {
        if let Some(room) = world.room() {
            return room;
        }
        tokio::time::sleep(ROOM_POLL).await;
    }
}

/// Joins every user of the attacker's server through the creator's server, retrying.
async fn join_attacker(world: Rc<World>, server: usize) {
    let room = wait_for_room(&world).await;
    let via = world.plan.servers[world.plan.workload.creator.server.0]
        .name
        .clone();
    for user in world.plan.servers[server].users.clone() {
        while world.now_ms() < world.plan.final_phase_at.as_ms() {
            let (room, via, user_id) = (room.clone(), via.clone(), user.user_id.clone());
            let joined = world.slots[server]
                .call(move |hs| join_or_rejoin(hs, room, user_id, via))
                .await;
            if matches!(joined, Ok(Ok(()))) {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

fn window_end_ms(world: &World, adversary: &PlannedAdversary) -> u64 {
    adversary
        .until
        .as_ms()
        .min(world.plan.final_phase_at.as_ms())
}

async fn sleep_until_ms(world: &World, at_ms: u64) {
    let now = world.now_ms();
    if at_ms > now {
        tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
    }
}

/// Runs one adversary window: sets its interceptor rules, then rounds at its rate.
async fn run_adversary(world: Rc<World>, ledger: Rc<Ledger>, adversary: PlannedAdversary) {
    let room = wait_for_room(&world).await;
    sleep_until_ms(&world, adversary.from.as_ms()).await;
    let end_ms = window_end_ms(&world, &adversary);
    let interval = round_interval(&adversary);
    if adversary.attack == Attack::StalePowerBan {
        stale_power_ban(&world, &ledger, &adversary, &room, end_ms).await;
        return;
    }
    if adversary.attack == Attack::TamperInBackfill {
        tamper_in_backfill(&world, &ledger, &adversary, &room, end_ms).await;
        return;
    }
    if adversary.attack == Attack::AbuseThenAcl {
        abuse_then_acl(&world, &ledger, &adversary, &room, end_ms).await;
        return;
    }
    let interceptor = ledger.interceptors[&adversary.server.0].clone();
    let fraction = adversary
        .params
        .probability("fraction")
        .map(|fraction| fraction.value());
    set_rules(&interceptor, adversary.attack, true, fraction);
    let mut round = 0u64;
    while world.now_ms() < end_ms {
        round += 1;
        strike(&world, &ledger, &adversary, &room, round).await;
        tokio::time::sleep(interval).await;
    }
    set_rules(&interceptor, adversary.attack, false, fraction);
}

/// Turns the interceptor rules of `attack` on for its window, or off after it.
fn set_rules(interceptor: &Interceptor, attack: Attack, on: bool, fraction: Option<f64>) {
    let mut rules = interceptor.rules.borrow_mut();
    if attack == Attack::TransactionFlood {
        // Each flooded event cites an unknown prev event; the victim asks the attacker for
        // it, and the attacker holds the answer: every admitted transaction stays open.
        rules.stall = on.then_some(STALL);
    }
    if attack == Attack::TamperInTransit {
        rules.tamper_in_transit = on.then(|| fraction.unwrap_or(1.0));
    }
}

/// Time between rounds: from the attack's rate parameter.
fn round_interval(adversary: &PlannedAdversary) -> Duration {
    let params = &adversary.params;
    let rate = [
        "per_second",
        "messages_per_second",
        "transactions_per_second",
        "requests_per_second",
    ]
    .iter()
    .find_map(|name| params.rate(name))
    .map_or(0.5, |rate| rate.per_second());
    Duration::from_secs_f64(1.0 / rate.max(0.001))
}

/// Honest servers an attack aims at: its `target`, or every honest server in the room.
fn targets(world: &World, adversary: &PlannedAdversary) -> Vec<String> {
    if let Some(target) = adversary.params.server("target") {
        return vec![world.plan.servers[target.0].name.clone()];
    }
    world
        .plan
        .honest_servers()
        .map(|server| server.name.clone())
        .collect()
}

/// Honest users without admin power joined now, optionally only those of `server`.
fn victims(world: &World, server: Option<usize>) -> Vec<String> {
    world
        .records
        .borrow()
        .joined
        .iter()
        .filter(|(index, user)| {
            let planned = &world.plan.servers[*index];
            planned.honest && !planned.users[*user].admin
        })
        .filter(|(index, _)| server.is_none_or(|wanted| wanted == *index))
        .map(|(index, user)| world.plan.servers[*index].users[*user].user_id.clone())
        .collect()
}

async fn strike(
    world: &Rc<World>,
    ledger: &Rc<Ledger>,
    adversary: &PlannedAdversary,
    room: &str,
    round: u64,
) {
    let server = adversary.server.0;
    let Some(hs) = world.slots[server].current() else {
        return;
    };
    if matches!(adversary.attack, Attack::Spam | Attack::TamperInTransit) {
        // A tamperer's own messages are its bait: a server that gets one before the events
        // it cites asks the tamperer for them, and gets them rewritten.
        spam(world, ledger, adversary, room, round);
        return;
    }
    let crafter = Crafter::of(&hs);
    let victim_server = adversary.params.server("victim").map(|id| id.0);
    let scene = Scene {
        room_id: room.to_owned(),
        victims: victims(world, victim_server),
        attacker_user: attacker_user(world, server),
        now_ms: hs.clock().now_ms(),
        round,
    };
    let view = RoomView::of(&hs, room);
    let crafted: Result<Vec<Crafted>, CraftError> = match (adversary.attack, &view) {
        (Attack::ForgeBan, Some(view)) => {
            attacks::forge_ban(&crafter, view, &scene).map(|c| vec![c])
        }
        (Attack::FakeOrigin, Some(view)) => {
            let impersonated = victims(
                world,
                Some(victim_server.unwrap_or(world.plan.workload.creator.server.0)),
            );
            match impersonated.first() {
                Some(user) => attacks::fake_origin(&crafter, view, &scene, user).map(|c| vec![c]),
                None => Err(CraftError("no user to impersonate is joined".into())),
            }
        }
        (Attack::InvalidAuthEvents, Some(view)) => {
            attacks::invalid_auth_events(&crafter, view, &scene).map(|c| vec![c])
        }
        (Attack::UnknownPrevEvents, Some(view)) => {
            attacks::unknown_prev_events(&crafter, view, &scene).map(|c| vec![c])
        }
        (Attack::WithheldAuthEvents, Some(view)) => {
            attacks::withheld_auth_events(&crafter, view, &scene).map(|(join, message)| {
                // The join is the withheld auth event: never sent, and refused when asked for,
                // as is the message's auth chain (`/event_auth` names the message).
                let mut rules = ledger.interceptors[&server].rules.borrow_mut();
                rules.withheld.insert(join.event_id);
                rules.withheld.insert(message.event_id.clone());
                vec![message]
            })
        }
        (Attack::OversizedPdus, Some(view)) => {
            let bytes = adversary.params.count("bytes").unwrap_or(70_000) as usize;
            attacks::oversized(&crafter, view, &scene, bytes).map(|c| vec![c])
        }
        (Attack::OverfullTransactions, Some(view)) => {
            let count = adversary
                .params
                .count("pdus_per_transaction")
                .unwrap_or(200) as usize;
            attacks::chained_messages(
                &crafter,
                view,
                &scene,
                count,
                "overfull",
                Judge::MustNotBeAccepted,
            )
        }
        (Attack::TransactionFlood, Some(view)) => {
            attacks::unknown_prev_events(&crafter, view, &scene).map(|c| vec![c])
        }
        (Attack::Equivocation, Some(view)) => {
            let forks = adversary.params.count("forks").unwrap_or(2).max(2) as usize;
            match attacks::equivocating_forks(&crafter, view, &scene, forks) {
                Ok(forks) => {
                    deliver_forks(world, ledger, adversary, &hs, forks, round);
                    return;
                }
                Err(error) => Err(error),
            }
        }
        (Attack::GapFillSpam, Some(view)) => {
            gap_spam_round(ledger, adversary, &crafter, view, &scene)
        }
        (Attack::DeepAuthChain, Some(view)) => {
            deep_chain_round(ledger, adversary, &crafter, view, &scene)
        }
        (Attack::StalePowerBan, Some(view)) => {
            attacks::stale_ban(&crafter, view, &scene).map(|c| vec![c])
        }
        (Attack::NonMemberEvents, _) => {
            attacks::non_member_message(&crafter, world.plan.room_version, &scene).map(|c| vec![c])
        }
        (Attack::PeekOutsideRoom, _) => {
            peek(world, ledger, adversary, room, round);
            return;
        }
        (_, None) => Err(CraftError("the attacker is not in the room yet".into())),
        (attack, Some(_)) => Err(CraftError(format!(
            "{} is not simulated yet",
            attack.name()
        ))),
    };
    let crafted = match crafted {
        Ok(crafted) => crafted,
        Err(error) => {
            *ledger
                .tally(adversary.index)
                .craft_errors
                .entry(error.to_string())
                .or_default() += 1;
            return;
        }
    };
    deliver(world, ledger, adversary, &hs, crafted, round);
}

/// Sends crafted events to every target in one transaction each, without waiting for the
/// answers (a slow victim must not slow the attack).
fn deliver(
    world: &Rc<World>,
    ledger: &Rc<Ledger>,
    adversary: &PlannedAdversary,
    hs: &crate::server::Homeserver,
    crafted: Vec<Crafted>,
    round: u64,
) {
    {
        let mut tally = ledger.tally(adversary.index);
        for event in &crafted {
            tally.events.insert(event.event_id.clone(), event.judge);
        }
    }
    let pdus: Vec<_> = crafted.into_iter().map(|event| event.json).collect();
    let edus = adversary.params.count("edus_per_transaction").unwrap_or(0) as usize;
    for destination in targets(world, adversary) {
        let txn_id = format!("adv{}r{round}", adversary.index);
        let (ledger, pdus) = (ledger.clone(), pdus.clone());
        let index = adversary.index;
        let now_ms = hs.clock().now_ms();
        on_attacker(world, adversary, move |hs| async move {
            ledger.tally(index).requests += 1;
            let status =
                attacks::send_transaction(&hs, &destination, &txn_id, pdus, edus, now_ms).await;
            *ledger
                .tally(index)
                .answers
                .entry(status.unwrap_or(0))
                .or_default() += 1;
        });
    }
}

/// Sends fork `k` of `forks` to the targets at positions `k`, `k + forks`, ...: each server
/// learns one version of the event first, and the others only through the DAG.
fn deliver_forks(
    world: &Rc<World>,
    ledger: &Rc<Ledger>,
    adversary: &PlannedAdversary,
    hs: &crate::server::Homeserver,
    forks: Vec<Crafted>,
    round: u64,
) {
    let targets = targets(world, adversary);
    for (position, destination) in targets.iter().enumerate() {
        let fork = forks[position % forks.len()].clone();
        ledger
            .tally(adversary.index)
            .events
            .insert(fork.event_id.clone(), fork.judge);
        let txn_id = format!("adv{}r{round}", adversary.index);
        let (ledger, destination) = (ledger.clone(), destination.clone());
        let index = adversary.index;
        let now_ms = hs.clock().now_ms();
        on_attacker(world, adversary, move |hs| async move {
            ledger.tally(index).requests += 1;
            let status =
                attacks::send_transaction(&hs, &destination, &txn_id, vec![fork.json], 0, now_ms)
                    .await;
            *ledger
                .tally(index)
                .answers
                .entry(status.unwrap_or(0))
                .or_default() += 1;
        });
    }
}

/// Runs `action` on the attacker's server, in its own context (on turmoil, its host: its
/// requests leave from it), without waiting for it.
pub(super) fn on_attacker<F, Fut>(world: &World, adversary: &PlannedAdversary, action: F)
where
    F: FnOnce(crate::server::Homeserver) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let slot = world.slots[adversary.server.0].clone();
    crate::server::task::spawn_local(async move {
        // A crashed attacker sends nothing; no threat experiment crashes one.
        let _ = slot.call(action).await;
    });
}
