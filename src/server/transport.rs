//! The one small interface between a homeserver and the network it runs on.
//!
//! A server sends requests through a [`Transport`] and answers requests through an
//! [`HttpHandler`]. Both speak whole HTTP messages with byte bodies, so the same server code runs
//! on any fabric: turmoil's simulated TCP (full fidelity: connections, resets, partitions) or an
//! in-memory fabric that hands each request straight to the destination's handler.
//!
//! Invariants: the server knows nothing of the fabric behind these types; a fabric never looks
//! inside a body (it may only count its bytes, delay it, or drop it).

use hyper::body::Bytes;
use hyper::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// A future that runs on the server's single-threaded runtime.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Why a request got no HTTP response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("no route to {destination}: {reason}")]
    Unreachable { destination: String, reason: String },
    #[error("request to {destination} timed out after {timeout_ms} ms")]
    TimedOut {
        destination: String,
        timeout_ms: u64,
    },
    #[error("connection to {destination} failed mid-request: {reason}")]
    Broken { destination: String, reason: String },
    #[error("response from {destination} exceeded {limit_bytes} bytes")]
    ResponseTooLarge {
        destination: String,
        limit_bytes: usize,
    },
}

/// Sends one HTTP request to another server by its server name.
pub trait Transport {
    fn send(
        &self,
        destination: &str,
        request: Request<Bytes>,
    ) -> LocalFuture<Result<Response<Bytes>, TransportError>>;

    /// Whether the destination's handler receives the very request value sent, extensions
    /// included (an in-memory fabric), rather than bytes read off a connection. Only then may
    /// a sender attach a [`PendingSignature`](crate::server::pending_signature::PendingSignature)
    /// instead of signing its header.
    fn delivers_request_values(&self) -> bool {
        false
    }
}

/// Answers one HTTP request. The fabric tells the handler nothing about who sent it: the
/// server learns the origin from the request's signed `Authorization` header, as on the
/// real network.
pub type HttpHandler = Rc<dyn Fn(Request<Bytes>) -> LocalFuture<Response<Bytes>>>;

/// The largest response body a client reads; bigger ones are treated as a failed request.
/// Sized for a /send_join or /state answer of a large room.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The largest request body a server reads before answering 413.
pub const REQUEST_BYTES_MAX: usize = 8 * 1024 * 1024;
