//! The clap front end: argument parsing and exit codes, nothing else.
//!
//! Exit codes everywhere: 0 ok, 1 an expectation or verification failed, 2 bad input (the
//! message names what is wrong and where). Bad input never panics.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod bench;
pub mod check;
pub mod list;
pub mod proto_resolve;
pub mod proto_tools;
pub mod report_cmd;
pub mod run;
pub mod shrink;
pub mod swarm;
pub mod sweep;

#[derive(Debug, Parser)]
#[command(
    name = "fedlab",
    version,
    about = "A deterministic simulator and chaos lab for Matrix federation"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Protocol tools: JSON on stdin, JSON on stdout.
    #[command(subcommand)]
    Proto(proto_tools::ProtoCommand),
    /// Runs one experiment at one seed (default: experiments/quickstart.toml).
    Run(run::RunArgs),
    /// Lists the experiments under a folder (default experiments/).
    List(list::ListArgs),
    /// Runs every experiment under the paths for its seeds, in parallel; one row per run.
    Check(check::CheckArgs),
    /// Searches for the smallest experiment that still fails the same expectation at a seed.
    Shrink(shrink::ShrinkArgs),
    /// Runs a grid of (parameter point x seed), one record per run; shardable and resumable.
    Sweep(sweep::SweepArgs),
    /// Merges sweep directories (shards) into report.md, merged.csv and plots.
    Report(report_cmd::ReportArgs),
    /// Runs the scale experiments (experiments/scale-N.toml), one process each, and prints
    /// wall and simulated time, their ratio, deliveries per second and peak memory.
    Bench(bench::BenchArgs),
}

/// An error that ends the command with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// Bad input: exit code 2.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }

    /// A check that did not hold: exit code 1.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Proto(command) => proto_tools::run(command),
        Command::Run(args) => run::run(args),
        Command::List(args) => list::run(args),
        Command::Check(args) => check::run(args),
        Command::Shrink(args) => shrink::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Report(args) => report_cmd::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("fedlab: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
