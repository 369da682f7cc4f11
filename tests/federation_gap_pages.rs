//! Filling a short gap costs a short answer: the first `/get_missing_events` round asks for a
//! small page, since the answering server cannot tell which of the events behind the missing
//! one we hold, and a large page is then mostly events we hold already.

mod common_fed;

use common_fed::Lab;
use std::time::Duration;

const HS1: &str = "hs1.test";
const HS2: &str = "hs2.test";
const HS3: &str = "hs3.test";

#[test]
fn a_one_event_gap_is_filled_without_fetching_the_history_behind_it() {
    Lab::new(3, 3).run(|servers| async move {
        let room = servers.room_with_everyone().await;
        for i in 0..120 {
            servers.message(HS1, &room, &format!("history {i}")).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        // hs1 misses hs3's next event, and moves its own forward extremity past the event
        // before it, so the walk from hs2's next event does not stop at what hs1 holds.
        servers.partition(&[HS1], &[HS3]);
        let unseen = servers.message(HS3, &room, "hs1 does not see this").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        servers.message(HS1, &room, "hs1 moves on").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = servers.server(HS1).metrics();
        let closing = servers.message(HS2, &room, "cites both").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = servers.server(HS1).metrics();
        let hs1 = servers.server(HS1);
        for event_id in [&unseen, &closing] {
            assert_eq!(hs1.with_room(&room, |r| r.has_state(event_id)), Some(true));
        }
        assert!(after.missing_events_requests > before.missing_events_requests);
        let bytes = after.response_bytes_received - before.response_bytes_received;
        // One event is under 1 kB; the 100 events of a full page would be tens of kB.
        assert!(
            bytes < 20_000,
            "filling a one-event gap took {bytes} bytes of answers"
        );
        Ok(())
    });
}
