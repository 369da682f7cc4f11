//! Shared helpers of the federation integration tests: a turmoil simulation of named servers,
//! a driver that acts as their local users, faults the driver asks for (partition, crash,
//! restart), and the views the tests compare (current state, accepted events, a digest of
//! every durable log).
//!
//! A test builds a [`Lab`], writes its scenario as one async driver, and calls [`Lab::run`],
//! which steps the simulation and applies the crashes and restarts the driver requested
//! (turmoil lets only the stepping loop crash a host).
#![allow(dead_code)]

use fedlab::server::Homeserver;
use fedlab::server::clock::ServerClock;
use fedlab::server::config::ServerConfig;
use fedlab::server::rooms::Content;
use fedlab::server::store::{EventInput, LogRecord};
use fedlab::sim::host::ServerSlot;
use fedlab::sim::turmoil_fabric::{TurmoilClock, TurmoilTransport, serve};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

pub const EPOCH_MS: u64 = 1_700_000_000_000;

/// The signing key seed of a server, derived from its name.
pub fn key_seed(name: &str) -> [u8; 32] {
    let mut seed = [7u8; 32];
    for (slot, byte) in seed.iter_mut().zip(name.bytes()) {
        *slot ^= byte;
    }
    seed
}

/// `hs1.test`, `hs2.test`, ...
pub fn server_names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("hs{i}.test")).collect()
}

/// The one local user the tests give each server.
pub fn user(server: &str) -> String {
    format!("@u:{server}")
}

/// A JSON object literal as event content.
pub fn content(value: Value) -> Content {
    value.as_object().expect("an object literal").clone()
}

/// A fault the driver asks the stepping loop to apply.
#[derive(Clone, Debug)]
enum Fault {
    Crash(String),
    Restart(String),
}

/// Every server of a run, with the faults the driver may apply to them.
#[derive(Clone)]
pub struct Servers {
    pub slots: Vec<Rc<ServerSlot>>,
    /// What each server acknowledged (with a 200 to /send) in its crashed incarnations.
    acked_before_crash: Rc<RefCell<BTreeMap<String, BTreeSet<String>>>>,
    faults: Rc<RefCell<VecDeque<Fault>>>,
}

/// A simulation of named servers, ready for a driver.
pub struct Lab {
    pub sim: turmoil::Sim<'static>,
    pub servers: Servers,
}

impl Lab {
    /// Servers `hs1.test`..`hs{count}.test` on turmoil with the given seed.
    pub fn new(count: usize, seed: u64) -> Self {
        Self::with_duration(count, seed, Duration::from_secs(600))
    }

    pub fn with_duration(count: usize, seed: u64, duration: Duration) -> Self {
        Self::with_config(count, seed, duration, |_| {})
    }

    /// As [`Lab::with_duration`], with `tweak` applied to every server's configuration.
    pub fn with_config(
        count: usize,
        seed: u64,
        duration: Duration,
        tweak: impl Fn(&mut ServerConfig),
    ) -> Self {
        let sim = turmoil::Builder::new()
            .rng_seed(seed)
            .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
            .simulation_duration(duration)
            // Every server may connect to every other within one tick.
            .tcp_capacity(4 * count.max(16))
            .build();
        let mut lab = Self {
            sim,
            servers: Servers {
                slots: Vec::new(),
                acked_before_crash: Rc::default(),
                faults: Rc::default(),
            },
        };
        for name in server_names(count) {
            let mut config = ServerConfig::new(&name, key_seed(&name));
            tweak(&mut config);
            lab.add_server(config);
        }
        lab
    }

    fn add_server(&mut self, config: ServerConfig) {
        let name = config.name.clone();
        let clock = ServerClock::new(Rc::new(TurmoilClock { epoch_ms: EPOCH_MS }));
        let slot = ServerSlot::new(config, clock);
        let host_slot = slot.clone();
        self.sim.host(name.as_str(), move || {
            let slot = host_slot.clone();
            async move {
                let transport = Rc::new(TurmoilTransport {
                    timeout: Duration::from_secs(10),
                });
                let server = slot.boot(transport);
                tokio::task::spawn_local(slot.clone().run_actions());
                serve(server.http_handler()).await?;
                Ok(())
            }
        });
        self.servers.slots.push(slot);
    }

    /// Runs `driver` as a turmoil client to its end, applying the faults it asks for.
    pub fn run<F, Fut>(mut self, driver: F)
    where
        F: FnOnce(Servers) -> Fut,
        Fut: Future<Output = turmoil::Result> + 'static,
    {
        let servers = self.servers.clone();
        self.sim.client("driver.test", driver(servers));
        loop {
            let finished = self.sim.step().expect("the simulation runs");
            self.apply_faults();
            if finished {
                return;
            }
        }
    }

    fn apply_faults(&mut self) {
        loop {
            let Some(fault) = self.servers.faults.borrow_mut().pop_front() else {
                return;
            };
            match fault {
                Fault::Crash(name) => {
                    let acked = self.servers.server(&name).acknowledged_events();
                    let acked = acked.expect("servers of these tests record acknowledgements");
                    let mut record = self.servers.acked_before_crash.borrow_mut();
                    record.entry(name.clone()).or_default().extend(acked);
                    drop(record);
                    self.sim.crash(name.as_str());
                    self.servers.slot(&name).crash();
                }
                Fault::Restart(name) => self.sim.bounce(name.as_str()),
            }
        }
    }
}

impl Servers {
    pub fn slot(&self, name: &str) -> &Rc<ServerSlot> {
        self.slots
            .iter()
            .find(|slot| slot.name == name)
            .unwrap_or_else(|| panic!("no server {name}"))
    }

    pub fn names(&self) -> Vec<String> {
        self.slots.iter().map(|slot| slot.name.clone()).collect()
    }

    /// Every event `name` acknowledged in the incarnations that crashed: after a restart each
    /// must still be in its store.
    pub fn acked_before_crash(&self, name: &str) -> BTreeSet<String> {
        let record = self.acked_before_crash.borrow();
        record.get(name).cloned().unwrap_or_default()
    }

    /// The running incarnation of `name`.
    pub fn server(&self, name: &str) -> Homeserver {
        self.slot(name)
            .current()
            .unwrap_or_else(|| panic!("{name} is down"))
    }

    /// Creates a room as `server`'s user; returns its id.
    pub async fn create_room(&self, server: &str) -> String {
        let creator = user(server);
        self.slot(server)
            .call(move |hs| async move { hs.create_room(&creator, None).await })
            .await
            .expect("server is up")
            .expect("room created")
    }

    /// Joins `server`'s user to `room` through `via`.
    pub async fn join(&self, server: &str, room: &str, via: &str) {
        let (joiner, room_id, via) = (user(server), room.to_owned(), via.to_owned());
        self.slot(server)
            .call(move |hs| async move { hs.join_remote(&joiner, &room_id, &via).await })
            .await
            .expect("server is up")
            .unwrap_or_else(|e| panic!("{server} joins: {e}"));
    }

    /// Creates a room on the first server and joins every other server's user to it.
    pub async fn room_with_everyone(&self) -> String {
        let names = self.names();
        let room = self.create_room(&names[0]).await;
        for name in &names[1..] {
            self.join(name, &room, &names[0]).await;
        }
        room
    }

    /// Sends a text message as `server`'s user; returns its event id.
    pub async fn message(&self, server: &str, room: &str, body: &str) -> String {
        let (sender, room_id, body) = (user(server), room.to_owned(), body.to_owned());
        self.slot(server)
            .call(move |hs| async move { hs.send_message(&sender, &room_id, &body).await })
            .await
            .expect("server is up")
            .unwrap_or_else(|e| panic!("{server} sends a message: {e}"))
    }

    /// Sends a state event as `server`'s user; returns its event id.
    pub async fn state(
        &self,
        server: &str,
        room: &str,
        event_type: &str,
        state_key: &str,
        body: Value,
    ) -> String {
        let (sender, room_id) = (user(server), room.to_owned());
        let (event_type, state_key) = (event_type.to_owned(), state_key.to_owned());
        self.slot(server)
            .call(move |hs| async move {
                hs.send_state(&sender, &room_id, &event_type, &state_key, content(body))
                    .await
            })
            .await
            .expect("server is up")
            .unwrap_or_else(|e| panic!("{server} sends state: {e}"))
    }

    /// Partitions the servers of `side_a` from those of `side_b` (call from the driver).
    pub fn partition(&self, side_a: &[&str], side_b: &[&str]) {
        for a in side_a {
            for b in side_b {
                turmoil::partition(*a, *b);
            }
        }
    }

    /// Repairs every link between the two sides.
    pub fn heal(&self, side_a: &[&str], side_b: &[&str]) {
        for a in side_a {
            for b in side_b {
                turmoil::repair(*a, *b);
            }
        }
    }

    /// Crashes `name` and waits until it is down.
    pub async fn crash(&self, name: &str) {
        self.faults
            .borrow_mut()
            .push_back(Fault::Crash(name.to_owned()));
        while self.slot(name).current().is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Restarts `name` from its durable log and waits until it runs.
    pub async fn restart(&self, name: &str) {
        self.faults
            .borrow_mut()
            .push_back(Fault::Restart(name.to_owned()));
        while self.slot(name).current().is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The view of `room` on every running server, by server name.
    pub fn views(&self, room: &str) -> Vec<(String, Option<View>)> {
        self.slots
            .iter()
            .map(|slot| {
                let view = slot.current().and_then(|hs| View::of(&hs, room));
                (slot.name.clone(), view)
            })
            .collect()
    }

    /// Why the servers do not agree on `room`, or `None` when they do.
    pub fn divergence(&self, room: &str) -> Option<String> {
        let views = self.views(room);
        let (first_name, first) = &views[0];
        let Some(first) = first else {
            return Some(format!("{first_name} does not hold {room}"));
        };
        for (name, view) in &views[1..] {
            let Some(view) = view else {
                return Some(format!("{name} does not hold {room}"));
            };
            if let Some(difference) = first.difference(view) {
                return Some(format!("{first_name} and {name} disagree: {difference}"));
            }
        }
        None
    }

    /// Waits until every server holds the same state and events of `room`, checking every
    /// 100 ms of simulated time; returns how long that took, or the divergence at `limit`.
    pub async fn converge(&self, room: &str, limit: Duration) -> Result<Duration, String> {
        let start = tokio::time::Instant::now();
        loop {
            let divergence = self.divergence(room);
            match divergence {
                None => return Ok(start.elapsed()),
                Some(why) if start.elapsed() >= limit => {
                    return Err(format!("not converged after {limit:?}: {why}"));
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// A digest of everything the servers made durable, their current state in every room
    /// and their counters: equal digests mean byte-identical runs.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for slot in &self.slots {
            hasher.update(slot.name.as_bytes());
            for record in slot.log().records() {
                hasher.update(record_line(&record).as_bytes());
            }
            if let Some(hs) = slot.current() {
                hasher.update(format!("{:?}", hs.metrics()).as_bytes());
                hasher.update(format!("{:?}", hs.queue_counters()).as_bytes());
                for room in hs.room_ids() {
                    let state = hs.with_room(&room, |r| format!("{:?}", r.current_state()));
                    hasher.update(format!("{room} {state:?}").as_bytes());
                }
            }
        }
        let digest = hasher.finalize();
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// One log record as a line: the room, the kind of input, the event as sent on the wire
/// (canonical JSON), the verdict and any state handed with it.
fn record_line(record: &LogRecord) -> String {
    match record {
        LogRecord::OpenRoom {
            room_id,
            room_version,
        } => format!("open {room_id} {}\n", room_version.id),
        LogRecord::HistoryBatch { room_id, begins } => format!("history {room_id} {begins}\n"),
        LogRecord::Event {
            room_id,
            input,
            verdict,
        } => {
            let (kind, redacted, state) = match input {
                EventInput::Pdu {
                    held_redacted,
                    origin,
                    ..
                } => (format!("pdu {origin:?}"), *held_redacted, String::new()),
                EventInput::Outlier { held_redacted, .. } => {
                    ("outlier".to_owned(), *held_redacted, String::new())
                }
                EventInput::WithState {
                    held_redacted,
                    state_before,
                    origin,
                    ..
                } => (
                    format!("with-state {origin:?}"),
                    *held_redacted,
                    format!("{state_before:?}"),
                ),
            };
            let json = String::from_utf8(input.pdu().canonical_bytes()).expect("utf-8 JSON");
            format!("event {room_id} {kind} {redacted} {verdict:?} {json} {state}\n")
        }
    }
}

/// One server's view of a room: what the convergence oracle compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub state: Vec<(String, String, String)>,
    pub accepted: BTreeSet<String>,
}

impl View {
    pub fn of(hs: &Homeserver, room: &str) -> Option<Self> {
        hs.with_room(room, |r| Self {
            state: r
                .current_state()
                .iter()
                .map(|((kind, key), id)| (kind.clone(), key.clone(), id.clone()))
                .collect(),
            accepted: r.accepted_event_ids(),
        })
    }

    /// A specific account of how `other` differs from this view.
    pub fn difference(&self, other: &View) -> Option<String> {
        for entry in &self.state {
            let theirs = other
                .state
                .iter()
                .find(|(kind, key, _)| (kind, key) == (&entry.0, &entry.1));
            if theirs != Some(entry) {
                return Some(format!(
                    "state ({}, {:?}): {} vs {:?}",
                    entry.0,
                    entry.1,
                    entry.2,
                    theirs.map(|t| &t.2)
                ));
            }
        }
        if self.state.len() != other.state.len() {
            return Some(format!(
                "{} vs {} state entries",
                self.state.len(),
                other.state.len()
            ));
        }
        let only_first: Vec<_> = self.accepted.difference(&other.accepted).collect();
        let only_second: Vec<_> = other.accepted.difference(&self.accepted).collect();
        if only_first.is_empty() && only_second.is_empty() {
            return None;
        }
        Some(format!(
            "accepted events only in the first: {} {:?}, only in the second: {} {:?}",
            only_first.len(),
            only_first.iter().take(3).collect::<Vec<_>>(),
            only_second.len(),
            only_second.iter().take(3).collect::<Vec<_>>(),
        ))
    }
}

impl Servers {
    /// Sends a text message as `server`'s user, or `None` if the server is down or went down
    /// before it answered (traffic that runs through crashes).
    pub async fn try_message(&self, server: &str, room: &str, body: &str) -> Option<String> {
        let (sender, room_id, body) = (user(server), room.to_owned(), body.to_owned());
        let result = self
            .slot(server)
            .call(move |hs| async move { hs.send_message(&sender, &room_id, &body).await })
            .await;
        result.ok().map(|sent| sent.expect("a member may send"))
    }

    /// Messages from every server in turn, one every `interval`, for `duration`; a server
    /// that is down skips its turn. Returns the ids of the messages sent.
    pub async fn traffic(
        self,
        room: String,
        interval: Duration,
        duration: Duration,
    ) -> Vec<String> {
        let start = tokio::time::Instant::now();
        let names = self.names();
        let mut sent = Vec::new();
        for turn in 0.. {
            if start.elapsed() >= duration {
                break;
            }
            let server = &names[turn % names.len()];
            let body = format!("message {turn} from {server}");
            sent.extend(self.try_message(server, &room, &body).await);
            tokio::time::sleep(interval).await;
        }
        sent
    }

    /// Every event `name` holds in `room`, with or without state.
    pub fn held_events(&self, name: &str, room: &str) -> BTreeSet<String> {
        self.server(name)
            .with_room(room, |r| r.records().map(|(id, _)| id.to_owned()).collect())
            .unwrap_or_default()
    }
}
