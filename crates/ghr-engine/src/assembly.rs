//! One engine assembled from its ports and settings: teardown (with its queue), dispatcher, reconciler and
//! webhook intake, wired to each other's wake-ups and sharing the launches in flight. `ghr serve` runs
//! their loops; the deterministic simulation steps them by hand.

use crate::Ports;
use crate::dispatcher::Dispatcher;
use crate::intake::Intake;
use crate::reconciler::Reconciler;
use crate::settings::EngineSettings;
use crate::teardown::{self, Teardown, TeardownQueue};
use crate::wake::DispatchWake;
use std::sync::Arc;
use tokio::sync::Notify;

pub struct Engine {
    pub dispatcher: Arc<Dispatcher>,
    pub reconciler: Arc<Reconciler>,
    pub teardown: Teardown,
    /// Teardowns asked for by intake; [`Teardown::run`] carries them out.
    pub teardown_queue: TeardownQueue,
    pub intake: Intake,
    /// Wakes the dispatcher, saying which tenants changed (a slot freed, a job queued).
    pub dispatcher_wake: Arc<DispatchWake>,
}

impl Engine {
    pub fn assemble(ports: &Ports, settings: Arc<EngineSettings>) -> Engine {
        let dispatcher_wake = DispatchWake::new();
        let reconciler_wake = Arc::new(Notify::new());
        let (teardown_handle, teardown_queue) = teardown::channel();
        let teardown = Teardown::new(ports.clone(), dispatcher_wake.clone());
        let dispatcher = Dispatcher::new(ports.clone(), settings.clone(), dispatcher_wake.clone(), teardown.clone());
        let reconciler = Reconciler::new(
            ports.clone(),
            settings.clone(),
            teardown.clone(),
            dispatcher_wake.clone(),
            reconciler_wake.clone(),
            dispatcher.launches_in_flight(),
        );
        let intake = Intake::new(
            ports.store.clone(),
            ports.clock.clone(),
            settings,
            dispatcher_wake.clone(),
            reconciler_wake,
            teardown_handle,
        );
        Engine { dispatcher, reconciler, teardown, teardown_queue, intake, dispatcher_wake }
    }
}
