//! A run-wide memo of the X-Matrix request signatures that servers of one run made, so that a
//! receiver can skip canonicalizing and verifying a request its sender signed in this run.
//! (On the fast fabric honest senders do not sign at all: `pending_signature.rs`. The memo
//! serves the turmoil fabric, whose requests cross a connection as bytes; it also counts the
//! pending signatures, for perf figures.)
//!
//! Every federation request is signed by its sender and verified by its receiver: canonical
//! JSON of the request and one ed25519 operation at each end. Within one simulation both ends
//! run in this process, so when a server signs a request it records the exact facts of the
//! signature: origin, key id, public key, destination, method, uri, the exact body bytes it
//! sends (through their SHA-256) and the signature. A receiver that is about to verify a
//! request asks whether exactly these facts were recorded, with the public key *it* resolved
//! for the origin and key id, the name it would verify under, and the exact bytes it received.
//!
//! Why a recorded request verifies: the sender signed `canonical(request_json(method, uri,
//! origin, destination, content))` with the secret half of the recorded public key, and sent
//! `content.to_string()` as the body (or an empty body and no content). The receiver verifies
//! the signature over `canonical(request_json(method, uri, origin, our_name, parse(body)))`
//! with its resolved key. With equal facts, `our_name` is the signed destination, the key is
//! the signing key's public half, an empty body means no content at both ends (serde_json
//! never writes an empty text), and `parse(content.to_string()) == content`: serde_json
//! writes every value a `Value` can hold (strings, `i64`/`u64` integers, finite `f64`s with
//! the `float_roundtrip` feature this crate enables, maps, arrays) in a form it parses back to
//! an equal value. So the receiver would check a genuine signature over the very bytes that
//! were signed, and ed25519 verification accepts it.
//!
//! Only successes are recorded, and a record is made only by the signer itself, from its own
//! secret key: a forged header, tampered bytes, a different key, uri, method or destination
//! all change the facts and miss, and a miss verifies in full exactly as without the memo.
//! (An exact replay of a recorded request hits, and verifies in full as well: X-Matrix has no
//! replay protection.) Hence, as with the PDU cache, a receiver reaches the same verdict with
//! or without the memo; in debug builds every hit is checked against a full verification.
//!
//! Invariants: bounded (first in, first out past `entries_max`); the set is never iterated,
//! so its order cannot leak into a run; a lookup changes nothing but the counters.

use crate::proto::signing::VerifyingKey;
use crate::server::fifo_map::FifoMap;
use crate::server::store::id_map::IdKeys;
use sha2::{Digest as _, Sha256};
use std::cell::{Cell, RefCell};

/// How many signatures the memo holds unless told otherwise: a request is looked up within
/// seconds of simulated time of its signing, and a large run signs about a thousand a second.
pub const REQUEST_MEMO_ENTRIES_DEFAULT: usize = 65_536;

/// The facts of one request signature, as the signer made it or as a receiver would check it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SignedRequest<'a> {
    pub origin: &'a str,
    pub key_id: &'a str,
    pub public_key: &'a VerifyingKey,
    /// The server the signed JSON names as destination (at a receiver: its own name).
    pub destination: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    /// The exact body bytes sent or received; empty when the request has no body.
    pub body: &'a [u8],
    /// The unpadded base64 signature, as in the header.
    pub signature: &'a str,
}

impl SignedRequest<'_> {
    /// SHA-256 over every fact, each preceded by its length so that no two different sets of
    /// facts write the same stream.
    fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        let fields: [&[u8]; 8] = [
            self.origin.as_bytes(),
            self.key_id.as_bytes(),
            self.public_key.as_bytes(),
            self.destination.as_bytes(),
            self.method.as_bytes(),
            self.uri.as_bytes(),
            self.signature.as_bytes(),
            self.body,
        ];
        for field in fields {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
        hasher.finalize().into()
    }
}

/// How often the memo saved a verification, for perf figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestMemoStats {
    /// Signatures recorded by their signers (a request signed again is recorded once).
    pub recorded: u64,
    /// Receivers that found the request recorded and skipped its verification.
    pub hits: u64,
    /// Receivers that verified in full: an unknown or forgotten signature.
    pub misses: u64,
    pub evictions: u64,
    /// Requests sent with a pending signature instead of a signed header
    /// (`pending_signature.rs`).
    pub deferred: u64,
    /// Pending signatures a receiver accepted without anyone signing or verifying.
    pub deferred_vouched: u64,
    /// Pending signatures signed when read (and then checked in full).
    pub deferred_signed: u64,
}

/// Request signatures made by the servers of one run, by the digest of their facts.
pub struct RequestMemo {
    digests: RefCell<FifoMap<[u8; 32], (), IdKeys>>,
    stats: Cell<RequestMemoStats>,
}

impl Default for RequestMemo {
    fn default() -> Self {
        Self::new(REQUEST_MEMO_ENTRIES_DEFAULT)
    }
}

impl RequestMemo {
    /// An empty memo holding at most `entries_max` signatures (at least 1).
    pub fn new(entries_max: usize) -> Self {
        Self {
            digests: RefCell::new(FifoMap::with_hasher(entries_max)),
            stats: Cell::new(RequestMemoStats::default()),
        }
    }

    pub fn stats(&self) -> RequestMemoStats {
        self.stats.get()
    }

    pub fn len(&self) -> usize {
        self.digests.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn count(&self, change: impl FnOnce(&mut RequestMemoStats)) {
        let mut stats = self.stats.get();
        change(&mut stats);
        self.stats.set(stats);
    }

    /// Records a signature the caller has just made with the secret half of
    /// `signed.public_key`, over the request described, whose body is sent as `signed.body`.
    pub(crate) fn record(&self, signed: &SignedRequest<'_>) {
        let digest = signed.digest();
        let mut digests = self.digests.borrow_mut();
        if digests.get(&digest).is_some() {
            return;
        }
        self.count(|stats| stats.recorded += 1);
        let evicted = digests.insert(digest, ());
        self.count(|stats| stats.evictions += evicted);
    }

    /// Counts a request sent with a pending signature.
    pub(crate) fn count_deferred(&self) {
        self.count(|stats| stats.deferred += 1);
    }

    /// Counts a pending signature accepted unsigned (`vouched`) or signed on reading.
    pub(crate) fn count_deferred_check(&self, vouched: bool) {
        match vouched {
            true => self.count(|stats| stats.deferred_vouched += 1),
            false => self.count(|stats| stats.deferred_signed += 1),
        }
    }

    /// Whether exactly this signature was recorded: if so, verifying it would succeed.
    pub(crate) fn vouches_for(&self, received: &SignedRequest<'_>) -> bool {
        let found = self.digests.borrow().get(&received.digest()).is_some();
        match found {
            true => self.count(|stats| stats.hits += 1),
            false => self.count(|stats| stats.misses += 1),
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::signing::SigningKey;
    use crate::proto::xmatrix::{HttpRequest, XMatrix};
    use proptest::prelude::*;
    use serde_json::Value;

    fn key(seed: u8) -> VerifyingKey {
        SigningKey::from_seed("ed25519:k", &[seed; 32])
            .unwrap()
            .verifying_key()
    }

    fn request<'a>(public_key: &'a VerifyingKey, body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest {
            origin: "a.example",
            key_id: "ed25519:k",
            public_key,
            destination: "b.example",
            method: "PUT",
            uri: "/_matrix/federation/v1/send/1",
            body,
            signature: "c2ln",
        }
    }

    #[test]
    fn only_the_exact_facts_recorded_are_vouched_for() {
        let memo = RequestMemo::new(8);
        let (good, other) = (key(1), key(2));
        let sent = request(&good, b"{\"a\":1}");
        assert!(!memo.vouches_for(&sent));
        memo.record(&sent);
        assert!(memo.vouches_for(&sent));
        let changed = [
            SignedRequest {
                origin: "x.example",
                ..sent
            },
            SignedRequest {
                key_id: "ed25519:j",
                ..sent
            },
            SignedRequest {
                public_key: &other,
                ..sent
            },
            SignedRequest {
                destination: "c.example",
                ..sent
            },
            SignedRequest {
                method: "POST",
                ..sent
            },
            SignedRequest {
                uri: "/_matrix/federation/v1/send/2",
                ..sent
            },
            SignedRequest {
                body: b"{\"a\":2}",
                ..sent
            },
            SignedRequest { body: b"", ..sent },
            SignedRequest {
                signature: "c2lo",
                ..sent
            },
            // Moving bytes between fields changes the framing, not only the concatenation.
            SignedRequest {
                origin: "a.exampleed25519:k",
                key_id: "",
                ..sent
            },
        ];
        for tampered in changed {
            assert!(!memo.vouches_for(&tampered), "{tampered:?}");
        }
        let stats = memo.stats();
        assert_eq!((stats.recorded, stats.hits, stats.misses), (1, 1, 11));
    }

    /// What an interceptor or a forger may change between the signer and the receiver.
    #[derive(Clone, Copy, Debug)]
    enum Tamper {
        Nothing,
        /// One byte of the body replaced (the result may not be JSON any more).
        BodyByte(usize, u8),
        /// The body re-serialized with spaces: the same JSON, other bytes.
        BodySpacing,
        Uri,
        Method,
        /// The header names another destination; the receiver is the signed one.
        HeaderDestination,
        /// Received by another server than the one the request was signed for.
        Receiver,
        /// Signed by a forger's key under the origin's key id.
        ForgedSignature,
        /// The receiver resolved another key for the origin's key id.
        ReceiverKey,
    }

    fn tamper() -> impl Strategy<Value = Tamper> {
        prop_oneof![
            3 => Just(Tamper::Nothing),
            1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Tamper::BodyByte(at, byte)),
            1 => Just(Tamper::BodySpacing),
            1 => Just(Tamper::Uri),
            1 => Just(Tamper::Method),
            1 => Just(Tamper::HeaderDestination),
            1 => Just(Tamper::Receiver),
            1 => Just(Tamper::ForgedSignature),
            1 => Just(Tamper::ReceiverKey),
        ]
    }

    fn json_body() -> impl Strategy<Value = Option<Value>> {
        prop::option::of(crate::proto::xmatrix::strategies::any_json())
    }

    /// What the receiver concludes by verifying in full, as `http.rs` does without the memo:
    /// the body must be JSON, the header's destination ours, and the signature valid.
    fn full_verdict(
        header: &XMatrix,
        method: &str,
        uri: &str,
        body: &[u8],
        receiver: &str,
        key: &VerifyingKey,
    ) -> bool {
        let content = match body.is_empty() {
            true => None,
            false => match serde_json::from_slice::<Value>(body) {
                Ok(value) => Some(value),
                Err(_) => return false,
            },
        };
        let request = HttpRequest {
            method,
            uri,
            content: content.as_ref(),
        };
        header.verify(&request, receiver, key).is_ok()
    }

    proptest! {
        /// For random requests, honest or tampered, the memo never vouches for a request the
        /// full verification refuses, and vouches for every untampered one.
        #[test]
        fn the_memo_verdict_is_the_full_verdict(
            content in json_body(),
            uri in "/_matrix/federation/v1/[a-z0-9%?=&]{0,20}",
            tamper in tamper(),
        ) {
            let memo = RequestMemo::new(16);
            let signer = SigningKey::from_seed("ed25519:k", &[1; 32]).unwrap();
            let forger = SigningKey::from_seed("ed25519:k", &[2; 32]).unwrap();
            let (origin, destination) = ("a.example", "b.example");
            let request = HttpRequest { method: "PUT", uri: &uri, content: content.as_ref() };
            let (header, body) =
                XMatrix::sign_serialized(&request, origin, destination, &signer).unwrap();
            let mut body = body.unwrap_or_default().into_bytes();
            let public_key = signer.verifying_key();
            memo.record(&SignedRequest {
                origin,
                key_id: header.key_id(),
                public_key: &public_key,
                destination,
                method: "PUT",
                uri: &uri,
                body: &body,
                signature: header.signature(),
            });
            let (mut header, mut method, mut uri, mut receiver, mut key) =
                (header, "PUT", uri.clone(), destination, public_key);
            match tamper {
                Tamper::Nothing => {}
                Tamper::BodyByte(at, byte) if !body.is_empty() => {
                    let at = at % body.len();
                    body[at] = byte;
                }
                Tamper::BodyByte(..) => body = b"{}".to_vec(),
                Tamper::BodySpacing => {
                    body = match &content {
                        Some(value) => serde_json::to_vec_pretty(value).unwrap(),
                        None => b" ".to_vec(),
                    }
                }
                Tamper::Uri => uri.push('x'),
                Tamper::Method => method = "POST",
                Tamper::HeaderDestination => {
                    let text = header.to_header_value().replace(destination, "c.example");
                    header = XMatrix::parse(&text).unwrap();
                }
                Tamper::Receiver => receiver = "c.example",
                Tamper::ForgedSignature => {
                    header = XMatrix::sign_serialized(&request, origin, destination, &forger)
                        .unwrap()
                        .0;
                }
                Tamper::ReceiverKey => key = forger.verifying_key(),
            }
            let full = full_verdict(&header, method, &uri, &body, receiver, &key);
            let vouched = header.check_destination(receiver).is_ok()
                && memo.vouches_for(&SignedRequest {
                    origin: header.origin(),
                    key_id: header.key_id(),
                    public_key: &key,
                    destination: receiver,
                    method,
                    uri: &uri,
                    body: &body,
                    signature: header.signature(),
                });
            prop_assert!(!vouched || full, "vouched for a request that does not verify");
            if matches!(tamper, Tamper::Nothing) {
                prop_assert!(vouched && full);
            }
        }
    }

    #[test]
    fn the_oldest_signature_goes_first_and_repeats_are_kept_once() {
        let memo = RequestMemo::new(2);
        let public_key = key(1);
        let bodies: [&[u8]; 3] = [b"1", b"2", b"3"];
        for body in bodies {
            memo.record(&request(&public_key, body));
            memo.record(&request(&public_key, body));
        }
        assert_eq!(memo.len(), 2);
        let stats = memo.stats();
        assert_eq!((stats.recorded, stats.evictions), (3, 1));
        assert!(!memo.vouches_for(&request(&public_key, b"1")));
        assert!(memo.vouches_for(&request(&public_key, b"3")));
    }
}
