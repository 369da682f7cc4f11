//! The workload: users join, send messages and change state at the plan's rates, each only
//! doing what their power allows, so every honest event is authorised when it is made.
//!
//! Arrivals are Poisson processes drawn from the workload's own RNG; an action that fails (its
//! server is down, the room is not reachable) is counted and not retried, except joins, which
//! are retried until they succeed or the workload stops. A leave or a ban is made only if its
//! return (rejoin, lifted ban) is due well before the workload stops, so every user is back
//! in the room for the final phase.

use crate::server::Homeserver;
use crate::server::rooms::LocalError;
use crate::server::task::spawn_local;
use crate::sim::experiment::workload::{StateChangeKind, StateChangers};
use crate::sim::runner::world::{SentEvent, World, component_rng};
use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};
use std::rc::Rc;
use std::time::Duration;

/// How long a failed join waits before it is tried again.
const JOIN_RETRY: Duration = Duration::from_secs(5);
/// The least workload left after a departing user is due back (see `back_before_stop`).
const RETURN_BEFORE_STOP: Duration = Duration::from_secs(20);
/// How long a ban lasts before the admin lifts it and the user may rejoin.
const BAN_LENGTH: Duration = Duration::from_secs(20);

/// Starts every workload task.
pub fn start(world: &Rc<World>) {
    spawn_local(create_and_join(world.clone()));
}

async fn create_and_join(world: Rc<World>) {
    let creator = world.plan.workload.creator;
    let creator_id = world.plan.servers[creator.server.0].users[creator.user]
        .user_id
        .clone();
    let version = world.plan.room_version;
    let result = world.slots[creator.server.0]
        .call(move |hs| async move { hs.create_room(&creator_id, Some(version)).await })
        .await;
    let Ok(Ok(room_id)) = result else {
        world.count("create_room", false);
        return;
    };
    world.count("create_room", true);
    world.trace(format!(
        "\"kind\":\"room_created\",\"room_id\":\"{room_id}\""
    ));
    *world.room_id.borrow_mut() = Some(room_id);
    world
        .records
        .borrow_mut()
        .joined
        .insert((creator.server.0, creator.user));
    for server in &world.plan.servers {
        if !server.honest || !server.joins_room {
            continue;
        }
        for (user, planned) in server.users.iter().enumerate() {
            if (server.id.0, user) != (creator.server.0, creator.user) {
                let join_at = Duration::from_millis(planned.join_at.as_ms());
                spawn_local(join_user(world.clone(), server.id.0, user, join_at));
            }
        }
    }
    spawn_local(messages(
        world.clone(),
        component_rng(world.plan.seed, "messages"),
    ));
    spawn_local(state_changes(
        world.clone(),
        component_rng(world.plan.seed, "state"),
    ));
}

fn stopped(world: &World) -> bool {
    world.now_ms() >= world.plan.workload.stops_at.as_ms()
}

async fn sleep_until_ms(world: &World, at_ms: u64) {
    let now = world.now_ms();
    if at_ms > now {
        tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
    }
}

/// Joins `user_id` to `room`: with a membership event of its own if another user of its
/// server is joined; through a resident if its server left the room (see
/// `Homeserver::rejoin_remote`); through `via` if its server never held the room.
pub(super) async fn join_or_rejoin(
    hs: Homeserver,
    room: String,
    user_id: String,
    via: String,
) -> Result<(), LocalError> {
    if hs.has_joined_member(&room) {
        hs.set_membership(&user_id, &room, &user_id, "join")
            .await
            .map(|_| ())
    } else if hs.is_in_room(&room) {
        hs.rejoin_remote(&user_id, &room).await
    } else {
        hs.join_remote(&user_id, &room, &via).await
    }
}

/// Joins user `user` of server `server`, retrying until it is in or the workload stops.
async fn join_user(world: Rc<World>, server: usize, user: usize, join_at: Duration) {
    sleep_until_ms(&world, join_at.as_millis() as u64).await;
    let creator_server = world.plan.servers[world.plan.workload.creator.server.0]
        .name
        .clone();
    let user_id = world.plan.servers[server].users[user].user_id.clone();
    while !stopped(&world) {
        let Some(room) = world.room() else { return };
        let (user_id, via) = (user_id.clone(), creator_server.clone());
        let result = world.slots[server]
            .call(move |hs| join_or_rejoin(hs, room, user_id, via))
            .await;
        let ok = matches!(result, Ok(Ok(())));
        world.count("join", ok);
        if ok {
            world.records.borrow_mut().joined.insert((server, user));
            if world.plan.servers[server].users[user].admin {
                promote(
                    &world,
                    &world.plan.servers[server].users[user].user_id.clone(),
                )
                .await;
            }
            return;
        }
        tokio::time::sleep(JOIN_RETRY).await;
    }
}

/// The creator gives `user_id` power level 100 (admins change state).
async fn promote(world: &Rc<World>, user_id: &str) {
    let user_id = user_id.to_owned();
    change_power_levels(world, move |levels| {
        users_of(levels).insert(user_id, json!(100));
    })
    .await;
}

fn users_of(levels: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let users = levels.entry("users").or_insert_with(|| json!({}));
    if !users.is_object() {
        *users = json!({});
    }
    users.as_object_mut().expect("made an object above")
}

/// The creator edits the current power levels with `edit` and sends them.
async fn change_power_levels(
    world: &Rc<World>,
    edit: impl FnOnce(&mut Map<String, Value>) + 'static,
) {
    let creator = world.plan.workload.creator;
    let creator_id = world.plan.servers[creator.server.0].users[creator.user]
        .user_id
        .clone();
    let Some(room) = world.room() else { return };
    let result = world.slots[creator.server.0]
        .call(move |hs| async move {
            let mut levels = current_content(&hs, &room, "m.room.power_levels");
            edit(&mut levels);
            hs.send_state(&creator_id, &room, "m.room.power_levels", "", levels)
                .await
        })
        .await;
    world.count("power_levels", matches!(result, Ok(Ok(_))));
}

/// The content of the current state event (`event_type`, "") on `server`, or empty.
fn current_content(
    server: &crate::server::Homeserver,
    room: &str,
    event_type: &str,
) -> Map<String, Value> {
    server
        .with_room(room, |store| {
            store
                .current_state_event_of(event_type, "")
                .map(|pdu| pdu.event().content.clone())
        })
        .flatten()
        .unwrap_or_default()
}

/// Waits an exponentially distributed time for a Poisson process of `rate` per second.
async fn next_arrival(rng: &mut ChaCha8Rng, rate: f64) {
    let uniform: f64 = rng.random_range(f64::EPSILON..1.0);
    let wait_s = -uniform.ln() / rate;
    tokio::time::sleep(Duration::from_secs_f64(wait_s.min(3_600.0))).await;
}

/// Joined users (server, user) matching `filter`, on servers that are up.
fn pick_user(
    world: &World,
    rng: &mut ChaCha8Rng,
    filter: impl Fn(usize, usize) -> bool,
) -> Option<(usize, usize)> {
    let candidates: Vec<(usize, usize)> = world
        .records
        .borrow()
        .joined
        .iter()
        .copied()
        .filter(|(server, user)| world.is_up(*server) && filter(*server, *user))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    Some(candidates[rng.random_range(0..candidates.len())])
}

async fn messages(world: Rc<World>, mut rng: ChaCha8Rng) {
    let rate = world.plan.workload.messages_per_second;
    if rate <= 0.0 {
        return;
    }
    let mut counter = 0u64;
    loop {
        next_arrival(&mut rng, rate).await;
        if stopped(&world) {
            return;
        }
        let sends =
            |server: usize, user: usize| world.plan.servers[server].users[user].sends_messages;
        let Some((server, user)) = pick_user(&world, &mut rng, sends) else {
            continue;
        };
        let Some(room) = world.room() else { continue };
        counter += 1;
        let sender = world.plan.servers[server].users[user].user_id.clone();
        let body = format!("message {counter}");
        let sent_at_ms = world.now_ms();
        let result = world.slots[server]
            .call(move |hs| async move { hs.send_message(&sender, &room, &body).await })
            .await;
        match result {
            Ok(Ok(event_id)) => {
                world.count("message", true);
                world.trace(format!(
                    "\"kind\":\"sent\",\"event_id\":\"{event_id}\",\"server\":{server}"
                ));
                let sent = SentEvent {
                    event_id,
                    sent_at_ms,
                    origin: server,
                };
                world.records.borrow_mut().sent.push(sent);
            }
            _ => world.count("message", false),
        }
    }
}

async fn state_changes(world: Rc<World>, mut rng: ChaCha8Rng) {
    let rate = world.plan.workload.state_changes_per_second;
    let kinds = world.plan.workload.state_change_kinds.clone();
    if rate <= 0.0 || kinds.is_empty() {
        return;
    }
    let mut counter = 0u64;
    loop {
        next_arrival(&mut rng, rate).await;
        if stopped(&world) {
            return;
        }
        let admins_only = world.plan.workload.state_changes_by == StateChangers::Admins;
        let allowed = |server: usize, user: usize| {
            let planned = &world.plan.servers[server].users[user];
            planned.changes_state && (planned.admin || !admins_only)
        };
        let Some((server, user)) = pick_user(&world, &mut rng, allowed) else {
            continue;
        };
        let kind = kinds[rng.random_range(0..kinds.len())];
        counter += 1;
        change_state(&world, &mut rng, server, user, kind, counter).await;
    }
}

async fn change_state(
    world: &Rc<World>,
    rng: &mut ChaCha8Rng,
    server: usize,
    user: usize,
    kind: StateChangeKind,
    counter: u64,
) {
    let Some(room) = world.room() else { return };
    let sender = world.plan.servers[server].users[user].user_id.clone();
    let (event_type, state_key, content): (&str, String, Map<String, Value>) = match kind {
        StateChangeKind::Topic => (
            "m.room.topic",
            String::new(),
            object(json!({"topic": format!("topic {counter}")})),
        ),
        StateChangeKind::Name => (
            "m.room.name",
            String::new(),
            object(json!({"name": format!("name {counter}")})),
        ),
        StateChangeKind::JoinRules => (
            "m.room.join_rules",
            String::new(),
            object(json!({"join_rule": "public"})),
        ),
        StateChangeKind::PowerLevels => {
            let Some(target) = non_admin_member(world, rng) else {
                return;
            };
            let level = rng.random_range(0..=50);
            let slot = world.slots[server].clone();
            let room_for_read = room.clone();
            let Ok(mut levels) = slot
                .call(move |hs| async move {
                    current_content(&hs, &room_for_read, "m.room.power_levels")
                })
                .await
            else {
                return;
            };
            users_of(&mut levels).insert(target, json!(level));
            ("m.room.power_levels", String::new(), levels)
        }
        StateChangeKind::Ban => {
            let Some(target) = non_admin_member(world, rng) else {
                return;
            };
            if !back_before_stop(world, BAN_LENGTH) {
                return;
            }
            spawn_local(ban_then_lift(world.clone(), server, sender.clone(), target));
            return;
        }
        StateChangeKind::Membership => {
            // A user leaves and rejoins later: only the user may do this, so it is the user's
            // own action whatever `state_changes_by` says.
            if !back_before_stop(world, JOIN_RETRY) {
                return;
            }
            let target = sender.clone();
            spawn_local(leave_then_rejoin(world.clone(), server, user, target));
            return;
        }
    };
    let label = event_type.to_owned();
    let result = world.slots[server]
        .call(move |hs| async move {
            hs.send_state(&sender, &room, event_type, &state_key, content)
                .await
        })
        .await;
    world.count(&label, matches!(result, Ok(Ok(_))));
}

/// Whether a user sent away now (a leave, a ban) is due back, `away` later, with at least
/// `RETURN_BEFORE_STOP` of workload left. A departure is made only then. Rejoins stop with the
/// workload, so a later one would leave the user out for the final phase (and a server whose
/// only user it was out of the room, which the run expects every server to be in at the end,
/// as it expects every fault undone). And a returning server receives the events its peers
/// sent while it was away, or before they learnt of its return, only through later events
/// that cite them: the workload must still be sending for a while after the return.
fn back_before_stop(world: &World, away: Duration) -> bool {
    let back_ms = world.now_ms() + (away + RETURN_BEFORE_STOP).as_millis() as u64;
    back_ms <= world.plan.workload.stops_at.as_ms()
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// A joined member who is not an admin nor the creator, as a user id.
fn non_admin_member(world: &World, rng: &mut ChaCha8Rng) -> Option<String> {
    let creator = world.plan.workload.creator;
    let (server, user) = pick_user(world, rng, |server, user| {
        !world.plan.servers[server].users[user].admin
            && (server, user) != (creator.server.0, creator.user)
    })?;
    Some(world.plan.servers[server].users[user].user_id.clone())
}

fn user_ref(world: &World, user_id: &str) -> Option<(usize, usize)> {
    world.plan.servers.iter().find_map(|server| {
        server
            .users
            .iter()
            .position(|user| user.user_id == user_id)
            .map(|user| (server.id.0, user))
    })
}

async fn ban_then_lift(world: Rc<World>, server: usize, admin: String, target: String) {
    let Some(room) = world.room() else { return };
    let Some(target_ref) = user_ref(&world, &target) else {
        return;
    };
    let (room_ban, admin_ban, target_ban) = (room.clone(), admin.clone(), target.clone());
    let result = world.slots[server]
        .call(move |hs| async move {
            hs.set_membership(&admin_ban, &room_ban, &target_ban, "ban")
                .await
        })
        .await;
    let ok = matches!(result, Ok(Ok(_)));
    world.count("ban", ok);
    if !ok {
        return;
    }
    {
        let mut records = world.records.borrow_mut();
        records.joined.remove(&target_ref);
        records.banned.insert(target_ref);
    }
    tokio::time::sleep(BAN_LENGTH).await;
    let result = world.slots[server]
        .call(move |hs| async move { hs.set_membership(&admin, &room, &target, "leave").await })
        .await;
    world.count("unban", matches!(result, Ok(Ok(_))));
    world.records.borrow_mut().banned.remove(&target_ref);
    spawn_local(join_user(
        world.clone(),
        target_ref.0,
        target_ref.1,
        Duration::ZERO,
    ));
}

async fn leave_then_rejoin(world: Rc<World>, server: usize, user: usize, user_id: String) {
    let Some(room) = world.room() else { return };
    let result = world.slots[server]
        .call(move |hs| async move { hs.set_membership(&user_id, &room, &user_id, "leave").await })
        .await;
    let ok = matches!(result, Ok(Ok(_)));
    world.count("leave", ok);
    if ok {
        world.records.borrow_mut().joined.remove(&(server, user));
        tokio::time::sleep(JOIN_RETRY).await;
        spawn_local(join_user(world.clone(), server, user, Duration::ZERO));
    }
}

/// A flood of valid messages from the users of `server` at `rate` per second while `running`.
pub async fn flood(
    world: Rc<World>,
    server: usize,
    rate: f64,
    running: Rc<std::cell::Cell<bool>>,
    sent: Rc<std::cell::Cell<u64>>,
) {
    if rate <= 0.0 {
        return;
    }
    let mut rng = component_rng(world.plan.seed, &format!("flood/{server}"));
    while running.get() {
        next_arrival(&mut rng, rate).await;
        let on_server = |candidate: usize, _user: usize| candidate == server;
        let Some((_, user)) = pick_user(&world, &mut rng, on_server) else {
            continue;
        };
        let Some(room) = world.room() else { continue };
        let sender = world.plan.servers[server].users[user].user_id.clone();
        let slot = world.slots[server].clone();
        // Not awaited one by one: a flood does not wait for the server between messages.
        let count = sent.clone();
        spawn_local(async move {
            let result = slot
                .call(move |hs| async move { hs.send_message(&sender, &room, "flood").await })
                .await;
            if matches!(result, Ok(Ok(_))) {
                count.set(count.get() + 1);
            }
        });
    }
}
