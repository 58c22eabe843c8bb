//! One whole deployment, as the Terraform module lays it out, for one test: the DynamoDB tables of a fresh
//! prefix, the SQS queues (a builds queue per tier, teardown, tenant-events, each with its DLQ), the secrets in
//! SSM (the App key base64-encoded, as the seed's `key_base64`), moto's network and an AMI, the GitHub
//! emulator delivering to the HTTP API, and the five functions (webhook, tenant-manager, one scale-up per
//! tier, scale-down), each the real binary behind its own runtime API.
//!
//! Nothing runs on its own: a test moves the system by driving GitHub (the emulator) and by running the event
//! source mappings ([`Stack::drain`]) and the schedule ([`Stack::schedule`]), so every step is visible.

use super::apigw::HttpApi;
use super::aws::Moto;
use super::event_source::{self, INVOKE_TIMEOUT, Poll};
use super::function::Function;
use super::{REGION, wait_for};
use base64::Engine as _;
use ghr_core::ids::{InstallationId, JobId, TierName};
use ghr_core::job::Job;
use ghr_core::ports::{RunnerFilter, Store};
use ghr_core::runner::{Runner, RunnerState};
use ghr_lambda::testing::{TestQueues, create_queues};
use ghr_store_dynamodb::{DynamoOptions, DynamoStore, Tables, init_tables};
use ghr_testkit::TEST_APP_PRIVATE_KEY_PEM;
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, JobSpec};
use ghr_testkit::runner::{Outcome, RunnerError, RunnerOptions, run_emulated_runner};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The tier of new tenants, and of most jobs here.
pub const SMALL: &str = "small";
/// A second tier, so "the right tier queue" means something.
pub const MEDIUM: &str = "medium";
/// A tier the seed does not know: custom name, ARM64 (the seed needs code edits for either).
pub const ARM_LARGE: &str = "arm-large";
/// The EC2 architecture names of the tiers.
pub const X64: &str = "x64";
pub const ARM64: &str = "arm64";

/// One tier of the deployment's catalog (the module's `runner_tiers`).
pub struct TierSpec {
    pub name: &'static str,
    pub architecture: &'static str,
    pub instance_types: &'static [&'static str],
    pub max_runners: u32,
}

/// The catalog: the seed's small and medium, and a custom ARM64 tier.
pub const TIERS: [TierSpec; 3] = [
    TierSpec { name: SMALL, architecture: X64, instance_types: &["t3.medium"], max_runners: 2 },
    TierSpec { name: MEDIUM, architecture: X64, instance_types: &["t3.large", "m5.large"], max_runners: 5 },
    TierSpec { name: ARM_LARGE, architecture: ARM64, instance_types: &["t4g.large"], max_runners: 3 },
];

/// The catalog entry of `tier`.
pub fn tier_spec(tier: &str) -> &'static TierSpec {
    TIERS.iter().find(|spec| spec.name == tier).unwrap_or_else(|| panic!("{tier} is not a tier of the catalog"))
}

/// `runs-on` of a job of `tier`.
pub fn labels(tier: &str) -> [&str; 4] {
    ["self-hosted", "linux", tier_spec(tier).architecture, tier]
}
/// The function timeout the module would configure (the lease and the queues' visibility follow it).
pub const FUNCTION_TIMEOUT_SECONDS: u64 = 30;
/// The seed's `maxReceiveCount`: a message received this often without being deleted goes to the DLQ.
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// The queues' visibility timeout is the function timeout plus this (as the module sets it).
const VISIBILITY_MARGIN: Duration = Duration::from_secs(30);
/// The environment is part of runner names; ghr's configuration allows at most 32 characters.
const MAX_ENVIRONMENT_LEN: usize = 32;

/// The deployment of one test.
pub struct Stack {
    /// The deployment's prefix: its `environment`, its tables' and queues' prefix, its instances' tag.
    pub prefix: String,
    pub moto: Moto,
    pub emulator: GithubEmulator,
    queues: TestQueues,
    pub tables: Tables,
    /// The store the functions share, read by the test to check what they did.
    pub store: Arc<dyn Store>,
    pub webhook: Arc<Function>,
    pub tenant_manager: Function,
    /// One scale-up function per tier.
    pub scale_up: BTreeMap<String, Function>,
    pub scale_down: Function,
    pub http: HttpApi,
    /// What the functions' environments are made of.
    env: StackEnv,
    pub logs: Logs,
}

impl Stack {
    /// A deployment for the test `name` (short: it goes into the prefix and so into runner names).
    pub async fn start(name: &str) -> Stack {
        let prefix = format!("e2e-{name}-{:08x}", unique());
        assert!(prefix.len() <= MAX_ENVIRONMENT_LEN, "prefix {prefix} is too long");
        let moto = Moto::connect().await;
        let tables = Tables::new(&prefix);
        init_tables(&moto.dynamodb, &tables).await.unwrap_or_else(|e| panic!("creating the tables of {prefix}: {e}"));
        let tiers = TIERS.map(|spec| spec.name);
        let visibility = Duration::from_secs(FUNCTION_TIMEOUT_SECONDS) + VISIBILITY_MARGIN;
        let queues = create_queues(&moto.sqs, &prefix, &tiers, MAX_RECEIVE_COUNT, visibility).await;

        let emulator = GithubEmulator::start(EmulatorConfig::default()).await.expect("starting the GitHub emulator");
        let webhook_secret = format!("{:032x}", unique_u128());
        let app_key_parameter = format!("/{prefix}/github-app/key-base64");
        let webhook_secret_parameter = format!("/{prefix}/github-app/webhook-secret");
        let key_base64 = base64::engine::general_purpose::STANDARD.encode(TEST_APP_PRIVATE_KEY_PEM);
        moto.put_secure_parameter(&app_key_parameter, &key_base64).await;
        moto.put_secure_parameter(&webhook_secret_parameter, &webhook_secret).await;

        let logs = Logs::new(&prefix);
        let store: Arc<dyn Store> =
            Arc::new(DynamoStore::with_client(moto.dynamodb.clone(), &prefix, DynamoOptions::default()));
        let stack_env = StackEnv {
            prefix: prefix.clone(),
            moto: moto.clone(),
            queues: queues.clone(),
            app_id: emulator.app_id(),
            github_url: emulator.base_url().to_owned(),
            app_key_parameter,
            webhook_secret_parameter,
        };
        let start = |name: String, env: BTreeMap<String, String>| {
            let dir = logs.path().to_path_buf();
            async move { Function::start(&name, &env, &dir).await }
        };
        let webhook = Arc::new(start(format!("{prefix}-webhook"), stack_env.env("webhook", None)).await);
        let tenant_manager = start(format!("{prefix}-tenant-manager"), stack_env.env("tenant-manager", None)).await;
        let scale_down = start(format!("{prefix}-scale-down"), stack_env.env("scale-down", None)).await;
        let mut scale_up = BTreeMap::new();
        for tier in &tiers {
            let function = start(format!("{prefix}-{tier}-scale-up"), stack_env.env("scale-up", Some(tier))).await;
            scale_up.insert((*tier).to_owned(), function);
        }
        let http = HttpApi::start(webhook.clone()).await;
        emulator.set_webhook_target(http.webhook_url(), webhook_secret);
        Stack {
            prefix,
            moto,
            emulator,
            queues,
            tables,
            store,
            webhook,
            tenant_manager,
            scale_up,
            scale_down,
            http,
            env: stack_env,
            logs,
        }
    }

    /// The environment the Terraform module gives `function` (`tier` for scale-up), for a test that starts a
    /// function of its own (with something changed).
    pub fn function_env(&self, function: &str, tier: Option<&str>) -> BTreeMap<String, String> {
        self.env.env(function, tier)
    }

    /// Start a function of this deployment named `name` with `env`.
    pub async fn start_function(&self, name: &str, env: &BTreeMap<String, String>) -> Function {
        Function::start(name, env, self.logs.path()).await
    }

    /// The seed's tenant table.
    pub fn tenants_table(&self) -> &str {
        &self.tables.tenants
    }

    /// The builds queue of `tier`.
    pub fn tier_queue(&self, tier: &str) -> &str {
        self.queues.urls.tiers.get(&TierName::from(tier)).unwrap_or_else(|| panic!("no queue for tier {tier}"))
    }

    /// Every tier's builds queue.
    pub fn tier_queues(&self) -> Vec<&str> {
        self.queues.urls.tiers.values().map(String::as_str).collect()
    }

    /// Scale-down's queue of runner teardowns.
    pub fn teardown_queue(&self) -> &str {
        &self.queues.urls.teardown
    }

    /// The tenant manager's queue.
    pub fn tenant_events_queue(&self) -> &str {
        &self.queues.urls.tenant_events
    }

    /// The dead-letter queue of the queue at `url`.
    pub fn dlq_of(&self, url: &str) -> &str {
        let name = url.rsplit('/').next().unwrap_or(url);
        self.queues.dlqs.get(name).unwrap_or_else(|| panic!("no dead-letter queue for {url}"))
    }

    /// Install the App on a new organisation (the emulator sends `installation.created` through the HTTP API).
    pub async fn install(&self, org: &str) -> InstallationId {
        self.emulator.install_org(org).await.expect("installing the App")
    }

    /// Queue a job of `tier` that runs for `duration` once a runner takes it; returns once the webhook function
    /// answered the `queued` webhook.
    pub async fn queue_job(&self, installation: InstallationId, tier: &str, duration: Duration) -> JobId {
        let spec = JobSpec::new(installation, "app", &labels(tier)).duration(duration);
        self.emulator.queue_job(spec).await.expect("queueing a job")
    }

    /// Every event source mapping of the deployment: (queue URL, consumer).
    pub fn mappings(&self) -> Vec<(&str, &Function)> {
        let mut mappings: Vec<(&str, &Function)> =
            self.scale_up.iter().map(|(tier, function)| (self.tier_queue(tier), function)).collect();
        mappings.push((self.teardown_queue(), &self.scale_down));
        mappings.push((self.tenant_events_queue(), &self.tenant_manager));
        mappings
    }

    /// Run every mapping until no queue has a visible message; the polls that received something.
    pub async fn drain(&self) -> Vec<(String, Poll)> {
        let polls = event_source::drain(&self.moto.sqs, &self.mappings()).await;
        let failed = event_source::failed_ids(&polls);
        assert!(failed.is_empty(), "a function reported messages failed that are not poison: {polls:?}");
        polls
    }

    /// One poll of the mapping of `url`.
    pub async fn poll(&self, url: &str) -> Poll {
        let (_, function) = self.mappings().into_iter().find(|(u, _)| *u == url).expect("a mapped queue");
        event_source::poll_once(&self.moto.sqs, url, function).await
    }

    /// Scale-down's schedule fires once; its answer.
    pub async fn schedule(&self) -> Value {
        let event = event_source::scheduled_event(&format!("{}-scale-down-schedule", self.prefix));
        self.scale_down.invoke(event, INVOKE_TIMEOUT).await.expect("the scheduled pass answers")
    }

    /// This deployment's pending and running instances.
    pub async fn active_instances(&self) -> Vec<super::aws::Instance> {
        self.moto.active_instances(&self.prefix).await
    }

    /// Play the instance's boot: the emulated runner with the JIT config from its user data.
    pub async fn boot(&self, instance: &str) -> JoinHandle<Result<Outcome, RunnerError>> {
        let jit_config = self.moto.jit_config_of(instance).await;
        tokio::spawn(async move { run_emulated_runner(&jit_config, RunnerOptions::default()).await })
    }

    pub async fn job(&self, id: JobId) -> Job {
        self.store.job_get(id).await.expect("reading a job").expect("ghr knows the job")
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

    /// Every message on every dead-letter queue, by DLQ URL.
    pub async fn dead_letters(&self) -> BTreeMap<String, u64> {
        let mut depths = BTreeMap::new();
        for url in self.queues.dlqs.values() {
            let depth = self.moto.queue_depth(url).await;
            if depth > 0 {
                depths.insert(url.clone(), depth);
            }
        }
        depths
    }

    /// Wait until the queue at `url` holds a message.
    pub async fn wait_for_message(&self, what: &str, url: &str) {
        wait_for(what, async || self.moto.queue_depth(url).await > 0).await;
    }

    /// The final check of every test: nothing ever reached a dead-letter queue except `expected` (by DLQ URL);
    /// then stop the emulator.
    pub async fn finish(self, expected: &BTreeMap<String, u64>) {
        assert_eq!(&self.dead_letters().await, expected, "only poison messages are dead-lettered");
        self.emulator.shutdown().await.expect("the emulator stops");
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The webhook function is shared with the HTTP API and may outlive the stack: show its log here.
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of the log of function {} ----\n{}\n----",
                self.webhook.name,
                self.webhook.log_tail()
            );
        }
    }
}

/// Where the functions' logs go: a temporary directory, or `$GHR_E2E_LOG_DIR/<prefix>` (kept) when set.
pub enum Logs {
    Temporary(tempfile::TempDir),
    Kept(std::path::PathBuf),
}

/// Names a directory to keep every function's log in, one subdirectory per test.
pub const LOG_DIR_VAR: &str = "GHR_E2E_LOG_DIR";

impl Logs {
    fn new(prefix: &str) -> Logs {
        match std::env::var(LOG_DIR_VAR) {
            Ok(dir) if !dir.trim().is_empty() => {
                let path = std::path::Path::new(&dir).join(prefix);
                std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
                Logs::Kept(path)
            }
            _ => Logs::Temporary(tempfile::tempdir().expect("a directory for the functions' logs")),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        match self {
            Logs::Temporary(dir) => dir.path(),
            Logs::Kept(path) => path,
        }
    }
}

/// What every function's environment is made of.
struct StackEnv {
    prefix: String,
    moto: Moto,
    queues: TestQueues,
    app_id: u64,
    github_url: String,
    app_key_parameter: String,
    webhook_secret_parameter: String,
}

impl StackEnv {
    /// ghr's configuration as the module renders it (`jsonencode` of its inputs).
    fn config(&self) -> Value {
        let tiers: Vec<Value> = TIERS
            .iter()
            .map(|spec| {
                json!({ "name": spec.name, "labels": labels(spec.name), "instance_types": spec.instance_types,
                        "max_runners": spec.max_runners, "runner_os": "linux",
                        "runner_architecture": spec.architecture })
            })
            .collect();
        let amis = json!({ X64: self.moto.ami, ARM64: self.moto.arm64_ami });
        json!({
            "environment": self.prefix,
            "store": { "url": format!("dynamodb://{}?region={REGION}", self.prefix) },
            "tenants": { "default_tier": SMALL },
            "tiers": tiers,
            "provider": { "kind": "ec2", "ec2": { "region": REGION, "ami_ids": amis, "subnets": self.moto.subnets } },
            "github": { "app_id": self.app_id, "api_url": self.github_url },
        })
    }

    fn env(&self, function: &str, tier: Option<&str>) -> BTreeMap<String, String> {
        let tier_queues: BTreeMap<&str, &String> =
            self.queues.urls.tiers.iter().map(|(tier, url)| (tier.as_str(), url)).collect();
        let mut env = BTreeMap::from([
            ("GHR_FUNCTION".to_owned(), function.to_owned()),
            (ghr_lambda::env::ENV_CONFIG.to_owned(), self.config().to_string()),
            ("GHR_TIER_QUEUES".to_owned(), serde_json::to_string(&tier_queues).expect("JSON")),
            ("GHR_TEARDOWN_QUEUE_URL".to_owned(), self.queues.urls.teardown.clone()),
            ("GHR_TENANT_EVENTS_QUEUE_URL".to_owned(), self.queues.urls.tenant_events.clone()),
            ("GHR_FUNCTION_TIMEOUT_SECONDS".to_owned(), FUNCTION_TIMEOUT_SECONDS.to_string()),
            ("AWS_ENDPOINT_URL".to_owned(), self.moto.endpoint.clone()),
            ("AWS_REGION".to_owned(), REGION.to_owned()),
            ("AWS_DEFAULT_REGION".to_owned(), REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), super::aws::ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), super::aws::SECRET_KEY.to_owned()),
        ]);
        // Least privilege, as the module grants it: the webhook reads the webhook secret only, the others the
        // App key only.
        if function == "webhook" {
            env.insert("GHR_WEBHOOK_SECRET_PARAMETER".to_owned(), self.webhook_secret_parameter.clone());
        } else {
            env.insert("GHR_APP_KEY_PARAMETER".to_owned(), self.app_key_parameter.clone());
        }
        if let Some(tier) = tier {
            env.insert("GHR_TIER".to_owned(), tier.to_owned());
        }
        env
    }
}

/// A number no other test of this or another run uses for its prefix.
fn unique() -> u32 {
    (unique_u128() & u128::from(u32::MAX)) as u32
}

fn unique_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.write_u32(std::process::id());
    let high = u128::from(hasher.finish());
    hasher.write_u8(1);
    (high << 64) | u128::from(hasher.finish())
}
