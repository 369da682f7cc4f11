//! The runner: executes one [`RunPlan`] (an experiment at one seed) and returns everything it
//! produced: summary, timeline, delivery latencies, perf figures and, on request, the trace.
//!
//! The plan's fabric decides where the run happens: on the fast fabric, one current-thread
//! tokio runtime with paused time whose clock jumps to the next timer; on turmoil, one host per
//! server and a driver client (see `turmoil.rs`). Workload, nemesis and observers are the same
//! code on both, acting through the [`World`].
//!
//! Invariants: the summary depends only on the plan (experiment, seed) and the code, so a
//! replay reproduces it byte for byte; wall-clock figures go to `Perf` only; a plan the runner
//! cannot execute faithfully is refused with an error, never run as something else.

pub mod adversary;
pub mod nemesis;
pub mod observer;
pub mod perf;
mod summary;
pub mod turmoil;
pub mod workload;
pub mod world;

use crate::observe::record::{FaultWindow, RunOutput};
use crate::server::config::Defences;
use crate::sim::experiment::plan::RunPlan;
use crate::sim::experiment::topology::Fabric;
use crate::sim::runner::world::{Setup, World};
use serde_json::Value;
use std::rc::Rc;

/// Why a plan cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Unsupported(String),
    /// The simulation itself failed (a bug in fedlab, not a verdict on the experiment).
    #[error("simulation failed: {0}")]
    Simulation(String),
}

/// Options that change what is recorded or how fast, never what happens.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub trace: bool,
    /// The command that replays this run, for the summary.
    pub replay: String,
    /// How servers share the parsing and verification of the events they receive.
    pub sharing: Sharing,
}

/// Whether the servers of a run share pure work on received events. Either way the results
/// are the same bytes (a test holds this); sharing only saves time and memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sharing {
    /// One cache per run: an event that reaches many servers as the same signed bytes is
    /// parsed and verified once, and stored once.
    #[default]
    Shared,
    /// Every server parses, verifies and holds its own copy, as separate processes would.
    PerServer,
}

/// Runs a plan to its end.
pub fn run(plan: RunPlan, options: &RunOptions) -> Result<RunOutput, RunError> {
    run_with_defences(plan, options, Defences::default())
}

/// Runs a plan with the honest servers' defences set as given: tests turn one off to show that
/// the attack it stops then succeeds.
pub fn run_with_defences(
    plan: RunPlan,
    options: &RunOptions,
    defences: Defences,
) -> Result<RunOutput, RunError> {
    if let Some(adversary) = plan
        .adversaries
        .iter()
        .find(|adversary| !adversary::supported(adversary.attack))
    {
        return Err(RunError::Unsupported(format!(
            "adversary {:?} on {}: this attack is not simulated yet, so this experiment \
             cannot be run honestly",
            adversary.attack.name(),
            plan.servers[adversary.server.0].name
        )));
    }
    let started = perf::Start::now();
    let duration_ms = plan.duration.as_ms();
    let setup = Setup {
        share_pdus: options.sharing == Sharing::Shared,
        defences,
    };
    // The same run without its attackers, to compare honest latency with: planned now,
    // run after the attacked run so that perf figures are the attacked run's alone.
    let baseline = (!plan.adversaries.is_empty()).then(|| adversary::baseline::plan(&plan));
    crate::server::task::take_panic();
    let (world, (windows, agreement, ledger)) = execute(plan, setup)?;
    fail_on_task_panic()?;
    let mut output = summary::summarize(&world, windows, &agreement, options, &ledger);
    let deliveries = output.summary.metrics.get("deliveries");
    let deliveries = deliveries.and_then(Value::as_u64).unwrap_or(0);
    let cache = world.pdu_cache.as_ref().map(|cache| cache.stats());
    output.perf = started.finish(duration_ms, world.slots.len(), deliveries, cache);
    if let Some(baseline) = baseline {
        let windows = adversary::baseline::attack_windows(&world.plan);
        let (twin, _) = execute(baseline, setup)?;
        fail_on_task_panic()?;
        adversary::baseline::compare(&world, &twin, &windows, &mut output.summary);
    }
    Ok(output)
}

/// A run in which a task panicked is a bug in fedlab, not a result (see `server/task.rs`).
fn fail_on_task_panic() -> Result<(), RunError> {
    match crate::server::task::take_panic() {
        Some(message) => Err(RunError::Simulation(format!("a task panicked: {message}"))),
        None => Ok(()),
    }
}

/// Runs `plan` on its fabric to its end.
fn execute(plan: RunPlan, setup: Setup) -> Result<(Rc<World>, Driven), RunError> {
    let duration_ms = plan.duration.as_ms();
    Ok(match plan.fabric {
        Fabric::Fast => run_fast(plan, setup),
        Fabric::Turmoil => self::turmoil::run(plan, setup, move |world| drive(world, duration_ms))?,
    })
}

/// What driving a world produces: the fault windows, when the servers converged for good,
/// and the adversaries' ledger.
type Driven = (Vec<FaultWindow>, observer::Agreement, Rc<adversary::Ledger>);

/// The part of a run both fabrics share: workload, adversaries, nemesis and observers over
/// `world`.
async fn drive(world: Rc<World>, duration_ms: u64) -> Driven {
    workload::start(&world);
    let ledger = adversary::start(&world);
    let nemesis = crate::server::task::spawn_local(nemesis::run(world.clone()));
    let agreement = observer::run(world.clone(), duration_ms).await;
    // A panicked nemesis gives no windows; the runner fails the run with the panic.
    let windows = nemesis.await.ok().flatten().unwrap_or_default();
    (windows, agreement, ledger)
}

/// A run on the fast fabric: one current-thread runtime with paused time.
fn run_fast(plan: RunPlan, setup: Setup) -> (Rc<World>, Driven) {
    let duration_ms = plan.duration.as_ms();
    crate::server::clock::block_on_paused(async move {
        let world = World::boot(plan, setup);
        let result = drive(world.clone(), duration_ms).await;
        (world, result)
    })
}
