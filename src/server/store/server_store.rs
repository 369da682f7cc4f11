//! [`ServerStore`]: the rooms of one server, sharing one durable log.
//!
//! Invariants: every room writes to the server's log; a room is opened once, with one room
//! version; recovering from the log gives a store equal to the one that wrote it.

use super::StoreError;
use super::log::{DurableLog, LogRecord};
use super::metrics::RoomMetrics;
use super::recover::RecoverError;
use super::room::RoomStore;
use super::shared_resolutions::SharedResolutions;
use crate::proto::room_version::RoomVersion;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every room one server holds.
#[derive(Debug)]
pub struct ServerStore {
    log: DurableLog,
    rooms: BTreeMap<String, RoomStore>,
    /// See [`ServerStore::set_auth_rules_enforced`].
    auth_rules_enforced: bool,
    /// See [`ServerStore::share_resolutions`].
    shared_resolutions: Option<Arc<SharedResolutions>>,
}

/// Equal when the rooms are equal; the log is not compared (see [`RoomStore`]'s equality).
impl PartialEq for ServerStore {
    fn eq(&self, other: &Self) -> bool {
        self.rooms == other.rooms
    }
}

impl ServerStore {
    /// An empty store writing to `log`.
    pub fn new(log: DurableLog) -> Self {
        Self {
            log,
            rooms: BTreeMap::new(),
            auth_rules_enforced: true,
            shared_resolutions: None,
        }
    }

    /// Rebuilds every room the log holds.
    pub fn recover(log: DurableLog) -> Result<Self, RecoverError> {
        // Recovering starts a new incarnation: it writes on after what it replayed.
        let log = log.writer();
        let mut rooms: BTreeMap<String, RoomStore> = BTreeMap::new();
        for (record_index, record) in log.records().iter().enumerate() {
            match record {
                LogRecord::OpenRoom {
                    room_id,
                    room_version,
                } => {
                    if rooms.contains_key(room_id) {
                        return Err(RecoverError {
                            record_index,
                            problem: format!("room {room_id} is opened twice"),
                        });
                    }
                    let room = RoomStore::unlogged(room_id, room_version, log.clone());
                    rooms.insert(room_id.clone(), room);
                }
                LogRecord::Event { room_id, .. } | LogRecord::HistoryBatch { room_id, .. } => {
                    let room = rooms.get_mut(&**room_id).ok_or_else(|| RecoverError {
                        record_index,
                        problem: format!("room {room_id} was never opened"),
                    })?;
                    room.replay(record_index, record)?;
                }
            }
        }
        for room in rooms.values_mut() {
            room.end_replay();
        }
        Ok(Self {
            log,
            rooms,
            auth_rules_enforced: true,
            shared_resolutions: None,
        })
    }

    /// Turns the authorization rules off (every event placed with state is accepted) or back
    /// on, in every room held and opened later. Only tests that show what an attack achieves
    /// without them turn them off.
    pub fn set_auth_rules_enforced(&mut self, enforced: bool) {
        self.auth_rules_enforced = enforced;
        for room in self.rooms.values_mut() {
            room.auth_rules_enforced = enforced;
        }
    }

    /// Shares state resolutions with the other stores given the same `shared` (see
    /// `shared_resolutions.rs`), in every room held and opened later; `None` shares nothing.
    /// Only a server whose checks of received events are all on may share: its rooms then
    /// hold events exactly as their ids name them.
    pub fn share_resolutions(&mut self, shared: Option<Arc<SharedResolutions>>) {
        for room in self.rooms.values_mut() {
            room.share_resolutions(shared.clone());
        }
        self.shared_resolutions = shared;
    }

    pub fn log(&self) -> &DurableLog {
        &self.log
    }

    /// Makes everything so far durable; call before acknowledging a transaction.
    pub fn flush(&self) {
        self.log.flush();
    }

    /// The room, opened (and the opening logged) if the store does not hold it yet.
    pub fn open_room(
        &mut self,
        room_id: &str,
        room_version: &'static RoomVersion,
    ) -> Result<&mut RoomStore, StoreError> {
        if let Some(existing) = self.rooms.get(room_id)
            && existing.room_version().id != room_version.id
        {
            return Err(StoreError::RoomVersionMismatch {
                room_id: room_id.to_owned(),
                version: room_version.id,
                expected: existing.room_version().id,
            });
        }
        let log = &self.log;
        let enforced = self.auth_rules_enforced;
        let shared = &self.shared_resolutions;
        Ok(self.rooms.entry(room_id.to_owned()).or_insert_with(|| {
            let mut room = RoomStore::new(room_id, room_version, log.clone());
            room.auth_rules_enforced = enforced;
            room.share_resolutions(shared.clone());
            room
        }))
    }

    pub fn room(&self, room_id: &str) -> Option<&RoomStore> {
        self.rooms.get(room_id)
    }

    /// The room, or [`StoreError::UnknownRoom`].
    pub fn room_mut(&mut self, room_id: &str) -> Result<&mut RoomStore, StoreError> {
        self.rooms
            .get_mut(room_id)
            .ok_or_else(|| StoreError::UnknownRoom {
                room_id: room_id.to_owned(),
            })
    }

    /// The rooms, by room id.
    pub fn rooms(&self) -> impl Iterator<Item = (&str, &RoomStore)> {
        self.rooms.iter().map(|(id, room)| (id.as_str(), room))
    }

    /// Each room's figures, by room id.
    pub fn metrics(&self) -> BTreeMap<String, RoomMetrics> {
        self.rooms
            .iter()
            .map(|(id, room)| (id.clone(), room.metrics()))
            .collect()
    }

    /// Checks every room's invariants; the error names the room.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (room_id, room) in &self.rooms {
            room.check_invariants()
                .map_err(|problem| format!("room {room_id}: {problem}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::test_support::*;

    /// The server shares its store with async handlers behind a lock.
    #[test]
    fn stores_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<ServerStore>();
        shareable::<RoomStore>();
        shareable::<DurableLog>();
    }

    #[test]
    fn rooms_are_opened_once_with_one_version() {
        let log = DurableLog::new();
        let mut store = ServerStore::new(log.clone());
        store.open_room("!r:a.example", v("10")).unwrap();
        store.open_room("!r:a.example", v("10")).unwrap();
        assert_eq!(log.len(), 1, "opening an open room logs nothing");
        assert_eq!(
            store.open_room("!r:a.example", v("11")).unwrap_err(),
            StoreError::RoomVersionMismatch {
                room_id: "!r:a.example".into(),
                version: "11",
                expected: "10",
            }
        );
        assert!(matches!(
            store.room_mut("!other:a.example"),
            Err(StoreError::UnknownRoom { .. })
        ));
        assert!(store.room("!r:a.example").unwrap().log().same_log(&log));
        assert_eq!(store.metrics().len(), 1);
        assert!(ServerStore::recover(log).unwrap() == store);
    }
}
