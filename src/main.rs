//! The `fedlab` command: parses arguments and hands them to `fedlab::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    fedlab::cli::main()
}
