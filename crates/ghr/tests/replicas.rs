//! Two `ghr serve` processes on one PostgreSQL database, GitHub's webhooks alternating between them: a burst
//! of jobs for tenants with small limits is served with every tenant's limit holding cluster-wide, no job
//! gets two runners, and every job completes; SIGKILL of the replica that runs the reconciler mid-burst still
//! ends with every job served and nothing leaked, and the survivor takes the singleton work over within its
//! lease time.

use ghr_core::ids::{InstallationId, JobId};
use ghr_core::job::JobStatus;
use ghr_core::ports::{RunnerFilter, Store};
use ghr_core::runner::RunnerState;
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, JobSpec};
use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TENANTS: usize = 10;
const JOBS_PER_TENANT: usize = 50;
const JOBS: usize = TENANTS * JOBS_PER_TENANT;
/// Every tenant is on the one tier, whose plan allows this many runners at once.
const LIMIT: u32 = 2;
/// The reconciler lease of the replicas; the survivor must take over within this plus one renewal (a third).
const LEASE_TTL_SECS: u64 = 3;
/// Jobs completed before the leader is killed.
const KILL_AFTER_COMPLETED: usize = 120;
const WEBHOOK_SECRET: &str = "replica-secret";
const ADMIN_TOKEN: &str = "replica-token";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

struct Replica {
    name: String,
    port: u16,
    child: Child,
}

impl Replica {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How often the replicas' dispatcher and reconciler run by themselves.
#[derive(Clone, Copy)]
struct Ticks {
    dispatch_secs: u64,
    reconcile_secs: u64,
}

/// Reactive loops, as a burst needs.
const FAST: Ticks = Ticks { dispatch_secs: 1, reconcile_secs: 1 };
/// Loops that practically never run by themselves: only a wake-up explains a quick start.
const QUIET: Ticks = Ticks { dispatch_secs: 600, reconcile_secs: 600 };

fn config(
    dir: &Path,
    name: &str,
    port: u16,
    store_url: &str,
    emulator: &GithubEmulator,
    ticks: Ticks,
) -> std::path::PathBuf {
    let key = dir.join("app.pem");
    std::fs::write(&key, ghr_testkit::TEST_APP_PRIVATE_KEY_PEM).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\nlog_format = \"json\"\n\
             [store]\nurl = \"{store_url}\"\n\
             [cluster]\nreplica_id = \"{name}\"\nlease_ttl_seconds = {LEASE_TTL_SECS}\n\
             [github]\napp_id = {app_id}\nprivate_key_path = \"{key}\"\napi_url = \"{api}\"\n\
             [dispatcher]\ntick_seconds = {dispatch}\nretry_base_seconds = 1\nretry_max_seconds = 2\n\
             [reconciler]\ninterval_seconds = {reconcile}\norphan_grace_seconds = 5\nstale_job_seconds = 10\n\
             [provider.process]\ncommand = [\"{ghr}\", \"emulated-runner\"]\nstate_dir = \"{state}\"\n\
             terminate_grace_seconds = 2\n\
             [[tiers]]\nname = \"small\"\nlabels = [\"self-hosted\", \"linux\", \"x64\", \"small\"]\n\
             instance_types = [\"t3.small\"]\nmax_runners = {LIMIT}\n",
            metrics = free_port(),
            dispatch = ticks.dispatch_secs,
            reconcile = ticks.reconcile_secs,
            app_id = emulator.app_id(),
            key = key.display(),
            api = emulator.base_url(),
            ghr = env!("CARGO_BIN_EXE_ghr"),
            // One host: the replicas share the process provider's state, as they share the database.
            state = dir.join("runners").display(),
        ),
    )
    .unwrap();
    path
}

fn start(dir: &Path, name: &str, store_url: &str, emulator: &GithubEmulator, ticks: Ticks) -> Replica {
    let port = free_port();
    let config = config(dir, name, port, store_url, emulator, ticks);
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ghr"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("GHR_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("GHR_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("GHR_GITHUB_PRIVATE_KEY")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("ghr serve starts");
    Replica { name: name.to_owned(), port, child }
}

/// The replica's role from `/readyz` (`leader` or `standby`), None while it does not answer.
async fn role(http: &reqwest::Client, replica: &Replica) -> Option<String> {
    let response = http.get(format!("{}/readyz", replica.url())).send().await.ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    body.get("role").and_then(|r| r.as_str()).map(str::to_owned)
}

async fn wait_until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn completed(emulator: &GithubEmulator) -> usize {
    emulator.jobs().iter().filter(|j| j.status == JobStatus::Completed).count()
}

fn logs(dir: &Path, replica: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{replica}.log"))).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_serve_a_burst_and_survive_losing_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = ghr_store::testing::fresh_postgres_url().await;
    let store: Arc<dyn Store> = Arc::new(ghr_store::testing::open_postgres_store(&store_url).await);
    let emulator = GithubEmulator::start(EmulatorConfig { rate_limit_per_hour: u32::MAX, ..EmulatorConfig::default() })
        .await
        .expect("the GitHub emulator starts");
    let http = reqwest::Client::new();

    let mut replicas = vec![
        start(dir.path(), "replica-a", &store_url, &emulator, FAST),
        start(dir.path(), "replica-b", &store_url, &emulator, FAST),
    ];
    for replica in &replicas {
        wait_until(Duration::from_secs(30), &format!("{} to answer /readyz", replica.name), || async {
            role(&http, replica).await.is_some()
        })
        .await;
    }
    emulator.set_webhook_targets(replicas.iter().map(|r| format!("{}/webhook", r.url())).collect(), WEBHOOK_SECRET);

    // Exactly one leader.
    wait_until(Duration::from_secs(3 * LEASE_TTL_SECS), "one replica to lead", || async {
        let mut leaders = 0;
        for replica in &replicas {
            leaders += usize::from(role(&http, replica).await.as_deref() == Some("leader"));
        }
        leaders == 1
    })
    .await;

    // Tenants install the App (their installation webhooks land on either replica).
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        tenants.push(emulator.install_org(&format!("org-{i}")).await.expect("install"));
    }
    wait_until(Duration::from_secs(30), "every tenant onboarded", || async {
        store.tenant_list(None).await.map(|t| t.len() == TENANTS).unwrap_or(false)
    })
    .await;

    // The burst.
    let mut queueing = tokio::task::JoinSet::new();
    for (i, tenant) in tenants
        .iter()
        .copied()
        .enumerate()
        .flat_map(|(i, t)| (0..JOBS_PER_TENANT).map(move |j| (i * JOBS_PER_TENANT + j, t)))
    {
        let emulator = emulator.clone();
        queueing.spawn(async move {
            let mut spec = JobSpec::new(tenant, &format!("repo-{}", i % 3), &["self-hosted", "linux", "x64", "small"]);
            spec.duration = Duration::from_millis(200);
            emulator.queue_job(spec).await
        });
    }
    while let Some(result) = queueing.join_next().await {
        result.unwrap().expect("job queued");
    }

    // Kill the leader mid-burst; the survivor must take the singleton work over within the lease time.
    wait_until(Duration::from_secs(240), "the first jobs to complete", || async {
        completed(&emulator) >= KILL_AFTER_COMPLETED
    })
    .await;
    let mut leader_index = None;
    for (i, replica) in replicas.iter().enumerate() {
        if role(&http, replica).await.as_deref() == Some("leader") {
            leader_index = Some(i);
        }
    }
    let leader_index = leader_index.expect("a leader during the burst");
    let mut leader = replicas.remove(leader_index);
    let survivor = &replicas[0];
    leader.child.kill().expect("SIGKILL the leader");
    leader.child.wait().expect("the leader exits");
    let killed_at = Instant::now();
    let takeover_bound = Duration::from_secs(LEASE_TTL_SECS + LEASE_TTL_SECS / 3 + 3);
    wait_until(takeover_bound, &format!("{} to take the lease over", survivor.name), || async {
        role(&http, survivor).await.as_deref() == Some("leader")
    })
    .await;
    let takeover = killed_at.elapsed();
    eprintln!("{} took the reconciler lease over {takeover:?} after {} was killed", survivor.name, leader.name);

    // Every job is served: deliveries to the dead replica fail and are redelivered by the survivor's scan.
    let all_done = tokio::time::timeout(Duration::from_secs(360), async {
        while completed(&emulator) < JOBS {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .is_ok();
    assert!(
        all_done,
        "only {} of {JOBS} jobs completed\n--- {} log tail ---\n{}",
        completed(&emulator),
        survivor.name,
        logs(dir.path(), &survivor.name).lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
    let jobs = emulator.jobs();
    assert!(jobs.iter().all(|j| j.assignments == 1), "a job was assigned twice");

    // Nothing leaked: every runner record released, every runner process gone, no registration online.
    wait_until(Duration::from_secs(60), "every runner released and gone", || async {
        let live = store
            .runner_list(RunnerFilter { states: RunnerState::LIVE.to_vec(), ..RunnerFilter::default() })
            .await
            .expect("listing runners");
        live.is_empty() && emulator.runners().iter().all(|r| !r.online)
    })
    .await;
    let provider = ghr_cloud::ProcessProvider::new(ghr_cloud::ProcessProviderConfig::new(
        vec![env!("CARGO_BIN_EXE_ghr").into(), "emulated-runner".into()],
        dir.path().join("runners"),
        "ghr",
    ))
    .expect("a process provider on the replicas' state");
    use ghr_core::ports::Provider;
    wait_until(Duration::from_secs(30), "every runner process to exit", || async {
        provider.list().await.map(|l| l.is_empty()).unwrap_or(false)
    })
    .await;

    // Limits held cluster-wide, and no job had two runners, by the recorded runner intervals.
    let runners = store
        .runner_list(RunnerFilter { states: RunnerState::ALL.to_vec(), ..RunnerFilter::default() })
        .await
        .expect("listing runners");
    let mut by_tenant: BTreeMap<InstallationId, Vec<_>> = BTreeMap::new();
    for runner in &runners {
        by_tenant.entry(runner.installation_id).or_default().push(runner);
    }
    for (tenant, runners) in &by_tenant {
        let peak = ghr::demo::peak_concurrency(runners, chrono::Utc::now());
        assert!(peak <= LIMIT, "tenant {tenant} had {peak} runners at once across the replicas, limit {LIMIT}");
    }
    let mut bound: HashMap<JobId, usize> = HashMap::new();
    for job in runners.iter().filter_map(|r| r.job_id) {
        *bound.entry(job).or_default() += 1;
    }
    assert!(bound.values().all(|n| *n == 1), "a job was bound to two runners: {bound:?}");
    assert_eq!(bound.len(), JOBS, "every job ran on a ghr runner");
    // Completions delivered to the killed replica reach the store through the survivor's failed-delivery scan
    // or its stale-job check, possibly after the job's runner is already gone: wait for them.
    let recorded =
        || async { store.job_counts().await.expect("job counts").get(&JobStatus::Completed).copied().unwrap_or(0) };
    let all_recorded = tokio::time::timeout(Duration::from_secs(60), async {
        while recorded().await < JOBS as u64 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .is_ok();
    assert!(all_recorded, "the store recorded {} of {JOBS} jobs completed", recorded().await);
}

/// A change committed by another replica (here: the test's own store on the same database, raising a tenant's
/// limit as an operator's `ghr tenants set-tier` through another replica would) starts the waiting job on a
/// replica whose loops are quiet for ten minutes: only the cross-replica wake-up (LISTEN/NOTIFY) can explain it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_raised_through_another_replica_starts_the_waiting_job_at_once() {
    use ghr_core::tenant::TenantUpdate;
    let dir = tempfile::tempdir().unwrap();
    let store_url = ghr_store::testing::fresh_postgres_url().await;
    let other_replica: Arc<dyn Store> = Arc::new(ghr_store::testing::open_postgres_store(&store_url).await);
    let emulator = GithubEmulator::start(EmulatorConfig::default()).await.expect("the GitHub emulator starts");
    let http = reqwest::Client::new();
    let replica = start(dir.path(), "quiet", &store_url, &emulator, QUIET);
    wait_until(Duration::from_secs(30), "the replica to answer /readyz", || async {
        role(&http, &replica).await.is_some()
    })
    .await;
    emulator.set_webhook_target(format!("{}/webhook", replica.url()), WEBHOOK_SECRET);

    let tenant = emulator.install_org("acme").await.expect("install");
    wait_until(Duration::from_secs(30), "the tenant onboarded", || async {
        other_replica.tenant_get(tenant).await.ok().flatten().is_some()
    })
    .await;
    other_replica
        .tenant_update(tenant, TenantUpdate { max_runners: Some(1), ..TenantUpdate::default() }, chrono::Utc::now())
        .await
        .expect("limit 1");
    let live =
        || async { other_replica.runner_live_counts().await.expect("live counts").get(&tenant).copied().unwrap_or(0) };
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let mut spec = JobSpec::new(tenant, "app", &["self-hosted", "linux", "x64", "small"]);
        spec.duration = Duration::from_secs(6);
        jobs.push(emulator.queue_job(spec).await.expect("queued"));
    }
    // The first job starts (the replica's own intake woke it); the second waits at the limit.
    wait_until(Duration::from_secs(20), "the first runner", || async { live().await == 1 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(live().await, 1, "the limit of 1 held");

    let raised = Instant::now();
    other_replica
        .tenant_update(tenant, TenantUpdate { max_runners: Some(2), ..TenantUpdate::default() }, chrono::Utc::now())
        .await
        .expect("limit 2");
    wait_until(
        Duration::from_secs(10),
        "the waiting job to get a runner after the limit was raised elsewhere",
        || async { live().await == 2 },
    )
    .await;
    eprintln!("the waiting job got its runner {:?} after another replica raised the limit", raised.elapsed());

    wait_until(Duration::from_secs(60), "both jobs to complete", || async { completed(&emulator) == jobs.len() }).await;
}
