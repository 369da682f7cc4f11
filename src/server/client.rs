//! Outbound federation requests: build the HTTP request, sign it with X-Matrix, send it through
//! the transport, and turn the answer into a typed value or an error.
//!
//! Invariant: every request this server sends to a federation endpoint carries a valid
//! X-Matrix signature by this server's key, or (on an in-memory fabric, in a run that shares
//! work) a pending one that yields exactly that header when read; only the key endpoint goes
//! unsigned.

use crate::proto::wire::{ErrorCode, MatrixError};
use crate::proto::xmatrix::{HttpRequest, TextRequest, XMatrix};
use crate::server::Inner;
use crate::server::pending_signature::PendingSignature;
use crate::server::request_memo::SignedRequest;
use crate::server::transport::TransportError;
use hyper::body::Bytes;
use hyper::{Request, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a federation request failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{destination} answered {status}: {error:?}")]
    Refused {
        destination: String,
        status: u16,
        error: Option<MatrixError>,
    },
    #[error("{destination} answered with a body that is not the expected JSON: {reason}")]
    BadResponse { destination: String, reason: String },
}

impl RequestError {
    /// Whether retrying later may help (no answer, overload, server error).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Refused { status, error, .. } => {
                *status >= 500
                    || *status == 429
                    || error
                        .as_ref()
                        .is_some_and(|e| e.errcode == ErrorCode::LimitExceeded)
            }
            Self::BadResponse { .. } => false,
        }
    }
}

impl Inner {
    /// Sends a signed federation request and parses a JSON answer.
    pub(crate) async fn federation_request<T: DeserializeOwned>(
        &self,
        destination: &str,
        method: &str,
        uri: &str,
        content: Option<&Value>,
    ) -> Result<T, RequestError> {
        let body = self
            .federation_request_raw(destination, method, uri, content)
            .await?;
        serde_json::from_slice(&body).map_err(|e| RequestError::BadResponse {
            destination: destination.to_owned(),
            reason: e.to_string(),
        })
    }

    /// As [`Inner::federation_request`], for a body written as JSON text already (see
    /// [`XMatrix::sign_text`] for `body_canonical`); the text becomes the request body as it is.
    pub(crate) async fn federation_request_text<T: DeserializeOwned>(
        &self,
        destination: &str,
        method: &str,
        uri: &str,
        body: String,
        body_canonical: bool,
    ) -> Result<T, RequestError> {
        let request = match self.defers_signatures() {
            true => self.request_pending(destination, method, uri, body.into()),
            false => {
                let to_sign = TextRequest {
                    method,
                    uri,
                    body: Some(&body),
                };
                let authorization = XMatrix::sign_text(
                    &to_sign,
                    body_canonical,
                    &self.config.name,
                    destination,
                    &self.config.signing_key,
                )
                .expect("this server's own name and request are signable");
                self.request_with(&authorization, destination, method, uri, body.into())
            }
        };
        let body = self.send_signed(destination, request).await?;
        serde_json::from_slice(&body).map_err(|e| RequestError::BadResponse {
            destination: destination.to_owned(),
            reason: e.to_string(),
        })
    }

    /// As [`Inner::federation_request`], returning the body bytes of a 200 answer.
    pub(crate) async fn federation_request_raw(
        &self,
        destination: &str,
        method: &str,
        uri: &str,
        content: Option<&Value>,
    ) -> Result<Bytes, RequestError> {
        let request = self.signed_request(destination, method, uri, content);
        self.send_signed(destination, request).await
    }

    /// The request, its body serialized and signed with X-Matrix by this server.
    fn signed_request(
        &self,
        destination: &str,
        method: &str,
        uri: &str,
        content: Option<&Value>,
    ) -> Request<Bytes> {
        if self.defers_signatures() {
            let body = content.map(|value| Bytes::from(value.to_string()));
            return self.request_pending(destination, method, uri, body.unwrap_or_default());
        }
        let signed = HttpRequest {
            method,
            uri,
            content,
        };
        let (authorization, body) = XMatrix::sign_serialized(
            &signed,
            &self.config.name,
            destination,
            &self.config.signing_key,
        )
        .expect("this server's own name and request are signable");
        let body = body.map(Bytes::from).unwrap_or_default();
        self.request_with(&authorization, destination, method, uri, body)
    }

    /// The request carrying `body` with `authorization` (made for exactly these), remembered
    /// in the run's request memo.
    fn request_with(
        &self,
        authorization: &XMatrix,
        destination: &str,
        method: &str,
        uri: &str,
        body: Bytes,
    ) -> Request<Bytes> {
        self.remember_signature(authorization, destination, method, uri, &body);
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, authorization.to_header_value())
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .expect("method, uri and headers are valid")
    }

    /// Whether this server's requests carry a [`PendingSignature`] rather than a signed
    /// header: on a transport that hands the request value itself to its receiver, in a run
    /// whose servers share their work (the same runs as the request memo's).
    fn defers_signatures(&self) -> bool {
        self.pdu_cache.is_some() && self.transport.delivers_request_values()
    }

    /// The request carrying `body` (JSON text, or empty for none) with a signature made only
    /// when read (see `pending_signature.rs`), instead of an `Authorization` header.
    fn request_pending(
        &self,
        destination: &str,
        method: &str,
        uri: &str,
        body: Bytes,
    ) -> Request<Bytes> {
        let pending = PendingSignature::new(
            &self.config.name,
            destination,
            &self.config.signing_key,
            method,
            uri,
            body.clone(),
        );
        if let Some(cache) = &self.pdu_cache {
            cache.request_memo().count_deferred();
        }
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .expect("method, uri and headers are valid");
        request.extensions_mut().insert(pending);
        request
    }

    /// Sends a signed request and returns the body of a 200 answer.
    async fn send_signed(
        &self,
        destination: &str,
        request: Request<Bytes>,
    ) -> Result<Bytes, RequestError> {
        self.metrics.borrow_mut().requests_sent += 1;
        let response = self.transport.send(destination, request).await?;
        let status = response.status();
        let body = response.into_body();
        self.metrics.borrow_mut().response_bytes_received += body.len() as u64;
        if status != StatusCode::OK {
            let error = serde_json::from_slice::<MatrixError>(&body).ok();
            return Err(RequestError::Refused {
                destination: destination.to_owned(),
                status: status.as_u16(),
                error,
            });
        }
        Ok(body)
    }
}

impl Inner {
    /// Records a request signature just made, for the receiver to find in the run's
    /// [`RequestMemo`](crate::server::request_memo::RequestMemo) when there is one.
    fn remember_signature(
        &self,
        authorization: &XMatrix,
        destination: &str,
        method: &str,
        uri: &str,
        body: &[u8],
    ) {
        let Some(cache) = &self.pdu_cache else {
            return;
        };
        let public_key = self.config.signing_key.verifying_key();
        cache.request_memo().record(&SignedRequest {
            origin: &self.config.name,
            key_id: authorization.key_id(),
            public_key: &public_key,
            destination,
            method,
            uri,
            body,
            signature: authorization.signature(),
        });
    }
}

/// The answer to a raw request: status and body bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct RawAnswer {
    pub status: u16,
    pub body: Bytes,
}

impl crate::server::Homeserver {
    /// Sends a request exactly as given: signed with this server's key when `signed`, else with
    /// no `Authorization` header. For tests and for adversaries, which must speak the same wire
    /// as honest servers.
    pub async fn raw_request(
        &self,
        destination: &str,
        method: &str,
        uri: &str,
        content: Option<&Value>,
        signed: bool,
    ) -> Result<RawAnswer, TransportError> {
        let inner = &self.inner;
        let body = content
            .map(|value| Bytes::from(value.to_string()))
            .unwrap_or_default();
        let mut request = Request::builder().method(method).uri(uri);
        if signed {
            let to_sign = HttpRequest {
                method,
                uri,
                content,
            };
            let authorization = XMatrix::sign(
                &to_sign,
                &inner.config.name,
                destination,
                &inner.config.signing_key,
            )
            .expect("this server's own name and request are signable");
            request = request.header(header::AUTHORIZATION, authorization.to_header_value());
        }
        let request = request
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .expect("method, uri and headers are valid");
        let response = inner.transport.send(destination, request).await?;
        Ok(RawAnswer {
            status: response.status().as_u16(),
            body: response.into_body(),
        })
    }

    /// This server's signing key, for tests and adversaries that craft events as this server.
    pub fn signing_key(&self) -> &crate::proto::signing::SigningKey {
        &self.inner.config.signing_key
    }
}
