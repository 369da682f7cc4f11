//! Interceptors on the attacker's inbound path: they sit between the fabric and the
//! attacker's honest HTTP handler, and may withhold an answer, stall it, or rewrite the events
//! in it before it leaves. The honest handler still does all the work; the interceptor only
//! changes what goes back on the wire, so every defence is tested against real bytes.
//!
//! Invariants: with no rule set, an intercepted handler answers exactly as the honest one;
//! every interference is counted, so a run can tell an attack that happened from one that
//! never had the chance; all randomness comes from the RNG handed in.

use crate::proto::event::server_of;
use crate::proto::wire::paths::{self, Endpoint};
use crate::server::pending_signature::PendingSignature;
use crate::server::transport::HttpHandler;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// The text a tampering attacker writes into the events it rewrites; an oracle looks for it.
pub const TAMPER_MARK: &str = "tampered by a relay";

/// What the interceptor does to which answers.
#[derive(Debug, Default)]
pub struct Rules {
    /// Event ids whose fetches (`/event`, `/event_auth`) are answered 404 though asked for.
    pub withheld: BTreeSet<String>,
    /// Rewrite other servers' message events in answers to `/get_missing_events`, `/event`,
    /// `/state` and `/event_auth`, with this probability each.
    pub tamper_in_transit: Option<f64>,
    /// The same for `/backfill` answers.
    pub tamper_in_backfill: Option<f64>,
    /// Auth chains the attacker serves for events its honest server does not hold (crafted
    /// ones): `/event_auth` for the event id answers with this chain.
    pub served_auth_chains: BTreeMap<String, Rc<Vec<serde_json::Map<String, Value>>>>,
    /// Chains of crafted events nobody was sent, oldest first: a `/get_missing_events` whose
    /// latest events lie in one is answered with every link before them, newest first,
    /// whatever limit it asked for.
    pub served_missing_events: ServedChains,
    /// Hold answers to gap-filling requests (`/get_missing_events`, `/state_ids`, `/event`,
    /// `/event_auth`) this long before they leave: ties up the asking server.
    pub stall: Option<Duration>,
}

/// A chain of crafted events as served, oldest first.
type Chain = Rc<Vec<serde_json::Map<String, Value>>>;

/// Crafted chains by the id of each link: the chain and the link's position in it.
#[derive(Debug, Default)]
pub struct ServedChains {
    links: BTreeMap<String, (Chain, usize)>,
}

impl ServedChains {
    /// Serves `chain` (oldest first) to gap fills that reach it.
    pub fn add(&mut self, ids: &[String], chain: Vec<serde_json::Map<String, Value>>) {
        let chain = Rc::new(chain);
        for (position, id) in ids.iter().enumerate() {
            self.links.insert(id.clone(), (chain.clone(), position));
        }
    }

    /// The links before the latest of `latest` found in a chain, newest first.
    fn before(&self, latest: &[String]) -> Option<Vec<serde_json::Map<String, Value>>> {
        let (chain, position) = latest
            .iter()
            .filter_map(|id| self.links.get(id))
            .max_by_key(|(_, position)| *position)?;
        Some(chain[..*position].iter().rev().cloned().collect())
    }
}

/// What the interceptor did, for the run's metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interference {
    /// Requests seen, by endpoint template.
    pub requests: BTreeMap<&'static str, u64>,
    pub withheld_answers: u64,
    pub stalled_answers: u64,
    /// Crafted auth chain events served.
    pub served_auth_chain_events: u64,
    /// Crafted events never sent, served in answers to `/get_missing_events`.
    pub served_missing_events: u64,
    /// Events rewritten in answers, counted once per answer they were in.
    pub tampered_events: u64,
    /// The servers that were served rewritten events.
    pub tampered_servers: BTreeSet<String>,
}

/// The rules and counters of one attacker's inbound path.
pub struct Interceptor {
    /// The attacker's server name: its own events are never rewritten.
    own_name: String,
    pub rules: RefCell<Rules>,
    pub interference: RefCell<Interference>,
    rng: RefCell<ChaCha8Rng>,
}

impl Interceptor {
    pub fn new(own_name: &str, rng: ChaCha8Rng) -> Rc<Self> {
        Rc::new(Self {
            own_name: own_name.to_owned(),
            rules: RefCell::new(Rules::default()),
            interference: RefCell::new(Interference::default()),
            rng: RefCell::new(rng),
        })
    }

    /// `handler` with this interceptor in front of it.
    pub fn wrap(self: &Rc<Self>, handler: HttpHandler) -> HttpHandler {
        let interceptor = self.clone();
        Rc::new(move |request: Request<Bytes>| {
            let interceptor = interceptor.clone();
            let handler = handler.clone();
            Box::pin(async move { interceptor.handle(handler, request).await })
        })
    }

    async fn handle(&self, handler: HttpHandler, request: Request<Bytes>) -> Response<Bytes> {
        let method = request.method().as_str().to_owned();
        let path = request.uri().path().to_owned();
        let routed = paths::route(&method, &path);
        let asker = asking_server(&request);
        if let Some((endpoint, _)) = &routed {
            *self
                .interference
                .borrow_mut()
                .requests
                .entry(endpoint.template)
                .or_default() += 1;
        }
        if let Some((endpoint, params)) = &routed
            && let Some(event_id) = fetched_event(*endpoint, params)
            && self.rules.borrow().withheld.contains(event_id)
        {
            self.interference.borrow_mut().withheld_answers += 1;
            return not_found(event_id);
        }
        if let Some((endpoint, params)) = &routed
            && *endpoint == paths::EVENT_AUTH
            && let Some(chain) = params
                .get(1)
                .and_then(|id| self.rules.borrow().served_auth_chains.get(id).cloned())
        {
            self.interference.borrow_mut().served_auth_chain_events += chain.len() as u64;
            let body = json!({"auth_chain": *chain});
            return Response::new(Bytes::from(body.to_string()));
        }
        if let Some((endpoint, _)) = &routed
            && *endpoint == paths::GET_MISSING_EVENTS
            && let Some(events) = self.served_missing(request.body())
        {
            self.interference.borrow_mut().served_missing_events += events.len() as u64;
            let body = json!({ "events": events });
            return Response::new(Bytes::from(body.to_string()));
        }
        let response = handler(request).await;
        let Some((endpoint, _)) = routed else {
            return response;
        };
        let stall = self.rules.borrow().stall;
        if let Some(stall) = stall
            && is_gap_fill(endpoint)
        {
            self.interference.borrow_mut().stalled_answers += 1;
            tokio::time::sleep(stall).await;
        }
        let fraction = if endpoint == paths::BACKFILL {
            self.rules.borrow().tamper_in_backfill
        } else if is_relay(endpoint) {
            self.rules.borrow().tamper_in_transit
        } else {
            None
        };
        match fraction {
            Some(fraction) if response.status() == StatusCode::OK => {
                self.tamper(response, fraction, asker.as_deref())
            }
            _ => response,
        }
    }

    /// The crafted links a `/get_missing_events` body reaches, if it reaches a served chain.
    fn served_missing(&self, body: &Bytes) -> Option<Vec<serde_json::Map<String, Value>>> {
        let request: Value = serde_json::from_slice(body).ok()?;
        let latest: Vec<String> = request
            .get("latest_events")?
            .as_array()?
            .iter()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect();
        self.rules.borrow().served_missing_events.before(&latest)
    }

    /// Rewrites the content of other servers' messages in an answer's event lists, keeping
    /// their hashes and signatures: what a relay that alters messages sends.
    fn tamper(
        &self,
        response: Response<Bytes>,
        fraction: f64,
        asker: Option<&str>,
    ) -> Response<Bytes> {
        let (parts, body) = response.into_parts();
        let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
            return Response::from_parts(parts, body);
        };
        let mut changed = 0;
        for list in ["pdus", "events", "auth_chain"] {
            let Some(Value::Array(events)) = value.get_mut(list) else {
                continue;
            };
            for event in events.iter_mut() {
                if self.tamper_event(event, fraction) {
                    changed += 1;
                }
            }
        }
        if changed > 0 {
            let mut interference = self.interference.borrow_mut();
            interference.tampered_events += changed;
            if let Some(asker) = asker {
                interference.tampered_servers.insert(asker.to_owned());
            }
        }
        Response::from_parts(parts, Bytes::from(value.to_string()))
    }

    /// Rewrites one event if it is another server's message and the draw says so. The id of
    /// a room v3+ event is the hash of its redacted form, which leaves the content out: the
    /// rewritten event keeps its id and only its content hash betrays it.
    fn tamper_event(&self, event: &mut Value, fraction: f64) -> bool {
        let is_message = event.get("type").and_then(Value::as_str) == Some("m.room.message");
        let sender = event.get("sender").and_then(Value::as_str).unwrap_or("");
        if !is_message || server_of(sender) == self.own_name {
            return false;
        }
        if !self.rng.borrow_mut().random_bool(fraction.clamp(0.0, 1.0)) {
            return false;
        }
        let Some(content) = event.get_mut("content").and_then(Value::as_object_mut) else {
            return false;
        };
        content.insert("body".to_owned(), json!(TAMPER_MARK));
        true
    }
}

/// The event a request fetches by id.
fn fetched_event(endpoint: Endpoint, params: &[String]) -> Option<&str> {
    if endpoint == paths::EVENT {
        params.first().map(String::as_str)
    } else if endpoint == paths::EVENT_AUTH {
        params.get(1).map(String::as_str)
    } else {
        None
    }
}

fn is_gap_fill(endpoint: Endpoint) -> bool {
    [
        paths::GET_MISSING_EVENTS,
        paths::STATE_IDS,
        paths::EVENT,
        paths::EVENT_AUTH,
    ]
    .contains(&endpoint)
}

fn is_relay(endpoint: Endpoint) -> bool {
    [
        paths::GET_MISSING_EVENTS,
        paths::EVENT,
        paths::STATE,
        paths::EVENT_AUTH,
    ]
    .contains(&endpoint)
}

/// The server that signed the request, from its X-Matrix header (or the pending signature
/// that stands for it on the fast fabric).
fn asking_server(request: &Request<Bytes>) -> Option<String> {
    let Some(header) = request.headers().get(hyper::header::AUTHORIZATION) else {
        let pending = request.extensions().get::<PendingSignature>()?;
        return Some(pending.origin().to_owned());
    };
    let header = header.to_str().ok()?;
    let parsed = crate::proto::xmatrix::XMatrix::parse(header).ok()?;
    Some(parsed.origin().to_owned())
}

fn not_found(event_id: &str) -> Response<Bytes> {
    let body = json!({"errcode": "M_NOT_FOUND", "error": format!("{event_id} is not known here")});
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}
