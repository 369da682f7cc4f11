//! Servers on turmoil's simulated network create and join a room, exchange messages and
//! state, and end with the same state and the same events.

mod common_fed;

use common_fed::{Lab, View, content, user};
use serde_json::json;
use std::time::Duration;

#[test]
fn three_servers_join_chat_and_converge() {
    Lab::new(3, 1).run(|servers| async move {
        let names = servers.names();
        let creator = user(&names[0]);
        let first = servers.slot(&names[0]).clone();
        let admin = creator.clone();
        let room = first
            .call(move |hs| async move { hs.create_room(&admin, None).await })
            .await??;
        for name in &names[1..] {
            let (member, room, via) = (user(name), room.clone(), names[0].clone());
            servers
                .slot(name)
                .call(move |hs| async move { hs.join_remote(&member, &room, &via).await })
                .await??;
        }
        // A server sends its events to the servers it knows are in the room: one that sends
        // before it has heard of a join reaches the joiner only once a later event cites its
        // events. Let the joins reach everyone first, as a person would wait to be seen.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for round in 0..5 {
            for name in &names {
                let (sender, room) = (user(name), room.clone());
                let body = format!("hello {round} from {name}");
                servers
                    .slot(name)
                    .call(move |hs| async move { hs.send_message(&sender, &room, &body).await })
                    .await??;
            }
        }
        let topic_room = room.clone();
        first
            .call(move |hs| async move {
                let topic = content(json!({"topic": "converged"}));
                hs.send_state(&creator, &topic_room, "m.room.topic", "", topic)
                    .await
            })
            .await??;
        tokio::time::sleep(Duration::from_secs(30)).await;
        let views: Vec<View> = names
            .iter()
            .map(|name| View::of(&servers.server(name), &room).unwrap())
            .collect();
        assert_eq!(
            views[0].accepted.len(),
            5 + 2 + 15 + 1,
            "create, 4 setup events, 2 joins, 15 messages, topic"
        );
        for (name, other) in names.iter().zip(&views).skip(1) {
            assert_eq!(&views[0], other, "{name} differs from {}", names[0]);
        }
        Ok(())
    });
}
