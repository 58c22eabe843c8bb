//! Warm pools in the engine: the keeper that launches and retires tenant-neutral machines ([`keeper`]), late
//! binding of a reserved runner to a ready machine ([`bind`]), and the agent's side ([`agent`]): hello,
//! assignment (the JIT config minted and handed over once) and timings. The rules are the pure
//! `ghr_core::pool` plan; the machines live in the `PoolStore`.

pub mod agent;
mod bind;
pub mod keeper;
pub mod secret;

use std::sync::Arc;
use tokio::sync::Notify;

/// In-process signals between binding, the agents' long-polls and the keeper. Across replicas the
/// long-polls re-read the store and the keeper passes on its tick.
#[derive(Clone, Default)]
pub struct PoolSignals {
    /// A machine was bound: held assignment requests look again.
    pub bound: Arc<Notify>,
    /// A machine was claimed or became ready: the keeper tops the pool up now.
    pub refill: Arc<Notify>,
}
