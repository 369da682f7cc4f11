//! The attacks that are more than rounds of crafted events: the scenes a stale-power ban, a
//! backfill tamperer and an abuser denied by ACL need (honest actions of the room's creator,
//! a join through the attacker), the deep auth chain crafted once, reads by a non-member,
//! and spam sent through the attacker's honest server.
//!
//! Invariant: the honest actions here are ones an honest admin or server may take at any
//! time; they set the scene, they never change what an honest server decides.

use super::{Ledger, attacker_user, on_attacker, round_interval, sleep_until_ms, strike, targets};
use crate::sim::adversary::attacks::{self, Crafted, Judge, Scene};
use crate::sim::adversary::craft::{CraftError, Crafter, RoomView};
use crate::sim::experiment::plan::PlannedAdversary;
use crate::sim::runner::world::World;
use serde_json::json;
use std::rc::Rc;

/// One round of the deep-auth-chain attack: the chain is crafted on the first round (its
/// links are listed as valid events, so the oracle counts what victims stored of them), and
/// every round sends a new message citing its last link, whose auth chain the interceptor
/// serves in full when a victim asks.
pub(super) fn deep_chain_round(
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

/// One round of gap-fill spam: a chain of `chain` messages, of which only the newest is sent;
/// the rest are listed as valid events (so the oracle counts what victims took of them) and
/// served to any victim that fills the gap, in one answer whatever limit it asked for.
pub(super) fn gap_spam_round(
    ledger: &Ledger,
    adversary: &PlannedAdversary,
    crafter: &Crafter,
    view: &RoomView,
    scene: &Scene,
) -> Result<Vec<Crafted>, CraftError> {
    let count = adversary.params.count("chain").unwrap_or(1_000) as usize + 1;
    let mut chain =
        attacks::chained_messages(crafter, view, scene, count, "gap spam", Judge::Valid)?;
    let Some(sent) = chain.pop() else {
        return Ok(Vec::new());
    };
    let mut tally = ledger.tally(adversary.index);
    for link in &chain {
        tally.events.insert(link.event_id.clone(), Judge::Valid);
    }
    drop(tally);
    let ids: Vec<String> = chain.iter().map(|link| link.event_id.clone()).collect();
    let mut served: Vec<_> = chain.into_iter().map(|link| link.json).collect();
    // The sent message is the chain's last link: a gap fill names it as its latest event.
    served.push(sent.json.clone());
    let mut ids = ids;
    ids.push(sent.event_id.clone());
    ledger.interceptors[&adversary.server.0]
        .rules
        .borrow_mut()
        .served_missing_events
        .add(&ids, served);
    Ok(vec![sent])
}

/// Rewrites backfill answers for the window, and at its start has an honest server that is
/// not in the room yet join it through the attacker (its first user joins with the attacker
/// as the resident server): a server joining through a resident backfills from it, as every
/// server does after a join.
pub(super) async fn tamper_in_backfill(
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
pub(super) const STALE_POWER: i64 = 50;

/// A stale-power ban, in three steps over the window: the room's creator (honest) grants the
/// attacker's user power at its start; revokes it after 40% of the window (on its own side of
/// any partition); from half the window on, the attacker bans honest users citing the power
/// levels it still sees.
pub(super) async fn stale_power_ban(
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

/// Abuse, then a server ACL: the attacker's users spam the room at the attack's rate for
/// the whole window; `acl_after` into it the room's creator (honest, with the power to send
/// `m.room.server_acl`) denies the attacker's server, and the attacker carries on as if
/// nothing had happened. The oracle counts what honest servers accepted under the ACL.
pub(super) async fn abuse_then_acl(
    world: &Rc<World>,
    ledger: &Rc<Ledger>,
    adversary: &PlannedAdversary,
    room: &str,
    end_ms: u64,
) {
    let acl_at_ms = adversary.from.as_ms()
        + adversary
            .params
            .duration("acl_after")
            .map_or(0, |delay| delay.as_ms());
    let attacker_server = world.plan.servers[adversary.server.0].name.clone();
    let (acl_world, acl_ledger, acl_room) = (world.clone(), ledger.clone(), room.to_owned());
    let index = adversary.index;
    crate::server::task::spawn_local(async move {
        sleep_until_ms(&acl_world, acl_at_ms).await;
        let sent = deny_by_creator(&acl_world, &acl_room, &attacker_server).await;
        match sent {
            Some(event_id) => acl_ledger.tally(index).acl_event = Some(event_id),
            None => {
                *acl_ledger
                    .tally(index)
                    .craft_errors
                    .entry("the creator could not send the server ACL".into())
                    .or_default() += 1;
            }
        }
    });
    let interval = round_interval(adversary);
    let mut round = 0u64;
    while world.now_ms() < end_ms {
        round += 1;
        spam(world, ledger, adversary, room, round);
        tokio::time::sleep(interval).await;
    }
}

/// The room's creator denies `server` by a server ACL that allows every other server, as an
/// honest admin would; the ACL's event id, or `None` if it could not be sent.
async fn deny_by_creator(world: &World, room: &str, server: &str) -> Option<String> {
    let creator = world.plan.workload.creator;
    let creator_id = world.plan.servers[creator.server.0].users[creator.user]
        .user_id
        .clone();
    let room = room.to_owned();
    let content = json!({ "allow": ["*"], "deny": [server], "allow_ip_literals": false });
    let content = content.as_object().cloned().unwrap_or_default();
    let result = world.slots[creator.server.0]
        .call(move |hs| async move {
            hs.send_state(
                &creator_id,
                &room,
                crate::proto::acl::SERVER_ACL_EVENT_TYPE,
                "",
                content,
            )
            .await
        })
        .await;
    world.count("adversary_server_acl", matches!(result, Ok(Ok(_))));
    result.ok().and_then(Result::ok)
}

/// The room's creator sets `user`'s power level, as an honest admin would.
pub(super) async fn set_power_by_creator(world: &World, room: &str, user: &str, level: i64) {
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
                        .current_state_event_of("m.room.power_levels", "")
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
pub(super) fn peek(
    world: &World,
    ledger: &Rc<Ledger>,
    adversary: &PlannedAdversary,
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
    let (ledger, index) = (ledger.clone(), adversary.index);
    on_attacker(world, adversary, move |hs| async move {
        ledger.tally(index).requests += 1;
        let answer = hs
            .raw_request(&destination, method, &uri, body.as_ref(), true)
            .await;
        let status = answer.map_or(0, |answer| answer.status);
        *ledger.tally(index).answers.entry(status).or_default() += 1;
    });
}

/// One spam message from one of the attacker's users, sent through its honest server as any
/// user's message would be; not awaited, so the rate does not depend on the server.
pub(super) fn spam(
    world: &World,
    ledger: &Rc<Ledger>,
    adversary: &PlannedAdversary,
    room: &str,
    round: u64,
) {
    let users = &world.plan.servers[adversary.server.0].users;
    let Some(user) = users.get(round as usize % users.len().max(1)) else {
        return;
    };
    let (room, sender) = (room.to_owned(), user.user_id.clone());
    let (ledger, index) = (ledger.clone(), adversary.index);
    on_attacker(world, adversary, move |hs| async move {
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
