//! Helpers of the unit tests of the store: users and stores holding built events.

use super::log::DurableLog;
use super::room::RoomStore;
use super::testkit::RoomBuilder;
use crate::proto::room_version::{RoomVersion, room_version};

pub const ALICE: &str = "@alice:a.example";
pub const BOB: &str = "@bob:b.example";

pub fn v(id: &str) -> &'static RoomVersion {
    room_version(id).unwrap()
}

/// A store that ingested every event the builder built.
pub fn store_with_all(room: &RoomBuilder) -> RoomStore {
    let mut store = RoomStore::new(room.room_id(), room.version(), DurableLog::new());
    for pdu in room.built() {
        store.ingest(pdu.clone(), false).unwrap();
    }
    store
}
