//! The typed view of a room event that the authorization rules and state resolution work on.
//!
//! A PDU on the wire is a signed JSON object whose shape depends on the room version (see
//! `pdu`); an [`Event`] is what is left once it has been checked and its id is known: plain
//! fields, ids as strings, `redacts` in one place whatever the version. Hand-written scenarios
//! for the resolver build `Event`s directly.
//!
//! Invariant: an `Event` is immutable once built; `event_id` identifies it and two events with
//! the same id are the same event.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A state key: the event type and the `state_key`, as the spec pairs them.
pub type StateKey = (String, String);

/// A state map: for each state key, the id of the event that holds it.
pub type StateMap = BTreeMap<StateKey, String>;

/// The entry of `map` under the state key (`event_type`, `state_key`), found without making
/// an owned [`StateKey`] (two allocations per read, and the authorization rules read the state
/// a dozen times per event).
pub fn state_entry<'m, V>(
    map: &'m BTreeMap<StateKey, V>,
    event_type: &str,
    state_key: &str,
) -> Option<&'m V> {
    map.get(&(event_type, state_key) as &dyn StateKeyParts)
}

/// A state key as two borrowed strings, whether held owned or borrowed: lets a map keyed by
/// [`StateKey`] be read with `(&str, &str)` (see [`state_entry`]).
///
/// Invariant: compares exactly as [`StateKey`] does (type, then state key, each by bytes), so
/// the map finds through it what it would find through an owned key.
pub trait StateKeyParts {
    fn parts(&self) -> (&str, &str);
}

impl StateKeyParts for StateKey {
    fn parts(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl StateKeyParts for (&str, &str) {
    fn parts(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn StateKeyParts + 'a> for StateKey {
    fn borrow(&self) -> &(dyn StateKeyParts + 'a) {
        self
    }
}

impl PartialEq for dyn StateKeyParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn StateKeyParts + '_ {}

impl PartialOrd for dyn StateKeyParts + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn StateKeyParts + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let ((a_type, a_key), (b_type, b_key)) = (self.parts(), other.parts());
        compare_bytes(a_type.as_bytes(), b_type.as_bytes())
            .then_with(|| compare_bytes(a_key.as_bytes(), b_key.as_bytes()))
    }
}

/// Byte order, as `[u8]::cmp` gives it, eight bytes at a time and in line: a state map search
/// compares short keys a dozen times, and a call to `memcmp` per comparison was most of its
/// cost.
fn compare_bytes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let mut a_words = a.chunks_exact(8);
    let mut b_words = b.chunks_exact(8);
    for (a_word, b_word) in (&mut a_words).zip(&mut b_words) {
        let a_word = u64::from_be_bytes(a_word.try_into().expect("eight bytes"));
        let b_word = u64::from_be_bytes(b_word.try_into().expect("eight bytes"));
        if a_word != b_word {
            return a_word.cmp(&b_word);
        }
    }
    let done = a.len().min(b.len()) / 8 * 8;
    let (a_rest, b_rest) = (&a[done..], &b[done..]);
    for (a_byte, b_byte) in a_rest.iter().zip(b_rest) {
        if a_byte != b_byte {
            return a_byte.cmp(b_byte);
        }
    }
    a_rest.len().cmp(&b_rest.len())
}

/// A room event, as authorization and state resolution see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub room_id: String,
    pub sender: String,
    pub event_type: String,
    /// `Some` exactly for state events.
    pub state_key: Option<String>,
    pub content: Map<String, Value>,
    pub prev_events: Vec<String>,
    pub auth_events: Vec<String>,
    pub depth: u64,
    pub origin_server_ts: u64,
    /// The event a redaction redacts: top-level `redacts` before room v11, `content.redacts`
    /// from v11 on.
    pub redacts: Option<String>,
}

impl Event {
    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }

    /// The state key this event sets, if it is a state event.
    pub fn state_key_pair(&self) -> Option<StateKey> {
        self.state_key
            .as_ref()
            .map(|key| (self.event_type.clone(), key.clone()))
    }

    /// Whether this is a state event of `event_type` with `state_key`.
    pub fn is(&self, event_type: &str, state_key: &str) -> bool {
        self.event_type == event_type && self.state_key.as_deref() == Some(state_key)
    }

    /// `content.membership` of an `m.room.member` event.
    pub fn membership(&self) -> Option<&str> {
        if self.event_type != "m.room.member" {
            return None;
        }
        self.content.get("membership").and_then(Value::as_str)
    }

    /// The server part of the sender's user id (`@user:server` gives `server`).
    pub fn sender_server(&self) -> &str {
        server_of(&self.sender)
    }

    /// A string value of `content`, if present and a string.
    pub fn content_str(&self, key: &str) -> Option<&str> {
        self.content.get(key).and_then(Value::as_str)
    }
}

/// The server part of a user, room or event id of the form `<sigil>local:server`; the whole
/// input after the first colon. Returns `""` when there is no colon.
pub fn server_of(id: &str) -> &str {
    id.split_once(':').map_or("", |(_, server)| server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        /// Reading through borrowed parts finds what an owned key finds, for keys that share
        /// prefixes, differ only in one part, or are empty.
        #[test]
        fn a_borrowed_state_key_finds_what_an_owned_one_does(
            held in proptest::collection::vec(("[ab]{0,3}", "[ab]{0,3}"), 0..12),
            asked in ("[ab]{0,3}", "[ab]{0,3}"),
        ) {
            let map: BTreeMap<StateKey, usize> =
                held.into_iter().enumerate().map(|(i, key)| (key, i)).collect();
            let owned = map.get(&asked);
            prop_assert_eq!(state_entry(&map, &asked.0, &asked.1), owned);
        }

        /// Compared eight bytes at a time, bytes order as slices do, whatever their lengths.
        #[test]
        fn bytes_compare_as_slices_do(
            a in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), any::<u8>()], 0..40),
            b in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), any::<u8>()], 0..40),
            shared in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let a: Vec<u8> = shared.iter().chain(&a).copied().collect();
            let b: Vec<u8> = shared.iter().chain(&b).copied().collect();
            prop_assert_eq!(compare_bytes(&a, &b), a.cmp(&b));
            prop_assert_eq!(compare_bytes(&a, &a), std::cmp::Ordering::Equal);
        }
    }

    fn member(sender: &str, target: &str, membership: &str) -> Event {
        Event {
            event_id: "$m".into(),
            room_id: "!r:example.org".into(),
            sender: sender.into(),
            event_type: "m.room.member".into(),
            state_key: Some(target.into()),
            content: json!({"membership": membership})
                .as_object()
                .unwrap()
                .clone(),
            prev_events: vec![],
            auth_events: vec![],
            depth: 1,
            origin_server_ts: 0,
            redacts: None,
        }
    }

    #[test]
    fn accessors() {
        let event = member("@alice:example.org", "@bob:other.org:8448", "invite");
        assert!(event.is_state());
        assert!(event.is("m.room.member", "@bob:other.org:8448"));
        assert_eq!(event.membership(), Some("invite"));
        assert_eq!(event.sender_server(), "example.org");
        assert_eq!(server_of("@bob:other.org:8448"), "other.org:8448");
        assert_eq!(
            event.state_key_pair(),
            Some(("m.room.member".to_owned(), "@bob:other.org:8448".to_owned()))
        );
    }
}
