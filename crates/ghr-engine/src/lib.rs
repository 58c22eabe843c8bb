//! ghr's engine: turns webhook events into tenant and job state, queued jobs into runners, and keeps the
//! fleet consistent with what GitHub and the provider report.
//!
//! - [`tenants`]: tenant operations shared by webhooks, the CLI and the admin API.
//! - [`intake`]: applies verified webhook events to the store (fast; no GitHub or provider calls).
//! - [`dispatcher`]: fair, limit-respecting admission of queued jobs and runner launches.
//! - [`teardown`]: terminating runners whose job completed, and anything else that must go.
//! - [`reconciler`]: the periodic, idempotent repair pass.
//! - [`wake`]: the dispatcher's wake-ups, saying which tenants changed.
//! - [`queue`]: the work queue port (in process, or SQS between serverless functions).
//! - [`pool`]: warm pools: the keeper, late binding of reserved runners, and pool machines' agents.
//! - [`lease`]: the reconciler lease, so that of several replicas sharing a store one runs the reconciler.
//!
//! The dispatcher and the reconciler are executors of the pure planner (`ghr_core::planner`): one snapshot
//! read, one plan, its actions applied.
//!
//! Invariant: every decision about limits is made by the store's atomic `runner_reserve`; nothing here
//! counts runners on its own to decide whether another may start.

pub mod assembly;
pub mod dispatcher;
pub mod error;
pub mod group_commit;
pub mod intake;
pub mod launch;
pub mod lease;
pub mod metrics;
pub mod pool;
pub mod queue;
pub mod reconciler;
pub mod settings;
pub mod teardown;
pub mod tenants;
pub mod wake;

pub use error::EngineError;
pub use settings::EngineSettings;

use ghr_core::clock::{Clock, SystemClock};
use ghr_core::ports::{GitHubApi, PoolStore, Provider, Store};
use std::sync::Arc;

/// The adapters the engine drives, chosen by the binary's wiring, and the clock it reads.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub github: Arc<dyn GitHubApi>,
    pub provider: Arc<dyn Provider>,
    /// Where warm-pool machines are recorded; None when no tier has a warm pool (or the store keeps none).
    pub pool: Option<Arc<dyn PoolStore>>,
    /// Every time the engine stamps or compares comes from here (tests and simulations own time).
    pub clock: Arc<dyn Clock>,
}

impl Ports {
    /// Ports on the system clock.
    pub fn new(store: Arc<dyn Store>, github: Arc<dyn GitHubApi>, provider: Arc<dyn Provider>) -> Self {
        Self { store, github, provider, pool: None, clock: Arc::new(SystemClock) }
    }

    /// The same ports recording warm-pool machines in `pool`.
    pub fn with_pool(mut self, pool: Arc<dyn PoolStore>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The same ports reading another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}
