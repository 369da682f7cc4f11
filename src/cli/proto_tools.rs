//! `fedlab proto ...`: the protocol core as command-line tools, JSON on stdin, JSON on stdout.

use super::Failure;
use crate::proto::canonical_json::{self, Numbers};
use clap::Subcommand;
use std::io::Read as _;

#[derive(Debug, Subcommand)]
pub enum ProtoCommand {
    /// Prints the canonical JSON form of the JSON on stdin.
    CanonicalJson {
        /// Accept floats and integers outside [-(2^53)+1, (2^53)-1] (room versions 1-5).
        #[arg(long)]
        lenient: bool,
    },
    /// Resolves state sets, or computes the state after an event, from the JSON on stdin.
    #[command(long_about = super::proto_resolve::LONG_ABOUT)]
    Resolve(super::proto_resolve::ResolveArgs),
}

pub fn run(command: ProtoCommand) -> Result<(), Failure> {
    match command {
        ProtoCommand::CanonicalJson { lenient } => {
            let numbers = if lenient {
                Numbers::Lenient
            } else {
                Numbers::Strict
            };
            let text = read_stdin()?;
            let canonical = canonical_json::canonicalize_str(&text, numbers)
                .map_err(|e| Failure::bad_input(format!("stdin: {e}")))?;
            println!("{canonical}");
            Ok(())
        }
        ProtoCommand::Resolve(args) => super::proto_resolve::run(args),
    }
}

/// Reads all of stdin as UTF-8.
pub fn read_stdin() -> Result<String, Failure> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Failure::bad_input(format!("stdin: cannot read UTF-8 text: {e}")))?;
    Ok(text)
}
