//! Inviting a user of another server, both sides of the spec's `PUT /v2/invite`: the inviting
//! server builds and signs the invite and sends it, with state that identifies the room, to the
//! invitee's server; that server checks it, adds its own signature and keeps the invite for its
//! user; the inviting server checks the countersigned event and sends it into the room. The
//! invited user then joins with make_join/send_join, or rejects with make_leave/send_leave.
//!
//! Invariants: the invited server signs only an invite that passed every check the spec lists
//! (signatures, type, membership, sender on the requesting server, invitee on this server,
//! `invite_room_state` holding the room's create event, all of the room) and that the room's
//! server ACL, as far as it knows it, allows; the inviting server stores and sends an invite
//! only once the invitee's server validly signed exactly the event it sent.

use crate::proto::acl::{SERVER_ACL_EVENT_TYPE, check_server_acl};
use crate::proto::event::server_of;
use crate::proto::ids::{self, UserIdGrammar};
use crate::proto::pdu::{Pdu, build_pdu, check_signatures, sign_event};
use crate::proto::room_version::{self, RoomVersion};
use crate::proto::signing::VerifyingKey;
use crate::proto::wire::paths;
use crate::proto::wire::{ErrorCode, InviteRequest, InviteResponse, MatrixError, RawPdu};
use crate::server::http::{EndpointResult, Incoming};
use crate::server::rooms::LocalError;
use crate::server::store::RoomStore;
use crate::server::{Homeserver, Inner};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;

/// The most events of `invite_room_state` an invited server checks; an invite with more is
/// refused, since each costs a signature check and possibly a key fetch.
pub const INVITE_ROOM_STATE_EVENTS_MAX: usize = 64;

/// The most invites one local user may hold pending; further invites to new rooms are
/// refused with 403 until some are joined or rejected, so peers cannot fill our memory.
pub const PENDING_INVITES_PER_USER_MAX: usize = 100;

/// The most pending invites this server keeps for all its users together: this server has no
/// user registry, so a peer could otherwise invite endless made-up local users.
pub const PENDING_INVITES_MAX: usize = 10_000;

/// The state an inviting server shares with the invitee's server: the client-server API's
/// recommended stripped state, plus the server ACL so that the invited server can apply it.
/// The inviter's own membership is added as well.
const INVITE_ROOM_STATE_TYPES: [&str; 8] = [
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.canonical_alias",
    "m.room.encryption",
    SERVER_ACL_EVENT_TYPE,
];

/// An invite of a local user, as the invited server keeps it until the user joins or
/// rejects it. Kept in memory only: a crash forgets it (the inviting side holds the invite in
/// the room, and the user can still join or leave through a resident server).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingInvite {
    pub room_id: String,
    pub invitee: String,
    pub inviter: String,
    pub event_id: String,
    pub room_version: &'static str,
    /// The state the inviting server shared to identify the room, checked.
    pub invite_room_state: Vec<RawPdu>,
}

impl PendingInvite {
    /// The server that sent the invite: a resident of the room, through which the invitee
    /// can join or reject.
    pub fn inviting_server(&self) -> &str {
        server_of(&self.inviter)
    }
}

fn invalid(reason: impl Into<String>) -> MatrixError {
    MatrixError::new(ErrorCode::InvalidParam, reason)
}

impl Homeserver {
    /// `sender` invites `target`, a user of another server, to `room_id` through that
    /// server's `/invite`; returns the invite's event id once it is stored and sent into the
    /// room. A user of this server is invited with a plain state event instead.
    pub async fn invite_remote(
        &self,
        sender: &str,
        room_id: &str,
        target: &str,
    ) -> Result<String, LocalError> {
        self.inner.clone().invite(sender, room_id, target).await
    }

    /// The invites this server holds for `user`, by room.
    pub fn pending_invites(&self, user: &str) -> Vec<PendingInvite> {
        let invites = self.inner.invites.borrow();
        invites
            .range((user.to_owned(), String::new())..)
            .take_while(|((invitee, _), _)| invitee == user)
            .map(|(_, invite)| invite.clone())
            .collect()
    }

    /// `user` rejects an invite to `room_id`: with a leave event if this server is in the
    /// room, else through the inviting server with make_leave/send_leave. Returns the leave's
    /// event id.
    pub async fn reject_invite(&self, user: &str, room_id: &str) -> Result<String, LocalError> {
        let inner = &self.inner;
        inner.check_local_user(user)?;
        if self.is_in_room(room_id) {
            let left = self.set_membership(user, room_id, user, "leave").await?;
            inner.forget_invite(user, room_id);
            return Ok(left);
        }
        let key = (user.to_owned(), room_id.to_owned());
        let via = inner
            .invites
            .borrow()
            .get(&key)
            .map(|invite| invite.inviting_server().to_owned())
            .ok_or_else(|| LocalError::NoInvite {
                user: user.to_owned(),
                room_id: room_id.to_owned(),
            })?;
        let left = inner.leave_via(user, room_id, &via).await?;
        inner.forget_invite(user, room_id);
        Ok(left)
    }

    /// `user` leaves `room_id`, which this server is not in, through the resident `via`
    /// (make_leave/send_leave). Returns the leave's event id.
    pub async fn leave_remote(
        &self,
        user: &str,
        room_id: &str,
        via: &str,
    ) -> Result<String, LocalError> {
        self.inner.check_local_user(user)?;
        let left = self.inner.leave_via(user, room_id, via).await?;
        self.inner.forget_invite(user, room_id);
        Ok(left)
    }
}

impl Inner {
    pub(crate) fn forget_invite(&self, user: &str, room_id: &str) {
        let key = (user.to_owned(), room_id.to_owned());
        self.invites.borrow_mut().remove(&key);
    }

    /// The inviting side.
    async fn invite(
        self: Rc<Self>,
        sender: &str,
        room_id: &str,
        target: &str,
    ) -> Result<String, LocalError> {
        self.check_local_user(sender)?;
        let target_server = ids::parse_user_id(target, UserIdGrammar::Historical)
            .map_err(|e| LocalError::Build(e.to_string()))?
            .server_name
            .to_owned();
        let content = json!({"membership": "invite"});
        let content = content.as_object().cloned().unwrap_or_default();
        if target_server == self.config.name {
            let draft = self.draft(sender, "m.room.member", Some(target), content, None);
            return self.send_local(room_id, draft).await;
        }
        let failed = |reason: String| LocalError::Invite {
            room_id: room_id.to_owned(),
            target: target.to_owned(),
            reason,
        };
        let (pdu, request) = {
            let store = self.store.borrow();
            let room = store.room(room_id).ok_or_else(|| LocalError::UnknownRoom {
                room_id: room_id.to_owned(),
            })?;
            let draft = self.draft(sender, "m.room.member", Some(target), content, None);
            let new = room.prepare_local_event(draft)?;
            let version = room.room_version();
            let pdu = build_pdu(new, version, &self.config.name, &self.config.signing_key)
                .map_err(|e| LocalError::Build(e.to_string()))?;
            let request = InviteRequest {
                room_version: version.id.to_owned(),
                event: pdu.json().clone(),
                invite_room_state: invite_room_state(room, sender),
            };
            (pdu, request)
        };
        let uri = paths::invite_path(room_id, pdu.event_id());
        let body = serde_json::to_value(&request).expect("serializes");
        let answer: InviteResponse = self
            .federation_request(&target_server, "PUT", &uri, Some(&body))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let signed = self
            .countersigned_invite(&pdu, answer.event, &target_server)
            .await
            .map_err(failed)?;
        self.store_and_send_local(room_id, Arc::new(signed))
    }

    /// Checks the invitee server's answer: the event we sent, unchanged but for its new
    /// signature, which must verify. Returns our event with that signature added.
    async fn countersigned_invite(
        &self,
        sent: &Pdu,
        returned: RawPdu,
        target_server: &str,
    ) -> Result<Pdu, String> {
        let without_signatures = |json: &Map<String, Value>| {
            let mut json = json.clone();
            json.remove("signatures");
            json.remove("unsigned");
            json
        };
        if without_signatures(&returned) != without_signatures(sent.json()) {
            return Err("the returned invite differs from the one sent".into());
        }
        let their_signatures = returned
            .get("signatures")
            .and_then(|s| s.get(target_server))
            .cloned()
            .ok_or_else(|| format!("the returned invite has no signature of {target_server}"))?;
        let mut json = sent.json().clone();
        json.get_mut("signatures")
            .and_then(Value::as_object_mut)
            .expect("a built PDU has signatures")
            .insert(target_server.to_owned(), their_signatures);
        let version = sent.room_version();
        let pdu = Pdu::from_json(json, version).map_err(|e| e.to_string())?;
        let key_sets = self.key_sets([target_server.to_owned()]).await;
        let lookup = |query: &crate::proto::pdu::KeyQuery<'_>| -> Option<VerifyingKey> {
            let set = key_sets.get(query.server_name)?;
            set.key_for_event(query.key_id, query.origin_server_ts, version)
                .ok()
        };
        check_signatures(&pdu, &BTreeSet::from([target_server.to_owned()]), &lookup)
            .map_err(|e| e.to_string())?;
        Ok(pdu)
    }

    /// `PUT /v2/invite/{roomId}/{eventId}`: the invited side.
    pub(crate) async fn on_invite(self: Rc<Self>, incoming: Incoming) -> EndpointResult {
        let body = incoming.body.clone().unwrap_or(Value::Null);
        let request: InviteRequest = serde_json::from_value(body)
            .map_err(|e| MatrixError::new(ErrorCode::BadJson, format!("not an invite: {e}")))?;
        let version = room_version::room_version(&request.room_version).map_err(|_| {
            MatrixError::incompatible_room_version(
                &request.room_version,
                "this server does not support the room's version",
            )
        })?;
        let invite = self
            .check_invite_event(&incoming, request.event, version)
            .await?;
        let room_state = self
            .check_invite_room_state(&incoming.params[0], request.invite_room_state, version)
            .await?;
        self.check_invite_acl(&incoming, &room_state)?;
        self.check_pending_invites_bound(invite.event())?;
        let mut signed = invite.json().clone();
        sign_event(
            &mut signed,
            version,
            &self.config.name,
            &self.config.signing_key,
        )
        .map_err(|e| invalid(e.to_string()))?;
        let event = invite.event();
        let pending = PendingInvite {
            room_id: event.room_id.clone(),
            invitee: event.state_key.clone().unwrap_or_default(),
            inviter: event.sender.clone(),
            event_id: event.event_id.clone(),
            room_version: version.id,
            invite_room_state: room_state,
        };
        let key = (pending.invitee.clone(), pending.room_id.clone());
        self.invites.borrow_mut().insert(key, pending);
        Ok(serde_json::to_value(InviteResponse { event: signed }).expect("serializes"))
    }

    /// The spec's checks of the invite event itself.
    async fn check_invite_event(
        &self,
        incoming: &Incoming,
        raw: RawPdu,
        version: &'static RoomVersion,
    ) -> Result<Arc<Pdu>, MatrixError> {
        let checked = self
            .check_received_pdu(raw, version)
            .await
            .map_err(|e| invalid(e.to_string()))?;
        if checked.held_redacted {
            return Err(invalid("the invite's content hash does not match"));
        }
        let event = checked.pdu.event();
        if event.room_id != incoming.params[0] || event.event_id != incoming.params[1] {
            return Err(invalid(
                "the invite's room id or event id does not match the path",
            ));
        }
        if event.membership() != Some("invite") {
            return Err(invalid("not an m.room.member event with membership invite"));
        }
        if event.sender_server() != incoming.origin {
            return Err(invalid(format!(
                "the inviter {} is not a user of {}",
                event.sender, incoming.origin
            )));
        }
        let invitee = event.state_key.as_deref().unwrap_or_default();
        let ours = ids::parse_user_id(invitee, UserIdGrammar::Historical)
            .is_ok_and(|user| user.server_name == self.config.name);
        if !ours {
            return Err(invalid(format!(
                "the invitee {invitee:?} is not a user of this server"
            )));
        }
        Ok(checked.pdu)
    }

    /// Refuses a new pending invite for a user who holds too many already, or when the server
    /// holds too many.
    fn check_pending_invites_bound(
        &self,
        event: &crate::proto::event::Event,
    ) -> Result<(), MatrixError> {
        let invitee = event.state_key.clone().unwrap_or_default();
        let invites = self.invites.borrow();
        if invites.contains_key(&(invitee.clone(), event.room_id.clone())) {
            return Ok(());
        }
        let held = invites
            .range((invitee.clone(), String::new())..)
            .take_while(|((user, _), _)| *user == invitee)
            .count();
        if invites.len() >= PENDING_INVITES_MAX {
            return Err(MatrixError::new(
                ErrorCode::Forbidden,
                "this server holds the most pending invites it keeps",
            ));
        }
        if held >= PENDING_INVITES_PER_USER_MAX {
            return Err(MatrixError::new(
                ErrorCode::Forbidden,
                format!("{invitee} holds {held} pending invites, the most this server keeps"),
            ));
        }
        Ok(())
    }

    /// The spec's checks of `invite_room_state`: events of the room's version, validly signed,
    /// all of the invite's room, the create event among them.
    async fn check_invite_room_state(
        &self,
        room_id: &str,
        raws: Vec<RawPdu>,
        version: &'static RoomVersion,
    ) -> Result<Vec<RawPdu>, MatrixError> {
        if raws.len() > INVITE_ROOM_STATE_EVENTS_MAX {
            return Err(invalid(format!(
                "invite_room_state has {} events; at most {INVITE_ROOM_STATE_EVENTS_MAX} are read",
                raws.len()
            )));
        }
        let mut has_create = false;
        let mut checked_state = Vec::with_capacity(raws.len());
        for (index, raw) in raws.into_iter().enumerate() {
            let checked = self
                .check_received_pdu(raw, version)
                .await
                .map_err(|e| invalid(format!("invite_room_state[{index}]: {e}")))?;
            let event = checked.pdu.event();
            if event.room_id != room_id {
                return Err(invalid(format!(
                    "invite_room_state[{index}] ({}) is of room {}",
                    event.event_id, event.room_id
                )));
            }
            has_create |= event.is("m.room.create", "");
            checked_state.push(checked.pdu.json().clone());
        }
        if !has_create {
            return Err(invalid("invite_room_state lacks the m.room.create event"));
        }
        Ok(checked_state)
    }

    /// The room's server ACL: the current one if this server is in the room (checked with
    /// every request already), else the one the inviting server shared, if any.
    fn check_invite_acl(
        &self,
        incoming: &Incoming,
        room_state: &[RawPdu],
    ) -> Result<(), MatrixError> {
        if self.store.borrow().room(&incoming.params[0]).is_some() {
            return Ok(());
        }
        let shared_acl = room_state.iter().find(|raw| {
            raw.get("type").and_then(Value::as_str) == Some(SERVER_ACL_EVENT_TYPE)
                && raw.get("state_key").and_then(Value::as_str) == Some("")
        });
        let content = shared_acl.and_then(|raw| raw.get("content")?.as_object());
        let decision = check_server_acl(content, &incoming.origin);
        if decision.is_allowed() {
            return Ok(());
        }
        self.metrics.borrow_mut().acl_requests_refused += 1;
        Err(MatrixError::new(
            ErrorCode::Forbidden,
            format!(
                "server ACL of {}: {} is {decision}",
                incoming.params[0], incoming.origin
            ),
        ))
    }
}

/// The state an inviting server shares: the events of [`INVITE_ROOM_STATE_TYPES`] and the
/// inviter's membership, as full PDUs (the spec requires the room version's format).
fn invite_room_state(room: &RoomStore, inviter: &str) -> Vec<RawPdu> {
    let mut keys: Vec<(String, String)> = INVITE_ROOM_STATE_TYPES
        .iter()
        .map(|event_type| ((*event_type).to_owned(), String::new()))
        .collect();
    keys.push(("m.room.member".to_owned(), inviter.to_owned()));
    keys.iter()
        .filter_map(|key| room.current_state_event(key))
        .map(|pdu| pdu.json().clone())
        .collect()
}
