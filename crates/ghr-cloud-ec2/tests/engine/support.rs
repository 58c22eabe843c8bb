//! The stack the engine tests run on: the real engine in a real ghr server, the real `Ec2Provider` on moto, a
//! SQLite store in a temporary directory and the real GitHub client pointed at the GitHub emulator.
//!
//! The server's loops only act when a test runs a pass or something wakes them (a webhook, a teardown).
//! No virtual machine boots on moto, so [`Stack::boot`] plays the instance's boot: it reads the JIT config
//! back from the instance's user data in moto and runs the emulated runner with it, which registers with the
//! emulator, takes a job and makes the emulator send the `in_progress` and `completed` webhooks.

use crate::common::{default_network, moto_client, provider_config};
use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, InstanceAttributeName};
use base64::Engine as _;
use chrono::Utc;
use ghr_cloud_ec2::api::{DescribePage, DescribeRequest, Ec2Instance, RunInstanceInput};
use ghr_cloud_ec2::{Ec2Api, Ec2ApiError, Ec2Provider, Ec2ProviderConfig, SdkEc2Api, TAG_ENVIRONMENT};
use ghr_core::ids::{InstallationId, InstanceId, JobId};
use ghr_core::job::{Job, JobEvent};
use ghr_core::ports::{RunnerFilter, Store};
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::TenantUpdate;
use ghr_engine::dispatcher::PassReport;
use ghr_engine::reconciler::ReconcileReport;
use ghr_engine::{EngineSettings, Ports};
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use ghr_server::{RunningServer, ServerConfig};
use ghr_testkit::TEST_APP_PRIVATE_KEY_PEM;
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, JobSpec};
use ghr_testkit::runner::{Outcome, RunnerError, RunnerOptions, run_emulated_runner};
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Where the tests find moto.
/// An interval long enough that a loop never fires on its own during a test.
pub const NEVER: Duration = Duration::from_secs(3600);
/// The orphan grace of these tests: a pass "now" never acts on age, a pass shifted past it always does.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(60);
/// The bootstrap timeout of these tests (longer than the grace, so the two rules are told apart).
pub const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a test waits for something ghr or the emulator does on its own.
pub const SOON: Duration = Duration::from_secs(20);
/// How often waiting re-checks its condition.
const POLL: Duration = Duration::from_millis(25);
/// The plan of new tenants and the tier of every job here (built-in catalog: `t3.medium`, 2 runners).
pub const SMALL: &str = "small";
/// `runs-on` of a `small` job.
pub const SMALL_LABELS: [&str; 4] = ["self-hosted", "linux", "x64", SMALL];
/// A job that outlives every test.
pub const LONG_JOB: Duration = Duration::from_secs(120);
/// EC2 states of an instance that still runs (or is about to).
const ACTIVE_STATES: [&str; 2] = ["pending", "running"];
const WEBHOOK_PATH: &str = "/webhook";
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The default user data template writes the JIT config between these two markers.
const JIT_START_MARKER: &str = "<<'GHR_JIT_CONFIG_END'\n";
const JIT_END_MARKER: &str = "\nGHR_JIT_CONFIG_END";
/// The environment is part of runner names; ghr's configuration allows at most 32 characters.
const MAX_ENVIRONMENT_LEN: usize = 32;

// ---------------------------------------------------------------------------------------------
// The EC2 API with injected failures
// ---------------------------------------------------------------------------------------------

/// The real moto-backed EC2 API; while launches are failed, every RunInstances attempt answers
/// `InsufficientInstanceCapacity`, and while terminations are throttled every TerminateInstances call answers
/// `RequestLimitExceeded`, without reaching moto.
pub struct FaultyEc2 {
    inner: SdkEc2Api,
    fail_launches: AtomicBool,
    /// Every attempt failed on purpose, as `type in subnet (purchase)`.
    failed: Mutex<Vec<String>>,
    throttle_terminations: AtomicBool,
    /// Instance ids whose termination was refused on purpose.
    throttled: Mutex<Vec<String>>,
}

impl FaultyEc2 {
    fn new(inner: SdkEc2Api) -> FaultyEc2 {
        FaultyEc2 {
            inner,
            fail_launches: AtomicBool::new(false),
            failed: Mutex::new(Vec::new()),
            throttle_terminations: AtomicBool::new(false),
            throttled: Mutex::new(Vec::new()),
        }
    }

    pub fn fail_launches(&self, fail: bool) {
        self.fail_launches.store(fail, Ordering::SeqCst);
    }

    pub fn throttle_terminations(&self, throttle: bool) {
        self.throttle_terminations.store(throttle, Ordering::SeqCst);
    }

    /// The instance ids whose termination was refused on purpose, in call order.
    pub fn throttled_terminations(&self) -> Vec<String> {
        self.throttled.lock().unwrap().clone()
    }

    /// The distinct attempts that were failed on purpose.
    pub fn failed_attempts(&self) -> BTreeSet<String> {
        self.failed.lock().unwrap().iter().cloned().collect()
    }

    /// How many attempts were failed on purpose.
    pub fn failed_count(&self) -> usize {
        self.failed.lock().unwrap().len()
    }
}

#[async_trait]
impl Ec2Api for FaultyEc2 {
    async fn run_instance(&self, input: &RunInstanceInput) -> Result<Ec2Instance, Ec2ApiError> {
        if self.fail_launches.load(Ordering::SeqCst) {
            self.failed.lock().unwrap().push(input.attempt.to_string());
            return Err(Ec2ApiError::service("RunInstances", "InsufficientInstanceCapacity", "injected by the test"));
        }
        self.inner.run_instance(input).await
    }

    async fn terminate(&self, instance_id: &str) -> Result<(), Ec2ApiError> {
        if self.throttle_terminations.load(Ordering::SeqCst) {
            self.throttled.lock().unwrap().push(instance_id.to_owned());
            return Err(Ec2ApiError::service("TerminateInstances", "RequestLimitExceeded", "injected by the test"));
        }
        self.inner.terminate(instance_id).await
    }

    async fn describe(&self, request: &DescribeRequest) -> Result<DescribePage, Ec2ApiError> {
        self.inner.describe(request).await
    }

    async fn create_tags(&self, resource_ids: &[String], tags: &[(String, String)]) -> Result<(), Ec2ApiError> {
        self.inner.create_tags(resource_ids, tags).await
    }
}

// ---------------------------------------------------------------------------------------------
// moto
// ---------------------------------------------------------------------------------------------

/// An instance as moto describes it.
#[derive(Debug, Clone)]
pub struct MotoInstance {
    pub id: InstanceId,
    pub state: String,
    pub tags: BTreeMap<String, String>,
}

/// moto's EC2 and what the provider's configuration needs from it.
#[derive(Clone)]
pub struct Moto {
    pub client: aws_sdk_ec2::Client,
    pub subnets: Vec<String>,
    pub ami: String,
}

impl Moto {
    pub async fn connect() -> Moto {
        let client = moto_client().await;
        let (subnets, ami) = default_network(&client).await;
        Moto { client, subnets: subnets.into_iter().take(2).collect(), ami }
    }

    /// The provider configuration of `environment`: the AMI and two subnets of moto's default VPC.
    pub fn provider_config(&self, environment: &str) -> Ec2ProviderConfig {
        provider_config(environment, &self.ami, &self.subnets)
    }

    /// The instances of `environment` that are pending or running.
    pub async fn active_instances(&self, environment: &str) -> Vec<MotoInstance> {
        let filters = vec![
            Filter::builder().name(format!("tag:{TAG_ENVIRONMENT}")).values(environment).build(),
            Filter::builder()
                .name("instance-state-name")
                .set_values(Some(ACTIVE_STATES.map(String::from).to_vec()))
                .build(),
        ];
        let mut instances = Vec::new();
        let mut next_token = None;
        loop {
            let page = self
                .client
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .set_next_token(next_token)
                .send()
                .await
                .expect("moto answers DescribeInstances");
            instances.extend(page.reservations().iter().flat_map(|r| r.instances()).map(moto_instance));
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(token) => next_token = Some(token.to_owned()),
                None => return instances,
            }
        }
    }

    /// One instance, whatever its state.
    pub async fn instance(&self, id: &InstanceId) -> MotoInstance {
        let output = self.client.describe_instances().instance_ids(id.as_str()).send().await.expect("describe");
        output.reservations().iter().flat_map(|r| r.instances()).next().map(moto_instance).expect("moto has it")
    }

    /// Terminate an instance behind ghr's back (a spot interruption, an operator in the console).
    pub async fn terminate_behind_ghrs_back(&self, id: &InstanceId) {
        self.client.terminate_instances().instance_ids(id.as_str()).send().await.expect("terminating through the SDK");
    }

    /// The JIT config the instance's user data hands to the runner.
    pub async fn jit_config_of(&self, id: &InstanceId) -> String {
        let attribute = self
            .client
            .describe_instance_attribute()
            .instance_id(id.as_str())
            .attribute(InstanceAttributeName::UserData)
            .send()
            .await
            .expect("moto answers DescribeInstanceAttribute");
        let encoded = attribute.user_data().and_then(|v| v.value()).expect("the instance has user data");
        let script = base64::engine::general_purpose::STANDARD.decode(encoded).expect("user data is base64");
        let script = String::from_utf8(script).expect("the user data is a script");
        let start = script.find(JIT_START_MARKER).expect("the script writes the JIT config") + JIT_START_MARKER.len();
        let length = script[start..].find(JIT_END_MARKER).expect("the JIT config heredoc ends");
        script[start..start + length].to_owned()
    }
}

fn moto_instance(instance: &aws_sdk_ec2::types::Instance) -> MotoInstance {
    MotoInstance {
        id: InstanceId::new(instance.instance_id().unwrap_or_default()),
        state: instance.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()).unwrap_or_default(),
        tags: instance.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect(),
    }
}

/// Counts an environment's pending and running instances in moto continuously; keeps the highest count.
pub struct MotoSampler {
    stop: Arc<AtomicBool>,
    task: JoinHandle<usize>,
}

impl MotoSampler {
    pub fn start(moto: &Moto, environment: &str) -> MotoSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (stopped, moto, environment) = (stop.clone(), moto.clone(), environment.to_owned());
        let task = tokio::spawn(async move {
            let mut most = 0;
            while !stopped.load(Ordering::SeqCst) {
                most = most.max(moto.active_instances(&environment).await.len());
                tokio::time::sleep(POLL).await;
            }
            most
        });
        MotoSampler { stop, task }
    }

    /// Stop sampling; the most instances seen at once.
    pub async fn stop(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the sampler ran")
    }
}

// ---------------------------------------------------------------------------------------------
// Booted runners
// ---------------------------------------------------------------------------------------------

/// The runner of a "booted" instance, running in this process.
pub struct BootedRunner {
    task: JoinHandle<Result<Outcome, RunnerError>>,
}

impl BootedRunner {
    /// Wait until the runner has finished its job.
    pub async fn finished(self) -> Outcome {
        match tokio::time::timeout(SOON, self.task).await {
            Ok(joined) => joined.expect("the runner task ran").expect("the runner ran its job"),
            Err(_) => panic!("the booted runner did not finish within {SOON:?}"),
        }
    }

    /// The machine is gone: the runner stops at once, without a word to GitHub.
    pub fn crash(self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// The stack
// ---------------------------------------------------------------------------------------------

pub struct Stack {
    /// This test's `ghr:environment`: its instances in moto are only ever its own.
    pub environment: String,
    pub emulator: GithubEmulator,
    pub server: RunningServer,
    pub store: Arc<dyn Store>,
    pub provider: Arc<Ec2Provider>,
    pub ec2: Arc<FaultyEc2>,
    pub moto: Moto,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// A stack for the test `name` (short: it goes into the environment and runner names); `tune` adjusts
    /// the engine settings after the test defaults.
    pub async fn start(name: &str, tune: impl FnOnce(&mut EngineSettings)) -> Stack {
        let environment = format!("e2e-{name}-{:08x}", rand::random::<u32>());
        assert!(environment.len() <= MAX_ENVIRONMENT_LEN, "environment {environment} is too long");
        let mut settings = EngineSettings::from_config(&ghr_config::Config::builtin());
        settings.environment = environment.clone();
        settings.dispatch_tick = NEVER;
        settings.reconcile_interval = NEVER;
        settings.orphan_grace = ORPHAN_GRACE;
        settings.bootstrap_timeout = BOOTSTRAP_TIMEOUT;
        tune(&mut settings);
        let settings = Arc::new(settings);

        let moto = Moto::connect().await;
        let ec2 = Arc::new(FaultyEc2::new(SdkEc2Api::new(moto.client.clone())));
        let provider = Arc::new(
            Ec2Provider::with_api(ec2.clone(), moto.provider_config(&environment)).expect("a valid provider config"),
        );

        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = dir.path().join("ghr.db");
        let store = ghr_store::open_store(&format!("sqlite://{}", db.display()), &ghr_store::StoreOptions::default())
            .await
            .expect("opening the store");
        let emulator = GithubEmulator::start(EmulatorConfig::default()).await.expect("starting the GitHub emulator");
        let credentials =
            AppCredentials { app_id: emulator.app_id(), private_key_pem: SecretString::from(TEST_APP_PRIVATE_KEY_PEM) };
        let mut client_config = GithubClientConfig::new(credentials);
        client_config.api_base_url = emulator.base_url().to_owned();
        client_config.retry.base_delay = Duration::from_millis(50);
        let github = Arc::new(GithubClient::new(client_config).expect("building the GitHub client"));

        let webhook_secret = format!("{:032x}", rand::random::<u128>());
        let ports = Ports::new(store.clone(), github, provider.clone());
        let server = RunningServer::start(ServerConfig {
            ports,
            settings,
            webhook_secret: SecretString::from(webhook_secret.clone()),
            admin_token: None,
            webhook_path: WEBHOOK_PATH.into(),
            max_body_bytes: MAX_BODY_BYTES,
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            metrics_listen: None,
        })
        .await
        .expect("the server starts");
        emulator.set_webhook_target(format!("http://{}{WEBHOOK_PATH}", server.addr), webhook_secret);
        Stack { environment, emulator, server, store, provider, ec2, moto, _dir: dir }
    }

    /// One dispatcher pass; returns once the launches it (or a pass woken meanwhile) started have ended.
    pub async fn dispatch(&self) -> PassReport {
        let report = self.server.dispatcher.pass().await.expect("a dispatcher pass");
        self.server.dispatcher.drain().await;
        report
    }

    /// One reconciler pass as if `shift` had passed; every rule must have run without error.
    pub async fn reconcile_after(&self, shift: Duration) -> ReconcileReport {
        let now = Utc::now() + chrono::Duration::from_std(shift).expect("a test duration fits chrono");
        let report = self.server.reconciler.pass(now).await;
        assert!(report.errors.is_empty(), "reconciler rules failed: {:?}", report.errors);
        report
    }

    /// Install the App on a new organisation (its tenant is created by the `installation` webhook).
    pub async fn install(&self, org: &str) -> InstallationId {
        self.emulator.install_org(org).await.expect("installing the App")
    }

    /// Queue a `small` job that runs for `duration` once a runner takes it; returns after ghr answered the
    /// `queued` webhook.
    pub async fn queue(&self, installation: InstallationId, duration: Duration) -> JobId {
        let spec = JobSpec::new(installation, "app", &SMALL_LABELS).duration(duration);
        self.emulator.queue_job(spec).await.expect("queueing a job")
    }

    pub async fn update_tenant(&self, installation: InstallationId, update: TenantUpdate) {
        let updated = self.store.tenant_update(installation, update, Utc::now()).await.expect("updating a tenant");
        assert!(updated.is_some(), "tenant {installation} exists");
    }

    /// Every runner record of a tenant, oldest first.
    pub async fn runners(&self, installation: InstallationId) -> Vec<Runner> {
        let filter = RunnerFilter {
            installation_id: Some(installation),
            tier: None,
            states: RunnerState::ALL.to_vec(),
            ..RunnerFilter::default()
        };
        let mut runners = self.store.runner_list(filter).await.expect("listing runners");
        runners.sort_by_key(|r| r.seq);
        runners
    }

    /// The live runner records of a tenant, oldest first.
    pub async fn live_runners(&self, installation: InstallationId) -> Vec<Runner> {
        self.runners(installation).await.into_iter().filter(|r| r.state.is_live()).collect()
    }

    pub async fn job(&self, id: JobId) -> Job {
        self.store.job_get(id).await.expect("reading a job").expect("ghr knows the job")
    }

    pub async fn timeline(&self, id: JobId) -> Vec<JobEvent> {
        self.store.job_timeline(id).await.expect("reading a job timeline")
    }

    /// This environment's pending and running instances in moto.
    pub async fn active_instances(&self) -> Vec<MotoInstance> {
        self.moto.active_instances(&self.environment).await
    }

    /// The ids of this environment's pending and running instances in moto.
    pub async fn active_ids(&self) -> BTreeSet<InstanceId> {
        self.active_instances().await.into_iter().map(|i| i.id).collect()
    }

    /// Play the instance's boot: run the emulated runner with the JIT config from its user data.
    pub async fn boot(&self, instance: &InstanceId) -> BootedRunner {
        let jit_config = self.moto.jit_config_of(instance).await;
        let task = tokio::spawn(async move { run_emulated_runner(&jit_config, RunnerOptions::default()).await });
        BootedRunner { task }
    }

    /// Poll `check` until it holds; fail the test saying what did not happen.
    pub async fn wait_for(&self, what: &str, check: impl AsyncFnMut() -> bool) {
        assert!(poll_until(check).await, "timed out after {SOON:?} waiting until {what}");
    }

    /// Every live runner record, of any tenant.
    pub async fn all_live_runners(&self) -> Vec<Runner> {
        let filter = RunnerFilter { states: RunnerState::LIVE.to_vec(), ..RunnerFilter::default() };
        self.store.runner_list(filter).await.expect("listing live runners")
    }

    /// The final check of every test: no instance of this environment is pending or running in moto and no
    /// runner record is live (teardown runs after the webhook that causes it, hence the wait); then stop the
    /// server and the emulator.
    pub async fn finish(self) {
        let settled =
            poll_until(async || self.active_instances().await.is_empty() && self.all_live_runners().await.is_empty())
                .await;
        if !settled {
            let instances: Vec<_> = self.active_instances().await.into_iter().map(|i| (i.id, i.state)).collect();
            let runners: Vec<_> = self.all_live_runners().await.into_iter().map(|r| (r.name, r.state)).collect();
            panic!("left over after {SOON:?}: instances {instances:?}, live runners {runners:?}");
        }
        self.server.shutdown().await;
        self.emulator.shutdown().await.expect("the emulator stops");
    }
}

/// Poll `check` until it holds (true) or [`SOON`] has passed (false).
async fn poll_until(mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
