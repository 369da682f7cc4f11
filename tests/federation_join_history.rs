//! A server joining a room with more history than one `/backfill` page still gets all of it:
//! it asks page after page until the history connects to the state it was given.

mod common_fed;

use common_fed::Lab;

const HS1: &str = "hs1.test";
const HS2: &str = "hs2.test";

#[test]
fn a_late_joiner_backfills_history_longer_than_one_page() {
    Lab::new(2, 9).run(|servers| async move {
        let room = servers.create_room(HS1).await;
        let mut sent = Vec::new();
        // More than the 100 events a peer answers per /backfill request.
        for i in 0..160 {
            sent.push(
                servers
                    .message(HS1, &room, &format!("before the join {i}"))
                    .await,
            );
        }
        servers.join(HS2, &room, HS1).await;
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
