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
    /// How many of each origin's last transactions are remembered for deduplication (a
    /// sender retries only the one it has in flight; see `inbound/seen.rs`).
    pub transactions_remembered_per_origin: usize,
    /// Whether the server keeps the id of every event it acknowledged
    /// ([`crate::server::Homeserver::acknowledged_events`]), which only a check of durability
    /// after a crash reads. A server of a large room acknowledges every event of it, so a lab
    /// turns this off for servers it never crashes.
    pub record_acknowledged: bool,
    /// Whether the server's durable log keeps its records, to replay them after a crash
    /// ([`crate::server::store::DurableLog::digest_only`] otherwise). A lab turns this off for
    /// servers it never crashes.
    pub log_records_kept: bool,
    /// How many events one /get_missing_events round may ask for, and how many rounds a gap
    /// may take before the server falls back to /state_ids.
    pub missing_events_limit: u64,
    pub missing_events_rounds_max: u32,
    /// How many events of history a server fetches from the resident after joining a room.
    /// Within it a joiner holds the room's whole timeline, as convergence asks; beyond it the
    /// newest events are placed from the oldest fetched ones with the state a peer reports.
    pub backfill_on_join_max: u64,
    /// How long a server's published key says it stays valid.
    pub key_validity: Duration,
    /// The most events an `/event_auth` answer may hold; a longer auth chain is refused
    /// unread (a room's real auth chains hold its create event, power level history and the
    /// memberships events cite: thousands at most).
    pub auth_chain_fetched_max: usize,
    /// What one origin may send us through `/send`.
    pub inbound_limits: InboundLimits,
    /// Which defences are on. All are on except in tests that show an attack succeeding
    /// without one.
    pub defences: Defences,
}

/// Per-origin bounds on inbound transactions, so that one peer cannot exhaust the memory or
/// the attention of this server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InboundLimits {
    /// Sustained PDUs per second one origin may push through `/send`.
    pub pdus_per_second_per_origin: f64,
    /// PDUs one origin may push at once before the sustained rate applies (a catch-up after a
    /// partition comes as a burst).
    pub pdus_burst_per_origin: f64,
    /// Transactions of one origin being processed at once; the spec's senders keep one in
    /// flight, and a retry may overlap the original.
    pub transactions_in_flight_per_origin: u32,
    /// Sustained new events per second a gap fill (`/get_missing_events`) may take from one
    /// origin, so events cited but never sent cannot bypass the PDU rate.
    pub gap_events_per_second_per_origin: f64,
    /// New events a gap fill may take from one origin at once (a catch-up after a long
    /// partition comes as one large gap).
    pub gap_events_burst_per_origin: f64,
}

impl Default for InboundLimits {
    fn default() -> Self {
        Self {
            pdus_per_second_per_origin: 20.0,
            pdus_burst_per_origin: 500.0,
            transactions_in_flight_per_origin: 2,
            gap_events_per_second_per_origin: 50.0,
            gap_events_burst_per_origin: 2_000.0,
        }
    }
}

/// Switches for the defences an honest server keeps. Every one is on by default; a test turns
/// one off to show that the attack it stops then succeeds, so that no verdict is green only
/// because an attack never happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Defences {
    /// PDU signatures are checked against the keys of the servers that must sign.
    pub pdu_signatures: bool,
    /// A PDU whose content hash does not match is held redacted.
    pub content_hashes: bool,
    /// The authorization rules decide what is accepted.
    pub auth_rules: bool,
    /// Transactions over the spec's PDU and EDU counts are refused whole.
    pub transaction_limits: bool,
    /// Per-origin PDU rates and in-flight transactions are bounded ([`InboundLimits`]).
    pub rate_limits: bool,
    /// Read paths serve events only to servers that may see them.
    pub read_membership_checks: bool,
    /// Fetched auth chains are bounded (`auth_chain_fetched_max`).
    pub fetch_bounds: bool,
    /// Rooms' `m.room.server_acl` events are enforced on requests, PDUs and EDUs.
    pub server_acls: bool,
    /// Gap fills take at most what they asked for from an answer, and at most a per-origin
    /// budget of new events (`InboundLimits::gap_events_*`); a backfill answer is cut to the
    /// limit asked.
    pub gap_fill_bounds: bool,
}

impl Default for Defences {
    fn default() -> Self {
        Self {
            pdu_signatures: true,
            content_hashes: true,
            auth_rules: true,
            transaction_limits: true,
            rate_limits: true,
            read_membership_checks: true,
            fetch_bounds: true,
            server_acls: true,
            gap_fill_bounds: true,
        }
    }
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
            transactions_remembered_per_origin: 2,
            record_acknowledged: true,
            log_records_kept: true,
            // Far above the spec's default of 10 so that a gap left by a long partition or a
            // crash closes in a few requests (catch-up sends only the newest event per room);
            // the serving side clamps each answer to 100 events.
            missing_events_limit: 100,
            missing_events_rounds_max: 10,
            // Above the largest room a shipped experiment builds (about 10,000 events at 1,000
            // servers), so that every joiner can hold the whole history.
            backfill_on_join_max: 20_000,
            key_validity: Duration::from_secs(7 * 24 * 3600),
            auth_chain_fetched_max: 5_000,
            inbound_limits: InboundLimits::default(),
            defences: Defences::default(),
        }
    }
}
