//! The same scenario with the same seed gives byte-identical runs; another seed gives another
//! run. The digest covers every server's durable log in order (each event as canonical JSON,
//! with its verdict and any state handed with it), current state, metrics and queue counters.
//!
//! The seed reaches the run through turmoil's latency sampling: with a fixed latency
//! (minimum = maximum) seeds 21 and 22 give the same digest, so the difference asserted here
//! comes from message timing (event timestamps and ids, arrival orders, retries), not from
//! anything that ignores the seed.

mod common_fed;

use common_fed::{Lab, user};
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Joins, messages and state changes, a partition and a crash: what every later run of the lab
/// will be made of. Returns the digest taken once the servers converged.
fn scenario(seed: u64) -> String {
    let digest = Rc::new(RefCell::new(String::new()));
    let out = digest.clone();
    Lab::new(4, seed).run(|servers| async move {
        let room = servers.room_with_everyone().await;
        let levels = json!({"users": {user("hs3.test"): 50}});
        servers
            .state("hs1.test", &room, "m.room.power_levels", "", levels)
            .await;
        servers.converge(&room, Duration::from_secs(30)).await?;
        servers.partition(&["hs1.test", "hs2.test"], &["hs3.test", "hs4.test"]);
        for round in 0..4 {
            for name in servers.names() {
                servers.message(&name, &room, &format!("{round}")).await;
            }
            let topic = json!({"topic": format!("round {round}")});
            let setter = if round % 2 == 0 {
                "hs1.test"
            } else {
                "hs3.test"
            };
            servers
                .state(setter, &room, "m.room.topic", "", topic)
                .await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        servers.crash("hs4.test").await;
        servers.heal(&["hs1.test", "hs2.test"], &["hs3.test", "hs4.test"]);
        servers
            .message("hs2.test", &room, "while hs4 is down")
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        servers.restart("hs4.test").await;
        servers.converge(&room, Duration::from_secs(120)).await?;
        *out.borrow_mut() = servers.digest();
        Ok(())
    });
    let digest = digest.borrow().clone();
    assert_eq!(digest.len(), 64, "the scenario ran to its end");
    digest
}

#[test]
fn same_seed_same_bytes_other_seed_other_run() {
    let first = scenario(21);
    assert_eq!(first, scenario(21), "two runs with seed 21 differ");
    assert_ne!(first, scenario(22), "seeds 21 and 22 gave the same run");
}
