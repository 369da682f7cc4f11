//! The runner on the turmoil fabric: every server is a turmoil host serving HTTP/1.1 with hyper
//! over turmoil's simulated TCP, and the driver (workload, nemesis, observers: the same code as
//! on the fast fabric) is one more turmoil client.
//!
//! Faults act through the run's [`NetworkModel`], as on the fast fabric: each request and each
//! response has its fate decided by the model when it is sent (dropped by a cut, lost, or held
//! for its sampled latency, plus a slow server's extra delay), so every fault is counted when
//! it takes effect with the same counters on both fabrics. Turmoil then carries the bytes with
//! no latency of its own beyond its tick, and a cut is also mirrored into turmoil's own
//! partitions so that segments already on the wire when a link is cut are lost, as on a real
//! network. Crashes and restarts are turmoil's (`Sim::crash`, `Sim::bounce`): the host's
//! runtime, tasks and sockets go away, and peers see refused or dead connections.
//!
//! Invariants: all randomness comes from seeded generators (the model's, split from the run's
//! seed, and turmoil's own, seeded from it), hosts step in registration order, and nothing
//! reads the wall clock, so a replay is byte-identical; a crash is applied between steps, and
//! the slot drops its incarnation only after the host's runtime is gone, so a crashed server
//! writes nothing more to its log.

use crate::server::transport::{HttpHandler, LocalFuture, Transport, TransportError};
use crate::sim::adversary::intercept::Interceptor;
use crate::sim::experiment::plan::RunPlan;
use crate::sim::network::{Fate, NetworkModel};
use crate::sim::runner::RunError;
use crate::sim::runner::world::{
    EPOCH_MS, REQUEST_TIMEOUT, Setup, World, component_rng, network_model,
};
use crate::sim::turmoil_fabric::{TurmoilTransport, serve};
use hyper::body::Bytes;
use hyper::{Request, Response};
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

/// Simulated time per turmoil step. Every step visits every host and, in turmoil 0.7, every
/// link of every host (n^3 link visits per step) and ticks each host's tokio runtime, so the
/// tick sets the fixed cost of a simulated second; measured on 50 servers in one room, 1 ms
/// ticks spend most of the run in that bookkeeping, 10 ms ticks leave the servers' own work
/// (signatures, storage) as the main cost. What a coarser tick costs in fidelity: timers
/// still fire at their exact time, but a TCP segment, or an action the driver hands a server,
/// reaches its host only at that host's next step, so each hop may take up to one tick more
/// than the model's latency (a request over a new connection makes three or four hops).
pub const TICK: Duration = Duration::from_millis(10);

/// Backlog room per server on every listener (turmoil's `tcp_capacity`, also each stream's
/// buffer in segments).
const TCP_BACKLOG_PER_SERVER: usize = 16;

/// The driver's host name: not a Matrix server name, so it cannot collide with one.
const DRIVER_HOST: &str = "fedlab-driver";

/// How long past the planned duration the simulation may run before it is called stuck.
const OVERRUN_ALLOWED: Duration = Duration::from_secs(60);

/// A crash or restart the driver asked for; only the stepping loop can apply it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostCommand {
    Crash(usize),
    Restart(usize),
}

struct Gate {
    model: NetworkModel,
    rng: ChaCha8Rng,
}

/// The network of a turmoil run: the model that decides every message's fate, the cuts
/// mirrored into turmoil, and the host commands waiting for the stepping loop.
pub struct TurmoilNetwork {
    gate: RefCell<Gate>,
    names: Vec<String>,
    mirrored_cuts: RefCell<BTreeSet<(usize, usize)>>,
    commands: RefCell<VecDeque<HostCommand>>,
    timeout: Duration,
    /// Attackers' interceptors by server index: a host serves through its server's
    /// interceptor once one is set, in every incarnation.
    interceptors: RefCell<BTreeMap<usize, Rc<Interceptor>>>,
}

impl TurmoilNetwork {
    pub fn new(model: NetworkModel, rng: ChaCha8Rng, names: Vec<String>) -> Self {
        Self {
            gate: RefCell::new(Gate { model, rng }),
            names,
            mirrored_cuts: RefCell::new(BTreeSet::new()),
            commands: RefCell::new(VecDeque::new()),
            timeout: REQUEST_TIMEOUT,
            interceptors: RefCell::new(BTreeMap::new()),
        }
    }

    /// Puts `interceptor` in front of server `index`'s handler, from its next request on.
    pub fn intercept(&self, index: usize, interceptor: Rc<Interceptor>) {
        self.interceptors.borrow_mut().insert(index, interceptor);
    }

    /// What host `index` serves: `handler`, through the server's interceptor when it has one.
    fn front(self: &Rc<Self>, index: usize, handler: HttpHandler) -> HttpHandler {
        let network = self.clone();
        Rc::new(move |request| {
            let interceptor = network.interceptors.borrow().get(&index).cloned();
            match interceptor {
                Some(interceptor) => interceptor.wrap(handler.clone())(request),
                None => handler(request),
            }
        })
    }

    pub fn with_model<T>(&self, change: impl FnOnce(&mut NetworkModel) -> T) -> T {
        change(&mut self.gate.borrow_mut().model)
    }

    fn decide(&self, from: &str, to: &str) -> Fate {
        let mut gate = self.gate.borrow_mut();
        let Gate { model, rng } = &mut *gate;
        model.decide(from, to, rng)
    }

    /// Partitions (or repairs) in turmoil every directed link whose cut the model changed.
    /// Call from inside the simulation (the driver).
    pub fn mirror_cuts(&self) {
        let cut_now: BTreeSet<(usize, usize)> = self.with_model(|model| {
            let count = self.names.len();
            (0..count)
                .flat_map(|a| (0..count).map(move |b| (a, b)))
                .filter(|&(a, b)| a != b && model.is_cut(&self.names[a], &self.names[b]))
                .collect()
        });
        let mut mirrored = self.mirrored_cuts.borrow_mut();
        for &(a, b) in cut_now.difference(&mirrored) {
            ::turmoil::partition_oneway(self.names[a].as_str(), self.names[b].as_str());
        }
        for &(a, b) in mirrored.difference(&cut_now) {
            ::turmoil::repair_oneway(self.names[a].as_str(), self.names[b].as_str());
        }
        *mirrored = cut_now;
    }

    pub fn request_crash(&self, index: usize) {
        self.commands
            .borrow_mut()
            .push_back(HostCommand::Crash(index));
    }

    pub fn request_restart(&self, index: usize) {
        self.commands
            .borrow_mut()
            .push_back(HostCommand::Restart(index));
    }

    fn take_commands(&self) -> Vec<HostCommand> {
        self.commands.borrow_mut().drain(..).collect()
    }
}

/// Sends as one server: the model decides the request's fate, turmoil TCP carries it, the
/// model decides the response's fate.
struct GatedTransport {
    network: Rc<TurmoilNetwork>,
    origin: String,
}

impl Transport for GatedTransport {
    fn send(
        &self,
        destination: &str,
        request: Request<Bytes>,
    ) -> LocalFuture<Result<Response<Bytes>, TransportError>> {
        let network = self.network.clone();
        let origin = self.origin.clone();
        let destination = destination.to_owned();
        Box::pin(async move {
            let timeout = network.timeout;
            let carried = carry(&network, &origin, &destination, request);
            match tokio::time::timeout(timeout, carried).await {
                Ok(result) => result,
                // A message the model dropped looks like one lost on the wire: no answer.
                Err(_) => Err(TransportError::TimedOut {
                    destination,
                    timeout_ms: timeout.as_millis() as u64,
                }),
            }
        })
    }
}

async fn carry(
    network: &TurmoilNetwork,
    origin: &str,
    destination: &str,
    request: Request<Bytes>,
) -> Result<Response<Bytes>, TransportError> {
    let Fate::Deliver(there) = network.decide(origin, destination) else {
        return std::future::pending().await;
    };
    tokio::time::sleep(there).await;
    // The outer timeout started first, so this one never fires before it.
    let wire = TurmoilTransport {
        timeout: network.timeout,
    };
    let response = wire.send(destination, request).await?;
    let Fate::Deliver(back) = network.decide(destination, origin) else {
        return std::future::pending().await;
    };
    tokio::time::sleep(back).await;
    Ok(response)
}

/// Runs `drive` on a world of turmoil hosts; returns the world and what `drive` returned.
pub fn run<T, Fut>(
    plan: RunPlan,
    setup: Setup,
    drive: impl FnOnce(Rc<World>) -> Fut + 'static,
) -> Result<(Rc<World>, T), RunError>
where
    T: 'static,
    Fut: Future<Output = T> + 'static,
{
    let names: Vec<String> = plan.servers.iter().map(|s| s.name.clone()).collect();
    let mut sim = build_sim(&plan);
    let network = Rc::new(TurmoilNetwork::new(
        network_model(&plan),
        component_rng(plan.seed, "network"),
        names.clone(),
    ));
    let world = World::on_turmoil(plan, network.clone(), setup);
    // Servers first: hosts step in registration order, so every server has booted when the
    // driver first runs.
    for (index, name) in names.iter().enumerate() {
        let slot = world.slots[index].clone();
        let network = network.clone();
        let origin = name.clone();
        sim.host(name.as_str(), move || {
            let slot = slot.clone();
            let transport = Rc::new(GatedTransport {
                network: network.clone(),
                origin: origin.clone(),
            });
            let network = network.clone();
            async move {
                let server = slot.boot(transport);
                crate::server::task::spawn_local(slot.clone().run_actions());
                serve(network.front(index, server.http_handler())).await?;
                Ok(())
            }
        });
    }
    let output: Rc<RefCell<Option<T>>> = Rc::default();
    let driver_output = output.clone();
    let driver_world = world.clone();
    sim.client(DRIVER_HOST, async move {
        while !(0..driver_world.slots.len()).all(|index| driver_world.is_up(index)) {
            tokio::time::sleep(TICK).await;
        }
        let result = drive(driver_world).await;
        *driver_output.borrow_mut() = Some(result);
        Ok(())
    });
    loop {
        let finished = sim
            .step()
            .map_err(|e| RunError::Simulation(format!("turmoil: {e}")))?;
        for command in network.take_commands() {
            apply_command(&mut sim, &world, &names, command);
        }
        if finished {
            break;
        }
    }
    drop(sim);
    let result = output
        .borrow_mut()
        .take()
        .ok_or_else(|| RunError::Simulation("the driver ended without a result".into()))?;
    Ok((world, result))
}

fn apply_command(
    sim: &mut ::turmoil::Sim<'_>,
    world: &World,
    names: &[String],
    command: HostCommand,
) {
    match command {
        HostCommand::Crash(index) => {
            let name = names[index].as_str();
            if sim.is_host_running(name) {
                sim.crash(name);
            }
            world.crash_server(index);
        }
        HostCommand::Restart(index) => sim.bounce(names[index].as_str()),
    }
}

fn build_sim(plan: &RunPlan) -> ::turmoil::Sim<'static> {
    let turmoil_seed = component_rng(plan.seed, "turmoil").next_u64();
    let servers = plan.servers.len();
    ::turmoil::Builder::new()
        .rng_seed(turmoil_seed)
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
        .simulation_duration(Duration::from_millis(plan.duration.as_ms()) + OVERRUN_ALLOWED)
        .tick_duration(TICK)
        // Latency is the model's, applied before a message goes on the wire.
        .min_message_latency(Duration::ZERO)
        .max_message_latency(Duration::ZERO)
        // Connections that reach one listener within one tick wait in its backlog, and turmoil
        // panics when it overflows: every server may connect to one several times per tick.
        .tcp_capacity(TCP_BACKLOG_PER_SERVER * servers.max(16))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::transport::HttpHandler;
    use crate::sim::network::LinkProfile;
    use rand::SeedableRng as _;

    fn echo() -> HttpHandler {
        Rc::new(|request: Request<Bytes>| {
            Box::pin(async move { Response::new(request.into_body()) })
        })
    }

    fn network() -> Rc<TurmoilNetwork> {
        let profile = LinkProfile {
            latency_ms_min: 30,
            latency_ms_max: 30,
            loss: 0.0,
        };
        Rc::new(TurmoilNetwork::new(
            NetworkModel::new(profile),
            ChaCha8Rng::seed_from_u64(1),
            vec!["a".into(), "b".into()],
        ))
    }

    /// The model's latency applies both ways on top of turmoil's own hops, and a cut in the
    /// model is counted and turns the request into a timeout.
    #[test]
    fn the_model_decides_and_counts_every_message() {
        let network = network();
        let mut sim = ::turmoil::Builder::new()
            .rng_seed(1)
            .simulation_duration(Duration::from_secs(60))
            .tick_duration(TICK)
            .min_message_latency(Duration::ZERO)
            .max_message_latency(Duration::ZERO)
            .build();
        sim.host("b", || async { serve(echo()).await.map_err(Into::into) });
        let client_network = network.clone();
        sim.client("a", async move {
            let transport = GatedTransport {
                network: client_network.clone(),
                origin: "a".into(),
            };
            let start = tokio::time::Instant::now();
            let request = Request::new(Bytes::from("hi"));
            let response = transport.send("b", request).await?;
            assert_eq!(response.body().as_ref(), b"hi");
            let elapsed = start.elapsed();
            assert!(elapsed >= Duration::from_millis(60), "{elapsed:?}");
            assert!(
                elapsed < Duration::from_millis(60) + 6 * TICK,
                "{elapsed:?}"
            );
            client_network.with_model(|model| model.cut_one_way("a", "b"));
            client_network.mirror_cuts();
            let result = transport.send("b", Request::new(Bytes::new())).await;
            assert!(
                matches!(result, Err(TransportError::TimedOut { .. })),
                "{result:?}"
            );
            Ok(())
        });
        sim.run().unwrap();
        let totals = network.with_model(|model| model.totals());
        assert_eq!((totals.delivered, totals.dropped_cut), (2, 1));
        assert_eq!(
            *network.mirrored_cuts.borrow(),
            BTreeSet::from([(0usize, 1usize)])
        );
    }
}
