//! The fast fabric: every request is an in-memory message handed to the destination's HTTP
//! handler after the link's sampled latency, on one single-threaded tokio runtime whose paused
//! clock jumps to the next timer. Idle servers cost nothing.
//!
//! A message the network drops behaves as on TCP with no answer: the client waits out its
//! timeout. Requests and responses each cross the link, so a partition that forms while a
//! request is being handled loses the response, as it would on a real network.
//!
//! Invariants: all randomness comes from the RNG given at construction; the handler table is a
//! `BTreeMap`; nothing reads the wall clock.

use crate::server::transport::{HttpHandler, LocalFuture, Transport, TransportError};
use crate::sim::network::{Fate, NetworkModel};
use hyper::body::Bytes;
use hyper::{Request, Response};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;

struct FastState {
    model: NetworkModel,
    rng: ChaCha8Rng,
    /// Running servers by name; a crashed server has no entry.
    handlers: BTreeMap<String, HttpHandler>,
}

/// The in-memory network shared by every server of a run.
#[derive(Clone)]
pub struct FastNetwork {
    state: Rc<RefCell<FastState>>,
    timeout: Duration,
}

impl FastNetwork {
    pub fn new(model: NetworkModel, rng: ChaCha8Rng, timeout: Duration) -> Self {
        let state = FastState {
            model,
            rng,
            handlers: BTreeMap::new(),
        };
        Self {
            state: Rc::new(RefCell::new(state)),
            timeout,
        }
    }

    /// Starts answering requests for `server` with `handler`.
    pub fn attach(&self, server: &str, handler: HttpHandler) {
        self.state
            .borrow_mut()
            .handlers
            .insert(server.to_owned(), handler);
    }

    /// Stops answering for `server` (a crash): its requests go unanswered.
    pub fn detach(&self, server: &str) {
        self.state.borrow_mut().handlers.remove(server);
    }

    /// The transport a server named `origin` sends through.
    pub fn transport(&self, origin: &str) -> FastTransport {
        FastTransport {
            network: self.clone(),
            origin: origin.to_owned(),
        }
    }

    /// Changes the network model (the nemesis acts through this).
    pub fn with_model<T>(&self, change: impl FnOnce(&mut NetworkModel) -> T) -> T {
        change(&mut self.state.borrow_mut().model)
    }

    fn decide(&self, from: &str, to: &str) -> Fate {
        let mut state = self.state.borrow_mut();
        let FastState { model, rng, .. } = &mut *state;
        model.decide(from, to, rng)
    }

    fn handler(&self, server: &str) -> Option<HttpHandler> {
        self.state.borrow().handlers.get(server).cloned()
    }
}

/// Sends as one server over the fast fabric.
#[derive(Clone)]
pub struct FastTransport {
    network: FastNetwork,
    origin: String,
}

impl Transport for FastTransport {
    fn send(
        &self,
        destination: &str,
        request: Request<Bytes>,
    ) -> LocalFuture<Result<Response<Bytes>, TransportError>> {
        let network = self.network.clone();
        let origin = self.origin.clone();
        let destination = destination.to_owned();
        let timeout = network.timeout;
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            match exchange(&network, &origin, &destination, request, deadline).await {
                Some(response) => Ok(response),
                // Dropped messages and dead servers look alike to the client: no answer.
                None => Err(TransportError::TimedOut {
                    destination,
                    timeout_ms: timeout.as_millis() as u64,
                }),
            }
        })
    }

    fn delivers_request_values(&self) -> bool {
        true
    }
}

/// Carries the request and its response; `None`, at `deadline`, when either never arrives or
/// the response would arrive after it (the client's timeout).
///
/// As a timeout around the whole exchange would answer, at the same instants, but the deadline
/// is a timer only while the handler is pending (most answer when first polled): a timer per
/// request less, armed and cancelled (about 1% of a 100-server run). A response arriving at the
/// deadline itself is taken, as the timeout, which polls the exchange first, would take it.
async fn exchange(
    network: &FastNetwork,
    origin: &str,
    destination: &str,
    request: Request<Bytes>,
    deadline: Instant,
) -> Option<Response<Bytes>> {
    let Fate::Deliver(there) = network.decide(origin, destination) else {
        return no_answer(deadline).await;
    };
    let arrival = Instant::now() + there;
    if arrival > deadline {
        return no_answer(deadline).await;
    }
    tokio::time::sleep_until(arrival).await;
    let Some(handler) = network.handler(destination) else {
        return no_answer(deadline).await;
    };
    let handling = handler(request);
    let response = tokio::select! {
        biased;
        response = handling => response,
        () = tokio::time::sleep_until(deadline) => return None,
    };
    let Fate::Deliver(back) = network.decide(destination, origin) else {
        return no_answer(deadline).await;
    };
    let arrival = Instant::now() + back;
    if arrival > deadline {
        return no_answer(deadline).await;
    }
    tokio::time::sleep_until(arrival).await;
    Some(response)
}

/// The client's wait for an answer that does not come: until its deadline.
async fn no_answer(deadline: Instant) -> Option<Response<Bytes>> {
    tokio::time::sleep_until(deadline).await;
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::network::LinkProfile;
    use rand::SeedableRng as _;

    fn echo() -> HttpHandler {
        Rc::new(|request: Request<Bytes>| {
            Box::pin(async move { Response::new(request.into_body()) })
        })
    }

    fn network() -> FastNetwork {
        let profile = LinkProfile {
            latency_ms_min: 10,
            latency_ms_max: 10,
            loss: 0.0,
        };
        let rng = ChaCha8Rng::seed_from_u64(1);
        FastNetwork::new(NetworkModel::new(profile), rng, Duration::from_secs(30))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn delivers_after_latency_both_ways() {
        runtime().block_on(async {
            let network = network();
            network.attach("b", echo());
            let start = tokio::time::Instant::now();
            let request = Request::new(Bytes::from("hi"));
            let response = network.transport("a").send("b", request).await.unwrap();
            assert_eq!(response.body().as_ref(), b"hi");
            assert_eq!(start.elapsed(), Duration::from_millis(20));
        });
    }

    /// A handler that answers after `delay_ms`.
    fn slow_echo(delay_ms: u64) -> HttpHandler {
        Rc::new(move |request: Request<Bytes>| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                Response::new(request.into_body())
            })
        })
    }

    /// 10 ms each way and a 30 s timeout: a response arriving at the deadline itself is taken;
    /// one a millisecond later is not, and the client gives up at the deadline.
    #[test]
    fn the_timeout_takes_a_response_at_the_deadline_and_none_after() {
        for (handling_ms, answered) in [(29_980, true), (29_981, false), (40_000, false)] {
            runtime().block_on(async {
                let network = network();
                network.attach("b", slow_echo(handling_ms));
                let start = tokio::time::Instant::now();
                let result = network
                    .transport("a")
                    .send("b", Request::new(Bytes::from("hi")))
                    .await;
                assert_eq!(result.is_ok(), answered, "handling {handling_ms} ms");
                assert_eq!(
                    start.elapsed(),
                    Duration::from_secs(30),
                    "handling {handling_ms} ms"
                );
            });
        }
    }

    #[test]
    fn cut_links_and_crashed_servers_time_out() {
        runtime().block_on(async {
            let network = network();
            network.attach("b", echo());
            network.with_model(|model| model.partition(&["a".into()], &["b".into()]));
            let start = tokio::time::Instant::now();
            let result = network
                .transport("a")
                .send("b", Request::new(Bytes::new()))
                .await;
            assert!(matches!(result, Err(TransportError::TimedOut { .. })));
            assert_eq!(start.elapsed(), Duration::from_secs(30));
            network.with_model(NetworkModel::heal);
            network.detach("b");
            let result = network
                .transport("a")
                .send("b", Request::new(Bytes::new()))
                .await;
            assert!(result.is_err());
            let totals = network.with_model(|model| model.totals());
            assert_eq!((totals.dropped_cut, totals.delivered), (1, 1));
        });
    }
}
