//! Checking a PDU that came from another server: its format for the room's version, the
//! signatures the spec requires (against keys fetched from their servers), and its content
//! hash. The outcome is the event to store (possibly in redacted form) or the reason to drop it.
//!
//! Invariant: an event this returns as accepted carries valid signatures from every required
//! server; an event whose content hash does not match is returned only in redacted form.
//! (Unless a test turned the defence off in [`crate::server::config::Defences`].)

use crate::proto::pdu::{KeyQuery, Pdu, Verification, required_signers, verify_pdu};
use crate::proto::room_version::RoomVersion;
use crate::proto::signing::VerifyingKey;
use crate::proto::wire::RawPdu;
use crate::server::Inner;
use std::sync::Arc;

/// A received PDU that passed the signature check.
#[derive(Clone, Debug)]
pub(crate) struct CheckedPdu {
    pub pdu: Arc<Pdu>,
    /// The content hash did not match: `pdu` is the redacted form.
    pub held_redacted: bool,
}

/// Why a received PDU is dropped before it reaches the store.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub(crate) enum DropReason {
    #[error("invalid PDU: {0}")]
    Format(String),
    #[error("bad signature: {0}")]
    Signature(String),
}

impl Inner {
    /// Checks a raw PDU of a room of `version`.
    pub(crate) async fn check_received_pdu(
        &self,
        raw: RawPdu,
        version: &'static RoomVersion,
    ) -> Result<CheckedPdu, DropReason> {
        let pdu = Pdu::from_json(raw, version).map_err(|e| {
            self.metrics.borrow_mut().pdus_dropped_bad_format += 1;
            DropReason::Format(e.to_string())
        })?;
        let key_sets = self.key_sets(required_signers(&pdu)).await;
        let lookup = |query: &KeyQuery<'_>| -> Option<VerifyingKey> {
            let set = key_sets.get(query.server_name)?;
            set.key_for_event(query.key_id, query.origin_server_ts, version)
                .ok()
        };
        let defences = self.config.defences;
        match verify_pdu(&pdu, &lookup) {
            Verification::Valid => Ok(CheckedPdu {
                pdu: Arc::new(pdu),
                held_redacted: false,
            }),
            Verification::HashMismatch { .. } if !defences.content_hashes => Ok(CheckedPdu {
                pdu: Arc::new(pdu),
                held_redacted: false,
            }),
            Verification::BadSignature(_) if !defences.pdu_signatures => Ok(CheckedPdu {
                pdu: Arc::new(pdu),
                held_redacted: false,
            }),
            Verification::HashMismatch { redacted } => {
                self.metrics.borrow_mut().pdus_redacted_bad_hash += 1;
                Ok(CheckedPdu {
                    pdu: Arc::new(*redacted),
                    held_redacted: true,
                })
            }
            Verification::BadSignature(failure) => {
                self.metrics.borrow_mut().pdus_dropped_bad_signature += 1;
                Err(DropReason::Signature(failure.to_string()))
            }
        }
    }
}
