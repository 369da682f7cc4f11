//! The event store of one homeserver: per room, the event DAG with the state after every
//! event, current state, forward extremities and each event's verdict; and the durable log
//! it is rebuilt from after a crash.
//!
//! The store is a synchronous data structure: no I/O, no clock, no randomness. The async
//! server code drives it (fetching missing events, verifying signatures and hashes) and asks it
//! to place events; everything the store decides is a function of the events it was given and
//! their order.

pub mod dag;
pub mod log;
pub mod state_groups;
