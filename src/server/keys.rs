//! Signing keys: this server's published key response, and the keys of its peers, fetched from
//! `/_matrix/key/v2/server` on first need and cached with their validity.
//!
//! Invariant: a peer's key is used only after its key response verified (every listed key
//! signed it, under the server name we asked); a cached set is refetched once its validity ends.
//!
//! Memory: every server fetches and checks each peer's keys itself, but the parsed keys are the
//! same for all of them, so the run's [`KeyInterner`] holds them once and each server keeps a
//! handle and its own validity times ([`HeldKeys`]). This is sharing of identical values only:
//! what a server accepts is decided by its own fetch, exactly as without it.

use crate::proto::server_keys::{ServerKeySet, build_server_keys, verify_server_keys};
use crate::proto::signing::VerifyingKey;
use crate::proto::wire::paths::SERVER_KEYS;
use crate::server::Inner;
use hyper::Request;
use hyper::body::Bytes;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a peer's key could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("cannot fetch the keys of {server}: {reason}")]
    Unavailable { server: String, reason: String },
    #[error("key {key_id} of {server} is not valid here: {reason}")]
    Invalid {
        server: String,
        key_id: String,
        reason: String,
    },
}

/// Peers' keys by server name.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    peers: BTreeMap<String, HeldKeys>,
}

/// One peer's keys as one server holds them: the parsed keys, shared with every server that
/// verified the same ones, and the validity times of this server's own fetch.
#[derive(Debug)]
struct HeldKeys {
    /// The times in it are those of the fetch that was interned first, not necessarily ours.
    shared: Arc<ServerKeySet>,
    valid_until_ts: u64,
    fetched_at_ts: u64,
}

impl HeldKeys {
    /// The key set of this server's fetch: the shared one when its times are ours, else a
    /// copy with our times (only for the duration of a check).
    fn set(&self) -> Arc<ServerKeySet> {
        let shared = &self.shared;
        if (shared.valid_until_ts, shared.fetched_at_ts)
            == (self.valid_until_ts, self.fetched_at_ts)
        {
            return shared.clone();
        }
        Arc::new(ServerKeySet {
            server_name: shared.server_name.clone(),
            keys: shared.keys.clone(),
            valid_until_ts: self.valid_until_ts,
            fetched_at_ts: self.fetched_at_ts,
        })
    }

    /// Until when this server may use these keys (the key set's rule, applied to our times).
    fn effective_valid_until_ts(&self) -> u64 {
        ServerKeySet {
            server_name: String::new(),
            keys: BTreeMap::new(),
            valid_until_ts: self.valid_until_ts,
            fetched_at_ts: self.fetched_at_ts,
        }
        .effective_valid_until_ts()
    }
}

/// The parsed keys of a run's servers, one copy per distinct set of keys (server name, key
/// ids, key bytes, expiry of old keys), whatever the validity times of each fetch.
#[derive(Debug, Default)]
pub struct KeyInterner {
    sets: RefCell<BTreeMap<KeyMaterial, Arc<ServerKeySet>>>,
}

/// What identifies a set of keys apart from its validity times.
type KeyMaterial = (String, Vec<(String, String, Option<u64>)>);

impl KeyInterner {
    /// The shared set holding the same keys as `set` (`set` itself the first time).
    fn intern(&self, set: ServerKeySet) -> Arc<ServerKeySet> {
        let material: KeyMaterial = (
            set.server_name.clone(),
            set.keys
                .iter()
                .map(|(key_id, known)| (key_id.clone(), known.key.to_base64(), known.expired_ts))
                .collect(),
        );
        self.sets
            .borrow_mut()
            .entry(material)
            .or_insert_with(|| Arc::new(set))
            .clone()
    }

    /// How many distinct sets of keys are held.
    pub fn len(&self) -> usize {
        self.sets.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// This server's key response, signed, valid for `key_validity` from now.
    pub(crate) fn own_key_response(&self) -> Value {
        let valid_until_ts = self.clock.now_ms() + self.config.key_validity.as_millis() as u64;
        let keys = build_server_keys(
            &self.config.name,
            std::slice::from_ref(&self.config.signing_key),
            BTreeMap::new(),
            valid_until_ts,
        )
        .expect("our own key response is well formed");
        Value::Object(keys.to_json_object())
    }

    /// The keys of `server`: from the cache while valid, else fetched and verified.
    pub(crate) async fn server_keys(&self, server: &str) -> Result<Arc<ServerKeySet>, KeyError> {
        let now_ms = self.clock.now_ms();
        if let Some(held) = self.keys.borrow().peers.get(server)
            && held.effective_valid_until_ts() > now_ms
        {
            return Ok(held.set());
        }
        let unavailable = |reason: String| KeyError::Unavailable {
            server: server.to_owned(),
            reason,
        };
        let request = Request::get(SERVER_KEYS.path(&[]))
            .body(Bytes::new())
            .expect("valid request");
        self.metrics.borrow_mut().requests_sent += 1;
        let response = self
            .transport
            .send(server, request)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("status {}", response.status())));
        }
        let body: Value =
            serde_json::from_slice(response.body()).map_err(|e| unavailable(e.to_string()))?;
        let fetched_at = self.clock.now_ms();
        let set = verify_server_keys(&body, server, fetched_at)
            .map_err(|e| unavailable(e.to_string()))?;
        let held = HeldKeys {
            valid_until_ts: set.valid_until_ts,
            fetched_at_ts: set.fetched_at_ts,
            shared: match &self.pdu_cache {
                Some(cache) => cache.key_interner().intern(set),
                None => Arc::new(set),
            },
        };
        let set = held.set();
        self.keys.borrow_mut().peers.insert(server.to_owned(), held);
        Ok(set)
    }

    /// The key that must verify a request from `origin` signed with `key_id`, now.
    pub(crate) async fn request_key(
        &self,
        origin: &str,
        key_id: &str,
    ) -> Result<VerifyingKey, KeyError> {
        let set = self.server_keys(origin).await?;
        set.key_for_request(key_id, self.clock.now_ms())
            .map_err(|e| KeyError::Invalid {
                server: origin.to_owned(),
                key_id: key_id.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Cached key sets of the given servers, fetching those not cached; servers whose keys
    /// cannot be had are left out (their signatures then count as unverifiable).
    pub(crate) async fn key_sets(
        &self,
        servers: impl IntoIterator<Item = String>,
    ) -> BTreeMap<String, Arc<ServerKeySet>> {
        let mut sets = BTreeMap::new();
        for server in servers {
            if let Ok(set) = self.server_keys(&server).await {
                sets.insert(server, set);
            }
        }
        sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::signing::SigningKey;

    fn fetched(seed: u8, valid_until_ts: u64, fetched_at_ts: u64) -> ServerKeySet {
        let key = SigningKey::from_seed("ed25519:k", &[seed; 32]).unwrap();
        let response = build_server_keys(
            "a.example",
            std::slice::from_ref(&key),
            BTreeMap::new(),
            valid_until_ts,
        )
        .unwrap();
        let response = Value::Object(response.to_json_object());
        verify_server_keys(&response, "a.example", fetched_at_ts).unwrap()
    }

    fn held(interner: &KeyInterner, set: ServerKeySet) -> HeldKeys {
        HeldKeys {
            valid_until_ts: set.valid_until_ts,
            fetched_at_ts: set.fetched_at_ts,
            shared: interner.intern(set),
        }
    }

    #[test]
    fn the_same_keys_are_held_once_and_each_server_keeps_its_own_validity() {
        let interner = KeyInterner::default();
        let first = fetched(1, 5_000, 1_000);
        let second = fetched(1, 9_000, 2_000);
        let (first_held, second_held) = (
            held(&interner, first.clone()),
            held(&interner, second.clone()),
        );
        assert!(Arc::ptr_eq(&first_held.shared, &second_held.shared));
        assert_eq!(interner.len(), 1);
        assert_eq!(*first_held.set(), first);
        assert_eq!(*second_held.set(), second, "the copy carries its own times");
        assert_eq!(
            second_held.effective_valid_until_ts(),
            second.effective_valid_until_ts()
        );
        let other = held(&interner, fetched(2, 5_000, 1_000));
        assert!(!Arc::ptr_eq(&other.shared, &first_held.shared));
        assert_eq!(interner.len(), 2);
    }

    #[test]
    fn validity_is_capped_as_the_key_set_caps_it() {
        let interner = KeyInterner::default();
        let set = fetched(1, (1 << 53) - 1, 1_000);
        let capped = set.effective_valid_until_ts();
        assert!(capped < (1 << 53) - 1);
        assert_eq!(held(&interner, set).effective_valid_until_ts(), capped);
    }
}
