//! Scale benchmark (`cargo bench -p ghr --bench scale`): the control plane with 100,000 tenants, 10,000 live
//! runners and 50,000 waiting jobs (tenants at their limit), on a SQLite file store seeded in bulk, the real
//! engine and server, the GitHub emulator and an instant provider. Measures:
//!
//! 1. per-delivery cost (wall time and process CPU per signed `workflow_job.queued` delivery to a tenant at its
//!    limit) at 0, 100k and 1M stored completed jobs, then at 0, 2k and 50k waiting jobs;
//! 2. one dispatcher pass and one reconciler pass (public engine API only: `Dispatcher::pass`,
//!    `Reconciler::pass`) at full size;
//! 3. the process's resident memory (VmRSS, and its peak VmHWM) and its CPU while the server idles for 30 s.
//!
//! The whole process is measured: server, emulator and load generator share it, so CPU and RSS are upper
//! bounds of the server's. `GHR_BENCH_SCALE` (a fraction, default 1) shrinks every size for a quick run:
//! `GHR_BENCH_SCALE=0.01 cargo bench -p ghr --bench scale`. Results are printed; BENCHMARKS.md records a run.

use async_trait::async_trait;
use chrono::Utc;
use ghr_core::ids::{InstallationId, InstanceId};
use ghr_core::job::JobStatus;
use ghr_core::ports::{Instance, InstanceState, LaunchRequest, Provider, ProviderError, Store};
use ghr_core::reason::Reason;
use ghr_engine::assembly::Engine;
use ghr_engine::{EngineSettings, Ports};
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use ghr_server::{RunningServer, ServerConfig};
use ghr_store::SqliteStore;
use ghr_store::seed::{Installations, JobSeed};
use ghr_testkit::github::{EmulatorConfig, GithubEmulator};
use ghr_testkit::webhook::SignedDelivery;
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret";
const TENANTS: u64 = 100_000;
/// Tenants at their limit (one busy runner each, limit 1): the live runners.
const LIVE_RUNNERS: u64 = 10_000;
const WAITING_STEPS: [u64; 3] = [0, 2_000, 50_000];
const STORED_STEPS: [u64; 3] = [0, 100_000, 1_000_000];
/// Deliveries sent per measurement, 8 at a time.
const DELIVERIES: u64 = 400;
const SENDERS: usize = 8;
/// Time left after the last delivery for the dispatcher passes it woke to finish.
const SETTLE: Duration = Duration::from_millis(500);
const IDLE_WINDOW: Duration = Duration::from_secs(30);
/// A pass that takes longer than this is reported as such, not waited for.
const PASS_TIMEOUT: Duration = Duration::from_secs(120);
const TIER: &str = "small";
/// Calls averaged per timed read.
const READS: u32 = 20;
const RUNNER_PREFIX: &str = "bench-runner-";
/// Job ids of each seeded population start at distinct bases.
const BUSY_JOB_BASE: u64 = 1_000_000_000;
const STORED_JOB_BASE: u64 = 2_000_000_000;
const WAITING_JOB_BASE: u64 = 3_000_000_000;
const DELIVERED_JOB_BASE: u64 = 4_000_000_000;
/// Clock ticks per second of /proc/self/stat (USER_HZ on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

fn scale() -> f64 {
    std::env::var("GHR_BENCH_SCALE").ok().and_then(|v| v.parse().ok()).filter(|s: &f64| *s > 0.0).unwrap_or(1.0)
}

fn scaled(n: u64) -> u64 {
    if n == 0 { 0 } else { ((n as f64 * scale()).round() as u64).max(1) }
}

/// Launches instantly; lists the seeded runners' instances as running.
struct InstantProvider {
    seeded: Vec<Instance>,
}

#[async_trait]
impl Provider for InstantProvider {
    fn name(&self) -> &'static str {
        "instant"
    }
    async fn launch(&self, request: LaunchRequest) -> Result<Instance, ProviderError> {
        Ok(instance(request.runner_name.as_str(), request.installation_id))
    }
    async fn terminate(&self, _id: &InstanceId) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        Ok(self.seeded.clone())
    }
}

fn instance(name: &str, installation: InstallationId) -> Instance {
    Instance {
        id: InstanceId::new(format!("i-{name}")),
        runner_name: Some(name.into()),
        installation_id: Some(installation),
        tier: Some(TIER.into()),
        state: InstanceState::Running,
        launched_at: Some(Utc::now()),
        instance_type: None,
    }
}

/// (VmRSS, VmHWM) in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

fn queued_payload(job: u64, installation: InstallationId) -> serde_json::Value {
    json!({
        "action": "queued",
        "workflow_job": {"id": job, "run_id": job, "status": "queued", "labels": ["self-hosted", "linux", "x64", TIER],
            "created_at": Utc::now().to_rfc3339(), "name": "build", "runner_id": null, "runner_name": null},
        "repository": {"id": 1, "name": "app", "full_name": "bench/app", "owner": {"login": "bench", "type": "Organization"}},
        "installation": {"id": installation.0}
    })
}

struct Bench {
    store: Arc<SqliteStore>,
    server: RunningServer,
    ports: Ports,
    settings: Arc<EngineSettings>,
    client: reqwest::Client,
    next_job: u64,
    at_limit: Installations,
}

impl Bench {
    /// Send deliveries for tenants at their limit; print wall and CPU time per delivery; then mark the
    /// delivered jobs completed so the waiting queue stays at the size being measured.
    async fn delivery_cost(&mut self, label: &str) {
        let deliveries = scaled(DELIVERIES).max(SENDERS as u64);
        let url = format!("http://{}/webhook", self.server.addr);
        let target = self.at_limit.nth(0);
        let bodies: Vec<SignedDelivery> = (0..deliveries)
            .map(|i| SignedDelivery::new("workflow_job", &queued_payload(self.next_job + i, target), SECRET))
            .collect();
        self.next_job += deliveries;
        let queue = Arc::new(std::sync::Mutex::new(bodies));
        let (cpu, started) = (cpu_seconds(), Instant::now());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..SENDERS {
            let (queue, client, url) = (queue.clone(), self.client.clone(), url.clone());
            tasks.spawn(async move {
                loop {
                    let Some(delivery) = queue.lock().expect("queue").pop() else { break };
                    let response = delivery.send(&client, &url).await.expect("delivery sent");
                    assert!(response.status().is_success(), "delivery refused: {}", response.status());
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.expect("sender");
        }
        let wall = started.elapsed();
        // Let the dispatcher passes the deliveries woke finish before reading the CPU clock.
        tokio::time::sleep(SETTLE).await;
        // The settle time's background CPU (a few ms at most, see the idle figure) is left in.
        let cpu = cpu_seconds() - cpu;
        println!(
            "delivery cost {label}: {deliveries} deliveries, {:.0} µs wall and {:.0} µs process CPU per delivery \
             (incl. the sender and the dispatcher passes the deliveries woke); VmRSS {:.0} MiB",
            wall.as_secs_f64() * 1e6 / deliveries as f64,
            cpu * 1e6 / deliveries as f64,
            memory().0
        );
        self.store.seed_complete_jobs_of(target, Utc::now()).await.expect("clear delivered jobs");
    }
}

fn files(path: &std::path::Path, when: &str) {
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1_048_576.0);
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    println!("files {when}: database {:.0} MiB, write-ahead log {:.1} MiB", size(path), size(&wal));
}

/// Mean time of `READS` calls of `read`.
async fn time_read<F, Fut, T>(label: &str, mut read: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let started = Instant::now();
    for _ in 0..READS {
        std::hint::black_box(read().await);
    }
    println!("{label}: {:.2?} per call", started.elapsed() / READS);
}

/// The reads of the gauges (every 5 s), of `tenants show` and of a reason-filtered listing at full size, next
/// to the whole-table reads they replace.
async fn reads(bench: &Bench) {
    let store = bench.store.as_ref();
    time_read("gauge read: jobs per status (kept counts)", || store.job_counts()).await;
    time_read("gauge read: tenants per status (kept counts)", || store.tenant_counts()).await;
    time_read("gauge read: live runners per tenant/tier/state (live-runner index)", || store.runner_live_series())
        .await;
    let admin = ghr_server::admin::LocalAdmin::new(bench.ports.store.clone(), bench.settings.clone());
    let tenant = bench.at_limit.nth(1).to_string();
    time_read("tenants show <tenant at its limit>", || ghr_server::admin::Admin::tenant_show(&admin, &tenant)).await;
    let filter = ghr_core::ports::JobFilter {
        wait_reason: Some(Reason::TenantAtLimit),
        limit: Some(100),
        ..ghr_core::ports::JobFilter::default()
    };
    time_read("job_list by reason tenant_at_limit, limit 100", || store.job_list(filter.clone())).await;
    let by_status = ghr_core::ports::JobFilter {
        installation_id: Some(bench.at_limit.nth(2)),
        status: Some(JobStatus::Completed),
        limit: Some(100),
        ..ghr_core::ports::JobFilter::default()
    };
    time_read("job_list by tenant and status completed, limit 100", || store.job_list(by_status.clone())).await;
    let started = Instant::now();
    let all = store.tenant_list(None).await.expect("tenant list").len();
    println!(
        "for comparison, tenant_list(None) (the tenants gauge's old read, {all} tenants): {:.1?}",
        started.elapsed()
    );
    let started = Instant::now();
    let queue = store.job_list_wanting_runner().await.expect("queue").len();
    println!(
        "for comparison, job_list_wanting_runner ({queue} jobs; the old tenants show read it whole): {:.1?}",
        started.elapsed()
    );
}

async fn seed_waiting(store: &SqliteStore, at_limit: Installations, from: u64, to: u64) {
    let seed = JobSeed {
        first_job: WAITING_JOB_BASE + from,
        count: to - from,
        installations: at_limit,
        tier: TIER.into(),
        status: JobStatus::Queued,
        wait_reason: Some(Reason::TenantAtLimit),
        runner_prefix: None,
    };
    store.seed_jobs(&seed, Utc::now()).await.expect("seed waiting jobs");
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("scale.db");
    let store = Arc::new(SqliteStore::open(&path.display().to_string()).await.expect("store"));
    let (tenants, live) = (scaled(TENANTS), scaled(LIVE_RUNNERS));
    let all = Installations { first: 1, count: tenants };
    let at_limit = Installations { first: 1, count: live };
    let started = Instant::now();
    store.seed_tenants(all, TIER, 1, Utc::now()).await.expect("seed tenants");
    store.seed_busy_runners(at_limit, TIER, RUNNER_PREFIX, BUSY_JOB_BASE, Utc::now()).await.expect("seed runners");
    let running = JobSeed {
        first_job: BUSY_JOB_BASE,
        count: live,
        installations: at_limit,
        tier: TIER.into(),
        status: JobStatus::InProgress,
        wait_reason: None,
        runner_prefix: Some(RUNNER_PREFIX.into()),
    };
    store.seed_jobs(&running, Utc::now()).await.expect("seed running jobs");
    println!(
        "seeded {tenants} tenants, {live} busy runners and their jobs in {:.1?}; VmRSS {:.0} MiB",
        started.elapsed(),
        memory().0
    );

    let emulator = GithubEmulator::start(EmulatorConfig { rate_limit_per_hour: u32::MAX, ..EmulatorConfig::default() })
        .await
        .expect("emulator");
    let mut client = GithubClientConfig::new(AppCredentials {
        app_id: emulator.app_id(),
        private_key_pem: SecretString::from(ghr_testkit::TEST_APP_PRIVATE_KEY_PEM),
    });
    client.api_base_url = emulator.base_url().to_owned();
    let github = Arc::new(GithubClient::new(client).expect("client"));
    let seeded = (0..live).map(|n| at_limit.nth(n)).map(|id| instance(&format!("{RUNNER_PREFIX}{id}"), id)).collect();
    let provider = Arc::new(InstantProvider { seeded });
    let settings = Arc::new(EngineSettings::from_config(&ghr_config::Config::builtin()));
    let dyn_store: Arc<dyn Store> = store.clone();
    let ports = Ports::new(dyn_store, github, provider);
    let server = RunningServer::start(ServerConfig {
        ports: ports.clone(),
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
    let mut bench = Bench {
        store: store.clone(),
        server,
        ports,
        settings,
        client: reqwest::Client::new(),
        next_job: DELIVERED_JOB_BASE,
        at_limit,
    };

    let mut stored_so_far = 0;
    for stored in STORED_STEPS.map(scaled) {
        let seed = JobSeed {
            first_job: STORED_JOB_BASE + stored_so_far,
            count: stored - stored_so_far,
            installations: all,
            tier: TIER.into(),
            status: JobStatus::Completed,
            wait_reason: None,
            runner_prefix: None,
        };
        let started = Instant::now();
        store.seed_jobs(&seed, Utc::now()).await.expect("seed stored jobs");
        if stored > stored_so_far {
            println!("seeded {} completed jobs in {:.1?}", stored - stored_so_far, started.elapsed());
        }
        stored_so_far = stored;
        bench.delivery_cost(&format!("at {stored} stored completed jobs, 0 waiting")).await;
    }
    let mut waiting_so_far = 0;
    for waiting in WAITING_STEPS.map(scaled) {
        seed_waiting(&store, at_limit, waiting_so_far, waiting).await;
        waiting_so_far = waiting;
        bench.delivery_cost(&format!("at {waiting} waiting jobs ({stored_so_far} stored)")).await;
    }

    // One engine beside the server's, on the same store: its passes are timed alone.
    let engine = Engine::assemble(&bench.ports, bench.settings.clone());
    let started = Instant::now();
    match tokio::time::timeout(PASS_TIMEOUT, engine.dispatcher.pass()).await {
        Ok(report) => println!("dispatcher pass: {:.1?} ({report:?}); VmRSS {:.0} MiB", started.elapsed(), memory().0),
        Err(_) => println!("dispatcher pass: longer than {PASS_TIMEOUT:?}"),
    }
    let started = Instant::now();
    match tokio::time::timeout(PASS_TIMEOUT, engine.reconciler.pass(Utc::now())).await {
        Ok(report) => {
            let errors = report.errors.len();
            println!("reconciler pass: {:.1?} ({errors} rule errors); VmRSS {:.0} MiB", started.elapsed(), memory().0);
            if let Some(first) = report.errors.first() {
                println!("  first rule error: {first}");
            }
        }
        Err(_) => println!("reconciler pass: longer than {PASS_TIMEOUT:?}"),
    }
    let (rss, hwm) = memory();
    println!("memory after seeding, deliveries and passes: VmRSS {rss:.0} MiB, VmHWM {hwm:.0} MiB");
    drop(engine);

    let (cpu, started) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle = (cpu_seconds() - cpu) / started.elapsed().as_secs_f64();
    let (rss, hwm) = memory();
    println!(
        "idle {:?}: {:.1} % of one core (server loops: dispatcher tick, gauges, reconciler); VmRSS {rss:.0} MiB, VmHWM {hwm:.0} MiB",
        IDLE_WINDOW,
        idle * 100.0
    );
    // The store's reads, and the old whole-table reads for comparison, after the memory figures above (the
    // old reads alone grow the heap by hundreds of MiB, which the allocator keeps).
    reads(&bench).await;
    files(&path, "before retention");
    let started = Instant::now();
    let pruned = store.prune(Utc::now() + chrono::Duration::days(1)).await.expect("prune");
    println!("retention: {pruned:?} in {:.1?}, in batches of at most 1,000 jobs", started.elapsed());
    files(&path, "after retention");
    bench.server.shutdown().await;
    let _ = emulator.shutdown().await;
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}
