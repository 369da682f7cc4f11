//! Servers on turmoil's simulated network create and join a room, exchange messages and
//! state, and end with the same state and the same events.

use fedlab::server::Homeserver;
use fedlab::server::clock::ServerClock;
use fedlab::server::config::ServerConfig;
use fedlab::sim::host::ServerSlot;
use fedlab::sim::turmoil_fabric::{TurmoilClock, TurmoilTransport, serve};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

const EPOCH_MS: u64 = 1_700_000_000_000;

fn key_seed(name: &str) -> [u8; 32] {
    let mut seed = [7u8; 32];
    for (slot, byte) in seed.iter_mut().zip(name.bytes()) {
        *slot ^= byte;
    }
    seed
}

fn simulation(names: &[&str], seed: u64) -> (turmoil::Sim<'static>, Vec<Rc<ServerSlot>>) {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
        .simulation_duration(Duration::from_secs(300))
        .build();
    let mut slots = Vec::new();
    for name in names {
        let clock = ServerClock::new(Rc::new(TurmoilClock { epoch_ms: EPOCH_MS }));
        let slot = ServerSlot::new(ServerConfig::new(name, key_seed(name)), clock);
        let host_slot = slot.clone();
        sim.host(*name, move || {
            let slot = host_slot.clone();
            async move {
                let transport = Rc::new(TurmoilTransport {
                    timeout: Duration::from_secs(10),
                });
                let server = slot.boot(transport);
                tokio::task::spawn_local(slot.clone().run_actions());
                serve(server.http_handler()).await?;
                Ok(())
            }
        });
        slots.push(slot);
    }
    (sim, slots)
}

/// (current state, accepted event ids) of `room` on `server`.
fn view(server: &Homeserver, room: &str) -> (String, Vec<String>) {
    server
        .with_room(room, |room| {
            (
                format!("{:?}", room.current_state()),
                room.accepted_event_ids().into_iter().collect(),
            )
        })
        .expect("server is in the room")
}

#[test]
fn three_servers_join_chat_and_converge() {
    let names = ["hs1.test", "hs2.test", "hs3.test"];
    let (mut sim, slots) = simulation(&names, 1);
    let driver_slots = slots.clone();
    sim.client("driver.test", async move {
        let slots = driver_slots;
        let room = slots[0]
            .call(|hs| async move { hs.create_room("@alice:hs1.test", None).await })
            .await??;
        for slot in &slots[1..] {
            let user = format!("@u:{}", slot.name);
            let room = room.clone();
            slot.call(move |hs| async move { hs.join_remote(&user, &room, "hs1.test").await })
                .await??;
        }
        for round in 0..5 {
            for slot in &slots {
                let sender = if slot.name == "hs1.test" {
                    "@alice:hs1.test".to_owned()
                } else {
                    format!("@u:{}", slot.name)
                };
                let room = room.clone();
                let body = format!("hello {round} from {}", slot.name);
                slot.call(move |hs| async move { hs.send_message(&sender, &room, &body).await })
                    .await??;
            }
        }
        let room_for_topic = room.clone();
        slots[0]
            .call(move |hs| async move {
                let content = serde_json::json!({"topic": "converged"})
                    .as_object()
                    .unwrap()
                    .clone();
                hs.send_state(
                    "@alice:hs1.test",
                    &room_for_topic,
                    "m.room.topic",
                    "",
                    content,
                )
                .await
            })
            .await??;
        tokio::time::sleep(Duration::from_secs(30)).await;
        let views: Vec<_> = slots
            .iter()
            .map(|slot| view(&slot.current().unwrap(), &room))
            .collect();
        assert_eq!(
            views[0].1.len(),
            5 + 2 + 15 + 1,
            "create, 4 setup events, 2 joins, 15 messages, topic"
        );
        for (slot, other) in slots.iter().zip(&views).skip(1) {
            assert_eq!(&views[0], other, "{} differs from hs1.test", slot.name);
        }
        Ok(())
    });
    sim.run().unwrap();
}
