//! The world of one run on the fast fabric: the servers (slots), the network, the room, and
//! what the driver has done so far. Workload, nemesis and observers all act through it.
//!
//! Invariants: one seeded RNG per component, derived from the run's seed and the component's
//! name; every collection iterated is ordered; the world's clock is the paused tokio clock.

use crate::observe::record::Sample;
use crate::server::clock::{ServerClock, TokioClock};
use crate::server::config::{Defences, ServerConfig};
use crate::sim::experiment::plan::RunPlan;
use crate::sim::fast_fabric::FastNetwork;
use crate::sim::host::ServerSlot;
use crate::sim::network::{LinkProfile, NetworkModel};
use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// Simulated time starts here (2023-11-14), so timestamps look like real ones.
pub const EPOCH_MS: u64 = 1_700_000_000_000;

/// How long a request waits for an answer before the sender gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A random generator for one component of the run.
pub fn component_rng(seed: u64, component: &str) -> ChaCha8Rng {
    let digest = Sha256::digest(format!("{seed}/{component}").as_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&digest);
    ChaCha8Rng::from_seed(bytes)
}

/// An honest event the workload sent, for delivery accounting.
#[derive(Clone, Debug)]
pub struct SentEvent {
    pub event_id: String,
    pub sent_at_ms: u64,
    pub origin: usize,
}

/// What the driver and observers record while the run goes.
#[derive(Debug, Default)]
pub struct Records {
    pub sent: Vec<SentEvent>,
    /// (event index in `sent`, server index) -> latency in ms, once delivered.
    pub delivered: BTreeMap<(usize, usize), u64>,
    pub samples: Vec<Sample>,
    pub actions_failed: BTreeMap<String, u64>,
    pub actions_done: BTreeMap<String, u64>,
    /// Users joined now, by (server, user index).
    pub joined: BTreeSet<(usize, usize)>,
    pub banned: BTreeSet<(usize, usize)>,
    pub state_resets: u64,
    pub reset_examples: Vec<String>,
    /// Events each server acknowledged before its latest crash, to check after restart.
    pub acked_before_crash: BTreeMap<usize, BTreeSet<String>>,
    pub acked_lost: u64,
    pub trace: Vec<String>,
}

/// Everything a run acts on.
pub struct World {
    pub plan: RunPlan,
    pub network: FastNetwork,
    pub slots: Vec<Rc<ServerSlot>>,
    pub room_id: RefCell<Option<String>>,
    pub records: RefCell<Records>,
    pub start: tokio::time::Instant,
}

/// The network model's form of a topology link.
pub fn network_link(profile: crate::sim::experiment::topology::LinkProfile) -> LinkProfile {
    LinkProfile {
        latency_ms_min: profile.latency_ms_min,
        latency_ms_max: profile.latency_ms_max.max(profile.latency_ms_min),
        loss: profile.loss,
    }
}

impl World {
    /// Builds the network and the servers, and boots every server. Call inside the run's
    /// `LocalSet`.
    pub fn boot(plan: RunPlan) -> Rc<Self> {
        Self::boot_with(plan, Defences::default())
    }

    /// As [`World::boot`], with the honest servers' defences set as given (tests turn one
    /// off to show what an attack achieves without it).
    pub fn boot_with(plan: RunPlan, defences: Defences) -> Rc<Self> {
        let start = tokio::time::Instant::now();
        let mut model = NetworkModel::new(LinkProfile::default());
        let ids: Vec<_> = plan.servers.iter().map(|server| server.id).collect();
        for a in &ids {
            for b in &ids {
                if a < b {
                    let (name_a, name_b) = (&plan.servers[a.0].name, &plan.servers[b.0].name);
                    model.set_link(name_a, name_b, network_link(plan.topology.link(*a, *b)));
                }
            }
        }
        let network = FastNetwork::new(model, component_rng(plan.seed, "network"), REQUEST_TIMEOUT);
        let network_clock = Rc::new(TokioClock {
            epoch_ms: EPOCH_MS,
            start,
        });
        let mut slots = Vec::new();
        for server in &plan.servers {
            let mut key_seed = [0u8; 32];
            let digest = Sha256::digest(format!("{}/key/{}", plan.seed, server.name).as_bytes());
            key_seed.copy_from_slice(&digest);
            let mut config = ServerConfig::new(&server.name, key_seed);
            config.room_version = plan.room_version;
            if server.honest {
                config.defences = defences;
            }
            let clock = ServerClock::new(network_clock.clone());
            slots.push(ServerSlot::new(config, clock));
        }
        let world = Rc::new(Self {
            plan,
            network,
            slots,
            room_id: RefCell::new(None),
            records: RefCell::new(Records::default()),
            start,
        });
        for index in 0..world.slots.len() {
            world.start_server(index);
        }
        world
    }

    /// Boots a new incarnation of server `index` and connects it to the network.
    pub fn start_server(&self, index: usize) {
        let slot = &self.slots[index];
        let server = slot.boot(Rc::new(self.network.transport(&slot.name)));
        self.network.attach(&slot.name, server.http_handler());
        tokio::task::spawn_local(slot.clone().run_actions());
    }

    /// Crashes server `index`: it stops answering and loses what it had not flushed.
    pub fn crash_server(&self, index: usize) {
        let slot = &self.slots[index];
        if let Some(server) = slot.current() {
            server.shut_down();
            let acked = server.acknowledged_events();
            self.records
                .borrow_mut()
                .acked_before_crash
                .insert(index, acked);
        }
        self.network.detach(&slot.name);
        slot.crash();
    }

    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn room(&self) -> Option<String> {
        self.room_id.borrow().clone()
    }

    pub fn is_up(&self, index: usize) -> bool {
        self.slots[index].current().is_some()
    }

    pub fn honest(&self) -> impl Iterator<Item = usize> + '_ {
        self.plan
            .servers
            .iter()
            .filter(|server| server.honest)
            .map(|server| server.id.0)
    }

    pub fn count(&self, what: &str, ok: bool) {
        let mut records = self.records.borrow_mut();
        let map = if ok {
            &mut records.actions_done
        } else {
            &mut records.actions_failed
        };
        *map.entry(what.to_owned()).or_default() += 1;
    }

    pub fn trace(&self, line: String) {
        self.records
            .borrow_mut()
            .trace
            .push(format!("{{\"t_ms\":{},{}}}", self.now_ms(), line));
    }
}
