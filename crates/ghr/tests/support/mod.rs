//! Shared helpers of the reconciler and fault end-to-end tests: stacks whose reconciler runs only when a
//! test asks, waiting with deadlines, runner/job/process inspection, restarting the server on the same
//! state, and a provider whose launches a test can hold.
#![allow(dead_code)]

use chrono::Utc;
use ghr::stack::{LocalStack, StackOptions};
use ghr_core::ids::{InstallationId, InstanceId, JobId, RunnerName};
use ghr_core::job::{Job, JobEvent, JobObservation, JobStatus};
use ghr_core::labels::match_tier;
use ghr_core::ports::{Instance, LaunchRequest, Provider, ProviderError, RunnerFilter, Store};
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::TenantUpdate;
use ghr_engine::EngineSettings;
use ghr_engine::reconciler::ReconcileReport;
use ghr_server::{RunningServer, ServerConfig};
use ghr_testkit::github::GithubEmulator;
use secrecy::SecretString;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// How long an emulated runner may miss heartbeats before the emulator fails its job and drops its
/// registration (short, so killed runners are cleaned up quickly; well above the 500 ms heartbeat).
pub const RUNNER_LOST_AFTER: Duration = Duration::from_secs(3);
/// An interval long enough that a loop never fires on its own during a test.
pub const NEVER: Duration = Duration::from_secs(3600);
/// How long a test waits for something ghr does on its own (launch, serve a job, tear down).
pub const SOON: Duration = Duration::from_secs(15);
/// How long the final "nothing left over" check may wait. A killed runner's long-poll may keep its
/// registration online for up to one poll (10 s) plus the emulator's offline delay (5 s).
pub const SETTLE: Duration = Duration::from_secs(25);
/// The plan of new tenants in the built-in catalog (2 runners).
pub const SMALL: &str = "small";
/// A plan above `small`: a `small` tenant is not entitled to it.
pub const LARGE: &str = "large";
/// Webhook path and body limit of servers the tests start themselves (as the stack does).
const WEBHOOK_PATH: &str = "/webhook";
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Time between SIGTERM and SIGKILL for runner processes (as the stack does).
const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// `runs-on` labels of a job for `tier` (the built-in catalog's labels).
pub fn labels(tier: &str) -> Vec<&str> {
    vec!["self-hosted", "linux", "x64", tier]
}

/// The runner command of the stack: this crate's `ghr emulated-runner`.
pub fn emulated_runner_command() -> Vec<String> {
    vec![env!("CARGO_BIN_EXE_ghr").to_owned(), "emulated-runner".to_owned()]
}

/// A runner command that reads its JIT config and never connects to GitHub.
pub fn never_connecting_runner() -> Vec<String> {
    ["/bin/sh", "-c", "cat >/dev/null; sleep 120"].iter().map(|s| (*s).to_owned()).collect()
}

/// Stack options: emulated runners, a reconciler that only runs when a test calls a pass, then `tune`.
pub fn options(tune: impl FnOnce(&mut EngineSettings) + Send + 'static) -> StackOptions {
    let mut options = StackOptions::new(env!("CARGO_BIN_EXE_ghr"));
    options.emulator.runner_lost_after = RUNNER_LOST_AFTER;
    options.tune = Box::new(move |settings| {
        settings.reconcile_interval = NEVER;
        tune(settings);
    });
    options
}

pub async fn start(options: StackOptions) -> LocalStack {
    let stack = LocalStack::start(options).await.expect("the local stack starts");
    first_pass_done(&stack).await;
    stack
}

/// The server reconciles as soon as it starts; tests that count what a pass does wait for that first pass,
/// so it cannot consume a fault or a failed delivery meant for the test's own pass.
async fn first_pass_done(stack: &LocalStack) {
    let reconciler = stack.server.reconciler.clone();
    let done = stack.wait_for(SOON, || {
        let reconciler = reconciler.clone();
        async move { reconciler.last_report().is_some() }
    });
    assert!(done.await, "the server's first reconciler pass did not finish");
}

/// Poll `check` until it holds; fail the test saying what did not happen.
pub async fn wait<F, Fut>(stack: &LocalStack, timeout: Duration, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(stack.wait_for(timeout, check).await, "timed out after {timeout:?} waiting until {what}");
}

/// One reconciler pass as if `advance` had passed; every rule must have run without error.
pub async fn pass_after(stack: &LocalStack, advance: Duration) -> ReconcileReport {
    let report = raw_pass_after(stack, advance).await;
    assert!(report.errors.is_empty(), "reconciler rules failed: {:?}", report.errors);
    report
}

/// One reconciler pass as if `advance` had passed, errors included in the report.
pub async fn raw_pass_after(stack: &LocalStack, advance: Duration) -> ReconcileReport {
    let advance = chrono::Duration::from_std(advance).expect("a test duration fits chrono");
    stack.server.reconciler.pass(Utc::now() + advance).await
}

/// Every runner record of a tenant, oldest first.
pub async fn runners(stack: &LocalStack, installation: InstallationId) -> Vec<Runner> {
    let filter = RunnerFilter {
        installation_id: Some(installation),
        tier: None,
        states: RunnerState::ALL.to_vec(),
        ..RunnerFilter::default()
    };
    let mut runners = stack.store.runner_list(filter).await.expect("listing runners");
    runners.sort_by_key(|r| r.seq);
    runners
}

/// The live runner records of a tenant, oldest first.
pub async fn live_runners(stack: &LocalStack, installation: InstallationId) -> Vec<Runner> {
    runners(stack, installation).await.into_iter().filter(|r| r.state.is_live()).collect()
}

/// The tenant's runners in `state`, oldest first.
pub async fn runners_in(stack: &LocalStack, installation: InstallationId, state: RunnerState) -> Vec<Runner> {
    runners(stack, installation).await.into_iter().filter(|r| r.state == state).collect()
}

pub async fn runner(stack: &LocalStack, name: &RunnerName) -> Runner {
    stack.store.runner_get(name).await.expect("reading a runner").expect("the runner record exists")
}

pub async fn job(stack: &LocalStack, id: JobId) -> Option<Job> {
    stack.store.job_get(id).await.expect("reading a job")
}

pub async fn timeline(stack: &LocalStack, id: JobId) -> Vec<JobEvent> {
    stack.store.job_timeline(id).await.expect("reading a job timeline")
}

/// Whether a timeline has an entry of `kind` whose detail contains `fragment`.
pub fn has_event(timeline: &[JobEvent], kind: &str, fragment: &str) -> bool {
    timeline.iter().any(|e| e.kind == kind && e.detail.contains(fragment))
}

/// The ids of the instances the provider lists.
pub async fn instance_ids(stack: &LocalStack) -> Vec<InstanceId> {
    stack.provider.list().await.expect("listing instances").into_iter().map(|i| i.id).collect()
}

pub async fn set_max_runners(stack: &LocalStack, installation: InstallationId, max_runners: u32) {
    let update = TenantUpdate { max_runners: Some(max_runners), ..TenantUpdate::default() };
    let updated = stack.store.tenant_update(installation, update, Utc::now()).await.expect("updating a tenant");
    assert!(updated.is_some(), "tenant {installation} exists");
}

/// Record a job observation directly in the store, as if a webhook had brought it (no dispatcher wake-up).
pub async fn observe(
    stack: &LocalStack,
    installation: InstallationId,
    repository: &str,
    job_id: JobId,
    job_labels: &[&str],
    status: JobStatus,
) {
    let now = Utc::now();
    let observation = JobObservation {
        job_id,
        installation_id: installation,
        repository: repository.to_owned(),
        labels: job_labels.iter().map(|l| (*l).to_owned()).collect(),
        tier: match_tier(&stack.settings.catalog, job_labels).map(|t| t.name.clone()),
        status,
        conclusion: (status == JobStatus::Completed).then(|| "cancelled".to_owned()),
        runner_name: None,
        queued_at: Some(now),
        started_at: (status >= JobStatus::InProgress).then_some(now),
        completed_at: (status == JobStatus::Completed).then_some(now),
        observed_at: now,
    };
    stack.store.job_observe(observation).await.expect("recording a job");
}

/// Wait until nothing is live, running or registered online any more; fail with what is left otherwise.
pub async fn assert_nothing_left(stack: &LocalStack) {
    let settled = stack.wait_for(SETTLE, || async { stack.leftovers().await.is_ok_and(|l| l.is_empty()) }).await;
    let leftovers = stack.leftovers().await.expect("reading leftovers");
    assert!(settled && leftovers.is_empty(), "left over after the test: {leftovers:?}");
}

/// The final check of every test: nothing left over, then stop.
pub async fn finish(stack: LocalStack) {
    assert_nothing_left(&stack).await;
    stack.stop().await.expect("the stack stops");
}

/// The most runners the tenant ever had at once, from the records' `created_at..terminated_at` intervals.
pub async fn peak(stack: &LocalStack, installation: InstallationId) -> u32 {
    let all = runners(stack, installation).await;
    let refs: Vec<&Runner> = all.iter().collect();
    ghr::demo::peak_concurrency(&refs, Utc::now())
}

/// How often [`LiveSampler`] reads the live runner counts.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(5);

/// Reads a tenant's live runner count from the store continuously and keeps the highest value seen.
pub struct LiveSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u32>,
}

impl LiveSampler {
    pub fn start(store: Arc<dyn Store>, installation: InstallationId) -> LiveSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut most = 0;
            while !stopped.load(Ordering::SeqCst) {
                let counts = store.runner_live_counts().await.expect("reading live counts");
                most = most.max(counts.get(&installation).copied().unwrap_or(0));
                tokio::time::sleep(SAMPLE_INTERVAL).await;
            }
            most
        });
        LiveSampler { stop, task }
    }

    /// Stop sampling; the most live runners seen.
    pub async fn stop(self) -> u32 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the sampler ran")
    }
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// `(pid, start ticks)` of a process provider instance id (`proc-<pid>-<ticks>`).
fn process_key(id: &InstanceId) -> (u32, u64) {
    let rest = id.as_str().strip_prefix("proc-").expect("a process provider instance id");
    let (pid, ticks) = rest.split_once('-').expect("proc-<pid>-<ticks>");
    (pid.parse().expect("a pid"), ticks.parse().expect("start ticks"))
}

/// Whether the instance's process still runs (same pid and start time, not a zombie).
pub fn process_alive(id: &InstanceId) -> bool {
    let (pid, ticks) = process_key(id);
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Fields after the command name (which may contain spaces) start at the state (field 3).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first().copied().unwrap_or("X");
    let start = fields.get(19).and_then(|f| f.parse::<u64>().ok());
    state != "Z" && state != "X" && start == Some(ticks)
}

/// SIGKILL an instance's process behind ghr's back.
pub fn kill_process(id: &InstanceId) {
    let (pid, _) = process_key(id);
    let status = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("running kill");
    assert!(status.success(), "kill -KILL {pid} failed: {status}");
}

// ---------------------------------------------------------------------------------------------
// Restarting the server
// ---------------------------------------------------------------------------------------------

/// What a restarted server runs on.
pub enum Restart {
    /// The stack's own store, GitHub client and provider, but the server's launches go through `provider`.
    SameAdapters { provider: Arc<dyn Provider> },
    /// A new store on the same SQLite file and a new process provider on the same state directory, as a
    /// restarted ghr process would open them.
    Reopen,
}

/// A stack whose server is shut down: the emulator, runner processes and state live on.
pub struct Stopped {
    pub dir: tempfile::TempDir,
    pub emulator: GithubEmulator,
    pub store: Arc<dyn Store>,
    pub pool: Option<Arc<dyn ghr_core::ports::PoolStore>>,
    pub github: Arc<ghr_github::GithubClient>,
    pub provider: Arc<ghr_cloud::ProcessProvider>,
    pub settings: Arc<EngineSettings>,
    pub webhook_secret: String,
    pub admin_token: String,
}

/// Shut the stack's server down (webhooks sent meanwhile fail, as they would to a stopped ghr).
pub async fn stop_server(stack: LocalStack) -> Stopped {
    let LocalStack { dir, emulator, server, store, pool, github, provider, settings, webhook_secret, admin_token } =
        stack;
    server.shutdown().await;
    Stopped { dir, emulator, store, pool, github, provider, settings, webhook_secret, admin_token }
}

/// Start a new server (see [`Restart`]) and point the emulator's webhooks at it.
pub async fn start_server(stopped: Stopped, restart: Restart) -> LocalStack {
    let Stopped { dir, emulator, store, pool, github, provider, settings, webhook_secret, admin_token } = stopped;
    let (store, pool, provider, server_provider): (Arc<dyn Store>, _, _, Arc<dyn Provider>) = match restart {
        Restart::SameAdapters { provider: server_provider } => (store, pool, provider, server_provider),
        Restart::Reopen => {
            drop(store);
            drop(pool);
            drop(provider);
            let db = dir.path().join("ghr.db");
            let opened = ghr_store::open_store_with_pool(
                &format!("sqlite://{}", db.display()),
                &ghr_store::StoreOptions::default(),
            )
            .await
            .expect("reopening the store");
            let pool = (!settings.pools.is_empty()).then_some(opened.pool);
            let store = opened.store;
            let mut config = ghr_cloud::ProcessProviderConfig::new(
                emulated_runner_command(),
                dir.path().join("runners"),
                settings.environment.clone(),
            );
            config.terminate_grace = TERMINATE_GRACE;
            let provider = Arc::new(ghr_cloud::ProcessProvider::new(config).expect("reopening the process provider"));
            (store, pool, provider.clone(), provider)
        }
    };
    let mut ports = ghr_engine::Ports::new(store.clone(), github.clone(), server_provider);
    if let Some(pool) = &pool {
        ports = ports.with_pool(pool.clone());
    }
    let server = RunningServer::start(ServerConfig {
        ports,
        settings: settings.clone(),
        webhook_secret: SecretString::from(webhook_secret.clone()),
        admin_token: Some(SecretString::from(admin_token.clone())),
        webhook_path: WEBHOOK_PATH.into(),
        max_body_bytes: MAX_BODY_BYTES,
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        metrics_listen: None,
    })
    .await
    .expect("the new server starts");
    emulator.set_webhook_target(format!("http://{}{WEBHOOK_PATH}", server.addr), webhook_secret.clone());
    let stack =
        LocalStack { dir, emulator, server, store, pool, github, provider, settings, webhook_secret, admin_token };
    first_pass_done(&stack).await;
    stack
}

/// Shut the stack's server down and start a new one at once.
pub async fn restart_server(stack: LocalStack, restart: Restart) -> LocalStack {
    start_server(stop_server(stack).await, restart).await
}

// ---------------------------------------------------------------------------------------------
// A provider whose launches wait for the test
// ---------------------------------------------------------------------------------------------

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Wraps the process provider: each launch starts the process, reports the instance on a channel, and
/// returns to the engine only once the test releases it.
pub struct GatedProvider {
    inner: Arc<ghr_cloud::ProcessProvider>,
    launched: mpsc::UnboundedSender<Instance>,
    release: Arc<Semaphore>,
}

/// The test's side of a [`GatedProvider`].
pub struct Gate {
    pub launched: mpsc::UnboundedReceiver<Instance>,
    release: Arc<Semaphore>,
}

impl Gate {
    /// Let one held launch return to the engine.
    pub fn release_one(&self) {
        self.release.add_permits(1);
    }
}

impl GatedProvider {
    pub fn new(inner: Arc<ghr_cloud::ProcessProvider>) -> (Arc<GatedProvider>, Gate) {
        let (tx, rx) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        (Arc::new(GatedProvider { inner, launched: tx, release: release.clone() }), Gate { launched: rx, release })
    }
}

// The port trait is declared with `async_trait`; this is its expansion, written out.
impl Provider for GatedProvider {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn launch<'life0, 'async_trait>(
        &'life0 self,
        request: LaunchRequest,
    ) -> BoxFuture<'async_trait, Result<Instance, ProviderError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let instance = self.inner.launch(request).await?;
            // The test may have stopped listening; the launch is held all the same.
            let _ = self.launched.send(instance.clone());
            let permit = self.release.acquire().await.map_err(|_| ProviderError::failed("gate closed"))?;
            permit.forget();
            Ok(instance)
        })
    }

    fn terminate<'life0, 'life1, 'async_trait>(
        &'life0 self,
        id: &'life1 InstanceId,
    ) -> BoxFuture<'async_trait, Result<(), ProviderError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.inner.terminate(id).await })
    }

    fn list<'life0, 'async_trait>(&'life0 self) -> BoxFuture<'async_trait, Result<Vec<Instance>, ProviderError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.inner.list().await })
    }
}
