//! A homeserver's configuration: its name, its signing key and every bound it enforces.
//!
//! Every queue, retry loop and request has a named upper bound here, so that an attacker (or a
//! fault) can exhaust none of them; the defaults follow the spec's limits where it sets them.

use crate::proto::room_version::{self, RoomVersion};
use crate::proto::signing::SigningKey;
use crate::server::outbound::queue::QueueLimits;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The server name, as in `@user:<name>`.
    pub name: String,
    pub signing_key: SigningKey,
    /// The room version of rooms this server creates unless told otherwise.
    pub room_version: &'static RoomVersion,
    pub queue_limits: QueueLimits,
    /// How long a federation request may take before the caller gives up.
    pub request_timeout: Duration,
    /// How many (origin, txn id) pairs are remembered for deduplication.
    pub transactions_remembered_max: usize,
    /// How many events one /get_missing_events round may ask for, and how many rounds a gap
    /// may take before the server falls back to /state_ids.
    pub missing_events_limit: u64,
    pub missing_events_rounds_max: u32,
    /// How many events of history a server fetches from the resident after joining a room.
    pub backfill_on_join_max: u64,
    /// How long a server's published key says it stays valid.
    pub key_validity: Duration,
}

impl ServerConfig {
    /// A configuration with the defaults and a key derived from `key_seed`.
    pub fn new(name: &str, key_seed: [u8; 32]) -> Self {
        let signing_key =
            SigningKey::from_seed("ed25519:fedlab", &key_seed).expect("the key id is valid");
        Self {
            name: name.to_owned(),
            signing_key,
            room_version: &room_version::DEFAULT,
            queue_limits: QueueLimits::default(),
            request_timeout: Duration::from_secs(10),
            transactions_remembered_max: 10_000,
            missing_events_limit: 10,
            missing_events_rounds_max: 5,
            backfill_on_join_max: 1_000,
            key_validity: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
