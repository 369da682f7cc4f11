//! fedlab: a deterministic simulator and chaos lab for Matrix federation.
//!
//! `proto` is the Matrix protocol as pure functions; `server` is one homeserver; `sim` is the
//! lab that runs many of them; `cli` is the command-line front end.
//! See ARCHITECTURE.md for the map and the invariants of each part.
#![forbid(unsafe_code)]

pub mod cli;
pub mod observe;
pub mod proto;
pub mod report;
pub mod server;
pub mod sim;
