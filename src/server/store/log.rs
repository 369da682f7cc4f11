//! The durable log: what a server's store accepted, in order, as it would be on disk.
//!
//! The store appends one record per change (a room opened, an event ingested with the input it
//! was given and the verdict it got). [`DurableLog::flush`] marks everything so far durable;
//! [`DurableLog::crash`] drops what was not, as a crash of the server process would. The log
//! lives outside the server's runtime: the simulation keeps a handle across a crash and hands
//! it to the restarted server, whose store recovers by replaying the records.
//!
//! A server the run never crashes never replays its log, and at a thousand servers and ten
//! thousand events its records would be ten million: such a server's log is *digest-only*
//! ([`DurableLog::digest_only`]) and keeps the digest of its records as they are appended,
//! the same digest [`DurableLog::digest`] gives for a log holding them.
//!
//! Invariants: records are only appended; the durable prefix only grows, except that a crash
//! truncates the log to it; a record is immutable once appended; a handle of an incarnation
//! that crashed writes nothing more; a digest-only log is never crashed nor replayed.

use crate::proto::event::StateMap;
use crate::proto::hex::Hex;
use crate::proto::pdu::Pdu;
use crate::proto::room_version::RoomVersion;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex, MutexGuard};

/// Who made an ingested event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Received from another server.
    Remote,
    /// Made by this server for one of its users; it must reach the other servers.
    Local,
    /// History fetched from another server (`/backfill`): not new, so it is not held against
    /// the current state (no soft failure), as the reference server does.
    Backfilled,
}

/// How an event was handed to the store.
#[derive(Clone, Debug, PartialEq)]
pub enum EventInput {
    /// A PDU whose prev events the store held, with the state after each.
    Pdu {
        pdu: Arc<Pdu>,
        held_redacted: bool,
        origin: Origin,
    },
    /// An event of an auth chain, without state.
    Outlier { pdu: Arc<Pdu>, held_redacted: bool },
    /// A PDU placed with the state before it as a peer told it: `Remote` for an event after a
    /// gap or our own join, `Backfilled` for the oldest event of history fetched after a join
    /// (whose prev events lie beyond what was fetched).
    WithState {
        pdu: Arc<Pdu>,
        held_redacted: bool,
        state_before: StateMap,
        origin: Origin,
    },
}

impl EventInput {
    pub fn pdu(&self) -> &Arc<Pdu> {
        match self {
            Self::Pdu { pdu, .. } | Self::Outlier { pdu, .. } | Self::WithState { pdu, .. } => pdu,
        }
    }
}

/// The verdict recorded with an event, checked again when the log is replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordedVerdict {
    Accepted,
    SoftFailed,
    Rejected,
    Outlier,
}

/// One change to a server's store.
#[derive(Clone, Debug, PartialEq)]
pub enum LogRecord {
    OpenRoom {
        room_id: String,
        room_version: &'static RoomVersion,
    },
    Event {
        /// Shared with the room's store: one copy per room, not per record.
        room_id: Arc<str>,
        input: EventInput,
        verdict: RecordedVerdict,
    },
    /// The events between a record with `begins` and the next without it are one batch of
    /// backfilled history, after which current state is recomputed once (replay does the
    /// same, so the rebuilt store holds the same state groups).
    HistoryBatch { room_id: Arc<str>, begins: bool },
}

impl LogRecord {
    pub fn room_id(&self) -> &str {
        match self {
            Self::OpenRoom { room_id, .. } => room_id,
            Self::Event { room_id, .. } | Self::HistoryBatch { room_id, .. } => room_id,
        }
    }

    /// Writes everything the record holds, for a run's digest: two records write the same
    /// text exactly when they are equal (up to SHA-256 collisions). An event is written as
    /// the SHA-256 of its JSON text, computed once per event and shared
    /// ([`Pdu::text_sha256`]), where the `Debug` form would format the whole JSON object again
    /// for every record of every server.
    pub fn write_digest(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        match self {
            Self::OpenRoom {
                room_id,
                room_version,
            } => writeln!(out, "open {room_id} {}", room_version.id),
            Self::HistoryBatch { room_id, begins } => writeln!(out, "history {room_id} {begins}"),
            Self::Event {
                room_id,
                input,
                verdict,
            } => {
                let (kind, pdu, held_redacted) = match input {
                    EventInput::Pdu {
                        pdu,
                        held_redacted,
                        origin,
                    } => (format!("pdu {origin:?}"), pdu, held_redacted),
                    EventInput::Outlier { pdu, held_redacted } => {
                        ("outlier".to_owned(), pdu, held_redacted)
                    }
                    EventInput::WithState {
                        pdu,
                        held_redacted,
                        state_before,
                        origin: Origin::Remote,
                    } => (format!("with state {state_before:?}"), pdu, held_redacted),
                    EventInput::WithState {
                        pdu,
                        held_redacted,
                        state_before,
                        origin,
                    } => (
                        format!("with state {origin:?} {state_before:?}"),
                        pdu,
                        held_redacted,
                    ),
                };
                writeln!(
                    out,
                    "event {room_id} {kind} {verdict:?} redacted={held_redacted} {} {}",
                    pdu.room_version().id,
                    Hex(pdu.text_sha256())
                )
            }
        }
    }
}

/// Feeds formatted text straight into a hash, without an intermediate string.
struct HashWriter<'a>(&'a mut Sha256);

impl std::fmt::Write for HashWriter<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.update(text.as_bytes());
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Records {
    records: Vec<LogRecord>,
    durable_len: usize,
    /// For a digest-only log: the hash of every record so far, and how many there were.
    streamed: Option<(Sha256, usize)>,
    /// How many times the log crashed: a handle made before the latest crash belongs to a
    /// dead incarnation, and what it appends or flushes is ignored.
    crashes: u64,
}

impl Records {
    fn len(&self) -> usize {
        match &self.streamed {
            Some((_, appended)) => *appended,
            None => self.records.len(),
        }
    }
}

/// A shared handle on one server's log; clones see the same records.
///
/// A handle writes for the incarnation it was made for: once the log crashed, the dead
/// incarnation's handles append and flush nothing, as a dead process writes nothing to disk,
/// although its tasks may still be finishing what they were doing. Recovering from the log
/// ([`DurableLog::writer`]) starts the next incarnation.
#[derive(Clone, Debug, Default)]
pub struct DurableLog {
    inner: Arc<Mutex<Records>>,
    /// The crash count when this handle's incarnation began.
    incarnation: u64,
}

impl DurableLog {
    /// A log that keeps its records, to be replayed after a crash.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log that keeps only the digest of its records, for a server that never crashes.
    pub fn digest_only() -> Self {
        let records = Records {
            streamed: Some((Sha256::new(), 0)),
            ..Records::default()
        };
        Self {
            inner: Arc::new(Mutex::new(records)),
            incarnation: 0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        // A panic while holding the lock leaves the records consistent (each change is one
        // push or one assignment), so a poisoned lock can still be read.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A handle for the incarnation that starts now: it writes until the next crash.
    pub fn writer(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            incarnation: self.lock().crashes,
        }
    }

    pub fn append(&self, record: LogRecord) {
        let mut records = self.lock();
        if records.crashes != self.incarnation {
            return;
        }
        match &mut records.streamed {
            Some((hasher, appended)) => {
                record
                    .write_digest(&mut HashWriter(hasher))
                    .expect("hashing never fails");
                *appended += 1;
            }
            None => records.records.push(record),
        }
    }

    /// Makes every record so far durable.
    pub fn flush(&self) {
        let mut records = self.lock();
        if records.crashes != self.incarnation {
            return;
        }
        records.durable_len = records.len();
    }

    /// Drops every record that was not flushed, as a crash does.
    pub fn crash(&self) {
        let mut records = self.lock();
        assert!(
            records.streamed.is_none() || records.durable_len == records.len(),
            "a digest-only log cannot lose records: its server must never crash"
        );
        let durable_len = records.durable_len;
        records.records.truncate(durable_len);
        records.crashes += 1;
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// The SHA-256 of every record's [`LogRecord::write_digest`] text, in order: the same for
    /// a digest-only log as for one holding the same records.
    pub fn digest(&self) -> [u8; 32] {
        let records = self.lock();
        if let Some((hasher, _)) = &records.streamed {
            return hasher.clone().finalize().into();
        }
        let mut hasher = Sha256::new();
        for record in &records.records {
            record
                .write_digest(&mut HashWriter(&mut hasher))
                .expect("hashing never fails");
        }
        hasher.finalize().into()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn durable_len(&self) -> usize {
        self.lock().durable_len
    }

    /// Whether every record is durable.
    pub fn is_flushed(&self) -> bool {
        let records = self.lock();
        records.durable_len == records.len()
    }

    /// A copy of every record, in order (cheap: events are shared). A digest-only log has
    /// none to give once it was appended to: its server must never replay it.
    pub fn records(&self) -> Vec<LogRecord> {
        let records = self.lock();
        assert!(
            records.streamed.is_none() || records.len() == 0,
            "a digest-only log keeps no records to replay"
        );
        records.records.clone()
    }

    /// Whether the log keeps its records (and so can be replayed after a crash).
    pub fn keeps_records(&self) -> bool {
        self.lock().streamed.is_none()
    }

    /// Whether `self` and `other` are handles on the same log.
    pub fn same_log(&self, other: &DurableLog) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::room_version::DEFAULT;

    fn open(room_id: &str) -> LogRecord {
        LogRecord::OpenRoom {
            room_id: room_id.to_owned(),
            room_version: &DEFAULT,
        }
    }

    #[test]
    fn a_crashed_incarnation_writes_nothing_and_the_next_writes_on() {
        let log = DurableLog::new();
        let dead = log.writer();
        dead.append(open("!a:x"));
        dead.flush();
        dead.append(open("!b:x"));
        log.crash();
        dead.append(open("!c:x"));
        dead.flush();
        assert_eq!(
            log.records(),
            vec![open("!a:x")],
            "the dead incarnation wrote on"
        );
        assert_eq!(log.durable_len(), 1);
        let next = log.writer();
        next.append(open("!d:x"));
        next.flush();
        assert_eq!(log.records(), vec![open("!a:x"), open("!d:x")]);
        assert_eq!(log.durable_len(), 2);
    }

    #[test]
    fn a_crash_keeps_the_durable_prefix() {
        let log = DurableLog::new();
        let handle = log.clone();
        log.append(open("!a:x"));
        log.append(open("!b:x"));
        assert!(!log.is_flushed());
        log.flush();
        log.append(open("!c:x"));
        assert_eq!((handle.len(), handle.durable_len()), (3, 2));
        handle.crash();
        assert_eq!(log.records(), vec![open("!a:x"), open("!b:x")]);
        assert!(log.is_flushed());
        assert!(log.same_log(&handle));
        assert!(!log.same_log(&DurableLog::new()));
    }

    #[test]
    fn a_digest_only_log_digests_as_a_log_holding_the_records() {
        let held = DurableLog::new();
        let digested = DurableLog::digest_only();
        assert!(!digested.keeps_records());
        assert_eq!(held.digest(), digested.digest(), "empty");
        for room in ["!a:x", "!b:x"] {
            held.append(open(room));
            digested.append(open(room));
        }
        digested.flush();
        assert_eq!(held.digest(), digested.digest());
        assert_eq!(digested.len(), 2);
        assert!(digested.is_flushed());
        held.append(open("!c:x"));
        assert_ne!(held.digest(), digested.digest(), "one more record");
        digested.append(open("!d:x"));
        assert_ne!(held.digest(), digested.digest(), "another record");
    }

    #[test]
    #[should_panic(expected = "must never crash")]
    fn a_digest_only_log_refuses_to_lose_records() {
        let log = DurableLog::digest_only();
        log.append(open("!a:x"));
        log.crash();
    }

    #[test]
    fn a_crash_before_any_flush_loses_everything() {
        let log = DurableLog::new();
        log.append(open("!a:x"));
        log.crash();
        assert!(log.is_empty());
    }
}
