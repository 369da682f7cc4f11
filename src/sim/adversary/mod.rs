//! Byzantine servers. An attacker is not a second server implementation: it is an honest
//! [`Homeserver`](crate::server::Homeserver) holding the real keys of its own server name,
//! plus an [`Interceptor`](intercept::Interceptor) in front of its HTTP handler (withholding,
//! stalling or rewriting what it answers) and a [`Crafter`](craft::Crafter) that builds and
//! signs the events an attack needs. Crafted events travel in ordinary signed transactions
//! through the server's own transport, so every defence is tested against real bytes.
//!
//! Code map: `craft` (the attacker's view of the room and the signing of crafted events),
//! `intercept` (the inbound interceptor and what it counts), `attacks` (what each attack
//! crafts in one round, and how the oracle must judge each crafted event).
//!
//! Invariants: nothing here changes an honest server or reads its store; an attacker signs
//! only as itself (impersonation is attempted through the `sender` field, never with another
//! server's key); all randomness comes from RNGs handed in by the runner.

pub mod attacks;
pub mod craft;
pub mod intercept;
