//! Checking a PDU that came from another server: its format for the room's version, the
//! signatures the spec requires (against keys fetched from their servers), and its content
//! hash. The outcome is the event to store (possibly in redacted form) or the reason to drop it.
//!
//! Many servers of one simulation receive the same event as the same signed JSON. A
//! [`PduCache`], when the lab gives one to every server of a run, parses such an event once and
//! verifies it once per set of verifying keys, and hands every server the same immutable
//! `Arc<Pdu>`, so the event is also stored once. (The cache also carries the run's other
//! shared memos: keys, key responses, request signatures and transaction answers.) Each
//! server still fetches the keys itself,
//! counts its own drops and redactions, and keeps its own indexes: only pure work is shared.
//!
//! Invariants: an event this returns as accepted carries valid signatures from every required
//! server; an event whose content hash does not match is returned only in redacted form; with
//! or without a cache, a server sees the same outcome for the same bytes and keys, because the
//! cache is keyed by a hash of the exact JSON, the room version and every key the
//! verification may consult. (Unless a test turned a defence off in
//! [`crate::server::config::Defences`].)

use crate::proto::pdu::{
    KeyQuery, Pdu, Verification, required_signers, signature_key_queries, verify_pdu,
};
use crate::proto::room_version::RoomVersion;
use crate::proto::signing::VerifyingKey;
use crate::proto::wire::RawPdu;
use crate::server::Inner;
use crate::server::fifo_map::FifoMap;
use crate::server::inbound::answers::AnswerInterner;
use crate::server::inbound::pdu_text::PduTextMemo;
use crate::server::keys::{HeldKeys, KeyInterner, KeyResponseMemo, KeyResponseMemoStats};
use crate::server::request_memo::{RequestMemo, RequestMemoStats};
use crate::server::store::id_map::IdKeys;
use crate::server::store::shared_resolutions::{SharedResolutionStats, SharedResolutions};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A received PDU that passed the signature check.
#[derive(Clone, Debug)]
pub(crate) struct CheckedPdu {
    pub pdu: Arc<Pdu>,
    /// The content hash did not match: `pdu` is the redacted form.
    pub held_redacted: bool,
}

/// Why a received PDU is dropped before it reaches the store.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub(crate) enum DropReason {
    #[error("invalid PDU: {0}")]
    Format(String),
    #[error("bad signature: {0}")]
    Signature(String),
}

/// How many distinct PDUs a cache holds unless told otherwise: far more than the events of a
/// large run's room, few enough that the cache's own memory stays small.
pub const PDU_CACHE_ENTRIES_DEFAULT: usize = 65_536;

/// How many distinct key sets one PDU's verdicts are remembered for. Keys rarely change within
/// a run; an attacker publishing many keys only costs recomputation.
const VERDICTS_PER_PDU_MAX: usize = 4;

/// The answer of a key lookup for each query [`signature_key_queries`] lists, in that order.
type KeysUsed = Vec<Option<VerifyingKey>>;

/// What verifying one PDU under one set of keys gave.
#[derive(Clone, Debug)]
enum Verdict {
    Valid,
    /// The content hash did not match; the redacted form, shared too.
    Redacted(Arc<Pdu>),
    BadSignature(String),
}

/// A parsed PDU with what checking its signatures looks up, worked out once per PDU (with a
/// [`PduCache`], once per run) rather than once per server that receives it.
#[derive(Debug)]
struct ParsedEvent {
    pdu: Arc<Pdu>,
    /// [`required_signers`], in its order: the servers whose keys the check needs.
    signers: Vec<String>,
    /// [`signature_key_queries`], in its order, each as (index into `signers`, key id).
    queries: Vec<(usize, String)>,
}

impl ParsedEvent {
    fn new(pdu: Pdu) -> Self {
        let signers: Vec<String> = required_signers(&pdu).into_iter().collect();
        let queries = signature_key_queries(&pdu)
            .into_iter()
            .map(|(server, key_id)| {
                let index = signers
                    .iter()
                    .position(|signer| *signer == server)
                    .expect("every key query is of a required signer");
                (index, key_id)
            })
            .collect();
        Self {
            pdu: Arc::new(pdu),
            signers,
            queries,
        }
    }
}

/// Everything learnt about one exact JSON object in one room version.
struct Entry {
    parsed: Parsed,
    verdicts: Vec<(KeysUsed, Verdict)>,
}

/// How often the cache saved work, for perf figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PduCacheStats {
    pub parse_hits: u64,
    pub parse_misses: u64,
    pub verify_hits: u64,
    pub verify_misses: u64,
    pub evictions: u64,
    /// Request signatures skipped through the run's [`RequestMemo`].
    pub requests: RequestMemoStats,
    /// Key responses whose check was skipped through the run's [`KeyResponseMemo`].
    pub key_responses: KeyResponseMemoStats,
    /// State resolutions found in the run's [`SharedResolutions`].
    pub resolutions: SharedResolutionStats,
}

/// Parsed and verified PDUs shared by the servers of one run, keyed by the SHA-256 of the
/// room version and the exact JSON. Bounded: past `entries_max` the oldest entry is
/// forgotten (first in, first out), which only costs a recomputation.
pub struct PduCache {
    entries: RefCell<FifoMap<[u8; 32], Entry, IdKeys>>,
    stats: Cell<PduCacheStats>,
    /// Peers' parsed keys, held once for the run (see `keys.rs`).
    keys: KeyInterner,
    /// Key responses that verified in this run (see `keys.rs`).
    key_responses: KeyResponseMemo,
    /// Request signatures made in this run (see `request_memo.rs`).
    requests: RequestMemo,
    /// Transaction answers given in this run (see `inbound/answers.rs`).
    answers: AnswerInterner,
    /// What was read from PDU texts received in transactions (see `inbound/pdu_text.rs`).
    pdu_texts: PduTextMemo,
    /// State resolutions made in this run (see `store/shared_resolutions.rs`).
    resolutions: Arc<SharedResolutions>,
}

impl PduCache {
    /// An empty cache holding at most `entries_max` PDUs (at least 1).
    pub fn new(entries_max: usize) -> Self {
        Self {
            entries: RefCell::new(FifoMap::with_hasher(entries_max)),
            stats: Cell::new(PduCacheStats::default()),
            keys: Default::default(),
            key_responses: Default::default(),
            requests: Default::default(),
            answers: Default::default(),
            pdu_texts: Default::default(),
            resolutions: Default::default(),
        }
    }

    pub(crate) fn key_interner(&self) -> &KeyInterner {
        &self.keys
    }

    pub(crate) fn key_responses(&self) -> &KeyResponseMemo {
        &self.key_responses
    }

    pub(crate) fn request_memo(&self) -> &RequestMemo {
        &self.requests
    }

    pub(crate) fn answers(&self) -> &AnswerInterner {
        &self.answers
    }

    pub(crate) fn pdu_texts(&self) -> &PduTextMemo {
        &self.pdu_texts
    }

    pub(crate) fn resolutions(&self) -> &Arc<SharedResolutions> {
        &self.resolutions
    }

    pub fn stats(&self) -> PduCacheStats {
        PduCacheStats {
            requests: self.requests.stats(),
            key_responses: self.key_responses.stats(),
            resolutions: self.resolutions.stats(),
            ..self.stats.get()
        }
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn count(&self, change: impl FnOnce(&mut PduCacheStats)) {
        let mut stats = self.stats.get();
        change(&mut stats);
        self.stats.set(stats);
    }

    /// The parsed PDU for these exact bytes, parsing on first sight (`raw` reads the JSON
    /// object then).
    fn parse(
        &self,
        key: &[u8; 32],
        raw: impl FnOnce() -> Result<RawPdu, String>,
        version: &'static RoomVersion,
    ) -> Parsed {
        if let Some(entry) = self.entries.borrow().get(key) {
            self.count(|stats| stats.parse_hits += 1);
            return entry.parsed.clone();
        }
        self.count(|stats| stats.parse_misses += 1);
        let parsed = raw().and_then(|raw| parse(raw, version));
        self.insert(
            *key,
            Entry {
                parsed: parsed.clone(),
                verdicts: Vec::new(),
            },
        );
        parsed
    }

    fn insert(&self, key: [u8; 32], entry: Entry) {
        let evicted = self.entries.borrow_mut().insert(key, entry);
        self.count(|stats| stats.evictions += evicted);
    }

    fn verdict(&self, key: &[u8; 32], keys_used: &KeysUsed) -> Option<Verdict> {
        let entries = self.entries.borrow();
        let found = entries
            .get(key)?
            .verdicts
            .iter()
            .find(|(used, _)| used == keys_used)
            .map(|(_, verdict)| verdict.clone());
        match found {
            Some(_) => self.count(|stats| stats.verify_hits += 1),
            None => self.count(|stats| stats.verify_misses += 1),
        }
        found
    }

    fn remember_verdict(&self, key: &[u8; 32], keys_used: KeysUsed, verdict: Verdict) {
        if let Some(entry) = self.entries.borrow_mut().get_mut(key)
            && entry.verdicts.len() < VERDICTS_PER_PDU_MAX
        {
            entry.verdicts.push((keys_used, verdict));
        }
    }
}

type Parsed = Result<Arc<ParsedEvent>, String>;

fn parse(raw: RawPdu, version: &'static RoomVersion) -> Parsed {
    Pdu::from_json(raw, version)
        .map(|pdu| Arc::new(ParsedEvent::new(pdu)))
        .map_err(|e| e.to_string())
}

/// The cache key of a raw PDU: the room version and the JSON serialized as serde_json writes
/// a map (keys sorted, numbers exact), which differs whenever the parsed JSON differs (as
/// [`Inner::parse_received_pdu`] keys it).
#[cfg(test)]
fn cache_key(raw: &RawPdu, version: &RoomVersion) -> [u8; 32] {
    PduDigest::of_raw(raw).0.key(version)
}

/// The cache key of a PDU received as JSON text: the room version and the exact bytes. An
/// honest server writes a PDU as serde_json writes its map, so both keys of one event agree;
/// other bytes for the same JSON only cost a second entry.
fn text_cache_key(bytes: &[u8], version: &RoomVersion) -> [u8; 32] {
    PduDigest::of_bytes(bytes).key(version)
}

/// A PDU's bytes hashed, before the room version completes them into its cache key: a
/// transaction's PDUs are serialized once, for the size check, before their rooms are known.
///
/// The key is SHA-256 over the bytes, a zero byte and the version id. JSON text holds no raw
/// zero byte and no version id does, so the last zero byte tells where the bytes end: two
/// different (bytes, version) pairs never hash the same stream.
#[derive(Clone)]
pub(crate) struct PduDigest(Sha256);

impl PduDigest {
    pub(crate) fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::new_with_prefix(bytes))
    }

    /// The SHA-256 of the bytes alone (no version): a key for facts that hold in every room.
    pub(crate) fn finish(&self) -> [u8; 32] {
        self.0.clone().finalize().into()
    }

    /// The digest of `raw` as serde_json writes it, and the length of that text.
    pub(crate) fn of_raw(raw: &RawPdu) -> (Self, usize) {
        let bytes = serde_json::to_vec(raw).expect("a JSON map serializes");
        (Self::of_bytes(&bytes), bytes.len())
    }

    fn key(&self, version: &RoomVersion) -> [u8; 32] {
        let mut hasher = self.0.clone();
        hasher.update([0]);
        hasher.update(version.id.as_bytes());
        hasher.finalize().into()
    }
}

/// A PDU's JSON object read from its text.
fn object_of(text: &RawValue) -> Result<RawPdu, String> {
    serde_json::from_str(text.get()).map_err(|e| format!("not a JSON object: {e}"))
}

fn verify(pdu: &Pdu, lookup: &impl Fn(&KeyQuery<'_>) -> Option<VerifyingKey>) -> Verdict {
    match verify_pdu(pdu, lookup) {
        Verification::Valid => Verdict::Valid,
        Verification::HashMismatch { redacted } => Verdict::Redacted(Arc::new(*redacted)),
        Verification::BadSignature(failure) => Verdict::BadSignature(failure.to_string()),
    }
}

impl Inner {
    /// Checks a raw PDU of a room of `version`.
    pub(crate) async fn check_received_pdu(
        &self,
        raw: RawPdu,
        version: &'static RoomVersion,
    ) -> Result<CheckedPdu, DropReason> {
        self.check_received_pdu_ref(&raw, version).await
    }

    /// Checks a raw PDU of a room of `version`, sharing the work through the run's
    /// [`PduCache`] when there is one.
    pub(crate) async fn check_received_pdu_ref(
        &self,
        raw: &RawPdu,
        version: &'static RoomVersion,
    ) -> Result<CheckedPdu, DropReason> {
        let parsed = self.parse_received_pdu(raw, version);
        self.check_parsed_pdu(&parsed, version).await
    }

    /// A raw PDU read (through the run's [`PduCache`] when there is one), not yet verified.
    pub(crate) fn parse_received_pdu(
        &self,
        raw: &RawPdu,
        version: &'static RoomVersion,
    ) -> ParsedPdu {
        self.parse_received_pdu_by(|| PduDigest::of_raw(raw).0, || raw.clone(), version)
    }

    /// A PDU read (through the run's [`PduCache`] when there is one, by `digest`, that of its
    /// object as serde_json writes it, asked for only then; `object` gives the object on a
    /// miss), not yet verified.
    pub(crate) fn parse_received_pdu_by(
        &self,
        digest: impl FnOnce() -> PduDigest,
        object: impl FnOnce() -> RawPdu,
        version: &'static RoomVersion,
    ) -> ParsedPdu {
        match &self.pdu_cache {
            Some(cache) => {
                let key = digest().key(version);
                ParsedPdu {
                    parsed: cache.parse(&key, || Ok(object()), version),
                    cache_key: Some(key),
                }
            }
            None => ParsedPdu {
                parsed: parse(object(), version),
                cache_key: None,
            },
        }
    }

    /// As [`Inner::check_received_pdu_ref`] for a PDU received as JSON text: with a cache,
    /// an event seen before costs a hash of its bytes, not a parse.
    pub(crate) async fn check_received_pdu_text(
        &self,
        text: &RawValue,
        version: &'static RoomVersion,
    ) -> Result<CheckedPdu, DropReason> {
        let parsed = self.parse_received_pdu_text(text, version);
        self.check_parsed_pdu(&parsed, version).await
    }

    /// The first half of [`Inner::check_received_pdu_text`]: the PDU read from its text
    /// (through the run's [`PduCache`] when there is one), not yet verified.
    pub(crate) fn parse_received_pdu_text(
        &self,
        text: &RawValue,
        version: &'static RoomVersion,
    ) -> ParsedPdu {
        match &self.pdu_cache {
            Some(cache) => {
                let key = text_cache_key(text.get().as_bytes(), version);
                ParsedPdu {
                    parsed: cache.parse(&key, || object_of(text), version),
                    cache_key: Some(key),
                }
            }
            None => ParsedPdu {
                parsed: object_of(text).and_then(|raw| parse(raw, version)),
                cache_key: None,
            },
        }
    }

    /// The second half of [`Inner::check_received_pdu_text`]: the signature and hash checks.
    pub(crate) async fn check_parsed_pdu(
        &self,
        parsed: &ParsedPdu,
        version: &'static RoomVersion,
    ) -> Result<CheckedPdu, DropReason> {
        let held = match &parsed.parsed {
            Ok(event) => self.held_keys_in_order(&event.signers).await,
            Err(_) => Vec::new(),
        };
        self.check_parsed_with_keys(parsed, version, &held)
    }

    /// Checks each of a batch of parsed PDUs, in order, after fetching the keys of all their
    /// signers at once: checking the events of many servers (a join to a large room, a page
    /// of history) waits for one round of key fetches, not one per server, as Synapse's key
    /// fetcher batches them.
    pub(crate) async fn check_parsed_batch(
        &self,
        batch: &[ParsedPdu],
        version: &'static RoomVersion,
    ) -> Vec<Result<CheckedPdu, DropReason>> {
        let signers: BTreeSet<&str> = batch
            .iter()
            .filter_map(|parsed| parsed.parsed.as_ref().ok())
            .flat_map(|event| event.signers.iter().map(String::as_str))
            .collect();
        let signers: Vec<&str> = signers.into_iter().collect();
        let held = self.held_keys_in_order(&signers).await;
        let keys_of = |signer: &str| {
            let index = signers.binary_search(&signer).ok()?;
            held[index].clone()
        };
        batch
            .iter()
            .map(|parsed| {
                let held: Vec<Option<HeldKeys>> = match &parsed.parsed {
                    Ok(event) => event.signers.iter().map(|signer| keys_of(signer)).collect(),
                    Err(_) => Vec::new(),
                };
                self.check_parsed_with_keys(parsed, version, &held)
            })
            .collect()
    }

    /// Reads PDUs received as JSON texts and checks them as one batch (see
    /// [`Inner::check_parsed_batch`]), in order. The texts are dropped once read, before the
    /// checks wait for keys: in a join storm thousands of answers wait at once, and each read
    /// event is the run's shared one.
    pub(crate) async fn check_texts_batch(
        &self,
        texts: Vec<Box<RawValue>>,
        version: &'static RoomVersion,
    ) -> Vec<Result<CheckedPdu, DropReason>> {
        let parsed: Vec<ParsedPdu> = texts
            .into_iter()
            .map(|text| self.parse_received_pdu_text(&text, version))
            .collect();
        self.check_parsed_batch(&parsed, version).await
    }

    /// Verifies a parsed PDU (through the cache's verdicts when there is one) under `held`,
    /// the keys of its signers in order.
    fn check_parsed_with_keys(
        &self,
        parsed: &ParsedPdu,
        version: &'static RoomVersion,
        held: &[Option<HeldKeys>],
    ) -> Result<CheckedPdu, DropReason> {
        let cached = self
            .pdu_cache
            .as_ref()
            .zip(parsed.cache_key)
            .map(|(cache, key)| (cache.as_ref(), key));
        let event = parsed.parsed.clone().map_err(|e| {
            self.metrics.borrow_mut().pdus_dropped_bad_format += 1;
            DropReason::Format(e)
        })?;
        let pdu = event.pdu.clone();
        let lookup = |query: &KeyQuery<'_>| -> Option<VerifyingKey> {
            let index = event
                .signers
                .iter()
                .position(|signer| signer == query.server_name)?;
            held[index]
                .as_ref()?
                .key_for_event(query.key_id, query.origin_server_ts, version)
                .ok()
        };
        let verdict = match &cached {
            Some((cache, key)) => {
                let keys_used = keys_used(&event, &lookup);
                cache.verdict(key, &keys_used).unwrap_or_else(|| {
                    let verdict = verify(&pdu, &lookup);
                    cache.remember_verdict(key, keys_used, verdict.clone());
                    verdict
                })
            }
            None => verify(&pdu, &lookup),
        };
        let defences = self.config.defences;
        match verdict {
            Verdict::Valid => Ok(CheckedPdu {
                pdu,
                held_redacted: false,
            }),
            // Test-only: with a defence off, the event is taken exactly as it came.
            Verdict::Redacted(_) if !defences.content_hashes => Ok(CheckedPdu {
                pdu,
                held_redacted: false,
            }),
            Verdict::BadSignature(_) if !defences.pdu_signatures => Ok(CheckedPdu {
                pdu,
                held_redacted: false,
            }),
            Verdict::Redacted(redacted) => {
                self.metrics.borrow_mut().pdus_redacted_bad_hash += 1;
                Ok(CheckedPdu {
                    pdu: redacted,
                    held_redacted: true,
                })
            }
            Verdict::BadSignature(failure) => {
                self.metrics.borrow_mut().pdus_dropped_bad_signature += 1;
                Err(DropReason::Signature(failure))
            }
        }
    }
}

/// A PDU read from the JSON text a peer sent, before its signatures are checked. It holds no
/// copy of the text: with a [`PduCache`] it is the run's shared event, so a server that must
/// wait for keys before checking many events (a join to a large room) holds them for a few
/// bytes each.
#[derive(Clone, Debug)]
pub(crate) struct ParsedPdu {
    parsed: Parsed,
    /// The key of the text in the cache, when there is one.
    cache_key: Option<[u8; 32]>,
}

impl ParsedPdu {
    /// The event, or why its text is not one.
    pub(crate) fn pdu(&self) -> Result<&Arc<Pdu>, &str> {
        self.parsed
            .as_ref()
            .map(|event| &event.pdu)
            .map_err(String::as_str)
    }
}

/// A PDU as a peer's answer carries it: a JSON object, or its JSON text (checked by its bytes).
pub(crate) trait ReceivedPdu {
    /// The PDU read (through the run's [`PduCache`] when there is one), not yet verified.
    fn parse(self, server: &Inner, version: &'static RoomVersion) -> ParsedPdu;
}

impl ReceivedPdu for RawPdu {
    fn parse(self, server: &Inner, version: &'static RoomVersion) -> ParsedPdu {
        server.parse_received_pdu(&self, version)
    }
}

impl ReceivedPdu for Box<RawValue> {
    fn parse(self, server: &Inner, version: &'static RoomVersion) -> ParsedPdu {
        server.parse_received_pdu_text(&self, version)
    }
}

impl ReceivedPdu for ParsedPdu {
    fn parse(self, _server: &Inner, _version: &'static RoomVersion) -> ParsedPdu {
        self
    }
}

/// The lookup's answer to every query the verification of `event` may make.
fn keys_used(
    event: &ParsedEvent,
    lookup: &impl Fn(&KeyQuery<'_>) -> Option<VerifyingKey>,
) -> KeysUsed {
    let origin_server_ts = event.pdu.event().origin_server_ts;
    let enforce_validity_period = event.pdu.room_version().enforce_key_validity;
    event
        .queries
        .iter()
        .map(|(index, key_id)| {
            lookup(&KeyQuery {
                server_name: &event.signers[*index],
                key_id,
                origin_server_ts,
                enforce_validity_period,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::pdu::hash_and_sign_event;
    use crate::proto::room_version::room_version;
    use crate::proto::signing::SigningKey;
    use serde_json::json;

    fn signed(body: &str, key: &SigningKey) -> RawPdu {
        let mut event = json!({
            "room_id": "!r:a.example", "sender": "@u:a.example", "origin_server_ts": 5,
            "type": "m.room.message", "content": {"body": body}, "prev_events": [],
            "auth_events": [], "depth": 3
        })
        .as_object()
        .unwrap()
        .clone();
        let version = room_version("11").unwrap();
        hash_and_sign_event(&mut event, version, "a.example", key).unwrap();
        event
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed("ed25519:k", &[seed; 32]).unwrap()
    }

    #[test]
    fn same_bytes_parse_once_and_share_the_pdu() {
        let version = room_version("11").unwrap();
        let cache = PduCache::new(8);
        let raw = signed("hi", &key(1));
        let k = cache_key(&raw, version);
        let first = cache.parse(&k, || Ok(raw.clone()), version).unwrap();
        let second = cache.parse(&k, || Ok(raw.clone()), version).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        let other = signed("ho", &key(1));
        assert_ne!(cache_key(&other, version), k);
        assert_ne!(cache_key(&raw, room_version("10").unwrap()), k);
        let stats = cache.stats();
        assert_eq!((stats.parse_hits, stats.parse_misses), (1, 1));
    }

    #[test]
    fn verdicts_are_remembered_per_set_of_keys() {
        let version = room_version("11").unwrap();
        let cache = PduCache::new(8);
        let raw = signed("hi", &key(1));
        let k = cache_key(&raw, version);
        let event = cache.parse(&k, || Ok(raw.clone()), version).unwrap();
        let good = key(1).verifying_key();
        let bad = key(2).verifying_key();
        let with = |known: VerifyingKey| move |_: &KeyQuery<'_>| Some(known);
        let used_good = keys_used(&event, &with(good));
        let used_bad = keys_used(&event, &with(bad));
        assert_eq!(used_good, vec![Some(good)]);
        assert!(cache.verdict(&k, &used_good).is_none());
        cache.remember_verdict(&k, used_good.clone(), verify(&event.pdu, &with(good)));
        cache.remember_verdict(&k, used_bad.clone(), verify(&event.pdu, &with(bad)));
        assert!(matches!(
            cache.verdict(&k, &used_good),
            Some(Verdict::Valid)
        ));
        assert!(matches!(
            cache.verdict(&k, &used_bad),
            Some(Verdict::BadSignature(_))
        ));
    }

    /// The signers and key queries worked out once per event are those the proto functions
    /// list, also for an event signed by several servers with several keys, some not ed25519.
    #[test]
    fn the_parsed_event_holds_the_signers_and_queries_of_its_pdu() {
        let version = room_version("11").unwrap();
        let mut raw = signed("multi", &key(1));
        let signatures = raw["signatures"].as_object_mut().unwrap();
        signatures.insert("b.example".into(), json!({"ed25519:x": "AAAA"}));
        let by_a = signatures["a.example"].as_object_mut().unwrap();
        by_a.insert("ed25519:a_2".into(), json!("AAAA"));
        by_a.insert("curve25519:z".into(), json!("AAAA"));
        let event = parse(raw, version).unwrap();
        let signers: Vec<String> = required_signers(&event.pdu).into_iter().collect();
        assert_eq!(event.signers, signers);
        let queries: Vec<(String, String)> = event
            .queries
            .iter()
            .map(|(index, key_id)| (event.signers[*index].clone(), key_id.clone()))
            .collect();
        assert_eq!(queries, signature_key_queries(&event.pdu));
        assert_eq!(
            queries,
            [
                ("a.example".to_owned(), "ed25519:a_2".to_owned()),
                ("a.example".to_owned(), "ed25519:k".to_owned())
            ]
        );
    }

    #[test]
    fn an_event_as_text_and_as_object_shares_one_entry() {
        let version = room_version("11").unwrap();
        let raw = signed("shared", &key(1));
        let text = serde_json::value::to_raw_value(&raw).unwrap();
        assert_eq!(
            text_cache_key(text.get().as_bytes(), version),
            cache_key(&raw, version),
            "an honest server writes a PDU as serde_json writes its map"
        );
        let spaced = RawValue::from_string(format!("{{ {}", &text.get()[1..])).unwrap();
        assert_ne!(
            text_cache_key(spaced.get().as_bytes(), version),
            cache_key(&raw, version),
            "other bytes are another entry"
        );
        let (digest, length) = PduDigest::of_raw(&raw);
        assert_eq!(digest.key(version), cache_key(&raw, version));
        assert_eq!(length, text.get().len());
        assert_ne!(
            digest.key(room_version("10").unwrap()),
            cache_key(&raw, version)
        );
        let not_an_object = RawValue::from_string("[1]".into()).unwrap();
        assert!(object_of(&not_an_object).is_err());
        assert_eq!(object_of(&text).unwrap(), raw);
    }

    #[test]
    fn the_oldest_entry_goes_first() {
        let version = room_version("11").unwrap();
        let cache = PduCache::new(2);
        let raws: Vec<RawPdu> = ["a", "b", "c"].iter().map(|b| signed(b, &key(1))).collect();
        let keys: Vec<_> = raws.iter().map(|raw| cache_key(raw, version)).collect();
        for (k, raw) in keys.iter().zip(&raws) {
            cache.parse(k, || Ok(raw.clone()), version).unwrap();
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.stats().evictions, 1);
        assert!(cache.entries.borrow().get(&keys[0]).is_none());
        assert!(cache.entries.borrow().get(&keys[2]).is_some());
    }

    #[test]
    fn a_malformed_pdu_is_remembered_as_malformed() {
        let version = room_version("11").unwrap();
        let cache = PduCache::new(2);
        let mut raw = signed("hi", &key(1));
        raw.remove("sender");
        let k = cache_key(&raw, version);
        let first = cache.parse(&k, || Ok(raw.clone()), version).unwrap_err();
        assert_eq!(
            cache.parse(&k, || Ok(raw.clone()), version).unwrap_err(),
            first
        );
        assert!(first.contains("sender"), "{first}");
    }
}
