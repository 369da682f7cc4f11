//! The Matrix protocol, pure: no async, no I/O, no clock, no randomness.
//!
//! Canonical JSON, base64, signing keys, room versions, events and PDUs, redaction, the
//! authorization rules, state resolution and the federation wire types. Everything here is a
//! function of its inputs, so it can be tested on its own and used as a library by tools that
//! have nothing to do with the simulator.

pub mod acl;
pub mod auth;
pub mod base64;
pub mod canonical_json;
pub mod event;
pub mod hex;
pub mod ids;
pub mod pdu;
pub mod room_version;
pub mod server_keys;
pub mod signing;
pub mod state_res;
pub mod wire;
pub mod xmatrix;
