//! One Matrix homeserver as the federation sees it.
//!
//! A [`Homeserver`] answers federation requests through the [`HttpHandler`] it hands to a
//! fabric, sends its own through a [`Transport`], and offers local users an in-process API
//! (create a room, join, send, change state) in place of the client-server API.
//!
//! Invariants: the server knows nothing of turmoil or of any other fabric; it reads time only
//! from its [`ServerClock`]; all of its state sits in `RefCell`s that are never borrowed across
//! an `await`, so interleaved requests on the single-threaded runtime cannot observe a
//! half-made change.

mod acl;
pub mod client;
pub mod clock;
pub mod config;
pub mod edu;
mod fifo_map;
mod history;
mod inbound;
pub mod invite;
mod join;
pub mod keys;
mod leave;
pub mod metrics;
pub(crate) mod name_key;
pub mod outbound;
pub mod pending_signature;
pub mod request_memo;
pub mod rooms;
pub mod store;
pub mod task;
pub mod transport;
pub(crate) mod verify;

pub use verify::{PDU_CACHE_ENTRIES_DEFAULT, PduCache, PduCacheStats};

use crate::proto::pdu::Pdu;
use crate::proto::wire::RawEdu;
use crate::server::clock::ServerClock;
use crate::server::config::ServerConfig;
use crate::server::metrics::ServerMetrics;
use crate::server::outbound::queue::DestinationQueue;
use crate::server::transport::{HttpHandler, Transport};
use name_key::{NameKey, NameMap};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::Notify;

/// A running homeserver. Cheap to clone; all clones are the same server.
#[derive(Clone)]
pub struct Homeserver {
    inner: Rc<Inner>,
}

/// One destination: its queue and, while its sender task runs, the signal that wakes it.
///
/// Memory: a server of a large room has a destination for every other server in it, so an
/// idle destination holds no task (a parked task costs about a kilobyte): the task ends when
/// the queue is empty and is spawned again by the next enqueue.
struct Destination {
    queue: DestinationQueue,
    sender: Option<Rc<Notify>>,
}

pub(crate) struct Inner {
    pub(crate) config: ServerConfig,
    pub(crate) clock: ServerClock,
    pub(crate) transport: Rc<dyn Transport>,
    pub(crate) metrics: RefCell<ServerMetrics>,
    pub(crate) keys: RefCell<keys::KeyCache>,
    pub(crate) store: RefCell<store::ServerStore>,
    pub(crate) edus: RefCell<edu::EduCounters>,
    /// Answers to transactions already processed, by (origin, txn id), for deduplication.
    pub(crate) transactions_seen: RefCell<inbound::TransactionsSeen>,
    /// Transactions being processed, by (origin, txn id): a retry waits for the first's answer.
    pub(crate) transactions_in_flight: RefCell<inbound::TransactionsInFlight>,
    /// Rooms this server is joining and not yet in: their PDUs wait for the join to end.
    pub(crate) joins_in_progress: RefCell<inbound::JoinsInProgress>,
    pub(crate) rooms_created: RefCell<u64>,
    /// Invites of local users to rooms, by (invitee, room id), until joined or rejected.
    pub(crate) invites: RefCell<BTreeMap<(String, String), invite::PendingInvite>>,
    /// Events this incarnation acknowledged as received (a 200 answer to /send listing them
    /// without error): the promise that `acked_lost` checks after a crash. Empty unless
    /// `config.record_acknowledged`.
    pub(crate) acknowledged: RefCell<std::collections::BTreeSet<String>>,
    /// Per-origin admission of inbound transactions.
    pub(crate) inbound_gate: RefCell<inbound::limits::InboundGate>,
    /// Set when the incarnation is crashed: it answers nothing and sends nothing more.
    pub(crate) shut_down: std::cell::Cell<bool>,
    /// Looked up for every request received and every event sent: hashed, as server names
    /// share long prefixes that an ordered map compares byte by byte. Never read in its
    /// iteration order where the order can reach behaviour (see `Homeserver::shut_down`).
    destinations: RefCell<NameMap<Destination>>,
    /// The bounds of every destination queue, shared by them.
    queue_limits: Rc<outbound::queue::QueueLimits>,
    /// Parsing and verification shared with the other servers of the run, if the lab gives it.
    pub(crate) pdu_cache: Option<Rc<PduCache>>,
    /// Distinguishes transaction ids of this incarnation from those of earlier ones.
    incarnation: u64,
}

impl Homeserver {
    /// Starts a server. Must be called inside the fabric's tokio `LocalSet`, since its sender
    /// tasks are spawned there.
    /// `log` is the server's durable log: empty for a new server, or what survived a crash,
    /// from which the store is rebuilt.
    pub fn new(
        config: ServerConfig,
        clock: ServerClock,
        transport: Rc<dyn Transport>,
        log: store::DurableLog,
        incarnation: u64,
    ) -> Result<Self, store::RecoverError> {
        Self::with_pdu_cache(config, clock, transport, log, incarnation, None)
    }

    /// As [`Homeserver::new`], sharing parsed and verified PDUs through `pdu_cache` with the
    /// other servers given the same cache (see `verify.rs`); `None` shares nothing.
    pub fn with_pdu_cache(
        config: ServerConfig,
        clock: ServerClock,
        transport: Rc<dyn Transport>,
        log: store::DurableLog,
        incarnation: u64,
        pdu_cache: Option<Rc<PduCache>>,
    ) -> Result<Self, store::RecoverError> {
        let mut store = store::ServerStore::recover(log)?;
        store.set_auth_rules_enforced(config.defences.auth_rules);
        // Only a server that checks every event it receives holds events exactly as their
        // ids name them, and may share resolutions (see `store/shared_resolutions.rs`).
        let defences = config.defences;
        if defences.pdu_signatures && defences.content_hashes && defences.auth_rules {
            store.share_resolutions(pdu_cache.as_ref().map(|cache| cache.resolutions().clone()));
        }
        let queue_limits = Rc::new(config.queue_limits);
        let inner = Inner {
            store: RefCell::new(store),
            edus: RefCell::new(edu::EduCounters::default()),
            transactions_seen: RefCell::new(inbound::TransactionsSeen::default()),
            transactions_in_flight: RefCell::new(BTreeMap::new()),
            joins_in_progress: RefCell::new(BTreeMap::new()),
            rooms_created: RefCell::new(0),
            invites: RefCell::new(BTreeMap::new()),
            acknowledged: RefCell::new(std::collections::BTreeSet::new()),
            shut_down: std::cell::Cell::new(false),
            inbound_gate: RefCell::new(inbound::limits::InboundGate::default()),
            config,
            clock,
            transport,
            metrics: RefCell::new(ServerMetrics::default()),
            keys: RefCell::new(keys::KeyCache::default()),
            destinations: RefCell::new(NameMap::default()),
            queue_limits,
            pdu_cache,
            incarnation,
        };
        let server = Self {
            inner: Rc::new(inner),
        };
        server.inner.resume_outbound();
        Ok(server)
    }

    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    pub fn metrics(&self) -> ServerMetrics {
        *self.inner.metrics.borrow()
    }

    pub fn clock(&self) -> &ServerClock {
        &self.inner.clock
    }

    /// Stops this incarnation (a crash): it answers no more requests and sends nothing more.
    pub fn shut_down(&self) {
        self.inner.shut_down.set(true);
        let destinations = self.inner.destinations.borrow();
        // Woken in name order: the order the senders run in must not follow the hash.
        let mut senders: Vec<(&NameKey, &Rc<Notify>)> = destinations
            .iter()
            .filter_map(|(name, destination)| Some((name, destination.sender.as_ref()?)))
            .collect();
        senders.sort_unstable_by_key(|(name, _)| *name);
        for (_, wakeup) in senders {
            wakeup.notify_one();
        }
    }

    /// Transactions this incarnation failed to deliver (each later retried or abandoned).
    pub fn outbound_failures(&self) -> u64 {
        self.inner
            .destinations
            .borrow()
            .values()
            .map(|d| d.queue.counters().transactions_failed)
            .sum()
    }

    /// The events this incarnation acknowledged receiving; `None` when its configuration
    /// does not record them (`record_acknowledged`).
    pub fn acknowledged_events(&self) -> Option<std::collections::BTreeSet<String>> {
        self.inner
            .config
            .record_acknowledged
            .then(|| self.inner.acknowledged.borrow().clone())
    }

    /// Reads one room's store, for observers and tests; `None` if the server is not in it.
    pub fn with_room<T>(
        &self,
        room_id: &str,
        read: impl FnOnce(&store::RoomStore) -> T,
    ) -> Option<T> {
        self.inner.store.borrow().room(room_id).map(read)
    }

    /// The ids of the rooms this server holds, in order.
    pub fn room_ids(&self) -> Vec<String> {
        let store = self.inner.store.borrow();
        store
            .rooms()
            .map(|(room_id, _)| room_id.to_owned())
            .collect()
    }

    /// The counters of every outbound queue, by destination, for observers.
    pub fn queue_counters(&self) -> BTreeMap<String, outbound::queue::QueueCounters> {
        let destinations = self.inner.destinations.borrow();
        destinations
            .iter()
            .map(|(name, destination)| (name.to_string(), destination.queue.counters()))
            .collect()
    }

    /// The handler a fabric calls for every request addressed to this server.
    pub fn http_handler(&self) -> HttpHandler {
        let weak = Rc::downgrade(&self.inner);
        Rc::new(move |request| {
            let weak = weak.clone();
            Box::pin(async move {
                let Some(inner) = weak.upgrade().filter(|inner| !inner.shut_down.get()) else {
                    return std::future::pending().await;
                };
                let response = inner.clone().handle_http(request).await;
                if inner.shut_down.get() {
                    // Crashed while handling: the answer never leaves.
                    return std::future::pending().await;
                }
                response
            })
        })
    }
}

impl Inner {
    /// Queues a PDU for `destination` and wakes its sender.
    pub(crate) fn enqueue_pdu(self: &Rc<Self>, destination: &str, pdu: Arc<Pdu>) {
        self.with_queue(destination, |queue| queue.push_pdu(pdu));
        self.wake_sender(destination);
    }

    /// Queues an EDU for `destination` and wakes its sender.
    pub(crate) fn enqueue_edu(self: &Rc<Self>, destination: &str, edu: RawEdu) {
        self.with_queue(destination, |queue| queue.push_edu(edu));
        self.wake_sender(destination);
    }

    /// Runs `change` on the queue of `destination`, creating it on first use.
    pub(crate) fn with_queue<T>(
        self: &Rc<Self>,
        destination: &str,
        change: impl FnOnce(&mut DestinationQueue) -> T,
    ) -> T {
        assert_ne!(
            destination, self.config.name,
            "a server never sends to itself"
        );
        let mut destinations = self.destinations.borrow_mut();
        let known = destinations.len();
        let entry = destinations.get_or_insert_with(destination, || {
            let prefix = format!("{}.{known}", self.incarnation);
            Destination {
                queue: DestinationQueue::new(self.queue_limits.clone(), prefix),
                sender: None,
            }
        });
        change(&mut entry.queue)
    }

    /// Wakes the sender task of `destination`, or spawns one if none runs.
    fn wake_sender(self: &Rc<Self>, destination: &str) {
        let mut destinations = self.destinations.borrow_mut();
        let entry = destinations
            .get_mut(destination)
            .expect("a destination is created before its sender is woken");
        if let Some(wakeup) = &entry.sender {
            wakeup.notify_one();
            return;
        }
        let wakeup = Rc::new(Notify::new());
        entry.sender = Some(wakeup.clone());
        let task =
            outbound::sender::run_destination(Rc::downgrade(self), destination.to_owned(), wakeup);
        crate::server::task::spawn_local(task);
    }

    /// Asks what the sender of `destination` should do at `now_ms`; when the answer is that
    /// there is nothing to send, the sender ends (in the same borrow, so the next enqueue
    /// finds no sender and spawns one).
    pub(crate) fn next_outbound_step(
        self: &Rc<Self>,
        destination: &str,
        now_ms: u64,
    ) -> outbound::queue::NextStep {
        let mut destinations = self.destinations.borrow_mut();
        let entry = destinations
            .get_mut(destination)
            .expect("a sender runs only for a known destination");
        let step = entry.queue.next_step(now_ms);
        if matches!(step, outbound::queue::NextStep::Idle) {
            entry.sender = None;
        }
        step
    }

    /// After a restart the outbound queues are gone, and with them any of our events that
    /// were stored but not yet sent. Queue the newest event of our own in each room for every
    /// server in it (as catch-up does): a server that lacks it, or anything before it, fetches
    /// the gap with `/get_missing_events`, and hearing from us resets its backoff toward us.
    fn resume_outbound(self: &Rc<Self>) {
        let mut resend = Vec::new();
        for (_, room) in self.store.borrow().rooms() {
            let newest_local = room
                .records()
                .filter(|(_, record)| {
                    record.origin() == store::Origin::Local
                        && record.is_accepted()
                        && !record.is_outlier()
                })
                .max_by_key(|(_, record)| record.sequence());
            if let Some((_, record)) = newest_local {
                resend.push((room.joined_servers(), record.pdu().clone()));
            }
        }
        for (servers, pdu) in resend {
            for server in servers.iter().filter(|s| **s != self.config.name) {
                self.enqueue_pdu(server, pdu.clone());
            }
        }
    }

    /// A request came from `origin`: if we were backing off from it, retry now.
    pub(crate) fn heard_from(self: &Rc<Self>, origin: &str) {
        if origin == self.config.name {
            return;
        }
        // One lookup: this runs for every request received.
        let sender = match self.destinations.borrow_mut().get_mut(origin) {
            Some(entry) => {
                entry.queue.heard_from();
                entry.sender.clone()
            }
            None => return,
        };
        // An idle destination has no sender to wake, and nothing to retry.
        if let Some(wakeup) = sender {
            wakeup.notify_one();
        }
    }
}

mod http;
