//! One Matrix homeserver as the federation sees it.
//!
//! Invariant: the server knows nothing of turmoil or of any other fabric; it reaches the
//! network only through `transport`.

pub mod store;
