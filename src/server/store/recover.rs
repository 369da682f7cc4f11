//! Rebuilding stores from the durable log after a crash.
//!
//! Replaying a record runs the same code that made it (without logging it again), so the
//! rebuilt store equals the one that wrote the log, state groups and all. Each event's verdict
//! is checked against the one recorded: a difference means the store is not a function of its
//! inputs, a bug that recovery must not hide.
//!
//! Invariant: a recovered store writes its new records to the log it was rebuilt from, after
//! the records it replayed.

use super::log::{DurableLog, LogRecord, RecordedVerdict};
use super::room::RoomStore;

/// Why a log could not be replayed; names the record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("log record {record_index}: {problem}")]
pub struct RecoverError {
    pub record_index: usize,
    pub problem: String,
}

impl RoomStore {
    /// Rebuilds the one room a log holds.
    pub fn recover(log: DurableLog) -> Result<Self, RecoverError> {
        let records = log.records();
        let Some(LogRecord::OpenRoom {
            room_id,
            room_version,
        }) = records.first()
        else {
            return Err(RecoverError {
                record_index: 0,
                problem: "a room's log starts by opening the room".to_owned(),
            });
        };
        let mut room = RoomStore::unlogged(room_id, room_version, log.clone());
        for (record_index, record) in records.iter().enumerate().skip(1) {
            if record.room_id() != room.room_id {
                return Err(RecoverError {
                    record_index,
                    problem: format!("the record is for room {}", record.room_id()),
                });
            }
            room.replay(record_index, record)?;
        }
        Ok(room)
    }

    /// Replays one event record of this room.
    pub(super) fn replay(
        &mut self,
        record_index: usize,
        record: &LogRecord,
    ) -> Result<(), RecoverError> {
        let problem = |problem: String| RecoverError {
            record_index,
            problem,
        };
        let LogRecord::Event { input, verdict, .. } = record else {
            return Err(problem(format!("room {} is opened twice", self.room_id)));
        };
        let outcome = self
            .apply(input)
            .map_err(|error| problem(format!("replaying failed: {error}")))?;
        let replayed = RecordedVerdict::from(&outcome.status);
        if outcome.duplicate || replayed != *verdict {
            return Err(problem(format!(
                "event {} was {verdict:?} when logged but {replayed:?} (duplicate: {}) on replay",
                outcome.event_id, outcome.duplicate
            )));
        }
        Ok(())
    }
}
