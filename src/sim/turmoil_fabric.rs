//! The turmoil fabric: every server is a turmoil host, requests travel over turmoil's simulated
//! TCP as HTTP/1.1 spoken by hyper.
//!
//! One connection per request keeps the model simple and makes a partition visible as it is on
//! a real network: a request whose segments are dropped times out. Turmoil has no retransmit,
//! so every request carries a timeout and the server's own retry logic does the rest.
//!
//! Invariant: nothing here reads the wall clock; timeouts run on turmoil's simulated time.

use crate::server::transport::{
    HttpHandler, LocalFuture, REQUEST_BYTES_MAX, RESPONSE_BYTES_MAX, Transport, TransportError,
};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// The port every simulated homeserver listens on, as real federation does by default.
pub const FEDERATION_PORT: u16 = 8448;

/// Serves `handler` on the federation port of the current turmoil host, forever.
pub async fn serve(handler: HttpHandler) -> std::io::Result<()> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", FEDERATION_PORT)).await?;
    loop {
        let (stream, _peer) = listener.accept().await?;
        let handler = handler.clone();
        crate::server::task::spawn_local(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(handler, request).await) }
            });
            // A peer that vanishes mid-request is normal under faults; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(handler: HttpHandler, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, REQUEST_BYTES_MAX).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return status_only(StatusCode::PAYLOAD_TOO_LARGE),
    };
    let response = handler(Request::from_parts(parts, bytes)).await;
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Full::new(body))
}

fn status_only(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Sends requests over turmoil TCP, one connection per request, with a timeout.
#[derive(Clone, Debug)]
pub struct TurmoilTransport {
    pub timeout: Duration,
}

impl Transport for TurmoilTransport {
    fn send(
        &self,
        destination: &str,
        request: Request<Bytes>,
    ) -> LocalFuture<Result<Response<Bytes>, TransportError>> {
        let destination = destination.to_owned();
        let timeout = self.timeout;
        Box::pin(async move {
            let exchange = exchange(destination.clone(), request);
            match tokio::time::timeout(timeout, exchange).await {
                Ok(result) => result,
                Err(_) => Err(TransportError::TimedOut {
                    destination,
                    timeout_ms: timeout.as_millis() as u64,
                }),
            }
        })
    }
}

async fn exchange(
    destination: String,
    request: Request<Bytes>,
) -> Result<Response<Bytes>, TransportError> {
    let unreachable = |reason: String| TransportError::Unreachable {
        destination: destination.clone(),
        reason,
    };
    let broken = |reason: String| TransportError::Broken {
        destination: destination.clone(),
        reason,
    };
    let stream = turmoil::net::TcpStream::connect((destination.as_str(), FEDERATION_PORT))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| broken(e.to_string()))?;
    let driver = crate::server::task::spawn_local(async move {
        let _ = connection.await;
    });
    let (parts, body) = request.into_parts();
    let result = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await;
    let response = match result {
        Ok(response) => response,
        Err(e) => {
            driver.abort();
            return Err(broken(e.to_string()));
        }
    };
    let (parts, body) = response.into_parts();
    let collected = Limited::new(body, RESPONSE_BYTES_MAX).collect().await;
    driver.abort();
    let bytes = collected
        .map_err(|_| TransportError::ResponseTooLarge {
            destination: destination.clone(),
            limit_bytes: RESPONSE_BYTES_MAX,
        })?
        .to_bytes();
    Ok(Response::from_parts(parts, bytes))
}

/// Simulated time read from turmoil, which runs each host on its own runtime (so a tokio
/// `Instant` would not survive a host's restart).
pub struct TurmoilClock {
    pub epoch_ms: u64,
}

impl crate::server::clock::NetworkClock for TurmoilClock {
    fn network_now_ms(&self) -> u64 {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default();
        self.epoch_ms + elapsed.as_millis() as u64
    }
}
