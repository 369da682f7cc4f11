//! The adversary oracle: after the run, how every crafted event fared on every honest server,
//! what the interceptors did, the adversary metrics and the `adversary[i] took effect`
//! verdicts.
//!
//! Invariant: reads only (honest stores, server metrics, the ledger); never changes them.
//!
//! Accepted after an ACL, defined: an event counts once per honest server that holds it
//! accepted while the state before the event, as that server computed it, holds an
//! `m.room.server_acl` that denies the server of the event's sender. The spec applies ACLs
//! to the origin of each request, so a server may still learn of such an event from an
//! allowed server (a missing-event fetch, backfill); but an event whose own state denies its
//! sender's server was made by a server the room had already shut out, and accepting it
//! lets the denied server take part in the room, which the ACL exists to stop. Events the
//! denied server made before it knew of the ACL (their state before holds no ACL) do not
//! count: an honest server may accept those until the ACL reaches it.

use super::{Ledger, Tally};
use crate::observe::record::Verdict;
use crate::server::store::{EventStatus, RoomStore};
use crate::sim::adversary::attacks::Judge;
use crate::sim::adversary::intercept::TAMPER_MARK;
use crate::sim::experiment::adversary::Attack;
use crate::sim::experiment::plan::PlannedAdversary;
use crate::sim::runner::observer;
use crate::sim::runner::summary::{Counter, insert_honest_sums};
use crate::sim::runner::world::World;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// What convergence compares at the end: the observer's view digest, except that with
/// adversaries the events of Byzantine servers are left out of the compared event set (the
/// current state still counts in full). A rate-limited spammer's history reaches each victim
/// with different gaps, which the protocol allows; the honest events and the state must agree.
pub fn view_digest(world: &World, room: &RoomStore) -> String {
    view_digest_with_state(world, room, &observer::state_digest(room))
}

/// As [`view_digest`], for a room whose state digest is known already. The observer's
/// samples use it too, so that agreement over time and convergence at the end compare the
/// same thing.
pub fn view_digest_with_state(world: &World, room: &RoomStore, state_digest: &str) -> String {
    if world.plan.adversaries.is_empty() {
        return observer::view_digest_of_set(state_digest, room.authorized_set_digest());
    }
    let byzantine: BTreeSet<&str> = world
        .plan
        .servers
        .iter()
        .filter(|server| !server.honest)
        .map(|server| server.name.as_str())
        .collect();
    let honest_ids = observer::authorized_ids(room).filter(|event_id| {
        !room.record(event_id).is_some_and(|record| {
            byzantine.contains(crate::proto::event::server_of(&record.pdu().event().sender))
        })
    });
    observer::view_digest_over(state_digest, honest_ids)
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

impl Fate {
    fn add(&mut self, other: &Fate) {
        self.accepted += other.accepted;
        self.soft_failed += other.soft_failed;
        self.rejected += other.rejected;
        self.outlier += other.outlier;
        self.not_held += other.not_held;
        self.unauthorized_accepted += other.unauthorized_accepted;
    }
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

/// Events honest servers accepted although the server ACL in the state before each denies
/// its sender's server, in (event, server) pairs (see the module doc).
fn accepted_after_acl(world: &World, room: &str) -> u64 {
    world
        .honest()
        .filter_map(|index| world.slots[index].current())
        .filter_map(|server| server.with_room(room, events_under_denying_acl))
        .sum()
}

/// Events of `store` accepted under an ACL that denies their sender's server.
fn events_under_denying_acl(store: &RoomStore) -> u64 {
    store
        .records()
        .filter(|(_, record)| record.is_accepted())
        .filter(|(event_id, record)| {
            let sender_server = crate::proto::event::server_of(&record.pdu().event().sender);
            denied_before(store, event_id, sender_server)
        })
        .count() as u64
}

/// Whether the state before `event_id` in `store` holds a server ACL that denies `server`.
fn denied_before(store: &RoomStore, event_id: &str, server: &str) -> bool {
    let key = (
        crate::proto::acl::SERVER_ACL_EVENT_TYPE.to_owned(),
        String::new(),
    );
    // One key of the state before: read from the state groups, not from a copy of the whole
    // state (which costs the room's size for every event of every server).
    let Some(acl_id) = store
        .record(event_id)
        .and_then(|record| record.state())
        .and_then(|state| store.state_groups().get(state.before, &key))
    else {
        return false;
    };
    store.event(acl_id).is_some_and(|acl| {
        !crate::proto::acl::check_server_acl(Some(&acl.event().content), server).is_allowed()
    })
}

/// Events of the adversary's server that its own store holds under an ACL denying it: what
/// the abuser kept sending after it knew it was denied.
fn sent_under_acl(world: &World, room: &str, adversary: &PlannedAdversary) -> u64 {
    let name = &world.plan.servers[adversary.server.0].name;
    world.slots[adversary.server.0]
        .current()
        .and_then(|server| {
            server.with_room(room, |store| {
                store
                    .records()
                    .filter(|(event_id, record)| {
                        let sender_server =
                            crate::proto::event::server_of(&record.pdu().event().sender);
                        sender_server == name && denied_before(store, event_id, sender_server)
                    })
                    .count() as u64
            })
        })
        .unwrap_or(0)
}

/// The p99 delivery latency of honest events sent while some adversary window was open:
/// what the attacks cost honest users (`baseline` compares it with the same run without the
/// attackers).
fn latency_p99_during_attacks(world: &World) -> Option<u64> {
    let windows = super::baseline::attack_windows(&world.plan);
    if windows.is_empty() {
        return None;
    }
    super::baseline::latency_p99_in(&world.records.borrow(), &windows)
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
fn effect_count(
    world: &World,
    room: &str,
    adversary: &PlannedAdversary,
    tally: &Tally,
    fate: &Fate,
    ledger: &Ledger,
) -> u64 {
    let interference = ledger.interceptors[&adversary.server.0]
        .interference
        .borrow();
    match adversary.attack {
        Attack::TamperInTransit | Attack::TamperInBackfill => interference.tampered_events,
        Attack::WithheldAuthEvents => interference.withheld_answers,
        Attack::DeepAuthChain => interference.served_auth_chain_events,
        Attack::Spam => fate.accepted,
        // The chains reached the victims (answered transactions, gap fills served) whether or
        // not a bounded victim took any of them.
        Attack::GapFillSpam => {
            interference.served_missing_events
                + tally
                    .answers
                    .iter()
                    .filter(|(status, _)| **status != 0)
                    .map(|(_, count)| count)
                    .sum::<u64>()
        }
        // Abuse reached the room, an ACL was sent, and the abuser kept sending under it.
        Attack::AbuseThenAcl if fate.accepted > 0 && tally.acl_event.is_some() => {
            sent_under_acl(world, room, adversary)
        }
        Attack::AbuseThenAcl => 0,
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
        totals.add(&fate);
        sent += tally.events.len() as u64;
        let effect = effect_count(world, &room, adversary, &tally, &fate, ledger);
        rows.push(adversary_row(world, adversary, &tally, &fate, effect));
        verdicts.push(took_effect(adversary, &tally, effect));
    }
    insert_attack_metrics(world, &room, sent, &totals, metrics);
    insert_defence_counters(world, metrics);
    if !rows.is_empty() {
        metrics.insert("adversaries".into(), Value::Array(rows));
        metrics.insert("interference".into(), interference(world, ledger));
    }
    verdicts
}

/// One adversary's row of the `adversaries` metric.
fn adversary_row(
    world: &World,
    adversary: &PlannedAdversary,
    tally: &Tally,
    fate: &Fate,
    effect: u64,
) -> Value {
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
    json!({
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
        "acl_event": tally.acl_event,
    })
}

/// The `adversary[i] took effect` verdict: an attack that never reached an honest server
/// proves nothing about the defences.
fn took_effect(adversary: &PlannedAdversary, tally: &Tally, effect: u64) -> Verdict {
    Verdict {
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
    }
}

/// What each interceptor did to the answers it relayed, by its server's name.
fn interference(world: &World, ledger: &Ledger) -> Value {
    let mut interference = json!({});
    for (server, interceptor) in &ledger.interceptors {
        let seen = interceptor.interference.borrow();
        interference[&world.plan.servers[*server].name] = json!({
            "requests": seen.requests,
            "withheld_answers": seen.withheld_answers,
            "stalled_answers": seen.stalled_answers,
            "tampered_events": seen.tampered_events,
            "served_auth_chain_events": seen.served_auth_chain_events,
            "served_missing_events": seen.served_missing_events,
            "tampered_servers": seen.tampered_servers,
        });
    }
    interference
}

/// How the crafted events fared in total, and what the attacks cost the honest servers.
fn insert_attack_metrics(
    world: &World,
    room: &str,
    sent: u64,
    totals: &Fate,
    metrics: &mut BTreeMap<String, Value>,
) {
    let fates = [
        ("attack_events_sent", sent),
        ("attack_events_accepted", totals.accepted),
        ("attack_events_rejected", totals.rejected),
        ("attack_events_soft_failed", totals.soft_failed),
        ("attack_events_outlier", totals.outlier),
        ("attack_events_not_held", totals.not_held),
        ("unauthorized_accepted", totals.unauthorized_accepted),
        ("tampered_accepted", tampered_accepted(world, room)),
        ("accepted_after_acl", accepted_after_acl(world, room)),
        (
            "victim_store_bytes_max",
            victim_store_bytes_max(world, room),
        ),
    ];
    for (metric, value) in fates {
        metrics.insert(metric.into(), json!(value));
    }
    metrics.insert(
        "delivery_latency_ms_p99_during_attacks".into(),
        json!(latency_p99_during_attacks(world)),
    );
    let sent_after_acl: u64 = world
        .plan
        .adversaries
        .iter()
        .filter(|adversary| adversary.attack == Attack::AbuseThenAcl)
        .map(|adversary| sent_under_acl(world, room, adversary))
        .sum();
    metrics.insert("attack_events_sent_after_acl".into(), json!(sent_after_acl));
}

/// The honest servers' counts of what their defences refused, dropped or leaked, and the
/// highest number of transactions any of them had in flight.
fn insert_defence_counters(world: &World, metrics: &mut BTreeMap<String, Value>) {
    let counters: [(&str, Counter); 10] = [
        ("leaked_events", |m| m.events_leaked),
        ("acl_requests_refused", |m| m.acl_requests_refused),
        ("acl_pdus_dropped", |m| m.acl_pdus_dropped),
        ("acl_edus_ignored", |m| m.acl_edus_ignored),
        ("gap_fills_limited", |m| m.gap_fills_limited),
        ("transactions_rate_limited", |m| m.transactions_rate_limited),
        ("transactions_refused", |m| m.transactions_refused),
        ("pdus_dropped_bad_signature", |m| {
            m.pdus_dropped_bad_signature
        }),
        ("auth_chains_refused", |m| m.auth_chains_refused),
        ("pdus_redacted_bad_hash", |m| m.pdus_redacted_bad_hash),
    ];
    insert_honest_sums(world, metrics, &counters);
    let queue_peak = world
        .honest()
        .filter_map(|index| world.slots[index].current())
        .map(|server| server.metrics().transactions_in_flight_peak)
        .max()
        .unwrap_or(0);
    metrics.insert("victim_queue_peak".into(), json!(queue_peak));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::room_version::RoomVersion;
    use crate::server::store::testkit::{EventSpec, RoomBuilder};

    const ADMIN: &str = "@admin:hs1.test";
    const ABUSER: &str = "@abuser:evil.test";

    fn message(room: &mut RoomBuilder, sender: &str, body: &str) -> String {
        let spec = EventSpec::new(sender, "m.room.message").content(json!({"body": body}));
        room.event(spec).event_id().to_owned()
    }

    #[test]
    fn only_events_made_under_a_denying_acl_count() {
        let version = RoomVersion::from_id("12").expect("room version 12 exists");
        let mut room = RoomBuilder::standard(version, ADMIN);
        room.join(ABUSER);
        let before = message(&mut room, ABUSER, "abuse before the ACL");
        room.state(
            ADMIN,
            crate::proto::acl::SERVER_ACL_EVENT_TYPE,
            json!({"allow": ["*"], "deny": ["evil.test"]}),
        );
        let after = message(&mut room, ABUSER, "abuse under the ACL");
        let honest = message(&mut room, ADMIN, "an allowed server under the ACL");
        let store = room.author();
        assert!(!denied_before(store, &before, "evil.test"));
        assert!(denied_before(store, &after, "evil.test"));
        assert!(!denied_before(store, &honest, "hs1.test"));
        // The author store enforces no ACL: the event under it is accepted, and counted.
        assert!(
            store
                .record(&after)
                .is_some_and(|record| record.is_accepted())
        );
        assert_eq!(events_under_denying_acl(store), 1);
    }

    #[test]
    fn an_acl_that_allows_the_sender_counts_nothing() {
        let version = RoomVersion::from_id("12").expect("room version 12 exists");
        let mut room = RoomBuilder::standard(version, ADMIN);
        room.join(ABUSER);
        room.state(
            ADMIN,
            crate::proto::acl::SERVER_ACL_EVENT_TYPE,
            json!({"allow": ["*"], "deny": ["other.test"]}),
        );
        message(&mut room, ABUSER, "allowed");
        assert_eq!(events_under_denying_acl(room.author()), 0);
    }
}
