//! One ghr process inside the simulation: the real dispatcher, launcher, teardown, reconciler and webhook
//! router on the shared store, provider and GitHub client. A restart drops this and builds a new one: launches
//! in flight and queued teardowns are lost, exactly as when the process is killed.

use axum::Router;
use ghr_engine::Ports;
use ghr_engine::assembly::Engine;
use ghr_engine::dispatcher::Dispatcher;
use ghr_engine::launch::{LaunchOutcome, Launcher, MintedLaunch, PendingLaunch, StartedLaunch};
use ghr_engine::reconciler::Reconciler;
use ghr_engine::settings::EngineSettings;
use ghr_engine::teardown::{Teardown, TeardownQueue};
use ghr_server::AppState;
use ghr_server::admin::LocalAdmin;
use secrecy::SecretString;
use std::sync::Arc;

/// The path ghr serves webhooks on.
pub const WEBHOOK_PATH: &str = "/webhook";
/// Largest accepted webhook body.
const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// A launch between its steps.
pub enum LaunchStage {
    Reserved(PendingLaunch),
    Minted(MintedLaunch),
    Started(StartedLaunch),
}

impl LaunchStage {
    pub fn runner(&self) -> &ghr_core::runner::Runner {
        match self {
            LaunchStage::Reserved(pending) => &pending.runner,
            LaunchStage::Minted(minted) => minted.runner(),
            LaunchStage::Started(started) => started.runner(),
        }
    }
}

pub struct SimGhr {
    pub dispatcher: Arc<Dispatcher>,
    pub reconciler: Arc<Reconciler>,
    pub teardown: Teardown,
    pub teardown_queue: TeardownQueue,
    pub launcher: Launcher,
    pub router: Router,
    pub launches: Vec<LaunchStage>,
}

impl SimGhr {
    pub fn start(ports: Ports, settings: Arc<EngineSettings>, webhook_secret: &str) -> SimGhr {
        let Engine { dispatcher, reconciler, teardown, teardown_queue, intake, dispatcher_wake } =
            Engine::assemble(&ports, settings.clone());
        let state = AppState {
            intake,
            webhook_secret: SecretString::from(webhook_secret.to_owned()),
            max_body_bytes: MAX_BODY_BYTES,
            admin_token: None,
            admin: Arc::new(LocalAdmin::new(ports.store.clone(), settings.clone()).with_clock(ports.clock.clone())),
            store: ports.store.clone(),
            dispatcher_wake,
            reconciler: Some(reconciler.clone()),
        };
        let router = ghr_server::router(state, WEBHOOK_PATH);
        let launcher = dispatcher.launcher();
        SimGhr { dispatcher, reconciler, teardown, teardown_queue, launcher, router, launches: Vec::new() }
    }

    /// Advance launch `index` by one step; a finished launch leaves the list and reports to the dispatcher.
    pub async fn advance_launch(&mut self, index: usize) {
        if index >= self.launches.len() {
            return;
        }
        let stage = self.launches.swap_remove(index);
        let runner = stage.runner().clone();
        let next = match stage {
            LaunchStage::Reserved(pending) => self.launcher.mint(pending).await.map(LaunchStage::Minted),
            LaunchStage::Minted(minted) => self.launcher.start(minted).await.map(LaunchStage::Started),
            LaunchStage::Started(started) => Err(self.launcher.record(started).await),
        };
        match next {
            Ok(stage) => self.launches.push(stage),
            Err(outcome) => {
                let _ = self.dispatcher.launch_finished(&runner, &outcome);
                if let LaunchOutcome::Failed(reason) = outcome {
                    tracing::debug!(runner = %runner.name, %reason, "simulated launch ended without a runner");
                }
            }
        }
    }
}
