//! The world of one run: the servers (slots), the network, the room, and what the driver has
//! done so far. Workload, nemesis and observers all act through it, on either fabric: the
//! [`Network`] enum is the only place the fabrics differ (how a server is reached, how it is
//! crashed and restarted, what "now" is).
//!
//! Invariants: one seeded RNG per component, derived from the run's seed and the component's
//! name; every collection iterated is ordered; the world's clock is simulated time (the paused
//! tokio clock on the fast fabric, turmoil's on turmoil), never the wall clock; both fabrics
//! decide the fate of every message with the same [`NetworkModel`], so faults are counted the
//! same way on both.

use crate::observe::record::Sample;
use crate::server::clock::{NetworkClock, ServerClock, TokioClock};
use crate::server::config::{Defences, ServerConfig};
use crate::server::{PDU_CACHE_ENTRIES_DEFAULT, PduCache};
use crate::sim::experiment::plan::{Action, RunPlan};
use crate::sim::experiment::topology::GroupId;
use crate::sim::fast_fabric::FastNetwork;
use crate::sim::host::ServerSlot;
use crate::sim::network::{LinkProfile, NetworkModel};
use crate::sim::runner::turmoil::TurmoilNetwork;
use crate::sim::turmoil_fabric::TurmoilClock;
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

/// How often the driver looks whether a crash or restart it asked turmoil for took effect.
const HOST_COMMAND_POLL: Duration = Duration::from_millis(1);

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
    pub delivered: Deliveries,
    /// Server index -> the first sample at which it held the room. Latency to a server counts
    /// from the later of the send and this moment: history a late joiner backfills was not
    /// late, it was sent before the server could receive it.
    pub room_held_since_ms: BTreeMap<usize, u64>,
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
    /// Acknowledged events looked for after restarts, and those of them not found.
    pub acked_checked: u64,
    pub acked_lost: u64,
    pub trace: Vec<String>,
}

/// Which sent event reached which server, and how late: a map of (event index in `sent`,
/// server index) to latency in ms, in that key order.
///
/// Memory: a run of a thousand servers and ten thousand events has ten million deliveries, so
/// each is held in eight bytes (server and latency, per event) rather than as a map entry.
/// An event that reached every server it can reach is marked complete, so the sampler stops
/// looking for it.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Per event, (server, latency in ms) sorted by server.
    by_event: Vec<Vec<(u32, u32)>>,
    complete: Vec<bool>,
    count: usize,
}

impl Deliveries {
    /// Records that `event` reached `server` after `latency_ms`; a second record of the same
    /// pair replaces the first.
    pub fn insert(&mut self, (event, server): (usize, usize), latency_ms: u64) {
        if self.by_event.len() <= event {
            self.by_event.resize_with(event + 1, Vec::new);
            self.complete.resize(event + 1, false);
        }
        let server = u32::try_from(server).expect("fewer than 2^32 servers");
        let latency_ms = u32::try_from(latency_ms).unwrap_or(u32::MAX);
        let servers = &mut self.by_event[event];
        match servers.binary_search_by_key(&server, |(held, _)| *held) {
            Ok(index) => servers[index].1 = latency_ms,
            Err(index) => {
                servers.insert(index, (server, latency_ms));
                self.count += 1;
            }
        }
    }

    pub fn contains_key(&self, &(event, server): &(usize, usize)) -> bool {
        let Ok(server) = u32::try_from(server) else {
            return false;
        };
        self.by_event.get(event).is_some_and(|servers| {
            servers
                .binary_search_by_key(&server, |(held, _)| *held)
                .is_ok()
        })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every delivery in (event, server) order.
    pub fn iter(&self) -> impl Iterator<Item = ((usize, usize), u64)> + '_ {
        self.by_event
            .iter()
            .enumerate()
            .flat_map(|(event, servers)| {
                servers
                    .iter()
                    .map(move |&(server, latency)| ((event, server as usize), u64::from(latency)))
            })
    }

    pub fn keys(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.iter().map(|(key, _)| key)
    }

    pub fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(_, latency)| latency)
    }

    /// How many servers `event` reached.
    pub fn reached(&self, event: usize) -> usize {
        self.by_event.get(event).map_or(0, Vec::len)
    }

    /// Marks `event` as having reached every server it can: it is looked for no more.
    pub fn mark_complete(&mut self, event: usize) {
        if self.complete.len() <= event {
            self.by_event.resize_with(event + 1, Vec::new);
            self.complete.resize(event + 1, false);
        }
        self.complete[event] = true;
    }

    /// The events of the first `sent` not marked complete, in order.
    pub fn open_events(&self, sent: usize) -> Vec<usize> {
        (0..sent)
            .filter(|event| !self.complete.get(*event).copied().unwrap_or(false))
            .collect()
    }
}

/// The fabric the servers of a run talk over.
pub enum Network {
    /// In-memory messages on one paused tokio runtime; the world's clock started here.
    Fast(FastNetwork, tokio::time::Instant),
    /// Turmoil hosts speaking HTTP/1.1 over simulated TCP.
    Turmoil(Rc<TurmoilNetwork>),
}

impl Network {
    /// Reads or changes the network model (the nemesis and observers act through this).
    pub fn with_model<T>(&self, change: impl FnOnce(&mut NetworkModel) -> T) -> T {
        match self {
            Self::Fast(network, _) => network.with_model(change),
            Self::Turmoil(network) => network.with_model(change),
        }
    }

    /// Makes the fabric act on cut links changed in the model since the last call.
    pub fn links_changed(&self) {
        if let Self::Turmoil(network) = self {
            network.mirror_cuts();
        }
    }
}

/// Everything a run acts on.
pub struct World {
    pub plan: RunPlan,
    pub network: Network,
    pub slots: Vec<Rc<ServerSlot>>,
    pub room_id: RefCell<Option<String>>,
    pub records: RefCell<Records>,
    /// The run's shared parsing and verification of PDUs, unless sharing is off.
    pub pdu_cache: Option<Rc<PduCache>>,
}

/// The network model's form of a topology link.
pub fn network_link(profile: crate::sim::experiment::topology::LinkProfile) -> LinkProfile {
    LinkProfile {
        latency_ms_min: profile.latency_ms_min,
        latency_ms_max: profile.latency_ms_max.max(profile.latency_ms_min),
        loss: profile.loss,
    }
}

/// The model every run starts with: the topology's links, nothing cut, every server an
/// adversary controls isolated.
pub fn network_model(plan: &RunPlan) -> NetworkModel {
    let mut model = NetworkModel::new(LinkProfile::default());
    let topology = &plan.topology;
    let members = plan.servers.iter().map(|server| {
        let group = topology.server(server.id).group;
        (server.name.clone(), group.0)
    });
    model.set_groups(members, topology.groups.len(), |a, b| {
        network_link(topology.links.between_groups(GroupId(a), GroupId(b)))
    });
    // An attacker's messages draw from its own stream, so the run without it (the baseline
    // its figures are compared with) gives the honest servers the same draws.
    for server in plan.servers.iter().filter(|server| !server.honest) {
        let stream = component_rng(plan.seed, &format!("network/{}", server.name));
        model.isolate(&server.name, stream);
    }
    model
}

/// How a run's servers are set up: whether they share pure work on received events, and the
/// defences honest servers keep (all on, except in tests that show what an attack achieves
/// without one).
#[derive(Clone, Copy, Debug, Default)]
pub struct Setup {
    pub share_pdus: bool,
    pub defences: Defences,
}

/// The servers some fault of the plan crashes, by index.
fn servers_crashed(plan: &RunPlan) -> BTreeSet<usize> {
    plan.faults
        .iter()
        .flat_map(|fault| [&fault.action, &fault.undo])
        .filter_map(|action| match action {
            Action::Crash { server, .. } => Some(server.0),
            _ => None,
        })
        .collect()
}

/// One slot per planned server, each with its seeded key and a clock on `network_clock`, all
/// sharing `pdu_cache` when there is one; honest ones with `defences`. Only servers the plan
/// crashes record the events they acknowledge and keep their logs' records: nothing else reads
/// them, and at a thousand servers and ten thousand events they would be ten million of each.
fn slots(
    plan: &RunPlan,
    network_clock: Rc<dyn NetworkClock>,
    pdu_cache: &Option<Rc<PduCache>>,
    defences: Defences,
) -> Vec<Rc<ServerSlot>> {
    let crashed = servers_crashed(plan);
    plan.servers
        .iter()
        .map(|server| {
            let mut key_seed = [0u8; 32];
            let digest = Sha256::digest(format!("{}/key/{}", plan.seed, server.name).as_bytes());
            key_seed.copy_from_slice(&digest);
            let mut config = ServerConfig::new(&server.name, key_seed);
            config.room_version = plan.room_version;
            config.record_acknowledged = crashed.contains(&server.id.0);
            config.log_records_kept = crashed.contains(&server.id.0);
            if server.honest {
                config.defences = defences;
            }
            let clock = ServerClock::new(network_clock.clone());
            ServerSlot::sharing(config, clock, pdu_cache.clone())
        })
        .collect()
}

/// The run's one cache of parsed and verified PDUs, or none when every server works alone.
fn pdu_cache(share_pdus: bool) -> Option<Rc<PduCache>> {
    share_pdus.then(|| Rc::new(PduCache::new(PDU_CACHE_ENTRIES_DEFAULT)))
}

impl World {
    /// Builds the fast network and the servers, and boots every server. Call inside the run's
    /// `LocalSet`. With `setup.share_pdus`, every server parses and verifies an event it
    /// receives as the same signed bytes as another through one cache, and they hold the same
    /// copy.
    pub fn boot(plan: RunPlan, setup: Setup) -> Rc<Self> {
        let pdu_cache = pdu_cache(setup.share_pdus);
        let start = tokio::time::Instant::now();
        let network = FastNetwork::new(
            network_model(&plan),
            component_rng(plan.seed, "network"),
            REQUEST_TIMEOUT,
        );
        let network_clock = Rc::new(TokioClock {
            epoch_ms: EPOCH_MS,
            start,
        });
        let world = Rc::new(Self {
            slots: slots(&plan, network_clock, &pdu_cache, setup.defences),
            plan,
            network: Network::Fast(network, start),
            room_id: RefCell::new(None),
            records: RefCell::new(Records::default()),
            pdu_cache,
        });
        for index in 0..world.slots.len() {
            world.start_fast_server(index);
        }
        world
    }

    /// Builds the servers of a turmoil run; each is booted by its turmoil host.
    pub fn on_turmoil(plan: RunPlan, network: Rc<TurmoilNetwork>, setup: Setup) -> Rc<Self> {
        let network_clock = Rc::new(TurmoilClock { epoch_ms: EPOCH_MS });
        let pdu_cache = pdu_cache(setup.share_pdus);
        Rc::new(Self {
            slots: slots(&plan, network_clock, &pdu_cache, setup.defences),
            plan,
            network: Network::Turmoil(network),
            room_id: RefCell::new(None),
            records: RefCell::new(Records::default()),
            pdu_cache,
        })
    }

    /// Boots a new incarnation of server `index` on the fast fabric and connects it.
    fn start_fast_server(&self, index: usize) {
        let Network::Fast(network, _) = &self.network else {
            unreachable!("turmoil hosts boot their own servers");
        };
        let slot = &self.slots[index];
        let server = slot.boot(Rc::new(network.transport(&slot.name)));
        network.attach(&slot.name, server.http_handler());
        crate::server::task::spawn_local(slot.clone().run_actions());
    }

    /// Crashes server `index` and returns once it is down: it stops answering and loses what
    /// it had not flushed.
    pub async fn crash(&self, index: usize) {
        match &self.network {
            Network::Fast(..) => self.crash_server(index),
            Network::Turmoil(network) => {
                network.request_crash(index);
                while self.is_up(index) {
                    tokio::time::sleep(HOST_COMMAND_POLL).await;
                }
            }
        }
    }

    /// Restarts server `index` from its durable log and returns once it runs.
    pub async fn restart(&self, index: usize) {
        match &self.network {
            Network::Fast(..) => self.start_fast_server(index),
            Network::Turmoil(network) => {
                network.request_restart(index);
                while !self.is_up(index) {
                    tokio::time::sleep(HOST_COMMAND_POLL).await;
                }
            }
        }
    }

    /// Records what the crashing incarnation of `index` acknowledged and drops it. On turmoil
    /// the host's runtime must already be gone, so the old incarnation writes nothing more.
    pub fn crash_server(&self, index: usize) {
        let slot = &self.slots[index];
        if let Some(server) = slot.current() {
            server.shut_down();
            let acked = server
                .acknowledged_events()
                .expect("a server the plan crashes records what it acknowledged");
            self.records
                .borrow_mut()
                .acked_before_crash
                .insert(index, acked);
        }
        if let Network::Fast(network, _) = &self.network {
            network.detach(&slot.name);
        }
        slot.crash();
    }

    /// Simulated milliseconds since the run began.
    pub fn now_ms(&self) -> u64 {
        match &self.network {
            Network::Fast(_, start) => start.elapsed().as_millis() as u64,
            Network::Turmoil(_) => ::turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::experiment::parse_experiment;
    use crate::sim::runner::{execute, observer};
    use std::path::Path;

    fn plan_of(file: &str) -> RunPlan {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let experiment = parse_experiment(&path, &text).unwrap();
        experiment.resolve(1, &mut component_rng(1, "plan"))
    }

    fn index_of(world: &World, name: &str) -> usize {
        world
            .slots
            .iter()
            .position(|slot| slot.name == name)
            .unwrap()
    }

    #[test]
    fn only_the_servers_a_plan_crashes_record_acknowledgements() {
        let plan = plan_of("experiments/crash-restart.toml");
        let crashed: Vec<&str> = servers_crashed(&plan)
            .into_iter()
            .map(|index| plan.servers[index].name.as_str())
            .collect();
        assert_eq!(crashed, ["hs2.test", "hs4.test"]);
        assert!(servers_crashed(&plan_of("experiments/partition-heal.toml")).is_empty());
    }

    /// crash-restart crashes hs2 and hs4 and restarts both: their acknowledgements are
    /// recorded and found again after the restart, the other servers record none, and an
    /// acknowledged event missing after a restart is counted as lost.
    #[test]
    fn acknowledged_events_are_checked_after_the_restarts_a_plan_schedules() {
        let plan = plan_of("experiments/crash-restart.toml");
        let (world, _) = execute(plan, Setup::default()).unwrap();
        let (checked, lost) = {
            let records = world.records.borrow();
            (records.acked_checked, records.acked_lost)
        };
        assert!(
            checked > 100,
            "only {checked} acknowledged events were checked"
        );
        assert_eq!(lost, 0);
        for slot in &world.slots {
            let server = slot.current().unwrap();
            let recorded = server.acknowledged_events().is_some();
            let crashed = ["hs2.test", "hs4.test"].contains(&slot.name.as_str());
            assert_eq!(recorded, crashed, "{}", slot.name);
        }
        let hs2 = index_of(&world, "hs2.test");
        let server = world.slots[hs2].current().unwrap();
        let held = server.acknowledged_events().unwrap();
        assert!(
            !held.is_empty(),
            "hs2 acknowledged nothing after its restart"
        );
        let mut acked = held.into_iter().take(3).collect::<BTreeSet<_>>();
        acked.insert("$never-received".to_owned());
        world
            .records
            .borrow_mut()
            .acked_before_crash
            .insert(hs2, acked);
        observer::check_acked_after_restart(&world, hs2);
        let records = world.records.borrow();
        assert_eq!(records.acked_checked, checked + 4);
        assert_eq!(records.acked_lost, 1);
    }
}
