//! Signing keys: this server's published key response, and the keys of its peers, fetched from
//! `/_matrix/key/v2/server` on first need and cached with their validity.
//!
//! Invariant: a peer's key is used only after its key response verified (every listed key
//! signed it, under the server name we asked); a cached set is refetched once its validity ends.
//!
//! Serving: like a real homeserver, a server keeps its signed response (the exact bytes it
//! serves) and signs a new one only when less than half of `key_validity` is left before the
//! held one's `valid_until_ts` (or when its clock went back so far that the held one would be
//! valid for more than `key_validity`). A new incarnation after a crash signs afresh.
//!
//! Sharing, when the lab gives the servers of a run a [`PduCache`], saves work only; what a
//! server accepts is decided by its own fetch, exactly as without it:
//! - Memory: the parsed keys are the same for every server that fetched them, so the run's
//!   [`KeyInterner`] holds them once and each server keeps a handle and its own validity times
//!   ([`HeldKeys`]).
//! - Verification: the run's [`KeyResponseMemo`] remembers the responses whose check succeeded,
//!   by the exact bytes and the server name they were asked under. Checking a response is a
//!   pure function of those two and of the fetch time, which it only copies into the result;
//!   so a server that receives the same bytes for the same name skips the JSON parse and the
//!   signature checks and applies its own fetch time. Other bytes or another name miss, and
//!   are checked in full. In debug builds every hit is checked against a full check.

use crate::proto::room_version::RoomVersion;
use crate::proto::server_keys::{
    KeyTimes, KeyValidityError, ServerKeySet, build_server_keys, verify_server_keys,
};
use crate::proto::signing::VerifyingKey;
use crate::proto::wire::paths::SERVER_KEYS;
use crate::server::fifo_map::FifoMap;
use crate::server::name_key::NameMap;
use crate::server::{Inner, PduCache};
use hyper::Request;
use hyper::body::Bytes;
use serde_json::Value;
use std::cell::{Cell, RefCell};
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

/// Peers' keys by server name, and this server's own key response.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    /// Read per received request and event, never iterated: hashed (server names share long
    /// prefixes, which an ordered map compares byte by byte).
    peers: NameMap<HeldKeys>,
    own_response: Option<OwnResponse>,
}

/// This server's signed key response, as served.
#[derive(Debug)]
struct OwnResponse {
    body: Bytes,
    valid_until_ts: u64,
}

/// Whether a response valid until `valid_until_ts` must be signed again at `now_ms`: less than
/// half of `key_validity_ms` left, or more than all of it (the clock went back).
fn needs_resigning(valid_until_ts: u64, now_ms: u64, key_validity_ms: u64) -> bool {
    let left_ms = valid_until_ts.saturating_sub(now_ms);
    left_ms < key_validity_ms / 2 || left_ms > key_validity_ms
}

/// One peer's keys as one server holds them: the parsed keys, shared with every server that
/// verified the same ones, and the validity times of this server's own fetch. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct HeldKeys {
    /// Its own times are those of the fetch that was interned first, not necessarily ours:
    /// only `times` count.
    shared: Arc<ServerKeySet>,
    times: KeyTimes,
}

impl HeldKeys {
    /// See [`ServerKeySet::key_for_event`]; applied to this server's fetch.
    pub(crate) fn key_for_event(
        &self,
        key_id: &str,
        origin_server_ts: u64,
        room_version: &RoomVersion,
    ) -> Result<VerifyingKey, KeyValidityError> {
        self.shared
            .key_for_event_at_times(self.times, key_id, origin_server_ts, room_version)
    }

    /// See [`ServerKeySet::key_for_request`]; applied to this server's fetch.
    pub(crate) fn key_for_request(
        &self,
        key_id: &str,
        now_ts: u64,
    ) -> Result<VerifyingKey, KeyValidityError> {
        self.shared
            .key_for_request_at_times(self.times, key_id, now_ts)
    }

    /// Until when this server may use these keys.
    fn effective_valid_until_ts(&self) -> u64 {
        self.times.effective_valid_until_ts()
    }
}

/// Equal when every answer is: same server, same keys, same times of our fetch.
impl PartialEq for HeldKeys {
    fn eq(&self, other: &Self) -> bool {
        self.shared.server_name == other.shared.server_name
            && self.shared.keys == other.shared.keys
            && self.times == other.times
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

/// How many verified responses the memo holds unless told otherwise: a run's servers each
/// sign a response per incarnation and per half validity, so far fewer than this.
pub const KEY_RESPONSE_MEMO_ENTRIES_DEFAULT: usize = 4_096;

/// How often the memo saved checking a key response, for perf figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyResponseMemoStats {
    /// Responses found verified before, whose check was skipped.
    pub hits: u64,
    /// Responses checked in full (unknown, forgotten, or not valid).
    pub misses: u64,
    pub evictions: u64,
}

/// The server name a response was asked under, and its exact bytes.
type ResponseKey = (String, Bytes);

/// A response that verified: its keys (interned) and its published validity.
#[derive(Clone, Debug)]
struct VerifiedResponse {
    shared: Arc<ServerKeySet>,
    valid_until_ts: u64,
}

/// Key responses whose check succeeded in this run, by the server name asked and the exact
/// bytes. Bounded: past `entries_max` the oldest is forgotten (first in, first out), which only
/// costs a check. The map is never iterated, so its order cannot leak into a run.
pub struct KeyResponseMemo {
    responses: RefCell<FifoMap<ResponseKey, VerifiedResponse>>,
    stats: Cell<KeyResponseMemoStats>,
}

impl Default for KeyResponseMemo {
    fn default() -> Self {
        Self::new(KEY_RESPONSE_MEMO_ENTRIES_DEFAULT)
    }
}

impl KeyResponseMemo {
    /// An empty memo holding at most `entries_max` responses (at least 1).
    pub fn new(entries_max: usize) -> Self {
        Self {
            responses: RefCell::new(FifoMap::new(entries_max)),
            stats: Cell::new(KeyResponseMemoStats::default()),
        }
    }

    pub fn stats(&self) -> KeyResponseMemoStats {
        self.stats.get()
    }

    pub fn len(&self) -> usize {
        self.responses.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn count(&self, change: impl FnOnce(&mut KeyResponseMemoStats)) {
        let mut stats = self.stats.get();
        change(&mut stats);
        self.stats.set(stats);
    }

    /// The verified response asked of `server` that was exactly `body`, if remembered.
    fn verified(&self, server: &str, body: &Bytes) -> Option<VerifiedResponse> {
        let found = self
            .responses
            .borrow()
            .get(&(server.to_owned(), body.clone()))
            .cloned();
        match found {
            Some(_) => self.count(|stats| stats.hits += 1),
            None => self.count(|stats| stats.misses += 1),
        }
        found
    }

    /// Remembers a response whose check just succeeded.
    fn record(&self, server: &str, body: &Bytes, verified: VerifiedResponse) {
        let key = (server.to_owned(), body.clone());
        let evicted = self.responses.borrow_mut().insert(key, verified);
        self.count(|stats| stats.evictions += evicted);
    }
}

/// The keys of the key response `body` that `server` served, fetched at `fetched_at_ts`:
/// found in the run's memo when these exact bytes verified for this name before, else parsed
/// and checked in full (and remembered when valid). The error says why the response is not
/// trusted.
fn checked_key_response(
    cache: Option<&PduCache>,
    server: &str,
    body: &Bytes,
    fetched_at_ts: u64,
) -> Result<HeldKeys, String> {
    let memo = cache.map(PduCache::key_responses);
    if let Some(verified) = memo.and_then(|memo| memo.verified(server, body)) {
        let held = HeldKeys {
            shared: verified.shared,
            times: KeyTimes {
                valid_until_ts: verified.valid_until_ts,
                fetched_at_ts,
            },
        };
        debug_assert_eq!(
            Ok(&held),
            checked_key_response(None, server, body, fetched_at_ts).as_ref(),
            "the key response memo vouched for a response that checks otherwise"
        );
        return Ok(held);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let set = verify_server_keys(&value, server, fetched_at_ts).map_err(|e| e.to_string())?;
    let times = set.times();
    let shared = match cache {
        Some(cache) => cache.key_interner().intern(set),
        None => Arc::new(set),
    };
    if let Some(memo) = memo {
        let verified = VerifiedResponse {
            shared: shared.clone(),
            valid_until_ts: times.valid_until_ts,
        };
        memo.record(server, body, verified);
    }
    Ok(HeldKeys { shared, times })
}

impl Inner {
    /// This server's key response as served: the held one while at least half of
    /// `key_validity` is left of it, else a new one signed now, valid for `key_validity`.
    pub(crate) fn own_key_response(&self) -> Bytes {
        let now_ms = self.clock.now_ms();
        let key_validity_ms = self.config.key_validity.as_millis() as u64;
        let mut keys = self.keys.borrow_mut();
        if let Some(own) = &keys.own_response
            && !needs_resigning(own.valid_until_ts, now_ms, key_validity_ms)
        {
            return own.body.clone();
        }
        let valid_until_ts = now_ms + key_validity_ms;
        let response = build_server_keys(
            &self.config.name,
            std::slice::from_ref(&self.config.signing_key),
            BTreeMap::new(),
            valid_until_ts,
        )
        .expect("our own key response is well formed");
        let body = Bytes::from(Value::Object(response.to_json_object()).to_string());
        keys.own_response = Some(OwnResponse {
            body: body.clone(),
            valid_until_ts,
        });
        body
    }

    /// The keys of `server`: from the cache while valid, else fetched and verified.
    pub(crate) async fn server_keys(&self, server: &str) -> Result<HeldKeys, KeyError> {
        if let Some(held) = self.cached_keys(server) {
            return Ok(held);
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
        let fetched_at = self.clock.now_ms();
        let held = checked_key_response(
            self.pdu_cache.as_deref(),
            server,
            response.body(),
            fetched_at,
        )
        .map_err(unavailable)?;
        self.keys.borrow_mut().peers.insert(server, held.clone());
        Ok(held)
    }

    /// The keys of `server` held and still valid now. Read before awaiting a fetch: nearly
    /// every request and event finds its keys here, and making the future of a fetch costs
    /// more than the lookup.
    fn cached_keys(&self, server: &str) -> Option<HeldKeys> {
        let now_ms = self.clock.now_ms();
        let keys = self.keys.borrow();
        let held = keys.peers.get(server)?;
        (held.effective_valid_until_ts() > now_ms).then(|| held.clone())
    }

    /// The key that must verify a request from `origin` signed with `key_id`, now.
    pub(crate) async fn request_key(
        &self,
        origin: &str,
        key_id: &str,
    ) -> Result<VerifyingKey, KeyError> {
        let held = match self.cached_keys(origin) {
            Some(held) => held,
            None => self.server_keys(origin).await?,
        };
        held.key_for_request(key_id, self.clock.now_ms())
            .map_err(|e| KeyError::Invalid {
                server: origin.to_owned(),
                key_id: key_id.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Cached keys of the given servers, fetching those not cached; servers whose keys
    /// cannot be had are left out (their signatures then count as unverifiable).
    pub(crate) async fn key_sets(
        &self,
        servers: impl IntoIterator<Item = String>,
    ) -> BTreeMap<String, HeldKeys> {
        let mut sets = BTreeMap::new();
        for server in servers {
            if let Ok(held) = self.server_keys(&server).await {
                sets.insert(server, held);
            }
        }
        sets
    }

    /// The keys of each of `servers`, in that order, fetching all those not cached at once
    /// (the requests leave in that order), as Synapse's key fetcher batches them; `None` for a
    /// server whose keys cannot be had.
    pub(crate) async fn held_keys_in_order(
        &self,
        servers: &[impl AsRef<str>],
    ) -> Vec<Option<HeldKeys>> {
        let cached: Option<Vec<Option<HeldKeys>>> = servers
            .iter()
            .map(|server| self.cached_keys(server.as_ref()).map(Some))
            .collect();
        if let Some(all_cached) = cached {
            return all_cached;
        }
        let fetches = servers
            .iter()
            .map(|server| self.server_keys(server.as_ref()));
        let held = futures_util::future::join_all(fetches).await;
        held.into_iter().map(Result::ok).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::room_version::room_version;
    use crate::proto::signing::SigningKey;
    use proptest::prelude::*;

    fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_seed("ed25519:k", &[seed; 32]).unwrap()
    }

    /// The key response of `server`, signed by `key`, as served.
    fn response_of(server: &str, key: &SigningKey, valid_until_ts: u64) -> Bytes {
        let response = build_server_keys(
            server,
            std::slice::from_ref(key),
            BTreeMap::new(),
            valid_until_ts,
        )
        .unwrap();
        Bytes::from(Value::Object(response.to_json_object()).to_string())
    }

    fn response(seed: u8, valid_until_ts: u64) -> Bytes {
        response_of("a.example", &signing_key(seed), valid_until_ts)
    }

    fn memo_stats(cache: &PduCache) -> KeyResponseMemoStats {
        cache.stats().key_responses
    }

    #[test]
    fn the_same_keys_are_held_once_and_each_server_keeps_its_own_validity() {
        let cache = PduCache::new(16);
        let first = checked_key_response(Some(&cache), "a.example", &response(1, 5_000), 1_000);
        let second = checked_key_response(Some(&cache), "a.example", &response(1, 9_000), 2_000);
        let (first, second) = (first.unwrap(), second.unwrap());
        assert!(Arc::ptr_eq(&first.shared, &second.shared));
        assert_eq!(cache.key_interner().len(), 1);
        let times = |valid_until_ts, fetched_at_ts| KeyTimes {
            valid_until_ts,
            fetched_at_ts,
        };
        assert_eq!(
            (first.times, second.times),
            (times(5_000, 1_000), times(9_000, 2_000))
        );
        // Each server's own times decide, not those of the shared set.
        assert!(second.key_for_request("ed25519:k", 9_000).is_ok());
        assert!(first.key_for_request("ed25519:k", 5_001).is_err());
        let v5 = room_version("5").unwrap();
        assert!(second.key_for_event("ed25519:k", 9_000, v5).is_ok());
        assert!(first.key_for_event("ed25519:k", 5_001, v5).is_err());
        let other = checked_key_response(Some(&cache), "a.example", &response(2, 5_000), 1_000);
        assert!(!Arc::ptr_eq(&other.unwrap().shared, &first.shared));
        assert_eq!(cache.key_interner().len(), 2);
    }

    #[test]
    fn validity_is_capped_as_the_key_set_caps_it() {
        let body = response(1, (1 << 53) - 1);
        let held = checked_key_response(None, "a.example", &body, 1_000).unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        let set = verify_server_keys(&value, "a.example", 1_000).unwrap();
        let capped = set.effective_valid_until_ts();
        assert!(capped < (1 << 53) - 1);
        assert_eq!(held.effective_valid_until_ts(), capped);
    }

    #[test]
    fn the_same_bytes_asked_under_the_same_name_hit_with_the_fetch_time_of_each_server() {
        let cache = PduCache::new(16);
        let body = response(1, 50_000);
        let first = checked_key_response(Some(&cache), "a.example", &body, 1_000).unwrap();
        let second = checked_key_response(Some(&cache), "a.example", &body, 3_000).unwrap();
        let stats = memo_stats(&cache);
        assert_eq!((stats.hits, stats.misses), (1, 1));
        assert_eq!(second.times.fetched_at_ts, 3_000);
        assert_eq!(first.times.fetched_at_ts, 1_000);
        assert_eq!(
            second,
            checked_key_response(None, "a.example", &body, 3_000).unwrap(),
            "a hit gives what a full check gives"
        );
    }

    /// A response that differs in any way from the remembered one is checked for real.
    #[test]
    fn tampered_foreign_or_misaddressed_responses_are_checked_in_full_and_refused() {
        let cache = PduCache::new(16);
        let genuine = response(1, 50_000);
        checked_key_response(Some(&cache), "a.example", &genuine, 0).unwrap();
        let mut extended = genuine.to_vec();
        let at = String::from_utf8(extended.clone())
            .unwrap()
            .find("50000")
            .unwrap();
        extended[at] = b'9';
        // The same keys listed, signed by another key under the same key id.
        let mut foreign: serde_json::Map<String, Value> = serde_json::from_slice(&genuine).unwrap();
        let forged = serde_json::from_slice::<Value>(&response(2, 50_000)).unwrap();
        foreign.insert("signatures".into(), forged["signatures"].clone());
        let foreign = Bytes::from(Value::Object(foreign).to_string());
        let refused = [
            (
                "a.example",
                Bytes::from(extended),
                "not properly self-signed",
            ),
            ("a.example", foreign, "not properly self-signed"),
            ("b.example", genuine.clone(), "but \"b.example\" was asked"),
        ];
        for (expected_misses, (server, body, why)) in (2..).zip(refused) {
            let error = checked_key_response(Some(&cache), server, &body, 0).unwrap_err();
            assert!(error.contains(why), "{server}: {error}");
            let stats = memo_stats(&cache);
            assert_eq!((stats.hits, stats.misses), (0, expected_misses));
        }
        assert_eq!(
            cache.key_responses().len(),
            1,
            "refusals are not remembered"
        );
        // A response that b.example signed verifies under its own name, and is its own entry.
        let other = response_of("b.example", &signing_key(1), 50_000);
        checked_key_response(Some(&cache), "b.example", &other, 0).unwrap();
        assert_eq!(cache.key_responses().len(), 2);
    }

    #[test]
    fn the_memo_forgets_its_oldest_response_past_its_bound() {
        let memo = KeyResponseMemo::new(2);
        let verified = |seed| VerifiedResponse {
            shared: Arc::new(
                checked_key_response(None, "a.example", &response(seed, 5), 0)
                    .unwrap()
                    .shared
                    .as_ref()
                    .clone(),
            ),
            valid_until_ts: 5,
        };
        for seed in 1..=3 {
            memo.record("a.example", &response(seed, 5), verified(seed));
        }
        assert_eq!(memo.len(), 2);
        assert_eq!(memo.stats().evictions, 1);
        assert!(memo.verified("a.example", &response(1, 5)).is_none());
        assert!(memo.verified("a.example", &response(3, 5)).is_some());
    }

    #[test]
    fn a_held_response_is_signed_again_when_half_its_validity_is_gone_or_the_clock_went_back() {
        let validity_ms = 1_000;
        assert!(!needs_resigning(1_000, 0, validity_ms));
        assert!(!needs_resigning(1_000, 500, validity_ms));
        assert!(needs_resigning(1_000, 501, validity_ms));
        assert!(needs_resigning(1_000, 2_000, validity_ms));
        assert!(
            needs_resigning(3_000, 1_999, validity_ms),
            "the clock went back"
        );
        assert!(!needs_resigning(3_000, 2_000, validity_ms));
    }

    struct FixedNetwork(u64);

    impl crate::server::clock::NetworkClock for FixedNetwork {
        fn network_now_ms(&self) -> u64 {
            self.0
        }
    }

    /// Key servers that each answer after 100 ms; `down.example` never answers. (Tests that
    /// only serve never call them.)
    struct SlowKeyServers {
        asked: std::rc::Rc<RefCell<Vec<String>>>,
    }

    impl crate::server::transport::Transport for SlowKeyServers {
        fn send(
            &self,
            destination: &str,
            _request: Request<Bytes>,
        ) -> crate::server::transport::LocalFuture<
            Result<hyper::Response<Bytes>, crate::server::transport::TransportError>,
        > {
            self.asked.borrow_mut().push(destination.to_owned());
            let destination = destination.to_owned();
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                if destination == "down.example" {
                    return Err(crate::server::transport::TransportError::Broken {
                        destination,
                        reason: "down".into(),
                    });
                }
                let body = response_of(&destination, &signing_key(9), 5_000_000);
                Ok(hyper::Response::new(body))
            })
        }
    }

    #[test]
    fn the_keys_of_many_servers_are_fetched_at_once_in_their_order() {
        crate::server::clock::block_on_paused(async {
            let asked = std::rc::Rc::new(RefCell::new(Vec::new()));
            let transport = SlowKeyServers {
                asked: asked.clone(),
            };
            let config = crate::server::config::ServerConfig::new("a.example", [1; 32]);
            let clock =
                crate::server::clock::ServerClock::new(std::rc::Rc::new(FixedNetwork(1_000_000)));
            let server = crate::server::Homeserver::new(
                config,
                clock,
                std::rc::Rc::new(transport),
                crate::server::store::DurableLog::new(),
                1,
            )
            .unwrap();
            let servers = ["d.example", "b.example", "down.example", "c.example"];
            let started = tokio::time::Instant::now();
            let held = server.inner.held_keys_in_order(&servers).await;
            assert_eq!(
                started.elapsed(),
                std::time::Duration::from_millis(100),
                "one round trip for all"
            );
            assert_eq!(*asked.borrow(), servers);
            let fetched: Vec<bool> = held.iter().map(Option::is_some).collect();
            assert_eq!(fetched, [true, true, false, true], "down.example has none");
            // Held keys are not asked again.
            server.inner.held_keys_in_order(&["b.example"]).await;
            assert_eq!(asked.borrow().len(), 4);
        });
    }

    /// The body `server` answers to `GET /_matrix/key/v2/server`.
    async fn served(server: &crate::server::Homeserver) -> Bytes {
        let request = Request::get(SERVER_KEYS.path(&[]))
            .body(Bytes::new())
            .unwrap();
        let response = server.inner.clone().handle_http(request).await;
        assert!(response.status().is_success());
        response.into_body()
    }

    #[test]
    fn a_server_serves_its_held_response_until_half_its_validity_is_gone() {
        crate::server::clock::block_on_paused(async {
            let mut config = crate::server::config::ServerConfig::new("a.example", [1; 32]);
            config.key_validity = std::time::Duration::from_secs(100);
            let clock =
                crate::server::clock::ServerClock::new(std::rc::Rc::new(FixedNetwork(1_000_000)));
            let log = crate::server::store::DurableLog::new();
            let server = crate::server::Homeserver::new(
                config,
                clock.clone(),
                std::rc::Rc::new(SlowKeyServers {
                    asked: Default::default(),
                }),
                log,
                1,
            )
            .unwrap();
            let valid_until = |body: &Bytes| {
                let value: Value = serde_json::from_slice(body).unwrap();
                verify_server_keys(&value, "a.example", 0)
                    .unwrap()
                    .valid_until_ts
            };
            let first = served(&server).await;
            assert_eq!(valid_until(&first), 1_100_000);
            clock.set_skew_ms(50_000);
            assert_eq!(served(&server).await, first, "half the validity is left");
            clock.set_skew_ms(50_001);
            let second = served(&server).await;
            assert_eq!(valid_until(&second), 1_150_001, "signed again");
            clock.set_skew_ms(50_001 - 100_001);
            let third = served(&server).await;
            assert_eq!(valid_until(&third), 1_050_000, "the clock went back");
        });
    }

    proptest! {
        /// Whatever single byte of a remembered response changes, the memo does not answer
        /// for it, and the outcome is that of a full check.
        #[test]
        fn a_response_with_one_byte_changed_is_checked_in_full(
            position in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let cache = PduCache::new(16);
            let genuine = response(1, 50_000);
            checked_key_response(Some(&cache), "a.example", &genuine, 0).unwrap();
            let mut changed = genuine.to_vec();
            let at = position.index(changed.len());
            prop_assume!(changed[at] != byte);
            changed[at] = byte;
            let changed = Bytes::from(changed);
            let with_memo = checked_key_response(Some(&cache), "a.example", &changed, 7);
            prop_assert_eq!(memo_stats(&cache).hits, 0);
            prop_assert_eq!(with_memo, checked_key_response(None, "a.example", &changed, 7));
        }
    }
}
