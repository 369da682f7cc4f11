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
//! Limitation: the interceptor is put in front of the attacker's handler once, at the start;
//! an attacker that a fault crashes and restarts comes back without it (no threat experiment
//! crashes its attacker).

use crate::observe::record::Verdict;
use crate::server::store::EventStatus;
use crate::sim::adversary::attacks::{self, Crafted, Judge, Scene};
use crate::sim::adversary::craft::{CraftError, Crafter, RoomView};
use crate::sim::adversary::intercept::{Interceptor, TAMPER_MARK};
use crate::sim::experiment::adversary::Attack;
use crate::sim::experiment::plan::PlannedAdversary;
use crate::sim::runner::world::{World, component_rng};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

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
        if let Some(current) = world.slots[server].current() {
            world
                .network
                .attach(name, interceptor.wrap(current.http_handler()));
        }
        ledger.interceptors.insert(server, interceptor);
    }
    let ledger = Rc::new(ledger);
    let mut joining = BTreeSet::new();
    for adversary in &world.plan.adversaries {
        let server = adversary.server.0;
        if world.plan.servers[server].joins_room && joining.insert(server) {
            tokio::task::spawn_local(join_attacker(world.clone(), server));
        }
        tokio::task::spawn_local(run_adversary(
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
            | Attack::TamperInTransit
            | Attack::Equivocation
            | Attack::StalePowerBan
            | Attack::NonMemberEvents
            | Attack::PeekOutsideRoom
            | Attack::DeepAuthChain
            | Attack::TamperInBackfill
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
                .call(move |hs| async move {
                    if hs.is_in_room(&room) {
                        hs.set_membership(&user_id, &room, &user_id, "join")
                            .await
                            .map(|_| ())
                    } else {
                        hs.join_remote(&user_id, &room, &via).await
                    }
                })
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

/// One round of the deep-auth-chain attack: the chain is crafted on the first round (its
/// links are listed as valid events, so the oracle counts what victims stored of them), and
/// every round sends a new message citing its last link, whose auth chain the interceptor
/// serves in full when a victim asks.
fn deep_chain_round(
    ledger: &Ledger,
    adversary: &PlannedAdversary,
    crafter: &Crafter,
    view: &RoomView,
    scene: &Scene,
) -> Result<Vec<Crafted>, CraftError> {
    let existing = ledger.tally(adversary.index).chain.clone();
    let chain = match existing {
        Some(chain) => chain,
        None => {
            let depth = adversary.params.count("depth").unwrap_or(5_000) as usize;
            let chain = Rc::new(attacks::deep_auth_chain(crafter, view, scene, depth)?);
            let mut tally = ledger.tally(adversary.index);
            for link in chain.iter() {
                tally
                    .events
                    .insert(link.event_id().to_owned(), Judge::Valid);
            }
            tally.chain = Some(chain.clone());
            chain
        }
    };
    let message = attacks::message_on_chain(crafter, view, scene, &chain)?;
    let served: Vec<_> = chain.iter().map(|pdu| pdu.json().clone()).collect();
    ledger.interceptors[&adversary.server.0]
        .rules
        .borrow_mut()
        .served_auth_chains
        .insert(message.event_id.clone(), Rc::new(served));
    Ok(vec![message])
}

/// Rewrites backfill answers for the window, and at its start has an honest server that is
/// not in the room yet join it through the attacker (its first user joins with the attacker
/// as the resident server): a server joining through a resident backfills from it, as every
/// server does after a join.
async fn tamper_in_backfill(
    world: &Rc<World>,
    ledger: &Rc<Ledger>,
    adversary: &PlannedAdversary,
    room: &str,
    end_ms: u64,
) {
    let interceptor = ledger.interceptors[&adversary.server.0].clone();
    let fraction = adversary
        .params
        .probability("fraction")
        .map_or(1.0, |fraction| fraction.value());
    interceptor.rules.borrow_mut().tamper_in_backfill = Some(fraction);
    let joiner = world.plan.honest_servers().find(|server| {
        !world.slots[server.id.0]
            .current()
            .is_some_and(|hs| hs.is_in_room(room))
    });
    match joiner.and_then(|server| server.users.first().map(|user| (server.id.0, user))) {
        Some((index, user)) => {
            let (room, user_id) = (room.to_owned(), user.user_id.clone());
            let via = world.plan.servers[adversary.server.0].name.clone();
            let joined = world.slots[index]
                .call(move |hs| async move { hs.join_remote(&user_id, &room, &via).await })
                .await;
            world.count("join_through_attacker", matches!(joined, Ok(Ok(()))));
        }
        None => {
            *ledger
                .tally(adversary.index)
                .craft_errors
                .entry(
                    "every honest server was in the room already: none joins through the \
                     attacker"
                        .into(),
                )
                .or_default() += 1;
        }
    }
    sleep_until_ms(world, end_ms).await;
    interceptor.rules.borrow_mut().tamper_in_backfill = None;
}

/// Power the room's creator grants the attacker for a stale-power ban: enough to ban users
/// at the default levels.
const STALE_POWER: i64 = 50;

/// A stale-power ban, in three steps over the window: the room's creator (honest) grants the
/// attacker's user power at its start; revokes it after 40% of the window (on its own side of
/// any partition); from half the window on, the attacker bans honest users citing the power
/// levels it still sees.
async fn stale_power_ban(
    world: &Rc<World>,
    ledger: &Rc<Ledger>,
    adversary: &PlannedAdversary,
    room: &str,
    end_ms: u64,
) {
    let start_ms = adversary.from.as_ms();
    let span_ms = end_ms.saturating_sub(start_ms);
    let attacker = attacker_user(world, adversary.server.0);
    set_power_by_creator(world, room, &attacker, STALE_POWER).await;
    sleep_until_ms(world, start_ms + span_ms * 2 / 5).await;
    set_power_by_creator(world, room, &attacker, 0).await;
    sleep_until_ms(world, start_ms + span_ms / 2).await;
    let interval = round_interval(adversary);
    let mut round = 0u64;
    while world.now_ms() < end_ms {
        round += 1;
        strike(world, ledger, adversary, room, round).await;
        tokio::time::sleep(interval).await;
    }
}

/// The room's creator sets `user`'s power level, as an honest admin would.
async fn set_power_by_creator(world: &World, room: &str, user: &str, level: i64) {
    let creator = world.plan.workload.creator;
    let creator_id = world.plan.servers[creator.server.0].users[creator.user]
        .user_id
        .clone();
    let (room, user) = (room.to_owned(), user.to_owned());
    let result = world.slots[creator.server.0]
        .call(move |hs| async move {
            let mut levels = hs
                .with_room(&room, |store| {
                    store
                        .current_state_event(&("m.room.power_levels".to_owned(), String::new()))
                        .map(|pdu| pdu.event().content.clone())
                })
                .flatten()
                .unwrap_or_default();
            let users = levels.entry("users").or_insert_with(|| json!({}));
            if let Some(users) = users.as_object_mut() {
                users.insert(user, json!(level));
            }
            hs.send_state(&creator_id, &room, "m.room.power_levels", "", levels)
                .await
        })
        .await;
    world.count("adversary_power_grant", matches!(result, Ok(Ok(_))));
}

/// One read of the room's history by a server with no member in it: `/event`, `/backfill`,
/// `/state_ids` and `/get_missing_events` in turn, about an event id it knows (the newest
/// honest message, as if its id had leaked, or the create event, which a room v12 id names),
/// to the targets in turn.
fn peek(
    world: &World,
    ledger: &Rc<Ledger>,
    adversary: &PlannedAdversary,
    hs: &crate::server::Homeserver,
    room: &str,
    round: u64,
) {
    use crate::proto::wire::{BackfillQuery, StateQuery, paths};
    let targets = targets(world, adversary);
    if targets.is_empty() {
        return;
    }
    let destination = targets[round as usize % targets.len()].clone();
    let known = world
        .records
        .borrow()
        .sent
        .last()
        .map(|sent| sent.event_id.clone())
        .or_else(|| attacks::create_event_of(world.plan.room_version, room));
    let Some(event_id) = known else {
        return;
    };
    let (method, uri, body) = match (round / targets.len() as u64) % 4 {
        0 => ("GET", paths::event_path(&event_id), None),
        1 => {
            let query = BackfillQuery {
                v: vec![event_id.clone()],
                limit: 50,
            };
            ("GET", paths::backfill_path(room, &query), None)
        }
        2 => {
            let query = StateQuery {
                event_id: event_id.clone(),
            };
            ("GET", paths::state_ids_path(room, &query), None)
        }
        _ => {
            let body = json!({
                "earliest_events": [],
                "latest_events": [event_id],
                "limit": 50,
                "min_depth": 0,
            });
            ("POST", paths::get_missing_events_path(room), Some(body))
        }
    };
    let (hs, ledger, index) = (hs.clone(), ledger.clone(), adversary.index);
    tokio::task::spawn_local(async move {
        ledger.tally(index).requests += 1;
        let answer = hs
            .raw_request(&destination, method, &uri, body.as_ref(), true)
            .await;
        let status = answer.map_or(0, |answer| answer.status);
        *ledger.tally(index).answers.entry(status).or_default() += 1;
    });
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

/// One spam message from one of the attacker's users, sent through its honest server as any
/// user's message would be; not awaited, so the rate does not depend on the server.
fn spam(
    world: &World,
    ledger: &Rc<Ledger>,
    adversary: &PlannedAdversary,
    hs: &crate::server::Homeserver,
    room: &str,
    round: u64,
) {
    let users = &world.plan.servers[adversary.server.0].users;
    let Some(user) = users.get(round as usize % users.len().max(1)) else {
        return;
    };
    let (hs, room, sender) = (hs.clone(), room.to_owned(), user.user_id.clone());
    let (ledger, index) = (ledger.clone(), adversary.index);
    tokio::task::spawn_local(async move {
        let body = format!("spam {round}");
        match hs.send_message(&sender, &room, &body).await {
            Ok(event_id) => {
                ledger.tally(index).events.insert(event_id, Judge::Valid);
            }
            Err(error) => {
                *ledger
                    .tally(index)
                    .craft_errors
                    .entry(error.to_string())
                    .or_default() += 1;
            }
        }
    });
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
        spam(world, ledger, adversary, &hs, room, round);
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
            peek(world, ledger, adversary, &hs, room, round);
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
        let (hs, ledger, pdus) = (hs.clone(), ledger.clone(), pdus.clone());
        let index = adversary.index;
        let now_ms = hs.clock().now_ms();
        tokio::task::spawn_local(async move {
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

/// What convergence compares at the end: the observer's view digest, except that with
/// adversaries the events of Byzantine servers are left out of the compared event set (the
/// current state still counts in full). A rate-limited spammer's history reaches each victim
/// with different gaps, which the protocol allows; the honest events and the state must agree.
pub fn view_digest(world: &World, room: &crate::server::store::RoomStore) -> String {
    if world.plan.adversaries.is_empty() {
        return super::observer::view_digest(room);
    }
    use sha2::{Digest as _, Sha256};
    let byzantine: BTreeSet<&str> = world
        .plan
        .servers
        .iter()
        .filter(|server| !server.honest)
        .map(|server| server.name.as_str())
        .collect();
    let mut hasher = Sha256::new();
    hasher.update(super::observer::state_digest(room).as_bytes());
    hasher.update(b"--\n");
    for event_id in super::observer::authorized_event_ids(room) {
        let from_byzantine = room.event(&event_id).is_some_and(|pdu| {
            byzantine.contains(crate::proto::event::server_of(&pdu.event().sender))
        });
        if !from_byzantine {
            hasher.update(event_id.as_bytes());
            hasher.update(b"\n");
        }
    }
    super::observer::hex(&hasher.finalize())
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
        let (hs, ledger, destination) = (hs.clone(), ledger.clone(), destination.clone());
        let index = adversary.index;
        let now_ms = hs.clock().now_ms();
        tokio::task::spawn_local(async move {
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

/// How the crafted events of one adversary fared on the honest servers, in (event, server)
/// pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fate {
    pub accepted: u64,
    pub soft_failed: u64,
    pub rejected: u64,
    /// Held without state (an auth chain member), never part of the timeline.
    pub outlier: u64,
    /// Not held at all: dropped on receipt or refused with its transaction.
    pub not_held: u64,
    pub unauthorized_accepted: u64,
}

fn judge(world: &World, room: &str, tally: &Tally) -> Fate {
    let mut fate = Fate::default();
    for index in world.honest() {
        let Some(server) = world.slots[index].current() else {
            continue;
        };
        server.with_room(room, |store| {
            for (event_id, judge) in &tally.events {
                if *judge == Judge::MustNotStayInState
                    && store.current_state().values().any(|id| id == event_id)
                {
                    fate.unauthorized_accepted += 1;
                }
                match store.status(event_id) {
                    Some(EventStatus::Accepted) => {
                        fate.accepted += 1;
                        if *judge == Judge::MustNotBeAccepted {
                            fate.unauthorized_accepted += 1;
                        }
                    }
                    Some(EventStatus::SoftFailed(_)) => fate.soft_failed += 1,
                    Some(EventStatus::Rejected { .. }) => fate.rejected += 1,
                    Some(EventStatus::Outlier) => fate.outlier += 1,
                    None => fate.not_held += 1,
                }
            }
        });
    }
    fate
}

/// Events whose content an honest server holds with the tamperer's mark, unredacted.
fn tampered_accepted(world: &World, room: &str) -> u64 {
    world
        .honest()
        .filter_map(|index| world.slots[index].current())
        .filter_map(|server| {
            server.with_room(room, |store| {
                store
                    .records()
                    .filter(|(_, record)| {
                        record.pdu().event().content_str("body") == Some(TAMPER_MARK)
                    })
                    .count() as u64
            })
        })
        .sum()
}

/// The p99 delivery latency of honest events sent while some adversary window was open:
/// what the attacks cost honest users (compare with the whole run's p99, or with the same
/// experiment without its `[[adversary]]` entries).
fn latency_p99_during_attacks(world: &World) -> Option<u64> {
    let windows: Vec<(u64, u64)> = world
        .plan
        .adversaries
        .iter()
        .map(|adversary| (adversary.from.as_ms(), window_end_ms(world, adversary)))
        .collect();
    if windows.is_empty() {
        return None;
    }
    let records = world.records.borrow();
    let mut latencies: Vec<u64> = records
        .delivered
        .iter()
        .filter(|((event, _), _)| {
            let sent_at = records.sent[*event].sent_at_ms;
            windows
                .iter()
                .any(|(from, until)| (*from..*until).contains(&sent_at))
        })
        .map(|(_, latency)| *latency)
        .collect();
    latencies.sort_unstable();
    crate::observe::record::percentile_nearest_rank(&latencies, 990)
}

/// The largest room store an honest server holds at the end, in approximate bytes of
/// events: the memory an attack could make a victim keep.
fn victim_store_bytes_max(world: &World, room: &str) -> u64 {
    world
        .honest()
        .filter_map(|index| world.slots[index].current())
        .filter_map(|server| server.with_room(room, |store| store.metrics().bytes_approx))
        .max()
        .unwrap_or(0)
}

/// How much of an attack reached its victims: what its `took effect` verdict needs.
fn effect_count(adversary: &PlannedAdversary, tally: &Tally, fate: &Fate, ledger: &Ledger) -> u64 {
    let interference = ledger.interceptors[&adversary.server.0]
        .interference
        .borrow();
    match adversary.attack {
        Attack::TamperInTransit | Attack::TamperInBackfill => interference.tampered_events,
        Attack::WithheldAuthEvents => interference.withheld_answers,
        Attack::DeepAuthChain => interference.served_auth_chain_events,
        Attack::Spam => fate.accepted,
        // The attack happened only if stale power was honoured somewhere at the time.
        Attack::StalePowerBan => fate.accepted + fate.soft_failed,
        _ => tally
            .answers
            .iter()
            .filter(|(status, _)| **status != 0)
            .map(|(_, count)| count)
            .sum(),
    }
}

/// Adds the adversary metrics to `metrics` and returns the adversary verdicts.
pub fn summarize(
    world: &World,
    ledger: &Ledger,
    metrics: &mut BTreeMap<String, Value>,
) -> Vec<Verdict> {
    let room = world.room().unwrap_or_default();
    let mut totals = Fate::default();
    let mut sent = 0u64;
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for adversary in &world.plan.adversaries {
        let tally = ledger.tallies[&adversary.index].borrow();
        let fate = judge(world, &room, &tally);
        totals.accepted += fate.accepted;
        totals.soft_failed += fate.soft_failed;
        totals.rejected += fate.rejected;
        totals.outlier += fate.outlier;
        totals.not_held += fate.not_held;
        totals.unauthorized_accepted += fate.unauthorized_accepted;
        sent += tally.events.len() as u64;
        let effect = effect_count(adversary, &tally, &fate, ledger);
        let answers: BTreeMap<String, u64> = tally
            .answers
            .iter()
            .map(|(status, count)| {
                let key = if *status == 0 {
                    "none".to_owned()
                } else {
                    status.to_string()
                };
                (key, *count)
            })
            .collect();
        rows.push(json!({
            "index": adversary.index,
            "attack": adversary.attack.name(),
            "server": world.plan.servers[adversary.server.0].name,
            "events_sent": tally.events.len(),
            "requests": tally.requests,
            "answers": answers,
            "craft_errors": tally.craft_errors,
            "accepted": fate.accepted,
            "soft_failed": fate.soft_failed,
            "rejected": fate.rejected,
            "outlier": fate.outlier,
            "not_held": fate.not_held,
            "unauthorized_accepted": fate.unauthorized_accepted,
            "effect_count": effect,
        }));
        verdicts.push(Verdict {
            key: format!("adversary[{}] took effect", adversary.index),
            expected: format!("{} reached an honest server", adversary.attack.name()),
            actual: if effect > 0 {
                format!("{effect} times")
            } else {
                let why = tally
                    .craft_errors
                    .keys()
                    .next()
                    .cloned()
                    .unwrap_or_else(|| "nothing reached an honest server".into());
                format!("none ({why})")
            },
            passed: effect > 0,
        });
    }
    let mut interference = json!({});
    for (server, interceptor) in &ledger.interceptors {
        let seen = interceptor.interference.borrow();
        interference[&world.plan.servers[*server].name] = json!({
            "requests": seen.requests,
            "withheld_answers": seen.withheld_answers,
            "stalled_answers": seen.stalled_answers,
            "tampered_events": seen.tampered_events,
            "served_auth_chain_events": seen.served_auth_chain_events,
            "tampered_servers": seen.tampered_servers,
        });
    }
    let honest_metrics: Vec<_> = world
        .honest()
        .filter_map(|index| world.slots[index].current())
        .map(|server| server.metrics())
        .collect();
    metrics.insert("attack_events_sent".into(), json!(sent));
    metrics.insert("attack_events_accepted".into(), json!(totals.accepted));
    metrics.insert("attack_events_rejected".into(), json!(totals.rejected));
    metrics.insert(
        "attack_events_soft_failed".into(),
        json!(totals.soft_failed),
    );
    metrics.insert("attack_events_outlier".into(), json!(totals.outlier));
    metrics.insert("attack_events_not_held".into(), json!(totals.not_held));
    metrics.insert(
        "unauthorized_accepted".into(),
        json!(totals.unauthorized_accepted),
    );
    metrics.insert(
        "tampered_accepted".into(),
        json!(tampered_accepted(world, &room)),
    );
    metrics.insert(
        "leaked_events".into(),
        json!(honest_metrics.iter().map(|m| m.events_leaked).sum::<u64>()),
    );
    metrics.insert(
        "victim_queue_peak".into(),
        json!(
            honest_metrics
                .iter()
                .map(|m| m.transactions_in_flight_peak)
                .max()
                .unwrap_or(0)
        ),
    );
    metrics.insert(
        "delivery_latency_ms_p99_during_attacks".into(),
        json!(latency_p99_during_attacks(world)),
    );
    metrics.insert(
        "victim_store_bytes_max".into(),
        json!(victim_store_bytes_max(world, &room)),
    );
    metrics.insert(
        "transactions_rate_limited".into(),
        json!(
            honest_metrics
                .iter()
                .map(|m| m.transactions_rate_limited)
                .sum::<u64>()
        ),
    );
    metrics.insert(
        "transactions_refused".into(),
        json!(
            honest_metrics
                .iter()
                .map(|m| m.transactions_refused)
                .sum::<u64>()
        ),
    );
    metrics.insert(
        "pdus_dropped_bad_signature".into(),
        json!(
            honest_metrics
                .iter()
                .map(|m| m.pdus_dropped_bad_signature)
                .sum::<u64>()
        ),
    );
    metrics.insert(
        "auth_chains_refused".into(),
        json!(
            honest_metrics
                .iter()
                .map(|m| m.auth_chains_refused)
                .sum::<u64>()
        ),
    );
    metrics.insert(
        "pdus_redacted_bad_hash".into(),
        json!(
            honest_metrics
                .iter()
                .map(|m| m.pdus_redacted_bad_hash)
                .sum::<u64>()
        ),
    );
    if !rows.is_empty() {
        metrics.insert("adversaries".into(), Value::Array(rows));
        metrics.insert("interference".into(), interference);
    }
    verdicts
}
