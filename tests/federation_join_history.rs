//! A joining server gets the room's history: with more than one `/backfill` page of it, it
//! asks page after page until the history connects to the state it was given; it asks again
//! for a page whose request went unanswered; and a server that left and comes back gets what
//! it missed while away. Nor does it lose an event sent to it while its join was still in
//! progress.

mod common_fed;

use common_fed::{Lab, Servers, user};
use std::time::Duration;

const HS1: &str = "hs1.test";
const HS2: &str = "hs2.test";

/// hs1 creates a room and sends `count` messages, then hs2 joins through hs1. Returns the
/// room and the messages' ids, oldest first.
async fn history_then_join(servers: &Servers, count: usize) -> (String, Vec<String>) {
    let room = servers.create_room(HS1).await;
    let mut sent = Vec::new();
    for i in 0..count {
        sent.push(
            servers
                .message(HS1, &room, &format!("before the join {i}"))
                .await,
        );
    }
    servers.join(HS2, &room, HS1).await;
    (room, sent)
}

#[test]
fn a_late_joiner_backfills_history_longer_than_one_page() {
    Lab::new(2, 9).run(|servers| async move {
        // More than the 100 events a peer answers per /backfill request.
        let (room, sent) = history_then_join(&servers, 160).await;
        let missing: Vec<&String> = sent
            .iter()
            .filter(|id| servers.server(HS2).with_room(&room, |r| r.has_state(id)) != Some(true))
            .collect();
        assert!(
            missing.is_empty(),
            "{} events before the join are missing on hs2",
            missing.len()
        );
        Ok(())
    });
}

/// History longer than a joiner takes (`backfill_on_join_max`) does not cost it the history it
/// did take: the oldest fetched event, whose prev events it will never hold, is placed with
/// the state before it as the resident reports it (`/state_ids`), and the newer events on top
/// of it; only the history before the bound stays unknown. The room's current state is not
/// changed by placing old history.
#[test]
fn a_late_joiner_keeps_the_newest_history_when_the_room_holds_more_than_it_takes() {
    const TAKEN: usize = 50;
    Lab::with_config(2, 9, Duration::from_secs(600), |config| {
        config.backfill_on_join_max = TAKEN as u64;
    })
    .run(|servers| async move {
        let (room, sent) = history_then_join(&servers, 160).await;
        let held =
            |id: &String| servers.server(HS2).with_room(&room, |r| r.has_state(id)) == Some(true);
        // The first page starts at the join itself, which counts among the events taken.
        let (older, newest) = sent.split_at(sent.len() - (TAKEN - 1));
        let newest_missing = newest.iter().filter(|id| !held(id)).count();
        assert_eq!(newest_missing, 0, "of the newest events before the join");
        let older_held = older.iter().filter(|id| held(id)).count();
        assert_eq!(older_held, 0, "events beyond the bound were fetched");
        let after = servers.message(HS1, &room, "after the join").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(held(&after), "an event after the join was not placed");
        let state = |name: &str| {
            servers
                .server(name)
                .with_room(&room, |r| r.current_state().clone())
        };
        assert_eq!(state(HS1), state(HS2), "current states differ");
        Ok(())
    });
}

/// A `/backfill` request that goes unanswered does not cost the joiner the room's history:
/// nothing else fetches the history from before a join, so the joiner asks again.
#[test]
fn a_late_joiner_asks_again_for_history_when_a_backfill_request_goes_unanswered() {
    Lab::new(2, 9).run(|servers| async move {
        let room = servers.create_room(HS1).await;
        let mut sent = Vec::new();
        for i in 0..5 {
            sent.push(
                servers
                    .message(HS1, &room, &format!("before the join {i}"))
                    .await,
            );
        }
        let own_join = ("m.room.member".to_owned(), user(HS2));
        let holds_own_join =
            || {
                servers.slot(HS2).current().and_then(|hs| {
                    hs.with_room(&room, |r| r.current_state().contains_key(&own_join))
                }) == Some(true)
            };
        // The backfill request follows the join at once: holding the link as soon as hs2
        // holds its join keeps that request unanswered past hs2's 10 s timeout.
        let hold_after_join = async {
            while !holds_own_join() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            turmoil::hold(HS1, HS2);
            tokio::time::sleep(Duration::from_secs(12)).await;
            turmoil::release(HS1, HS2);
        };
        tokio::join!(servers.join(HS2, &room, HS1), hold_after_join);
        let missing = sent
            .iter()
            .filter(|id| servers.server(HS2).with_room(&room, |r| r.has_state(id)) != Some(true))
            .count();
        assert_eq!(missing, 0, "events before the join missing on hs2");
        Ok(())
    });
}

/// A server whose only user left stops receiving the room's events; when the user comes back,
/// the server rejoins through a resident and gets what was sent meanwhile, instead of joining
/// on its view of the room as it was when it left.
#[test]
fn a_server_that_left_rejoins_through_a_resident_and_gets_what_it_missed() {
    Lab::new(2, 9).run(|servers| async move {
        let room = servers.room_with_everyone().await;
        let (member, room_id) = (user(HS2), room.clone());
        servers
            .slot(HS2)
            .call(move |hs| async move {
                hs.set_membership(&member, &room_id, &member, "leave")
                    .await
            })
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut missed = Vec::new();
        for i in 0..3 {
            missed.push(servers.message(HS1, &room, &format!("away {i}")).await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let hs2 = servers.server(HS2);
        assert!(hs2.is_in_room(&room) && !hs2.has_joined_member(&room));
        let held = |id: &String| hs2.with_room(&room, |r| r.has_state(id)) == Some(true);
        assert!(!missed.iter().any(held), "sent to a server that left");
        let (member, room_id) = (user(HS2), room.clone());
        servers
            .slot(HS2)
            .call(move |hs| async move { hs.rejoin_remote(&member, &room_id).await })
            .await
            .unwrap()
            .unwrap();
        assert!(hs2.has_joined_member(&room));
        assert!(
            missed.iter().all(held),
            "what was sent while away is missing"
        );
        servers.converge(&room, Duration::from_secs(30)).await?;
        Ok(())
    });
}

const HS3: &str = "hs3.test";

/// The resident sends a join on to the room's servers while its `send_join` answer is still on
/// its way to the joiner, so they may send the joiner events before it holds the room. Such an
/// event waits for the join instead of being refused: nobody would send it again, and history
/// fetched after the join only reaches its ancestors.
#[test]
fn an_event_arriving_before_the_send_join_answer_is_kept() {
    Lab::new(3, 11).run(|servers| async move {
        let room = servers.create_room(HS1).await;
        servers.join(HS2, &room, HS1).await;
        let hs3_joined_at = |name: &str| {
            servers
                .server(name)
                .with_room(&room, |r| {
                    r.current_state()
                        .contains_key(&("m.room.member".to_owned(), user(HS3)))
                })
                .unwrap_or(false)
        };
        let race = async {
            // Hold hs1's answer back as soon as hs1 accepted the join.
            while !hs3_joined_at(HS1) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            turmoil::hold(HS1, HS3);
            while !hs3_joined_at(HS2) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let early = servers
                .message(HS2, &room, "sent while hs3 is joining")
                .await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(
                !hs3_joined_at(HS3),
                "the race did not happen: hs3 completed its join first"
            );
            turmoil::release(HS1, HS3);
            early
        };
        let ((), early) = tokio::join!(servers.join(HS3, &room, HS1), race);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            servers
                .server(HS3)
                .with_room(&room, |r| r.has_state(&early)),
            Some(true),
            "hs3 lacks the event hs2 sent it during the join"
        );
        Ok(())
    });
}
