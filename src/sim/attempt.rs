//! One run of a checked experiment at one seed, as the workflow commands (shrink, sweep,
//! swarm) need it: the plan is resolved exactly as `fedlab run` resolves it, and a refusal or a
//! panic becomes a value, so one bad run never takes a whole search or sweep down.
//!
//! Invariant: the plan RNG is the `"plan"` component of the seed, as in `fedlab run`, so a
//! result here is the result `fedlab run FILE --seed N` reproduces.

use super::experiment::Experiment;
use super::runner::{self, RunOptions};
use crate::observe::record::RunOutput;

/// Why a run gave no output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotRun {
    /// The runner refused the plan (a feature it does not simulate yet).
    Refused(String),
    /// fedlab panicked: a bug, with its message.
    Panicked(String),
}

impl std::fmt::Display for NotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(reason) => write!(f, "not run: {reason}"),
            Self::Panicked(message) => write!(f, "fedlab panicked (a bug): {message}"),
        }
    }
}

/// Runs `experiment` at `seed`; `replay` is recorded in the summary.
pub fn run_at_seed(experiment: &Experiment, seed: u64, replay: &str) -> Result<RunOutput, NotRun> {
    let mut rng = runner::world::component_rng(seed, "plan");
    let plan = experiment.resolve(seed, &mut rng);
    let options = RunOptions {
        trace: false,
        replay: replay.to_owned(),
        ..RunOptions::default()
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner::run(plan, &options)));
    match outcome {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(error)) => Err(NotRun::Refused(error.to_string())),
        Err(panic) => Err(NotRun::Panicked(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned()),
        )),
    }
}
