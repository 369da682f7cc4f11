//! Faults on turmoil: a partition while both sides change the room, then a heal; a crash and
//! restart in the middle of traffic. Each ends with a liveness phase in which the servers must
//! converge within a bounded simulated time.

mod common_fed;

use common_fed::{Lab, user};
use serde_json::json;
use std::time::Duration;

const HS1: &str = "hs1.test";
const HS2: &str = "hs2.test";
const HS3: &str = "hs3.test";
const HS4: &str = "hs4.test";

/// How long after the last fault the servers have to agree again.
const CONVERGENCE_LIMIT: Duration = Duration::from_secs(120);

#[test]
fn partition_two_by_two_while_both_sides_change_state_then_heal_converges() {
    Lab::new(4, 11).run(|servers| async move {
        let room = servers.room_with_everyone().await;
        let levels = json!({"users": {user(HS3): 50}});
        servers
            .state(HS1, &room, "m.room.power_levels", "", levels)
            .await;
        servers.converge(&room, CONVERGENCE_LIMIT).await?;

        let (west, east) = ([HS1, HS2], [HS3, HS4]);
        servers.partition(&west, &east);
        let mut sent = Vec::new();
        let mut state_changes = Vec::new();
        for round in 0..12 {
            for server in [HS1, HS2, HS3, HS4] {
                let body = format!("round {round} from {server}");
                sent.push(servers.message(server, &room, &body).await);
            }
            let change = match round {
                2 => Some((HS1, "m.room.topic", json!({"topic": "west"}))),
                3 => Some((HS3, "m.room.name", json!({"name": "east"}))),
                5 => Some((
                    HS1,
                    "m.room.power_levels",
                    json!({"users": {user(HS3): 50, user(HS2): 50}}),
                )),
                7 => Some((HS3, "m.room.topic", json!({"topic": "east"}))),
                9 => Some((HS2, "m.room.topic", json!({"topic": "west again"}))),
                _ => None,
            };
            if let Some((server, event_type, content)) = change {
                let id = servers.state(server, &room, event_type, "", content).await;
                state_changes.push((event_type, id));
            }
            tokio::time::sleep(Duration::from_secs(8)).await;
        }
        assert!(servers.divergence(&room).is_some(), "the partition held");
        servers.heal(&west, &east);
        let took = servers.converge(&room, CONVERGENCE_LIMIT).await?;
        eprintln!("converged {:.1} s after the heal", took.as_secs_f64());

        let view = common_fed::View::of(&servers.server(HS4), &room).unwrap();
        for id in sent.iter().chain(state_changes.iter().map(|(_, id)| id)) {
            assert!(view.accepted.contains(id), "{id} is missing after the heal");
        }
        let current = |event_type: &str| {
            view.state
                .iter()
                .find(|(kind, key, _)| kind == event_type && key.is_empty())
                .map(|(_, _, id)| id.clone())
        };
        let changed = |event_type: &str| -> Vec<String> {
            let of_type = state_changes.iter().filter(|(kind, _)| *kind == event_type);
            of_type.map(|(_, id)| id.clone()).collect()
        };
        // Only the east changed the name, only the west the power levels: both survive.
        assert_eq!(current("m.room.name"), changed("m.room.name").pop());
        assert_eq!(
            current("m.room.power_levels"),
            changed("m.room.power_levels").pop()
        );
        let topic = current("m.room.topic").unwrap();
        assert!(changed("m.room.topic").contains(&topic));
        Ok(())
    });
}

/// A partition long enough that the senders give up their queues for catch-up (only the
/// newest event per room is sent after the heal): the receivers must fetch gaps of far more
/// than one `/get_missing_events` answer. Guards the walk of missing events, which used to
/// ask for the same newest events every round and left a gap of 120 events behind a
/// `/state_ids` fallback, so the servers never held the same events.
#[test]
fn long_partition_falls_back_to_catch_up_and_gaps_close() {
    // Queues now bridge outages of minutes by resending; fall back after 8 failures (about
    // three minutes here) to exercise catch-up.
    let lab = Lab::with_config(4, 12, Duration::from_secs(600), |config| {
        config.queue_limits.failures_before_catch_up = 8;
    });
    lab.run(|servers| async move {
        let room = servers.room_with_everyone().await;
        servers.converge(&room, CONVERGENCE_LIMIT).await?;
        let (west, east) = ([HS1, HS2], [HS3, HS4]);
        servers.partition(&west, &east);
        let mut sent = Vec::new();
        for round in 0..60 {
            for server in [HS1, HS2, HS3, HS4] {
                let body = format!("round {round} from {server}");
                sent.push(servers.message(server, &room, &body).await);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let counters = servers.server(HS1).queue_counters();
        let catching_up: u64 = counters.values().map(|queue| queue.catch_ups).sum();
        assert!(
            catching_up > 0,
            "the queues of hs1 never fell back to catch-up"
        );
        servers.heal(&west, &east);
        let took = servers.converge(&room, CONVERGENCE_LIMIT).await?;
        eprintln!("converged {:.1} s after the heal", took.as_secs_f64());
        let view = common_fed::View::of(&servers.server(HS1), &room).unwrap();
        let missing = sent
            .iter()
            .filter(|id| !view.accepted.contains(*id))
            .count();
        assert_eq!(missing, 0, "of {} messages", sent.len());
        for name in servers.names() {
            let metrics = servers.server(&name).metrics();
            assert_eq!(
                metrics.state_ids_fallbacks, 0,
                "{name}: a gap did not close"
            );
        }
        Ok(())
    });
}

#[test]
fn crash_and_restart_mid_stream_loses_no_acknowledged_event_and_catches_up() {
    Lab::new(4, 13).run(|servers| async move {
        let room = servers.room_with_everyone().await;
        servers.converge(&room, CONVERGENCE_LIMIT).await?;
        let stream = tokio::task::spawn_local(servers.clone().traffic(
            room.clone(),
            Duration::from_millis(250),
            Duration::from_secs(30),
        ));
        tokio::time::sleep(Duration::from_secs(10)).await;
        servers.crash(HS3).await;
        let acked = servers.acked_before_crash(HS3);
        let sent = stream.await?;
        // Nobody sends anything once hs3 is back: the others' retries and hs3's own restart
        // must bring it up to date, and bring out what it held but had not sent.
        tokio::time::sleep(Duration::from_secs(5)).await;
        servers.restart(HS3).await;
        let held = servers.held_events(HS3, &room);
        let lost: Vec<_> = acked.difference(&held).collect();
        assert!(
            lost.is_empty(),
            "{} acknowledged events lost: {lost:?}",
            lost.len()
        );
        assert!(acked.len() > 20, "only {} events acknowledged", acked.len());

        let took = servers.converge(&room, CONVERGENCE_LIMIT).await?;
        eprintln!(
            "{} acknowledged before the crash; converged {:.1} s after the restart",
            acked.len(),
            took.as_secs_f64()
        );
        let view = common_fed::View::of(&servers.server(HS3), &room).unwrap();
        let missing: Vec<_> = sent
            .iter()
            .filter(|id| !view.accepted.contains(*id))
            .collect();
        assert!(missing.is_empty(), "{} sent events missing", missing.len());
        Ok(())
    });
}

/// A server cut off from the others sends messages (its local users got their event ids,
/// the queues hold them), crashes and restarts with empty queues: the messages must survive
/// and reach the others once the network heals, with no further traffic to carry them.
#[test]
fn restart_sends_what_the_lost_queues_held() {
    Lab::new(3, 14).run(|servers| async move {
        let room = servers.room_with_everyone().await;
        servers.converge(&room, CONVERGENCE_LIMIT).await?;
        let others = [HS1, HS2];
        servers.partition(&[HS3], &others);
        let mut sent = Vec::new();
        for i in 0..5 {
            sent.push(
                servers
                    .message(HS3, &room, &format!("while cut off {i}"))
                    .await,
            );
            sent.push(servers.message(HS1, &room, &format!("meanwhile {i}")).await);
        }
        servers.crash(HS3).await;
        servers.restart(HS3).await;
        servers.heal(&[HS3], &others);
        let took = servers.converge(&room, CONVERGENCE_LIMIT).await?;
        eprintln!("converged {:.1} s after the restart", took.as_secs_f64());
        let view = common_fed::View::of(&servers.server(HS1), &room).unwrap();
        let missing: Vec<_> = sent
            .iter()
            .filter(|id| !view.accepted.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{} sent events missing: {missing:?}",
            missing.len()
        );
        Ok(())
    });
}
