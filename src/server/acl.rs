//! Enforcing rooms' server ACLs (`m.room.server_acl`) on what peers ask and send, as the
//! server-server API's "Server Access Control Lists" section requires: a denied server's
//! request about a room gets 403 `M_FORBIDDEN`; its PDUs in a transaction are ignored, each
//! with an error in the answer; its typing notifications and receipts for the room are
//! ignored. The decision itself is `proto::acl`; this module finds the room's ACL and counts
//! refusals.
//!
//! Which state: the spec applies ACLs "to servers when they make requests", "purely at the
//! network layer", and says they do not restrict events "relative to the room DAG"; Synapse
//! reads the ACL of the room's current state for each transaction (and checks only the
//! origin). So both the origin and the server of each PDU's sender are checked against the
//! ACL of the current state when the transaction arrives, never against the state before the
//! event: an event made before its server was denied is dropped once it is, and one made
//! while it was denied is taken once the ACL lifts it (`tests/server_acl_state.rs`). Events
//! that arrive in answers to our own gap-filling requests come from a server we asked; the
//! ACL does not apply to them (the spec protects what denied servers send and ask), the
//! per-origin gap budget does (`inbound::limits`).
//!
//! Invariants: the ACL read is the one in the room's current state at the moment of the
//! request; a room this server does not hold has no ACL here (its endpoint answers 404 or
//! the invite checks apply); ACLs restrict who may talk to us about a room, never what we
//! send to servers still in it (the spec asks servers to keep sending to denied residents).

use crate::proto::acl::{AclDecision, SERVER_ACL_EVENT_TYPE, check_server_acl};
use crate::proto::event::server_of;
use crate::proto::wire::paths;
use crate::proto::wire::{ErrorCode, MatrixError};
use crate::server::Inner;
use crate::server::http::Incoming;

impl Inner {
    /// What the current server ACL of `room_id` says about `server`; `NoAcl` if this server
    /// does not hold the room or when the `server_acls` defence is off.
    pub(crate) fn acl_decision(&self, room_id: &str, server: &str) -> AclDecision {
        if !self.config.defences.server_acls {
            return AclDecision::NoAcl;
        }
        let store = self.store.borrow();
        let Some(room) = store.room(room_id) else {
            return AclDecision::NoAcl;
        };
        let acl = room.current_state_event_of(SERVER_ACL_EVENT_TYPE, "");
        check_server_acl(acl.as_ref().map(|pdu| &pdu.event().content), server)
    }

    /// Refuses a request from a server that the ACL of the room it concerns denies. `/send`
    /// is checked per PDU and per EDU instead, by [`Inner::check_pdu_acl`] and
    /// [`Inner::edu_acl_allows`].
    pub(crate) fn check_request_acl(&self, incoming: &Incoming) -> Result<(), MatrixError> {
        let Some(room_id) = self.room_of_request(incoming) else {
            return Ok(());
        };
        let decision = self.acl_decision(&room_id, &incoming.origin);
        if decision.is_allowed() {
            return Ok(());
        }
        self.metrics.borrow_mut().acl_requests_refused += 1;
        Err(acl_forbidden(&incoming.origin, &room_id, &decision))
    }

    /// The room a request concerns, for the endpoints an ACL protects: the `{roomId}` of the
    /// path, or for `/event` the room that holds the event.
    fn room_of_request(&self, incoming: &Incoming) -> Option<String> {
        let endpoint = incoming.endpoint;
        if endpoint == paths::SEND_TRANSACTION || endpoint == paths::SERVER_KEYS {
            return None;
        }
        if endpoint == paths::EVENT {
            let event_id = incoming.params.first()?;
            let store = self.store.borrow();
            return store
                .rooms()
                .find(|(_, room)| room.contains(event_id))
                .map(|(room_id, _)| room_id.to_owned());
        }
        let names = endpoint.param_names();
        (names.first() == Some(&"roomId"))
            .then(|| incoming.params.first().cloned())
            .flatten()
    }

    /// Whether a PDU of `room_id` from `origin` passes the room's ACL: both the sending server
    /// and the server of the event's sender must be allowed, so that a server cannot pass on a
    /// denied server's new events as its own traffic. Counts a refusal.
    pub(crate) fn check_pdu_acl(
        &self,
        origin: &str,
        room_id: &str,
        sender: Option<&str>,
    ) -> Result<(), String> {
        let sender_server = sender.map(server_of);
        for server in std::iter::once(origin).chain(sender_server) {
            let decision = self.acl_decision(room_id, server);
            if !decision.is_allowed() {
                self.metrics.borrow_mut().acl_pdus_dropped += 1;
                return Err(acl_forbidden(server, room_id, &decision).error);
            }
        }
        Ok(())
    }

    /// Whether an EDU part about `room_id` from `origin` passes the room's ACL. Counts a
    /// refusal.
    pub(crate) fn edu_acl_allows(&self, origin: &str, room_id: &str) -> bool {
        let allowed = self.acl_decision(room_id, origin).is_allowed();
        if !allowed {
            self.metrics.borrow_mut().acl_edus_ignored += 1;
        }
        allowed
    }
}

fn acl_forbidden(server: &str, room_id: &str, decision: &AclDecision) -> MatrixError {
    MatrixError::new(
        ErrorCode::Forbidden,
        format!("server ACL of {room_id}: {server} is {decision}"),
    )
}
