//! Signing keys: this server's published key response, and the keys of its peers, fetched from
//! `/_matrix/key/v2/server` on first need and cached with their validity.
//!
//! Invariant: a peer's key is used only after its key response verified (every listed key
//! signed it, under the server name we asked); a cached set is refetched once its validity ends.

use crate::proto::server_keys::{ServerKeySet, build_server_keys, verify_server_keys};
use crate::proto::signing::VerifyingKey;
use crate::proto::wire::paths::SERVER_KEYS;
use crate::server::Inner;
use hyper::Request;
use hyper::body::Bytes;
use serde_json::Value;
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
    /// Shared with every check in progress: a PDU check reads the set, never copies it.
    peers: BTreeMap<String, Arc<ServerKeySet>>,
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
        if let Some(cached) = self.keys.borrow().peers.get(server)
            && cached.effective_valid_until_ts() > now_ms
        {
            return Ok(cached.clone());
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
        let set = Arc::new(set);
        self.keys
            .borrow_mut()
            .peers
            .insert(server.to_owned(), set.clone());
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
