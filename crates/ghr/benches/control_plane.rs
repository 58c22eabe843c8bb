//! Control-plane benchmarks on this machine (`cargo bench -p ghr --bench control_plane`):
//!
//! 1. webhook intake: signed `workflow_job.queued` deliveries accepted per second, and the ack latency
//!    distribution, through the real HTTP endpoint, signature check, parsing and SQLite store;
//! 2. dispatch overhead: webhook received → provider launch call, with the GitHub emulator (no injected
//!    latency) and an instant provider, one job at a time (p50/p99);
//! 3. admission decisions per second: `runner_reserve` (the atomic admission transaction) on SQLite.
//!
//! Results are printed; BENCHMARKS.md records a run. Sizes can be changed with GHR_BENCH_SCALE (default 1).
//!
//! `GHR_BENCH_STORE=postgres` runs on a fresh schema of the PostgreSQL test server instead (see `support`);
//! `GHR_BENCH_REPLICAS=2` then starts two servers on it, each with its own store: the bench's deliveries and
//! the emulator's webhooks go to each in turn, and the admission tasks are spread over both stores. On
//! PostgreSQL the database server's CPU per delivery and per decision is printed too.

use async_trait::async_trait;
use chrono::Utc;
use ghr_core::ids::{InstallationId, InstanceId, JobId, OrgName};
use ghr_core::job::{JobObservation, JobStatus};
use ghr_core::ports::{
    Instance, InstanceState, LaunchRequest, Provider, ProviderError, Reservation, ReserveRequest, Store,
};
use ghr_core::tenant::{NewTenant, OrgType, TenantMetadata, TenantStatus};
use ghr_engine::{EngineSettings, Ports};
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use ghr_server::{RunningServer, ServerConfig};
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, JobSpec};
use ghr_testkit::webhook::SignedDelivery;
use secrecy::SecretString;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Backend, PgScope, Stores};

mod support;

const SECRET: &str = "bench-secret";
const CONCURRENCY: usize = 16;
/// Concurrent tasks taking admission decisions (spread over the replicas' stores).
const ADMISSION_TASKS: usize = 8;

fn scale() -> usize {
    std::env::var("GHR_BENCH_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
}

/// Launches instantly and records when each launch call arrived.
#[derive(Default)]
struct InstantProvider {
    launches: Mutex<Vec<(String, Instant)>>,
}

#[async_trait]
impl Provider for InstantProvider {
    fn name(&self) -> &'static str {
        "instant"
    }
    async fn launch(&self, request: LaunchRequest) -> Result<Instance, ProviderError> {
        let at = Instant::now();
        self.launches
            .lock()
            .map_err(|_| ProviderError::failed("poisoned"))?
            .push((request.runner_name.to_string(), at));
        Ok(Instance {
            id: InstanceId::new(format!("i-{}", request.runner_name)),
            runner_name: Some(request.runner_name),
            installation_id: Some(request.installation_id),
            tier: Some(request.tier),
            state: InstanceState::Running,
            launched_at: Some(Utc::now()),
            instance_type: None,
        })
    }
    async fn terminate(&self, _id: &InstanceId) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        Ok(Vec::new())
    }
}

fn percentiles(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| samples[((p / 100.0) * samples.len() as f64).ceil().max(1.0) as usize - 1];
    println!(
        "{label}: n={} p50={:.2?} p90={:.2?} p99={:.2?} max={:.2?}",
        samples.len(),
        at(50.0),
        at(90.0),
        at(99.0),
        samples[samples.len() - 1]
    );
}

struct Bench {
    /// One per replica.
    servers: Vec<RunningServer>,
    /// Their webhook URLs, in the same order.
    urls: Vec<String>,
    stores: Stores,
    emulator: GithubEmulator,
    provider: Arc<InstantProvider>,
    /// The PostgreSQL server whose CPU is counted (PostgreSQL runs only).
    postgres: Option<PgScope>,
}

impl Bench {
    /// The first replica's store: seeding and settings go through it.
    fn store(&self) -> &Arc<dyn Store> {
        &self.stores.replicas[0]
    }

    fn postgres_cpu(&self) -> f64 {
        self.postgres.map_or(0.0, PgScope::cpu_seconds)
    }

    /// On PostgreSQL, print the database server's CPU per `unit` since `before`.
    fn report_postgres_cpu(&self, label: &str, before: f64, count: usize, unit: &str) {
        if self.postgres.is_some() {
            let per = (self.postgres_cpu() - before) * 1e6 / count as f64;
            println!("{label}: PostgreSQL CPU/{unit} {per:.0} µs");
        }
    }
}

async fn start(backend: Backend) -> Bench {
    let stores = Stores::open(backend, "bench.db").await;
    let emulator = GithubEmulator::start(EmulatorConfig { rate_limit_per_hour: u32::MAX, ..EmulatorConfig::default() })
        .await
        .expect("emulator");
    let mut client = GithubClientConfig::new(AppCredentials {
        app_id: emulator.app_id(),
        private_key_pem: SecretString::from(ghr_testkit::TEST_APP_PRIVATE_KEY_PEM),
    });
    client.api_base_url = emulator.base_url().to_owned();
    let provider = Arc::new(InstantProvider::default());
    let mut settings = EngineSettings::from_config(&ghr_config::Config::builtin());
    settings.reconcile_interval = Duration::from_secs(3600);
    settings.max_parallel_launches = 64;
    let settings = Arc::new(settings);
    let mut servers = Vec::new();
    for store in &stores.replicas {
        // Each replica has its own GitHub client, as each `ghr serve` process has; they share the cloud.
        let github = Arc::new(GithubClient::new(client.clone()).expect("client"));
        let server = RunningServer::start(ServerConfig {
            ports: Ports::new(store.clone(), github, provider.clone()),
            settings: settings.clone(),
            webhook_secret: SecretString::from(SECRET),
            admin_token: None,
            webhook_path: "/webhook".into(),
            max_body_bytes: 1 << 20,
            listen: "127.0.0.1:0".parse().expect("addr"),
            metrics_listen: None,
        })
        .await
        .expect("server");
        servers.push(server);
    }
    let urls: Vec<String> = servers.iter().map(|server| format!("http://{}/webhook", server.addr)).collect();
    match urls.as_slice() {
        [one] => emulator.set_webhook_target(one.clone(), SECRET),
        several => emulator.set_webhook_targets(several.to_vec(), SECRET),
    }
    let postgres = backend.is_postgres().then(PgScope::of_test_server);
    Bench { servers, urls, stores, emulator, provider, postgres }
}

fn queued_payload(job: u64, installation: u64, labels: &[&str]) -> serde_json::Value {
    json!({
        "action": "queued",
        "workflow_job": {"id": job, "run_id": job, "status": "queued", "labels": labels,
            "created_at": Utc::now().to_rfc3339(), "name": "build", "runner_id": null, "runner_name": null},
        "repository": {"id": 1, "name": "app", "full_name": "bench/app", "owner": {"login": "bench", "type": "Organization"}},
        "installation": {"id": installation}
    })
}

async fn webhook_intake(bench: &Bench) {
    let deliveries = 2000 * scale();
    let urls: Arc<[String]> = bench.urls.as_slice().into();
    let client = reqwest::Client::new();
    let bodies: Vec<SignedDelivery> = (0..deliveries)
        .map(|i| {
            SignedDelivery::new("workflow_job", &queued_payload(1_000_000 + i as u64, 9, &["ubuntu-latest"]), SECRET)
        })
        .collect();
    let queue = Arc::new(Mutex::new(bodies));
    let postgres_before = bench.postgres_cpu();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (queue, client, urls) = (queue.clone(), client.clone(), urls.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                // The replicas take the deliveries in turn, as behind a round-robin load balancer.
                let (delivery, left) = {
                    let mut queue = queue.lock().expect("queue");
                    let Some(delivery) = queue.pop() else { break };
                    (delivery, queue.len())
                };
                let url = &urls[left % urls.len()];
                let sent = Instant::now();
                let response = delivery.send(&client, url).await.expect("delivery sent");
                assert!(response.status().is_success(), "delivery refused: {}", response.status());
                latencies.push(sent.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(result) = tasks.join_next().await {
        latencies.extend(result.expect("sender task"));
    }
    let elapsed = started.elapsed();
    println!(
        "webhook intake: {deliveries} signed workflow_job.queued deliveries, {CONCURRENCY} concurrent senders, {:.0} deliveries/s",
        deliveries as f64 / elapsed.as_secs_f64()
    );
    percentiles("webhook ack latency", latencies);
    bench.report_postgres_cpu("webhook intake", postgres_before, deliveries, "delivery");
}

async fn dispatch_overhead(bench: &Bench) {
    let jobs = 200 * scale();
    let org = bench.emulator.install_org("overhead").await.expect("install");
    bench
        .store()
        .tenant_update(
            org,
            ghr_core::tenant::TenantUpdate { max_runners: Some(u32::MAX / 2), ..Default::default() },
            Utc::now(),
        )
        .await
        .expect("raise the limit");
    let mut samples = Vec::new();
    for _ in 0..jobs {
        let before = bench.provider.launches.lock().expect("launches").len();
        let sent = Instant::now();
        bench
            .emulator
            .queue_job(JobSpec::new(org, "app", &["self-hosted", "linux", "x64", "small"]))
            .await
            .expect("queue");
        loop {
            let launched = bench.provider.launches.lock().expect("launches").get(before).map(|(_, at)| *at);
            if let Some(at) = launched {
                samples.push(at - sent);
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    percentiles("webhook sent → provider launch call (includes the JIT call to the emulator)", samples);
}

async fn admission_rate(bench: &Bench) {
    let stores = &bench.stores.replicas;
    let store = bench.store();
    let decisions = 2000 * scale();
    let now = Utc::now();
    for (id, max) in [(77u64, 1_000_000u32), (78, 5)] {
        let tenant = NewTenant {
            installation_id: InstallationId(id),
            org_name: OrgName::new(format!("adm{id}")),
            org_type: OrgType::Organization,
            status: TenantStatus::Active,
            tier: "large".into(),
            max_runners: max,
            metadata: TenantMetadata::default(),
        };
        store.tenant_create(tenant, now).await.expect("tenant");
        for j in 0..decisions as u64 {
            let observation = JobObservation {
                job_id: JobId(id * 10_000_000 + j),
                installation_id: InstallationId(id),
                repository: "adm/app".into(),
                labels: vec!["self-hosted".into(), "small".into()],
                tier: Some("small".into()),
                status: JobStatus::Queued,
                conclusion: None,
                runner_name: None,
                queued_at: None,
                started_at: None,
                completed_at: None,
                observed_at: now,
            };
            store.job_observe(observation).await.expect("job");
        }
    }
    for (label, tenant) in [("admitted", 77u64), ("refused at the limit", 78)] {
        let postgres_before = bench.postgres_cpu();
        let launches_before = bench.provider.launches.lock().expect("launches").len();
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..ADMISSION_TASKS {
            let store = stores[worker % stores.len()].clone();
            tasks.spawn(async move {
                let mut outcomes = (0usize, 0usize, 0usize);
                for _ in 0..decisions / ADMISSION_TASKS {
                    let request = ReserveRequest {
                        installation_id: InstallationId(tenant),
                        tier: "small".into(),
                        scope_repo: None,
                        intended_job: None,
                        global_cap: None,
                        environment: format!("bench{worker}"),
                        now: Utc::now(),
                    };
                    match store.runner_reserve(request).await.expect("reserve") {
                        Reservation::Reserved(_) => outcomes.0 += 1,
                        Reservation::Refused(_) => outcomes.1 += 1,
                        Reservation::NoDemand => outcomes.2 += 1,
                    }
                }
                outcomes
            });
        }
        // "Refused" counts every decision that reserved nothing; "no demand" ones are told apart only when
        // they occur (a dispatcher of a server, woken by the seeded jobs, may have covered a job meanwhile).
        let (mut admitted, mut refused, mut no_demand) = (0, 0, 0);
        while let Some(result) = tasks.join_next().await {
            let (a, r, d) = result.expect("worker");
            admitted += a;
            refused += r + d;
            no_demand += d;
        }
        let elapsed = started.elapsed();
        println!(
            "admission ({label}): {} decisions by {ADMISSION_TASKS} concurrent tasks in {:.2?}: {:.0} decisions/s ({admitted} admitted, {refused} refused)",
            admitted + refused,
            elapsed,
            (admitted + refused) as f64 / elapsed.as_secs_f64()
        );
        let launched = bench.provider.launches.lock().expect("launches").len() - launches_before;
        if no_demand > 0 || launched > 0 {
            println!(
                "admission ({label}): {no_demand} of the refusals found no demand left; the servers' dispatchers \
                 launched {launched} runners meanwhile"
            );
        }
        bench.report_postgres_cpu(&format!("admission ({label})"), postgres_before, admitted + refused, "decision");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let backend = Backend::from_env();
    runtime.block_on(async {
        let bench = start(backend).await;
        if let Some(scope) = bench.postgres {
            println!(
                "store: {}; {} server(s); load average {}",
                bench.stores.description,
                bench.servers.len(),
                support::load_average()
            );
            println!("{}", scope.describe());
        }
        webhook_intake(&bench).await;
        dispatch_overhead(&bench).await;
        admission_rate(&bench).await;
        for server in bench.servers {
            server.shutdown().await;
        }
        let _ = bench.emulator.shutdown().await;
        if backend.is_postgres() {
            println!("load average at the end: {}", support::load_average());
        }
    });
}
