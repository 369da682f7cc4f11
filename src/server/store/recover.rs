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
        // Recovering starts a new incarnation: it writes on after what it replayed.
        let log = log.writer();
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
            if *record.room_id() != *room.room_id {
                return Err(RecoverError {
                    record_index,
                    problem: format!("the record is for room {}", record.room_id()),
                });
            }
            room.replay(record_index, record)?;
        }
        room.end_replay();
        Ok(room)
    }

    /// After the last record: a history batch the log holds only the start of (the store
    /// flushes after a batch, never within one, so this is defensive) is ended.
    pub(super) fn end_replay(&mut self) {
        if self.current_state_deferred {
            self.apply_history_batch(false);
        }
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
        let (input, verdict) = match record {
            LogRecord::Event { input, verdict, .. } => (input, verdict),
            LogRecord::HistoryBatch { begins, .. } => {
                if self.current_state_deferred == *begins {
                    return Err(problem("a history batch nests or ends unopened".to_owned()));
                }
                self.apply_history_batch(*begins);
                return Ok(());
            }
            LogRecord::OpenRoom { .. } => {
                return Err(problem(format!("room {} is opened twice", self.room_id)));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::log::EventInput;
    use crate::server::store::log::Origin;
    use crate::server::store::server_store::ServerStore;
    use crate::server::store::test_support::*;
    use crate::server::store::testkit::RoomBuilder;

    fn event_record(room: &RoomBuilder, index: usize, verdict: RecordedVerdict) -> LogRecord {
        LogRecord::Event {
            room_id: room.room_id().into(),
            input: EventInput::Pdu {
                pdu: room.built()[index].clone(),
                held_redacted: false,
                origin: Origin::Remote,
            },
            verdict,
        }
    }

    #[test]
    fn replaying_checks_the_recorded_verdicts() {
        let room = RoomBuilder::standard(v("11"), ALICE);
        let log = DurableLog::new();
        log.append(LogRecord::OpenRoom {
            room_id: room.room_id().to_owned(),
            room_version: room.version(),
        });
        log.append(event_record(&room, 0, RecordedVerdict::Accepted));
        assert!(RoomStore::recover(log.clone()).is_ok());
        log.append(event_record(&room, 1, RecordedVerdict::Rejected));
        let error = RoomStore::recover(log.clone()).unwrap_err();
        assert_eq!(error.record_index, 2);
        assert!(error.problem.contains("Rejected"), "{error}");
    }

    #[test]
    fn records_must_follow_the_opening_of_their_room() {
        let room = RoomBuilder::standard(v("11"), ALICE);
        let log = DurableLog::new();
        log.append(event_record(&room, 0, RecordedVerdict::Accepted));
        assert_eq!(
            ServerStore::recover(log.clone()).unwrap_err().record_index,
            0
        );
        assert_eq!(RoomStore::recover(log).unwrap_err().record_index, 0);

        let twice = DurableLog::new();
        let open = LogRecord::OpenRoom {
            room_id: room.room_id().to_owned(),
            room_version: room.version(),
        };
        twice.append(open.clone());
        twice.append(open);
        assert_eq!(
            ServerStore::recover(twice.clone())
                .unwrap_err()
                .record_index,
            1
        );
        assert_eq!(RoomStore::recover(twice).unwrap_err().record_index, 1);
    }
}
