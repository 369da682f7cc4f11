//! `fedlab proto resolve`: state resolution on the JSON of stdin.
//!
//! Reads a resolver input (see `proto::state_res::scenario`), resolves the state sets or
//! computes the state after the `at` event, and prints
//! `{"rejected": [event_id, ...], "state": [[type, state_key, event_id], ...]}` as canonical
//! JSON. Bad input exits with code 2 and a message naming the event or key at fault.

use super::Failure;
use super::proto_tools::read_stdin;
use crate::proto::canonical_json::{self, Numbers};
use crate::proto::room_version::{StateResAlgorithm, room_version};
use crate::proto::state_res::scenario::{Scenario, output_json};

/// The long help of `fedlab proto resolve`.
pub const LONG_ABOUT: &str = "\
Resolves state sets, or computes the state after an event, from the JSON on stdin.

Input: {\"room_version\": \"11\", \"events\": [...], \"state_sets\": [[event_id, ...], ...]},
or \"at\": event_id instead of \"state_sets\" for the state after that event, replaying the
whole DAG as a server does. Events may leave out auth_events (chosen from the state before
them) and depth.

Output: {\"rejected\": [...], \"state\": [[type, state_key, event_id], ...]}. For state sets,
\"rejected\" lists the events that failed the authorization rules during the resolution; with
\"at\", the events the replay rejected (against their auth events or the state before them).

Exit codes: 0 ok, 2 bad input (the message names the event and the field).";

#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    /// The room version (1 to 12); overrides `room_version` in the input.
    #[arg(long)]
    pub room_version: Option<String>,
    /// The algorithm; by default the room version's (v1 for room v1, v2 for v2-v11, v2.1 for
    /// v12).
    #[arg(long, value_parser = ["v1", "v2", "v2.1"])]
    pub algorithm: Option<String>,
}

pub fn run(args: ResolveArgs) -> Result<(), Failure> {
    let text = read_stdin()?;
    println!("{}", resolve_text(&text, &args)?);
    Ok(())
}

/// The whole command on a string, for tests: the output line, or the failure.
pub fn resolve_text(text: &str, args: &ResolveArgs) -> Result<String, Failure> {
    let version = match &args.room_version {
        Some(id) => {
            Some(room_version(id).map_err(|e| Failure::bad_input(format!("--room-version: {e}")))?)
        }
        None => None,
    };
    let scenario =
        Scenario::parse(text, version).map_err(|e| Failure::bad_input(format!("stdin: {e}")))?;
    let algorithm = match &args.algorithm {
        Some(name) => StateResAlgorithm::parse(name)
            .ok_or_else(|| Failure::bad_input(format!("--algorithm: unknown algorithm {name}")))?,
        None => scenario.version.state_res,
    };
    let resolved = scenario
        .run(algorithm)
        .map_err(|e| Failure::bad_input(format!("stdin: {e}")))?;
    canonical_json::to_canonical_string(&output_json(&resolved), Numbers::Strict)
        .map_err(|e| Failure::bad_input(format!("output: {e}")))
}
