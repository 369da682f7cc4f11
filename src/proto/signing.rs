//! Server signing keys and the spec's "Signing JSON" algorithm.
//!
//! A signature covers the canonical JSON of the object without its `signatures` and `unsigned`
//! keys; it is merged into `signatures.<server>.<key id>` so that other signatures survive.
//! Verification recomputes the same bytes and checks one named signature.
//!
//! Invariant: `verify_json(sign_json(x))` succeeds for every object `x` that canonical JSON
//! accepts, and any change to a signed key's value makes it fail.

use crate::proto::base64;
use crate::proto::canonical_json::{CanonicalJsonError, Numbers, object_to_canonical_bytes};
use ed25519_dalek::{Signer as _, Verifier as _};
use serde_json::{Map, Value};

/// The only signing algorithm Matrix uses.
pub const ED25519: &str = "ed25519";

/// A server's ed25519 signing key with its key id, such as `ed25519:a_XYZ`.
#[derive(Clone)]
pub struct SigningKey {
    key_id: String,
    secret: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key_base64())
            .finish()
    }
}

/// Why a key id, key or signature is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("key id {0:?} must look like \"ed25519:<version>\" with a version of [a-zA-Z0-9_]")]
    BadKeyId(String),
    #[error("{what} is not valid unpadded base64")]
    BadBase64 { what: &'static str },
    #[error("{what} must be {expected} bytes, got {actual}")]
    BadLength {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("public key is not a valid ed25519 point")]
    BadPublicKey,
    #[error("no signature from {server} with key {key_id}")]
    MissingSignature { server: String, key_id: String },
    #[error("signature from {server} with key {key_id} does not verify")]
    InvalidSignature { server: String, key_id: String },
    #[error("`signatures` must be an object of objects of strings")]
    MalformedSignatures,
    #[error(transparent)]
    CanonicalJson(#[from] CanonicalJsonError),
}

/// Checks a key id of the form `ed25519:<version>`.
pub fn check_key_id(key_id: &str) -> Result<(), SigningError> {
    let bad = || SigningError::BadKeyId(key_id.to_owned());
    let (algorithm, version) = key_id.split_once(':').ok_or_else(bad)?;
    let version_ok = !version.is_empty()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if algorithm != ED25519 || !version_ok {
        return Err(bad());
    }
    Ok(())
}

impl SigningKey {
    /// A key from a 32-byte seed, as Synapse's and the spec's key files store them.
    pub fn from_seed(key_id: &str, seed: &[u8; 32]) -> Result<Self, SigningError> {
        check_key_id(key_id)?;
        Ok(Self {
            key_id: key_id.to_owned(),
            secret: ed25519_dalek::SigningKey::from_bytes(seed),
        })
    }

    /// A key from an unpadded base64 seed.
    pub fn from_seed_base64(key_id: &str, seed_base64: &str) -> Result<Self, SigningError> {
        let bytes = base64::decode_standard(seed_base64)
            .map_err(|_| SigningError::BadBase64 { what: "seed" })?;
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SigningError::BadLength {
                what: "seed",
                expected: 32,
                actual: bytes.len(),
            })?;
        Self::from_seed(key_id, &seed)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.secret.verifying_key())
    }

    pub fn public_key_base64(&self) -> String {
        base64::encode_standard(self.secret.verifying_key().as_bytes())
    }

    /// Signs raw bytes and returns the unpadded base64 signature.
    pub fn sign_bytes(&self, message: &[u8]) -> String {
        base64::encode_standard(&self.secret.sign(message).to_bytes())
    }
}

/// An ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    pub fn from_base64(text: &str) -> Result<Self, SigningError> {
        let bytes = base64::decode_standard(text)
            .map_err(|_| SigningError::BadBase64 { what: "public key" })?;
        let raw: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SigningError::BadLength {
                what: "public key",
                expected: 32,
                actual: bytes.len(),
            })?;
        ed25519_dalek::VerifyingKey::from_bytes(&raw)
            .map(Self)
            .map_err(|_| SigningError::BadPublicKey)
    }

    pub fn to_base64(&self) -> String {
        base64::encode_standard(self.0.as_bytes())
    }

    /// The 32 bytes of the compressed point, as [`VerifyingKey::to_base64`] encodes them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Checks an unpadded base64 signature over `message`.
    pub fn verify_bytes(&self, message: &[u8], signature_base64: &str) -> bool {
        let Ok(bytes) = base64::decode_standard(signature_base64) else {
            return false;
        };
        let Ok(raw) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&raw);
        self.0.verify(message, &signature).is_ok()
    }
}

/// The bytes a JSON signature covers: canonical JSON without `signatures` and `unsigned`.
pub fn signing_bytes(
    object: &Map<String, Value>,
    numbers: Numbers,
) -> Result<Vec<u8>, SigningError> {
    let mut stripped = object.clone();
    stripped.remove("signatures");
    stripped.remove("unsigned");
    Ok(object_to_canonical_bytes(&stripped, numbers)?)
}

/// Signs `object` in place as `server_name`, keeping any signatures already there.
pub fn sign_json(
    object: &mut Map<String, Value>,
    server_name: &str,
    key: &SigningKey,
    numbers: Numbers,
) -> Result<(), SigningError> {
    let signature = key.sign_bytes(&signing_bytes(object, numbers)?);
    let signatures = object
        .entry("signatures")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or(SigningError::MalformedSignatures)?;
    let by_server = signatures
        .entry(server_name)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or(SigningError::MalformedSignatures)?;
    by_server.insert(key.key_id().to_owned(), Value::String(signature));
    Ok(())
}

/// Looks up `signatures.<server_name>.<key_id>`.
pub fn find_signature<'a>(
    object: &'a Map<String, Value>,
    server_name: &str,
    key_id: &str,
) -> Result<&'a str, SigningError> {
    let missing = || SigningError::MissingSignature {
        server: server_name.to_owned(),
        key_id: key_id.to_owned(),
    };
    let signatures = match object.get("signatures") {
        None => return Err(missing()),
        Some(Value::Object(signatures)) => signatures,
        Some(_) => return Err(SigningError::MalformedSignatures),
    };
    match signatures.get(server_name) {
        None => Err(missing()),
        Some(Value::Object(by_key)) => match by_key.get(key_id) {
            None => Err(missing()),
            Some(Value::String(signature)) => Ok(signature),
            Some(_) => Err(SigningError::MalformedSignatures),
        },
        Some(_) => Err(SigningError::MalformedSignatures),
    }
}

/// Verifies the signature of `server_name` with `key_id` on `object`.
pub fn verify_json(
    object: &Map<String, Value>,
    server_name: &str,
    key_id: &str,
    key: &VerifyingKey,
    numbers: Numbers,
) -> Result<(), SigningError> {
    let signature = find_signature(object, server_name, key_id)?;
    if key.verify_bytes(&signing_bytes(object, numbers)?, signature) {
        Ok(())
    } else {
        Err(SigningError::InvalidSignature {
            server: server_name.to_owned(),
            key_id: key_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The key of the spec's appendix "Signing details" test vectors: seed
    /// `YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1`, key id `ed25519:1`, server `domain`.
    fn spec_key() -> SigningKey {
        SigningKey::from_seed_base64("ed25519:1", "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
            .unwrap()
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn spec_vector_signing_blank_json() {
        let mut blank = Map::new();
        sign_json(&mut blank, "domain", &spec_key(), Numbers::Strict).unwrap();
        assert_eq!(
            Value::Object(blank),
            json!({"signatures": {"domain": {"ed25519:1":
                "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"}}})
        );
    }

    #[test]
    fn spec_vector_signing_json_with_data() {
        let mut data = object(json!({"one": 1, "two": "Two"}));
        sign_json(&mut data, "domain", &spec_key(), Numbers::Strict).unwrap();
        assert_eq!(
            Value::Object(data),
            json!({"one": 1, "two": "Two", "signatures": {"domain": {"ed25519:1":
                "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}}})
        );
    }

    #[test]
    fn verify_accepts_own_signature_and_rejects_tampering() {
        let key = spec_key();
        let mut data = object(json!({"a": [1, 2], "unsigned": {"age": 5}}));
        sign_json(&mut data, "domain", &key, Numbers::Strict).unwrap();
        let public = key.verifying_key();
        verify_json(&data, "domain", "ed25519:1", &public, Numbers::Strict).unwrap();
        // `unsigned` is not covered.
        data.insert("unsigned".into(), json!({"age": 99}));
        verify_json(&data, "domain", "ed25519:1", &public, Numbers::Strict).unwrap();
        data.insert("a".into(), json!([1, 3]));
        assert!(matches!(
            verify_json(&data, "domain", "ed25519:1", &public, Numbers::Strict),
            Err(SigningError::InvalidSignature { .. })
        ));
        assert!(matches!(
            verify_json(&data, "other", "ed25519:1", &public, Numbers::Strict),
            Err(SigningError::MissingSignature { .. })
        ));
    }

    #[test]
    fn key_ids_and_seeds_are_validated() {
        assert!(check_key_id("ed25519:a_1").is_ok());
        for bad in ["ed25519:", "curve:1", "ed25519", "ed25519:a-b"] {
            assert!(check_key_id(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            SigningKey::from_seed_base64("ed25519:1", "AAAA"),
            Err(SigningError::BadLength {
                expected: 32,
                actual: 3,
                ..
            })
        ));
        assert!(VerifyingKey::from_base64("!!").is_err());
    }

    #[test]
    fn public_key_round_trips_through_base64() {
        let key = spec_key();
        let public = VerifyingKey::from_base64(&key.public_key_base64()).unwrap();
        assert_eq!(public, key.verifying_key());
        assert_eq!(public.to_base64(), key.public_key_base64());
    }
}
