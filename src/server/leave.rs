//! Leaving a room held by other servers, both sides of it (the spec's "Leaving Rooms
//! (Rejecting Invites)"): a server with no member joined, typically one whose user was invited,
//! asks a resident server for a leave template (`make_leave`), signs it and sends it back
//! (`send_leave`); the resident checks and stores the leave and sends it on to the room.
//!
//! Invariants: the leaving server signs only a template that passed the spec's checks (room,
//! sender, state key, type, membership); the resident accepts only a leave of a user of the
//! requesting server by that user, and answers 200 only once the leave is stored durably and
//! accepted into the room's current state.

use crate::proto::pdu::build_pdu;
use crate::proto::room_version;
use crate::proto::wire::paths;
use crate::proto::wire::{ErrorCode, MakeMembershipResponse, MatrixError, SendLeaveResponse};
use crate::server::Inner;
use crate::server::http::{EndpointResult, Incoming};
use crate::server::join::{check_user_of_origin, new_event_from_template, not_found};
use crate::server::rooms::LocalError;
use crate::server::store::EventStatus;
use serde_json::Value;
use std::rc::Rc;

impl Inner {
    /// The leaving side: `user` leaves `room_id` (or rejects an invite to it) through the
    /// resident server `via`. Returns the id of the leave event.
    pub(crate) async fn leave_via(
        self: &Rc<Self>,
        user: &str,
        room_id: &str,
        via: &str,
    ) -> Result<String, LocalError> {
        let failed = |reason: String| LocalError::Leave {
            room_id: room_id.to_owned(),
            via: via.to_owned(),
            reason,
        };
        let uri = paths::make_leave_path(room_id, user);
        let template: MakeMembershipResponse = self
            .federation_request(via, "GET", &uri, None)
            .await
            .map_err(|e| failed(e.to_string()))?;
        template
            .check_template(room_id, user, "leave")
            .map_err(|e| failed(e.to_string()))?;
        let version_id = template.room_version.as_deref().unwrap_or("1");
        let version = room_version::room_version(version_id).map_err(|e| failed(e.to_string()))?;
        let new = new_event_from_template(&template.event, self.clock.now_ms()).map_err(failed)?;
        let leave = build_pdu(new, version, &self.config.name, &self.config.signing_key)
            .map_err(|e| failed(e.to_string()))?;
        let uri = paths::send_leave_path(room_id, leave.event_id());
        let body = Value::Object(leave.json().clone());
        let _: SendLeaveResponse = self
            .federation_request(via, "PUT", &uri, Some(&body))
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(leave.event_id().to_owned())
    }

    /// `GET /make_leave/{roomId}/{userId}`: a leave template for a user of the requesting
    /// server who may leave now (is invited, joined or knocking); 403 otherwise.
    pub(crate) fn on_make_leave(&self, incoming: &Incoming) -> EndpointResult {
        let (room_id, user_id) = (&incoming.params[0], &incoming.params[1]);
        check_user_of_origin(user_id, &incoming.origin)?;
        let store = self.store.borrow();
        let room = store.room(room_id).ok_or_else(|| not_found(room_id))?;
        let answer = MakeMembershipResponse {
            room_version: Some(room.room_version().id.to_owned()),
            event: self.membership_template(room, user_id, "leave")?,
        };
        Ok(serde_json::to_value(answer).expect("serializes"))
    }

    /// `PUT /v2/send_leave/{roomId}/{eventId}`: checks the signed leave as the spec lists
    /// (`M_INVALID_PARAM` when it fails), stores it, sends it on, and answers `{}`.
    pub(crate) async fn on_send_leave(self: Rc<Self>, incoming: Incoming) -> EndpointResult {
        let room_id = incoming.params[0].clone();
        let (pdu, before) = self
            .clone()
            .place_received_membership(&incoming, "leave", ErrorCode::InvalidParam)
            .await?;
        let status = self
            .store
            .borrow()
            .room(&room_id)
            .and_then(|room| room.status(pdu.event_id()).cloned());
        if status != Some(EventStatus::Accepted) {
            return Err(MatrixError::new(
                ErrorCode::Forbidden,
                format!("the leave was not accepted: {status:?}"),
            ));
        }
        self.store.borrow().flush();
        self.fan_out(&room_id, &pdu, before, Some(&incoming.origin));
        Ok(serde_json::to_value(SendLeaveResponse {}).expect("serializes"))
    }
}
