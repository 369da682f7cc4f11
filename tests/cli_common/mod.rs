//! Helpers shared by the integration tests that run the `fedlab` binary and read what it
//! printed, whatever its exit code.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `fedlab` with `args` in `dir`.
pub fn fedlab(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// What a run printed: its standard output, then its standard error.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
