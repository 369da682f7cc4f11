//! Helpers shared by the integration tests and benches that compare fedlab with ruma.
//!
//! `history` generates forking room histories; `ruma_oracle` runs ruma's state resolution and
//! authorization rules on fedlab's events; `judges` are the authorization rules the generator
//! can ask; `known` recognises the differences between fedlab and ruma already explained.

// Each test or bench crate that includes this module uses a different part of it.
#![allow(dead_code)]

pub mod history;
pub mod judges;
pub mod known;
pub mod ruma_oracle;
