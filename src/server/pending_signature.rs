//! Request signatures made when first read: on the fast fabric, where the receiver gets the
//! very request value its sender built, a server's X-Matrix signature is computed only if
//! something reads it.
//!
//! Every federation request is signed by its sender (one ed25519 signature over the canonical
//! request JSON, a quarter of a 100-server run's time) and checked by its receiver. Ed25519
//! signing is deterministic: the signature is a pure function of the secret key and the
//! signed bytes. So instead of an `Authorization` header, a sender on a fabric that hands
//! requests over in memory attaches a [`PendingSignature`]: the facts it would sign (origin,
//! destination, method, uri, the exact body bytes it sends) and its own key. Whoever reads the
//! header gets [`PendingSignature::header`], the very header the sender would have written,
//! signed on that first read and kept.
//!
//! A receiver that resolved the origin's key checks the request with
//! [`PendingSignature::vouches_for`]: when the key it resolved is the public half of the key
//! that would sign, the request is addressed to it, and the method, uri and body bytes it
//! received are those that would be signed, the header would verify (the argument of
//! `request_memo.rs`: the receiver's signing bytes, made from the parsed body, equal the
//! sender's, made from the content the body was written from), and the receiver accepts
//! without either end signing or verifying. Any other case (another key, bytes changed on the
//! way) signs the header now and verifies it in full, exactly as if it had come in the
//! request. So every receiver reaches the verdict it would reach with the header; in debug
//! builds every request vouched for is checked against a full verification.
//!
//! Invariants: a pending signature is made only by its signer, from its own name and secret
//! key (`client.rs`), and only on a transport that delivers the request value itself
//! ([`crate::server::transport::Transport::delivers_request_values`]); the header it yields is
//! made once and never changes.

use crate::proto::canonical_json::CanonicalJsonError;
use crate::proto::signing::{SigningError, SigningKey, VerifyingKey};
use crate::proto::xmatrix::{TextRequest, XMatrix, XMatrixError};
use hyper::body::Bytes;
use std::sync::{Arc, OnceLock};

/// The signature a request would carry, made on first read. Cheap to clone (shared).
#[derive(Clone)]
pub struct PendingSignature(Arc<Facts>);

/// What the sender would sign, and its key.
struct Facts {
    origin: String,
    destination: String,
    key: SigningKey,
    method: String,
    uri: String,
    /// The exact body bytes sent; empty when the request has no body.
    body: Bytes,
    header: OnceLock<Result<XMatrix, XMatrixError>>,
}

impl std::fmt::Debug for PendingSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let facts = &self.0;
        f.debug_struct("PendingSignature")
            .field("origin", &facts.origin)
            .field("destination", &facts.destination)
            .field("key_id", &facts.key.key_id())
            .field("method", &facts.method)
            .field("uri", &facts.uri)
            .field("signed", &facts.header.get().is_some())
            .finish()
    }
}

impl PendingSignature {
    /// The signature `key` (the origin's own) would make over the request from `origin` to
    /// `destination` whose body is sent as `body` (JSON text, or empty for none).
    pub fn new(
        origin: &str,
        destination: &str,
        key: &SigningKey,
        method: &str,
        uri: &str,
        body: Bytes,
    ) -> Self {
        Self(Arc::new(Facts {
            origin: origin.to_owned(),
            destination: destination.to_owned(),
            key: key.clone(),
            method: method.to_owned(),
            uri: uri.to_owned(),
            body,
            header: OnceLock::new(),
        }))
    }

    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    pub fn key_id(&self) -> &str {
        self.0.key.key_id()
    }

    /// Whether the header has been signed already (read by someone).
    pub fn is_signed(&self) -> bool {
        self.0.header.get().is_some()
    }

    /// The header the sender would have written: signed on the first call, then kept.
    pub fn header(&self) -> Result<&XMatrix, &XMatrixError> {
        self.0.header.get_or_init(|| self.sign()).as_ref()
    }

    fn sign(&self) -> Result<XMatrix, XMatrixError> {
        let facts = &self.0;
        let body = match facts.body.is_empty() {
            true => None,
            false => Some(std::str::from_utf8(&facts.body).map_err(|e| {
                let syntax = CanonicalJsonError::Syntax(format!("the body is not UTF-8: {e}"));
                XMatrixError::Unsignable(SigningError::CanonicalJson(syntax))
            })?),
        };
        let request = TextRequest {
            method: &facts.method,
            uri: &facts.uri,
            body,
        };
        XMatrix::sign_text(
            &request,
            false,
            &facts.origin,
            &facts.destination,
            &facts.key,
        )
    }

    /// Whether the header would verify at `receiver`, which resolved `key` for the origin and
    /// key id and received `method`, `uri` and `body`: true only when all are what would be
    /// signed. False says nothing: the caller then checks [`PendingSignature::header`] in full.
    pub fn vouches_for(
        &self,
        receiver: &str,
        key: &VerifyingKey,
        method: &str,
        uri: &str,
        body: &[u8],
    ) -> bool {
        let facts = &self.0;
        facts.destination == receiver
            && facts.key.verifying_key() == *key
            && facts.method == method
            && facts.uri == uri
            && facts.body.as_ref() == body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::xmatrix::HttpRequest;
    use serde_json::{Value, json};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed("ed25519:k", &[seed; 32]).unwrap()
    }

    const URI: &str = "/_matrix/federation/v1/send/1";

    fn pending(content: Option<&Value>) -> PendingSignature {
        let body = content.map_or_else(Bytes::new, |value| Bytes::from(value.to_string()));
        PendingSignature::new("a.example", "b.example", &key(1), "PUT", URI, body)
    }

    #[test]
    fn the_header_is_the_one_the_sender_would_have_signed() {
        let content = json!({"pdus": [{"b": 1.5, "a": "\u{e9}"}], "edus": []});
        for content in [Some(&content), None] {
            let request = HttpRequest {
                method: "PUT",
                uri: URI,
                content,
            };
            let signed_now = XMatrix::sign(&request, "a.example", "b.example", &key(1)).unwrap();
            let pending = pending(content);
            assert!(!pending.is_signed());
            assert_eq!(pending.header().unwrap(), &signed_now);
            assert!(pending.is_signed());
            let public = key(1).verifying_key();
            assert_eq!(signed_now.verify(&request, "b.example", &public), Ok(()));
        }
    }

    #[test]
    fn only_the_facts_that_would_be_signed_are_vouched_for() {
        let content = json!({"pdus": []});
        let body = content.to_string();
        let pending = pending(Some(&content));
        let good = key(1).verifying_key();
        let other = key(2).verifying_key();
        let body = body.as_bytes();
        assert!(pending.vouches_for("b.example", &good, "PUT", URI, body));
        assert!(!pending.vouches_for("c.example", &good, "PUT", URI, body));
        assert!(!pending.vouches_for("b.example", &other, "PUT", URI, body));
        assert!(!pending.vouches_for("b.example", &good, "POST", URI, body));
        assert!(!pending.vouches_for("b.example", &good, "PUT", "/x", body));
        assert!(!pending.vouches_for("b.example", &good, "PUT", URI, b"{\"pdus\":[1]}"));
        assert!(!pending.is_signed(), "checking the facts signs nothing");
    }

    /// Answers every request with the key response of its destination, signed by `key(9)`:
    /// all the keys a receiver asks for.
    struct KeyServers;

    impl crate::server::transport::Transport for KeyServers {
        fn send(
            &self,
            destination: &str,
            _request: hyper::Request<Bytes>,
        ) -> crate::server::transport::LocalFuture<
            Result<hyper::Response<Bytes>, crate::server::transport::TransportError>,
        > {
            let response = crate::proto::server_keys::build_server_keys(
                destination,
                &[key(9)],
                Default::default(),
                u64::MAX >> 12,
            )
            .unwrap();
            let body = Value::Object(response.to_json_object()).to_string();
            Box::pin(async move { Ok(hyper::Response::new(Bytes::from(body))) })
        }
    }

    struct FixedNetwork;

    impl crate::server::clock::NetworkClock for FixedNetwork {
        fn network_now_ms(&self) -> u64 {
            1_000_000
        }
    }

    fn sent_transaction() -> Value {
        json!({"origin": "a.example", "origin_server_ts": 1, "pdus": []})
    }

    /// A transaction from `a.example` with a pending signature by `signer`, for `destination`,
    /// whose body arrives as `received`.
    fn transaction(
        signer: &SigningKey,
        destination: &str,
        received: &str,
    ) -> hyper::Request<Bytes> {
        let sent = Bytes::from(sent_transaction().to_string());
        let pending = PendingSignature::new("a.example", destination, signer, "PUT", URI, sent);
        let mut request = hyper::Request::put(URI)
            .body(Bytes::from(received.to_owned()))
            .unwrap();
        request.extensions_mut().insert(pending);
        request
    }

    /// The receiver accepts a request with a pending signature exactly when its header would
    /// verify: unchanged, from the origin's key, addressed to it. Anything else is signed and
    /// refused as a bad header would be.
    #[test]
    fn a_receiver_accepts_exactly_what_would_verify() {
        crate::server::clock::block_on_paused(async {
            let config = crate::server::config::ServerConfig::new("b.example", [2; 32]);
            let clock = crate::server::clock::ServerClock::new(std::rc::Rc::new(FixedNetwork));
            let cache = std::rc::Rc::new(crate::server::PduCache::new(8));
            let server = crate::server::Homeserver::with_pdu_cache(
                config,
                clock,
                std::rc::Rc::new(KeyServers),
                crate::server::store::DurableLog::new(),
                1,
                Some(cache.clone()),
            )
            .unwrap();
            let body = sent_transaction().to_string();
            let mut changed = sent_transaction();
            changed["origin_server_ts"] = json!(2);
            let cases = [
                (key(9), "b.example", body.clone(), 200),
                (key(9), "b.example", changed.to_string(), 401),
                (key(3), "b.example", body.clone(), 401),
                (key(9), "c.example", body.clone(), 401),
            ];
            for (signer, destination, received, status) in cases {
                let request = transaction(&signer, destination, &received);
                let pending = request
                    .extensions()
                    .get::<PendingSignature>()
                    .unwrap()
                    .clone();
                let response = server.inner.clone().handle_http(request).await;
                assert_eq!(
                    response.status().as_u16(),
                    status,
                    "{signer:?} {destination}"
                );
                // (Debug builds sign every vouched-for request too, to check the vouching.)
                let signed = status != 200 || cfg!(debug_assertions);
                assert_eq!(pending.is_signed(), signed, "signed only when refused");
            }
            let stats = cache.stats().requests;
            assert_eq!((stats.deferred_vouched, stats.deferred_signed), (1, 3));
        });
    }
}
