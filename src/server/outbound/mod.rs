//! Outbound federation: one queue per destination and the task that drains it.

pub mod queue;
pub(crate) mod sender;
