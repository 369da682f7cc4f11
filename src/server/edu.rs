//! Ephemeral data units: typing notifications, read receipts and presence, sent to the servers
//! that share a room and counted on arrival.
//!
//! Invariant: an EDU from a server is accepted only for its own users and for rooms it is in
//! whose server ACL allows it; anything else is counted as refused and otherwise ignored (EDUs
//! have no per-item answer).

use crate::proto::event::server_of;
use crate::proto::wire::{Edu, RawEdu};
use crate::server::{Homeserver, Inner};
use serde_json::json;

/// What a server received of each kind of EDU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EduCounters {
    pub typing: u64,
    pub receipts: u64,
    pub presence: u64,
    pub other: u64,
    pub refused: u64,
}

impl Homeserver {
    /// `user` starts or stops typing in `room_id`: an `m.typing` EDU to the room's servers.
    pub fn send_typing(&self, user: &str, room_id: &str, typing: bool) {
        let content = json!({"room_id": room_id, "user_id": user, "typing": typing});
        self.inner.send_room_edu(
            room_id,
            RawEdu {
                edu_type: "m.typing".into(),
                content,
            },
        );
    }

    /// `user` has read up to `event_id`: an `m.receipt` EDU to the room's servers.
    pub fn send_read_receipt(&self, user: &str, room_id: &str, event_id: &str) {
        let ts = self.inner.clock.now_ms();
        let content =
            json!({room_id: {"m.read": {user: {"event_ids": [event_id], "data": {"ts": ts}}}}});
        self.inner.send_room_edu(
            room_id,
            RawEdu {
                edu_type: "m.receipt".into(),
                content,
            },
        );
    }

    /// `user` changes presence: an `m.presence` EDU to every server sharing a room.
    pub fn send_presence(&self, user: &str, presence: &str) {
        let content =
            json!({"push": [{"user_id": user, "presence": presence, "last_active_ago": 0}]});
        let mut servers = std::collections::BTreeSet::new();
        for (_, room) in self.inner.store.borrow().rooms() {
            servers.extend(room.joined_servers());
        }
        servers.remove(&self.inner.config.name);
        for server in servers {
            let edu = RawEdu {
                edu_type: "m.presence".into(),
                content: content.clone(),
            };
            self.inner.enqueue_edu(&server, edu);
        }
    }

    pub fn edu_counters(&self) -> EduCounters {
        self.inner.edus.borrow().clone()
    }
}

impl Inner {
    fn send_room_edu(self: &std::rc::Rc<Self>, room_id: &str, edu: RawEdu) {
        let servers = self
            .store
            .borrow()
            .room(room_id)
            .map(|room| room.joined_servers())
            .unwrap_or_default();
        for server in servers {
            if server != self.config.name {
                self.enqueue_edu(&server, edu.clone());
            }
        }
    }

    /// Counts an EDU from `origin` if it speaks for its own users in rooms it is in.
    pub(crate) fn receive_edu(&self, origin: &str, raw: RawEdu) {
        self.metrics.borrow_mut().edus_received += 1;
        let allowed = match raw.parse() {
            Ok(Edu::Typing(typing)) => {
                server_of(&typing.user_id) == origin
                    && self.origin_in_room(origin, &typing.room_id)
                    && self.edu_acl_allows(origin, &typing.room_id)
            }
            Ok(Edu::Receipt(receipts)) => {
                // The receipts of a room whose ACL denies the origin are ignored, those of
                // other rooms still count.
                let mut permitted = receipts
                    .0
                    .iter()
                    .filter(|(room_id, _)| self.edu_acl_allows(origin, room_id))
                    .peekable();
                (receipts.0.is_empty() || permitted.peek().is_some())
                    && permitted.all(|(room_id, room)| {
                        self.origin_in_room(origin, room_id)
                            && room.read.keys().all(|user| server_of(user) == origin)
                    })
            }
            Ok(Edu::Presence(presence)) => presence
                .push
                .iter()
                .all(|update| server_of(&update.user_id) == origin),
            Ok(_) => true,
            Err(_) => false,
        };
        let mut counters = self.edus.borrow_mut();
        if !allowed {
            counters.refused += 1;
            return;
        }
        match raw.edu_type.as_str() {
            "m.typing" => counters.typing += 1,
            "m.receipt" => counters.receipts += 1,
            "m.presence" => counters.presence += 1,
            _ => counters.other += 1,
        }
    }

    fn origin_in_room(&self, origin: &str, room_id: &str) -> bool {
        self.store
            .borrow()
            .room(room_id)
            .is_some_and(|room| room.server_in_room(origin))
    }
}
