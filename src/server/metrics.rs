//! Counters a server keeps about itself, read by observers.
//!
//! Invariant: observers read these through `Homeserver::metrics` and never change them.

/// What one server did, counted as it happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerMetrics {
    pub requests_sent: u64,
    pub requests_received: u64,
    pub requests_unauthorized: u64,
    pub requests_bad: u64,
    pub response_bytes_received: u64,
    pub request_bytes_received: u64,
    pub transactions_received: u64,
    pub transactions_duplicate: u64,
    pub transactions_refused: u64,
    pub pdus_received: u64,
    pub pdus_dropped_bad_format: u64,
    pub pdus_dropped_bad_signature: u64,
    pub pdus_redacted_bad_hash: u64,
    pub pdus_rejected: u64,
    pub pdus_soft_failed: u64,
    pub pdus_accepted: u64,
    pub edus_received: u64,
    pub missing_events_requests: u64,
    pub state_ids_fallbacks: u64,
    /// Requests about a room refused with 403 because the room's server ACL denies the origin.
    pub acl_requests_refused: u64,
    /// PDUs of a transaction ignored because the room's server ACL denies their server.
    pub acl_pdus_dropped: u64,
    /// Typing notifications and per-room receipts ignored because of a server ACL.
    pub acl_edus_ignored: u64,
    /// Transactions refused with 429 because their origin exceeded its rate or in-flight bound.
    pub transactions_rate_limited: u64,
    /// Gap-filling requests that asked for fewer events than configured, or none, because
    /// the origin's gap budget ran low.
    pub gap_fills_limited: u64,
    /// The most inbound transactions being processed at once, all origins together: the
    /// depth of this server's inbound queue.
    pub transactions_in_flight_peak: u64,
    /// Room events (or their ids) served to a server that had no joined member in the room,
    /// neither now nor at the event: counted where they are served, whatever the visibility
    /// check decided, so the count does not depend on the check it judges.
    pub events_leaked: u64,
    /// `/event_auth` answers refused for holding more events than the bound.
    pub auth_chains_refused: u64,
}
