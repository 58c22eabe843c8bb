//! The simulated world: GitHub (the emulator), the network ([`Receiver`]), the cloud ([`SimProvider`]), the
//! store (SQLite in memory, or a fresh PostgreSQL schema: [`SimBackend`], behind [`FaultyStore`]), a manual
//! clock and one ghr process at a time.
//!
//! Every change of the world is a [`Step`] chosen by the seeded scheduler and run to completion before the
//! next, so a seed replays the same interleaving of GitHub's events, ghr's loops, launches, runners,
//! restarts and faults.

use crate::backend::{SimBackend, UnknownBackend};
use crate::faulty_store::FaultyStore;
use crate::ghr::{LaunchStage, SimGhr};
use crate::provider::{RunnerPhase, SimProvider};
use crate::receiver::{NetworkFaults, Receiver};
use ghr_core::clock::{Clock, ManualClock};
use ghr_core::ids::{InstallationId, InstanceId, TierName};
use ghr_core::ports::{GitHubApi, Store};
use ghr_core::tenant::TenantUpdate;
use ghr_engine::Ports;
use ghr_engine::settings::EngineSettings;
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, JobSpec};
use ghr_testkit::runner::{EmulatedRunner, Polled, RunnerOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

/// The webhook secret shared by the emulator and ghr.
const WEBHOOK_SECRET: &str = "simulation-webhook-secret";
/// Labels of a GitHub-hosted job: never ghr's.
const HOSTED_LABELS: [&str; 1] = ["ubuntu-latest"];
/// The longest a simulated job runs once a runner took it (simulated seconds).
const MAX_JOB_SECONDS: i64 = 240;
/// How long to wait (real time) for redeliveries the emulator sends in the background.
const REDELIVERY_WAIT: Duration = Duration::from_secs(5);

/// A failure to build or drive the world (not an invariant violation).
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("starting the GitHub emulator failed")]
    Emulator(#[from] ghr_testkit::github::EmulatorError),
    #[error("starting the simulated network failed")]
    Network(#[from] std::io::Error),
    #[error("choosing the store failed")]
    Backend(#[from] UnknownBackend),
    #[error("opening the store failed")]
    Store(#[from] ghr_core::ports::StoreError),
    #[error("building the GitHub client failed: {0}")]
    Client(String),
    #[error("setting up tenant {0} failed")]
    Tenant(InstallationId),
}

/// One thing that happens in the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    QueueJob,
    HandOver,
    Dispatch,
    AdvanceLaunch,
    Boot,
    Poll,
    Finish,
    PowerOff,
    Teardown,
    Reconcile,
    Tick,
    Restart,
    StoreFault,
    ProviderFault,
    Outage,
}

/// A tenant of the simulation: its installation and concurrent-runner limit.
#[derive(Debug, Clone, Copy)]
pub struct SimTenant {
    pub installation: InstallationId,
    pub limit: u32,
}

pub struct World {
    pub rng: StdRng,
    pub clock: Arc<ManualClock>,
    pub emulator: GithubEmulator,
    pub receiver: Receiver,
    /// The store's backend ([`crate::backend::STORE_ENV`]).
    pub backend: SimBackend,
    pub inner_store: Arc<dyn Store>,
    pub store: Arc<FaultyStore>,
    pub provider: SimProvider,
    github: Arc<dyn GitHubApi>,
    pub settings: Arc<EngineSettings>,
    pub ghr: Option<SimGhr>,
    pub tenants: Vec<SimTenant>,
    tiers: Vec<TierName>,
    /// Steps left while ghr is down (an outage).
    pub down_for: u32,
    pub restarts: u32,
    /// The longest a job runs once taken (simulated seconds).
    pub max_job_seconds: i64,
    /// One HTTP client for every emulated runner.
    http: reqwest::Client,
}

impl World {
    /// A world with three org tenants whose limits are 1, 2 and 3.
    pub async fn new(seed: u64) -> Result<World, WorldError> {
        Self::with_limits(seed, &[("acme", 1), ("globex", 2), ("initech", 3)]).await
    }

    /// A world with one org tenant per `(login, limit)`.
    pub async fn with_limits(seed: u64, tenants: &[(&str, u32)]) -> Result<World, WorldError> {
        Self::build(seed, tenants, |_| {}).await
    }

    /// A world with one org tenant per `(login, limit)` and GitHub as `github` adjusts it.
    pub async fn build(
        seed: u64,
        tenants: &[(&str, u32)],
        github: impl FnOnce(&mut EmulatorConfig),
    ) -> Result<World, WorldError> {
        // ghr compares GitHub's timestamps (the emulator's wall clock) with its own: start from the same time.
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let mut config = EmulatorConfig {
            rate_limit_per_hour: u32::MAX,
            runner_lost_after: Duration::from_secs(24 * 3600),
            seed,
            ..EmulatorConfig::default()
        };
        github(&mut config);
        let emulator = GithubEmulator::start(config).await?;
        let receiver = Receiver::start(seed).await?;
        emulator.set_webhook_target(receiver.url(), WEBHOOK_SECRET);
        let backend = SimBackend::from_env()?;
        let inner_store = backend.open().await?;
        let store = Arc::new(FaultyStore::new(inner_store.clone()));
        let provider = SimProvider::new(clock.clone());
        let mut client = GithubClientConfig::new(AppCredentials {
            app_id: emulator.app_id(),
            private_key_pem: SecretString::from(ghr_testkit::TEST_APP_PRIVATE_KEY_PEM),
        });
        client.api_base_url = emulator.base_url().to_owned();
        client.retry.max_retries = 0;
        let github: Arc<dyn GitHubApi> =
            Arc::new(GithubClient::new(client).map_err(|e| WorldError::Client(e.to_string()))?);
        let config = ghr_config::Config::builtin();
        let settings = Arc::new(EngineSettings::from_config(&config));
        let tiers = settings.catalog.tiers().iter().map(|t| t.name.clone()).collect();
        let mut world = World {
            rng: StdRng::seed_from_u64(seed),
            clock,
            emulator,
            receiver,
            backend,
            inner_store,
            store,
            provider,
            github,
            settings,
            ghr: None,
            tenants: Vec::new(),
            tiers,
            down_for: 0,
            restarts: 0,
            max_job_seconds: MAX_JOB_SECONDS,
            http: reqwest::Client::new(),
        };
        world.start_ghr();
        for &(login, limit) in tenants {
            let installation = world.emulator.install_org(login).await?;
            let update = TenantUpdate {
                tier: Some(TierName::new("large")),
                max_runners: Some(limit),
                ..TenantUpdate::default()
            };
            let now = world.clock.now();
            match world.inner_store.tenant_update(installation, update, now).await {
                Ok(Some(_)) => world.tenants.push(SimTenant { installation, limit }),
                _ => return Err(WorldError::Tenant(installation)),
            }
        }
        Ok(world)
    }

    fn ports(&self) -> Ports {
        Ports::new(self.store.clone(), self.github.clone(), Arc::new(self.provider.clone()))
            .with_clock(self.clock.clone())
    }

    /// Start (or restart) the ghr process.
    pub fn start_ghr(&mut self) {
        let ghr = SimGhr::start(self.ports(), self.settings.clone(), WEBHOOK_SECRET);
        self.receiver.set_ghr(Some(ghr.router.clone()));
        self.ghr = Some(ghr);
    }

    /// Change ghr's settings; a running ghr restarts with them.
    pub fn configure(&mut self, change: impl FnOnce(&mut EngineSettings)) {
        change(Arc::make_mut(&mut self.settings));
        if self.ghr.is_some() {
            self.start_ghr();
        }
    }

    /// Stop the ghr process (an outage): webhooks fail until [`World::start_ghr`].
    pub fn stop_ghr(&mut self) {
        self.ghr = None;
        self.receiver.set_ghr(None);
    }

    pub fn set_network(&self, faults: NetworkFaults) {
        self.receiver.set_faults(faults);
    }

    /// Run one step. Returns a short description for the trace.
    pub async fn run(&mut self, step: Step) -> String {
        if self.down_for > 0 {
            self.down_for -= 1;
            if self.down_for == 0 {
                self.start_ghr();
                return "ghr back up after the outage".into();
            }
        }
        match step {
            Step::QueueJob => self.queue_job().await,
            Step::HandOver => self.hand_over().await,
            Step::Dispatch => self.dispatch().await,
            Step::AdvanceLaunch => self.advance_launch().await,
            Step::Boot => self.boot().await,
            Step::Poll => self.poll().await,
            Step::Finish => self.finish().await,
            Step::PowerOff => match self.pick_instance(|p| matches!(p, RunnerPhase::Exiting)) {
                Some(id) => {
                    self.provider.exit(&id);
                    format!("{id}: machine powered off")
                }
                None => "no machine powering off".into(),
            },
            Step::Teardown => self.teardown().await,
            Step::Reconcile => self.reconcile().await,
            Step::Tick => {
                let seconds = self.rng.random_range(1..=90);
                self.clock.advance(Duration::from_secs(seconds));
                format!("clock +{seconds}s")
            }
            Step::Restart => {
                if self.ghr.is_none() {
                    return "restart skipped: ghr is down".into();
                }
                self.restarts += 1;
                self.ghr = None;
                self.start_ghr();
                "ghr restarted (launches in flight and queued teardowns lost)".into()
            }
            Step::StoreFault => {
                let count = self.rng.random_range(1..=3);
                self.store.fail_next(count);
                format!("store fails the next {count} operations")
            }
            Step::ProviderFault => {
                let count = self.rng.random_range(1..=2);
                self.provider.fail_next_launches(count);
                format!("provider fails the next {count} launches")
            }
            Step::Outage => {
                if self.ghr.is_none() {
                    return "outage skipped: ghr is down".into();
                }
                self.down_for = self.rng.random_range(2..=12);
                self.ghr = None;
                self.receiver.set_ghr(None);
                format!("ghr down for {} steps", self.down_for)
            }
        }
    }

    /// One fault-free round that moves everything in flight as far as it goes: deliveries, a reconciler pass,
    /// a dispatch pass, every launch to its end, every runner booted and polled, every due job finished, every
    /// machine powered off, every teardown carried out; then `tick` of time passes.
    pub async fn drain_round(&mut self, tick: Duration) -> Vec<String> {
        let mut log = Vec::new();
        while self.receiver.parked_count() > 0 {
            log.push(self.hand_over().await);
        }
        log.push(self.reconcile().await);
        while self.receiver.parked_count() > 0 {
            log.push(self.hand_over().await);
        }
        log.push(self.dispatch().await);
        while self.ghr.as_ref().is_some_and(|g| !g.launches.is_empty()) {
            log.push(self.advance_launch().await);
        }
        for _ in self.provider.instances_where(|p| matches!(p, RunnerPhase::Booting(_))) {
            log.push(self.boot().await);
        }
        for _ in self.provider.instances_where(|p| matches!(p, RunnerPhase::Waiting(_))) {
            log.push(self.poll().await);
        }
        let now = self.clock.now();
        for _ in self.provider.instances_where(|p| matches!(p, RunnerPhase::Running(_, _, until) if *until <= now)) {
            log.push(self.finish().await);
        }
        while self.receiver.parked_count() > 0 {
            log.push(self.hand_over().await);
        }
        for _ in self.provider.instances_where(|p| matches!(p, RunnerPhase::Exiting)) {
            log.push(self.run(Step::PowerOff).await);
        }
        while let Some(ghr) = self.ghr.as_mut()
            && let Some(request) = ghr.teardown_queue.try_next()
        {
            ghr.teardown.carry_out(request).await;
        }
        self.clock.advance(tick);
        log.push(format!("clock +{}s", tick.as_secs()));
        log
    }

    /// GitHub queues a job for `installation` asking for `labels`.
    pub async fn queue(
        &mut self,
        installation: InstallationId,
        labels: &[&str],
    ) -> Result<ghr_core::ids::JobId, String> {
        let repo = ["app", "api"][self.rng.random_range(0..2)];
        self.emulator.queue_job(JobSpec::new(installation, repo, labels)).await.map_err(|e| e.to_string())
    }

    async fn queue_job(&mut self) -> String {
        let tenant = self.tenants[self.rng.random_range(0..self.tenants.len())];
        let repo = ["app", "api"][self.rng.random_range(0..2)];
        let labels: Vec<String> = if self.rng.random_range(0..10) == 0 {
            HOSTED_LABELS.iter().map(|l| (*l).to_owned()).collect()
        } else {
            let tier = &self.tiers[self.rng.random_range(0..self.tiers.len())];
            self.settings.catalog.get(tier).map(|t| t.labels.clone()).unwrap_or_default()
        };
        let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
        match self.emulator.queue_job(JobSpec::new(tenant.installation, repo, &refs)).await {
            Ok(job) => format!("GitHub queues job {job} for {} ({})", tenant.installation, labels.join(",")),
            Err(error) => format!("queueing a job failed: {error}"),
        }
    }

    async fn hand_over(&mut self) -> String {
        let parked = self.receiver.parked_count();
        if parked == 0 {
            return "no delivery in flight".into();
        }
        let index = self.rng.random_range(0..parked);
        let Some(delivery) = self.receiver.unpark(index) else { return "nothing to hand over".into() };
        let key = delivery.key.clone();
        let status = self.receiver.hand_over(delivery).await;
        format!("delayed delivery {key:?} handed over: {status:?}")
    }

    async fn dispatch(&mut self) -> String {
        let Some(ghr) = self.ghr.as_mut() else { return "dispatch skipped: ghr is down".into() };
        match ghr.dispatcher.pass_collecting().await {
            Ok((report, launches)) => {
                ghr.launches.extend(launches.into_iter().map(LaunchStage::Reserved));
                format!(
                    "dispatch: {} reserved, {} covered, waiting {:?}",
                    report.reserved, report.covered, report.waiting
                )
            }
            Err(error) => format!("dispatch failed: {}", ghr_core::error::ErrorChain(&error)),
        }
    }

    async fn advance_launch(&mut self) -> String {
        let Some(ghr) = self.ghr.as_mut() else { return "launch skipped: ghr is down".into() };
        if ghr.launches.is_empty() {
            return "no launch in flight".into();
        }
        let index = self.rng.random_range(0..ghr.launches.len());
        let name = ghr.launches[index].runner().name.clone();
        ghr.advance_launch(index).await;
        format!("launch of {name} advanced")
    }

    fn pick_instance(&mut self, pick: impl Fn(&RunnerPhase) -> bool) -> Option<InstanceId> {
        let candidates = self.provider.instances_where(pick);
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.random_range(0..candidates.len())].clone())
    }

    async fn boot(&mut self) -> String {
        let Some(id) = self.pick_instance(|p| matches!(p, RunnerPhase::Booting(_))) else {
            return "no instance booting".into();
        };
        let Some(RunnerPhase::Booting(jit)) = self.provider.take_phase(&id) else { return "boot raced".into() };
        match EmulatedRunner::connect_with(self.http.clone(), jit.expose_secret(), RunnerOptions::default()).await {
            Ok(runner) => {
                self.provider.put_back(&id, RunnerPhase::Waiting(Box::new(runner)));
                format!("{id}: runner connected")
            }
            Err(error) => {
                // The runner cannot register (its registration was deleted): it exits, the machine powers off.
                self.provider.exit(&id);
                format!("{id}: runner could not connect ({error}); exited")
            }
        }
    }

    async fn poll(&mut self) -> String {
        let Some(id) = self.pick_instance(|p| matches!(p, RunnerPhase::Waiting(_))) else {
            return "no runner waiting".into();
        };
        let Some(RunnerPhase::Waiting(runner)) = self.provider.take_phase(&id) else { return "poll raced".into() };
        match runner.poll_once().await {
            Ok(Polled::Job(job)) => {
                let seconds = self.rng.random_range(0..=self.max_job_seconds.max(0));
                let until = self.clock.now() + chrono::Duration::seconds(seconds);
                let text = format!("{id}: runner took job {} (runs {seconds}s)", job.job_id);
                self.provider.put_back(&id, RunnerPhase::Running(runner, job, until));
                text
            }
            Ok(Polled::Nothing) => {
                self.provider.put_back(&id, RunnerPhase::Waiting(runner));
                format!("{id}: no job for the runner")
            }
            Ok(Polled::Deregistered) => {
                self.provider.exit(&id);
                format!("{id}: runner deregistered; exited")
            }
            Err(error) => {
                self.provider.put_back(&id, RunnerPhase::Waiting(runner));
                format!("{id}: poll failed: {error}")
            }
        }
    }

    async fn finish(&mut self) -> String {
        let now = self.clock.now();
        let Some(id) = self.pick_instance(|p| matches!(p, RunnerPhase::Running(_, _, until) if *until <= now)) else {
            return "no job due to finish".into();
        };
        let Some(RunnerPhase::Running(runner, job, until)) = self.provider.take_phase(&id) else {
            return "finish raced".into();
        };
        match runner.finish(&job).await {
            Ok(_) => {
                // An ephemeral runner exits after its one job; its machine powers off a little later.
                self.provider.put_back(&id, RunnerPhase::Exiting);
                format!("{id}: job {} completed; runner exited, machine powering off", job.job_id)
            }
            Err(error) => {
                self.provider.put_back(&id, RunnerPhase::Running(runner, job, until));
                format!("{id}: completing failed: {error}")
            }
        }
    }

    async fn teardown(&mut self) -> String {
        let Some(ghr) = self.ghr.as_mut() else { return "teardown skipped: ghr is down".into() };
        match ghr.teardown_queue.try_next() {
            Some(request) => {
                let text = format!("teardown {request:?}");
                ghr.teardown.carry_out(request).await;
                text
            }
            None => "no teardown queued".into(),
        }
    }

    async fn reconcile(&mut self) -> String {
        let Some(ghr) = self.ghr.as_ref() else { return "reconcile skipped: ghr is down".into() };
        let before = self.receiver.redeliveries();
        let report = ghr.reconciler.pass(self.clock.now()).await;
        // Redeliveries go out in the background: wait until they arrived, so the next steps see them.
        let expected = before + report.redeliveries_requested as u64;
        let deadline = tokio::time::Instant::now() + REDELIVERY_WAIT;
        while self.receiver.redeliveries() < expected && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        format!("reconcile: {report:?}")
    }
}
