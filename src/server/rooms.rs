//! What local users do: create rooms, send messages and state, invite, and join rooms held by
//! other servers through `make_join` / `send_join`. This stands in for the client-server API.
//!
//! Invariants: a local event is built only after the store's check that its sender may send
//! it now (so honest traffic is authorised), stored before it is sent anywhere, and sent to
//! every server that is in the room before or after it (a kick reaches the kicked server).

use crate::proto::event::server_of;
use crate::proto::pdu::{NewEvent, Pdu, build_pdu};
use crate::proto::room_version::RoomVersion;
use crate::server::store::{EventStatus, IngestOutcome, LocalEventDraft, StoreError};
use crate::server::{Homeserver, Inner};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;

/// Why a local user's action failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LocalError {
    #[error("{user} is not a user of this server ({server})")]
    NotLocalUser { user: String, server: String },
    #[error("this server is not in room {room_id}")]
    UnknownRoom { room_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the event: {0}")]
    Build(String),
    #[error("joining {room_id} through {via} failed: {reason}")]
    Join {
        room_id: String,
        via: String,
        reason: String,
    },
    #[error("leaving {room_id} through {via} failed: {reason}")]
    Leave {
        room_id: String,
        via: String,
        reason: String,
    },
    #[error("inviting {target} to {room_id} failed: {reason}")]
    Invite {
        room_id: String,
        target: String,
        reason: String,
    },
    #[error("{user} holds no invite to {room_id}")]
    NoInvite { user: String, room_id: String },
}

/// The content of a state or message event.
pub type Content = Map<String, Value>;

fn object(value: Value) -> Content {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("literal objects only"),
    }
}

impl Homeserver {
    /// Creates a room with `creator` as its only member and admin; returns the room id.
    /// The room is public (anyone may join) with shared history.
    pub async fn create_room(
        &self,
        creator: &str,
        version: Option<&'static RoomVersion>,
    ) -> Result<String, LocalError> {
        let inner = &self.inner;
        inner.check_local_user(creator)?;
        let version = version.unwrap_or(inner.config.room_version);
        let mut create_content = object(json!({"room_version": version.id}));
        if !version.creator_is_sender {
            create_content.insert("creator".into(), Value::String(creator.to_owned()));
        }
        let create = inner.build_create_event(creator, version, create_content)?;
        let room_id = create.event().room_id.clone();
        inner
            .store
            .borrow_mut()
            .open_room(&room_id, version)?
            .ingest_local(create)?;
        let mut power_levels = object(json!({"users": {creator: 100}}));
        if version.privileged_creators {
            // Creators have infinite power in v12 and must not be listed.
            power_levels.insert("users".into(), json!({}));
        }
        let setup: [(&str, Content); 4] = [
            ("m.room.member", object(json!({"membership": "join"}))),
            ("m.room.power_levels", power_levels),
            ("m.room.join_rules", object(json!({"join_rule": "public"}))),
            (
                "m.room.history_visibility",
                object(json!({"history_visibility": "shared"})),
            ),
        ];
        for (event_type, content) in setup {
            let state_key = if event_type == "m.room.member" {
                creator
            } else {
                ""
            };
            self.send_state(creator, &room_id, event_type, state_key, content)
                .await?;
        }
        Ok(room_id)
    }

    /// Sends a state event as `sender`; returns its event id.
    pub async fn send_state(
        &self,
        sender: &str,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        content: Content,
    ) -> Result<String, LocalError> {
        let draft = self
            .inner
            .draft(sender, event_type, Some(state_key), content, None);
        self.inner.send_local(room_id, draft).await
    }

    /// Sends an `m.room.message` of type `m.text`; returns its event id.
    pub async fn send_message(
        &self,
        sender: &str,
        room_id: &str,
        body: &str,
    ) -> Result<String, LocalError> {
        let content = object(json!({"msgtype": "m.text", "body": body}));
        let draft = self
            .inner
            .draft(sender, "m.room.message", None, content, None);
        self.inner.send_local(room_id, draft).await
    }

    /// Redacts `event_id` as `sender`.
    pub async fn redact(
        &self,
        sender: &str,
        room_id: &str,
        event_id: &str,
    ) -> Result<String, LocalError> {
        let draft = self.inner.draft(
            sender,
            "m.room.redaction",
            None,
            Map::new(),
            Some(event_id.to_owned()),
        );
        self.inner.send_local(room_id, draft).await
    }

    /// Changes the membership of `target` (invite, leave, ban, kick = leave by another). An
    /// invite of a user of another server goes through that server's `/invite` first.
    pub async fn set_membership(
        &self,
        sender: &str,
        room_id: &str,
        target: &str,
        membership: &str,
    ) -> Result<String, LocalError> {
        if membership == "invite" {
            return self.invite_remote(sender, room_id, target).await;
        }
        let content = object(json!({"membership": membership}));
        self.send_state(sender, room_id, "m.room.member", target, content)
            .await
    }

    /// Joins `user` to a room this server is not in, through the resident server `via`.
    pub async fn join_remote(
        &self,
        user: &str,
        room_id: &str,
        via: &str,
    ) -> Result<(), LocalError> {
        self.inner.check_local_user(user)?;
        self.inner.clone().join_via(user, room_id, via).await?;
        self.inner.forget_invite(user, room_id);
        Ok(())
    }

    /// Whether this server holds the room.
    pub fn is_in_room(&self, room_id: &str) -> bool {
        self.inner.store.borrow().room(room_id).is_some()
    }

    /// Whether a user of this server is joined to the room, as this server sees it. A server
    /// none of whose users is joined is not in the room, whatever it still holds of it: its
    /// peers stopped sending it the room's events.
    pub fn has_joined_member(&self, room_id: &str) -> bool {
        self.inner
            .store
            .borrow()
            .room(room_id)
            .is_some_and(|room| room.joined_servers().contains(&self.inner.config.name))
    }

    /// Joins `user` to a room this server holds but left (none of its users is joined). Its
    /// view of the room stopped when it left, so a join built on that view would leave out
    /// every event since and nothing would bring them: as any server not in the room, it
    /// joins through a resident, which gives it the room as it is now and, by backfill, the
    /// events it missed. The residents are the servers its last view holds joined, tried in
    /// order until one answers.
    pub async fn rejoin_remote(&self, user: &str, room_id: &str) -> Result<(), LocalError> {
        let residents: Vec<String> = self
            .inner
            .store
            .borrow()
            .room(room_id)
            .map(|room| room.joined_servers())
            .unwrap_or_default()
            .into_iter()
            .filter(|server| *server != self.inner.config.name)
            .collect();
        let mut outcome = Err(LocalError::Join {
            room_id: room_id.to_owned(),
            via: String::new(),
            reason: "no server of the room is known".to_owned(),
        });
        for via in residents {
            outcome = self.join_remote(user, room_id, &via).await;
            if outcome.is_ok() {
                break;
            }
        }
        outcome
    }
}

impl Inner {
    pub(crate) fn check_local_user(&self, user: &str) -> Result<(), LocalError> {
        if server_of(user) != self.config.name {
            return Err(LocalError::NotLocalUser {
                user: user.to_owned(),
                server: self.config.name.clone(),
            });
        }
        Ok(())
    }

    pub(crate) fn draft(
        &self,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Content,
        redacts: Option<String>,
    ) -> LocalEventDraft {
        LocalEventDraft {
            sender: sender.to_owned(),
            event_type: event_type.to_owned(),
            state_key: state_key.map(str::to_owned),
            content,
            redacts,
            origin_server_ts: self.clock.now_ms(),
        }
    }

    fn build_create_event(
        &self,
        creator: &str,
        version: &'static RoomVersion,
        content: Content,
    ) -> Result<Pdu, LocalError> {
        let room_id = (!version.room_id_from_create_event)
            .then(|| format!("!{}:{}", self.unique_local_part(), self.config.name));
        let new = NewEvent {
            room_id,
            sender: creator.to_owned(),
            event_type: "m.room.create".into(),
            state_key: Some(String::new()),
            content,
            prev_events: Vec::new(),
            auth_events: Vec::new(),
            depth: 1,
            origin_server_ts: self.clock.now_ms(),
            redacts: None,
            event_id_opaque: None,
        };
        build_pdu(new, version, &self.config.name, &self.config.signing_key)
            .map_err(|e| LocalError::Build(e.to_string()))
    }

    /// A room id local part that this server has not used: a counter, since ids need only be
    /// unique, and a counter keeps runs reproducible.
    fn unique_local_part(&self) -> String {
        let mut rooms = self.rooms_created.borrow_mut();
        *rooms += 1;
        format!("r{}x{}", self.incarnation, *rooms)
    }

    /// Builds, stores and sends a local event.
    pub(crate) async fn send_local(
        self: &Rc<Self>,
        room_id: &str,
        draft: LocalEventDraft,
    ) -> Result<String, LocalError> {
        self.check_local_user(&draft.sender)?;
        let pdu = {
            let store = self.store.borrow();
            let room = store.room(room_id).ok_or_else(|| LocalError::UnknownRoom {
                room_id: room_id.to_owned(),
            })?;
            let new = room.prepare_local_event(draft)?;
            let pdu = build_pdu(
                new,
                room.room_version(),
                &self.config.name,
                &self.config.signing_key,
            )
            .map_err(|e| LocalError::Build(e.to_string()))?;
            Arc::new(pdu)
        };
        self.store_and_send_local(room_id, pdu)
    }

    /// Stores a signed event of a local user and sends it to the room's servers.
    pub(crate) fn store_and_send_local(
        self: &Rc<Self>,
        room_id: &str,
        pdu: Arc<Pdu>,
    ) -> Result<String, LocalError> {
        let before = self
            .store
            .borrow()
            .room(room_id)
            .map(|room| room.joined_servers())
            .unwrap_or_default();
        let outcome = self
            .store
            .borrow_mut()
            .room_mut(room_id)?
            .ingest_local(pdu.clone())?;
        self.count_outcome(&outcome);
        // The local user is told the event exists only once a crash cannot take it back, and
        // a peer must never hold an event of ours that we lost.
        self.store.borrow().flush();
        self.fan_out(room_id, &pdu, before, None);
        Ok(pdu.event_id().to_owned())
    }

    /// Sends `pdu` to every server in the room before (`before`) or after it, except this one
    /// and `except` (the server it came from).
    pub(crate) fn fan_out(
        self: &Rc<Self>,
        room_id: &str,
        pdu: &Arc<Pdu>,
        mut before: BTreeSet<String>,
        except: Option<&str>,
    ) {
        if let Some(room) = self.store.borrow().room(room_id) {
            before.extend(room.joined_servers());
        }
        before.remove(&self.config.name);
        if let Some(except) = except {
            before.remove(except);
        }
        for destination in before {
            self.enqueue_pdu(&destination, pdu.clone());
        }
    }

    /// Counts what the store decided.
    pub(crate) fn count_outcome(&self, outcome: &IngestOutcome) {
        let mut metrics = self.metrics.borrow_mut();
        if outcome.duplicate {
            return;
        }
        match &outcome.status {
            EventStatus::Accepted => metrics.pdus_accepted += 1,
            EventStatus::SoftFailed(_) => metrics.pdus_soft_failed += 1,
            EventStatus::Rejected { .. } => metrics.pdus_rejected += 1,
            EventStatus::Outlier => {}
        }
    }
}
