//! Port traits: the narrow interfaces through which the engine reaches the store, GitHub and the cloud.
//!
//! Every adapter implements one of these; only the binary's wiring picks concrete adapters.

mod github;
mod pool;
mod provider;
mod store;

pub use github::*;
pub use pool::*;
pub use provider::*;
pub use store::*;
