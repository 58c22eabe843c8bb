//! ghr's engine: turns webhook events into tenant and job state, queued jobs into runners, and keeps the
//! fleet consistent with what GitHub and the provider report.
//!
//! - [`tenants`]: tenant operations shared by webhooks, the CLI and the admin API.
//! - [`intake`]: applies verified webhook events to the store (fast; no GitHub or provider calls).
//! - [`dispatcher`]: fair, limit-respecting admission of queued jobs and runner launches.
//! - [`teardown`]: terminating runners whose job completed, and anything else that must go.
//! - [`reconciler`]: the periodic, idempotent repair pass.
//!
//! Invariant: every decision about limits is made by the store's atomic `runner_reserve`; nothing here
//! counts runners on its own to decide whether another may start.

pub mod dispatcher;
pub mod error;
pub mod intake;
mod launch;
pub mod metrics;
pub mod reconciler;
pub mod settings;
pub mod teardown;
pub mod tenants;

pub use error::EngineError;
pub use settings::EngineSettings;

use ghr_core::ports::{GitHubApi, Provider, Store};
use std::sync::Arc;

/// The adapters the engine drives, chosen by the binary's wiring.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub github: Arc<dyn GitHubApi>,
    pub provider: Arc<dyn Provider>,
}
