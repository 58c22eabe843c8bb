//! Webhook intake at the floor (`cargo bench -p ghr --bench intake`), in one run:
//!
//! 1. the floor: HMAC-SHA256 verification plus the typed parse of the same payloads, in this process;
//! 2. a real `ghr` server over HTTP (axum, SQLite file store in WAL mode, Prometheus recorder and info-level
//!    logging on, as `ghr serve` runs), its runtime on both cores, fed signed 7–11 KB `workflow_job.queued`
//!    deliveries of 10 tenants:
//!    - saturation: a closed loop of [`SENDERS`] concurrent senders; deliveries/s and the server's CPU per
//!      durable delivery (each answer is sent after its group commit);
//!    - a fixed open-loop rate ([`FIXED_RATE`]/s, or `GHR_BENCH_RATE`): ack latency p50/p99/p99.9/max, measured from each
//!      delivery's scheduled send time (so a stalled sender cannot hide latency), and CPU per delivery.
//!
//! CPU is read per thread from `/proc/self/task/*/stat`: the server's runtime threads are named
//! [`SERVER_THREADS`] and sqlx's SQLite workers `sqlx-sqlite-worker-*`; the load generator and the GitHub
//! emulator run on a second runtime whose threads are named [`LOAD_THREADS`], so their CPU is counted apart.
//! Both runtimes share the machine's cores, as they would on one host. Sizes scale with GHR_BENCH_SCALE.
//!
//! `GHR_BENCH_STORE=postgres` runs the server on a fresh schema of the PostgreSQL test server instead of SQLite
//! (see `support`); `GHR_BENCH_REPLICAS=2` then starts two servers on that schema, each with its own store, and
//! the load generator sends every other delivery to each. On PostgreSQL the CPU per delivery is reported as
//! ghr's (both servers' runtime threads), the database server's (its processes, from `/proc`), and their sum.

use ghr_core::ids::InstanceId;
use ghr_core::ports::Store;
use ghr_core::ports::{Instance, LaunchRequest, Provider, ProviderError};
use ghr_engine::{EngineSettings, Ports};
use ghr_github::webhook::{parse_delivery, verify_signature};
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use ghr_server::{RunningServer, ServerConfig};
use ghr_testkit::github::{EmulatorConfig, GithubEmulator};
use ghr_testkit::webhook::SignedDelivery;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{Backend, PgScope, Stores};

mod support;

const SECRET: &str = "bench-secret";
/// Thread name of the server's runtime (workers and blocking threads).
const SERVER_THREADS: &str = "ghr-server";
/// Thread-name prefix of sqlx's SQLite connection workers (as `comm` shows it: 15 bytes at most).
const SQLX_THREADS: &str = "sqlx-sqlite";
/// Thread name of the load generator's runtime.
const LOAD_THREADS: &str = "loadgen";
/// Tenants the deliveries belong to.
const TENANTS: u64 = 10;
/// Concurrent senders of the closed loop.
const SENDERS: usize = 64;
/// Deliveries per second of the open loop.
const FIXED_RATE: u64 = 2_000;
/// Environment variable that overrides [`FIXED_RATE`] (a store that cannot hold 2,000/s only queues there).
const RATE_ENV: &str = "GHR_BENCH_RATE";
/// Payload sizes (bytes) are spread over this range, like real `workflow_job.queued` deliveries.
const PAYLOAD_BYTES: (usize, usize) = (7 * 1024, 11 * 1024);

/// The bench's jobs match no tier, so nothing is launched; a launch would be a bug in the bench.
struct NoLaunches;

#[async_trait::async_trait]
impl Provider for NoLaunches {
    fn name(&self) -> &'static str {
        "none"
    }
    async fn launch(&self, _request: LaunchRequest) -> Result<Instance, ProviderError> {
        Err(ProviderError::config("the intake bench launches no runners"))
    }
    async fn terminate(&self, _id: &InstanceId) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        Ok(Vec::new())
    }
}

/// Deliveries per second of the open loop: [`RATE_ENV`], else [`FIXED_RATE`].
fn fixed_rate_per_second() -> u64 {
    match std::env::var(RATE_ENV) {
        Err(_) => FIXED_RATE,
        Ok(value) => value
            .parse()
            .ok()
            .filter(|rate| *rate > 0)
            .unwrap_or_else(|| panic!("{RATE_ENV}={value:?}: expected deliveries per second, above 0")),
    }
}

fn scale() -> usize {
    std::env::var("GHR_BENCH_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
}

/// GitHub's repository object with every URL field it carries, which is most of a delivery's size.
fn repository(owner: &str, name: &str, id: u64, padding: usize) -> Value {
    let full = format!("{owner}/{name}");
    let api = format!("https://api.github.com/repos/{full}");
    let mut repo = json!({
        "id": id, "node_id": format!("R_kgDO{id:08}"), "name": name, "full_name": full, "private": true,
        "html_url": format!("https://github.com/{full}"), "description": "x".repeat(padding), "fork": false,
        "url": api, "created_at": "2024-01-02T03:04:05Z", "updated_at": "2026-11-30T10:00:00Z",
        "pushed_at": "2026-12-01T09:00:00Z", "git_url": format!("git://github.com/{full}.git"),
        "ssh_url": format!("git@github.com:{full}.git"), "clone_url": format!("https://github.com/{full}.git"),
        "svn_url": format!("https://github.com/{full}"), "homepage": null, "size": 48_213, "stargazers_count": 12,
        "watchers_count": 12, "language": "Rust", "has_issues": true, "has_projects": false, "has_downloads": true,
        "owner": {
            "login": owner, "id": id / 1000, "node_id": "O_kgDOBench", "type": "Organization", "site_admin": false,
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", id / 1000), "gravatar_id": "",
            "url": format!("https://api.github.com/users/{owner}"), "html_url": format!("https://github.com/{owner}"),
        },
    });
    for (field, value) in [
        ("has_wiki", json!(false)),
        ("has_pages", json!(false)),
        ("has_discussions", json!(false)),
        ("forks_count", json!(1)),
        ("mirror_url", Value::Null),
        ("archived", json!(false)),
        ("disabled", json!(false)),
        ("open_issues_count", json!(7)),
        ("license", Value::Null),
        ("allow_forking", json!(false)),
        ("is_template", json!(false)),
        ("topics", json!(["ci", "runners"])),
        ("visibility", json!("private")),
        ("default_branch", json!("main")),
    ] {
        repo[field] = value;
    }
    for field in [
        "forks",
        "keys",
        "collaborators",
        "teams",
        "hooks",
        "issue_events",
        "events",
        "assignees",
        "branches",
        "tags",
        "blobs",
        "git_tags",
        "git_refs",
        "trees",
        "statuses",
        "languages",
        "stargazers",
        "contributors",
        "subscribers",
        "subscription",
        "commits",
        "git_commits",
        "comments",
        "issue_comment",
        "contents",
        "compare",
        "merges",
        "archive",
        "downloads",
        "issues",
        "pulls",
        "milestones",
        "notifications",
        "labels",
        "releases",
        "deployments",
    ] {
        repo[format!("{field}_url")] = json!(format!("{api}/{field}{{/id}}"));
    }
    for field in ["followers", "following", "gists", "starred", "subscriptions", "organizations", "repos", "events"] {
        repo["owner"][format!("{field}_url")] = json!(format!("https://api.github.com/users/{owner}/{field}"));
    }
    repo
}

/// A signed `workflow_job.queued` delivery of job `job` for tenant `tenant`, padded to `size` bytes or so.
/// Its labels match no tier (a GitHub-hosted job, which the App hears of too), so intake alone is measured.
fn delivery(job: u64, tenant: u64, size: usize) -> SignedDelivery {
    let owner = format!("tenant-{tenant}");
    let build = |padding: usize| {
        let repo = repository(&owner, "service", 700_000_000 + tenant, padding);
        json!({
            "action": "queued",
            "workflow_job": {
                "id": job, "run_id": job / 4, "workflow_name": "CI", "head_branch": "main", "run_attempt": 1,
                "node_id": format!("CR_kwDO{job}"), "head_sha": "0123456789abcdef0123456789abcdef01234567",
                "url": format!("https://api.github.com/repos/{owner}/service/actions/jobs/{job}"),
                "html_url": format!("https://github.com/{owner}/service/actions/runs/{}/job/{job}", job / 4),
                "run_url": format!("https://api.github.com/repos/{owner}/service/actions/runs/{}", job / 4),
                "status": "queued", "conclusion": null, "created_at": "2026-12-01T10:00:00Z",
                "started_at": "2026-12-01T10:00:00Z", "completed_at": null, "name": "build (ubuntu)",
                "steps": [], "check_run_url": format!("https://api.github.com/repos/{owner}/service/check-runs/{job}"),
                "labels": ["ubuntu-latest"], "runner_id": null, "runner_name": null, "runner_group_id": null,
                "runner_group_name": null,
            },
            "repository": repo,
            "organization": {"login": owner, "id": 700_000 + tenant, "node_id": "O_kgDOBench",
                "url": format!("https://api.github.com/orgs/{owner}"), "description": ""},
            "sender": {"login": "octocat", "id": 583_231, "type": "User", "site_admin": false,
                "url": "https://api.github.com/users/octocat", "html_url": "https://github.com/octocat"},
            "installation": {"id": 50_000 + tenant, "node_id": "MDIzOkludGVncmF0aW9uMTIzNDU="},
        })
    };
    let bare = build(0).to_string().len();
    SignedDelivery::new("workflow_job", &build(size.saturating_sub(bare)), SECRET)
}

/// `count` deliveries with sizes spread over [`PAYLOAD_BYTES`], job ids from `first`.
fn deliveries(first: u64, count: usize) -> Vec<SignedDelivery> {
    let (low, high) = PAYLOAD_BYTES;
    (0..count)
        .map(|i| {
            let size = low + (i * 7919) % (high - low);
            delivery(first + i as u64, i as u64 % TENANTS, size)
        })
        .collect()
}

/// CPU seconds per thread group, from `/proc/self/task/*/stat` (utime + stime, clock ticks), and the
/// PostgreSQL server's when the store is PostgreSQL.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    /// The server's runtime threads.
    runtime: f64,
    /// sqlx's SQLite connection threads.
    sqlite: f64,
    load: f64,
    /// The PostgreSQL server's processes (0 on SQLite).
    postgres: f64,
}

/// Reads [`Cpu`]; `postgres` is the database server to count, if any.
#[derive(Debug, Clone, Copy)]
struct Meter {
    postgres: Option<PgScope>,
}

impl Meter {
    fn read(self) -> Cpu {
        let mut cpu = threads_cpu();
        cpu.postgres = self.postgres.map_or(0.0, PgScope::cpu_seconds);
        cpu
    }
}

fn threads_cpu() -> Cpu {
    const TICKS_PER_SECOND: f64 = 100.0;
    let mut cpu = Cpu::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return cpu };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        // `pid (comm) state ...`: comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // After comm: state is field 0, utime field 11, stime field 12.
        let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
        let seconds = ticks / TICKS_PER_SECOND;
        if comm.starts_with(SERVER_THREADS) {
            cpu.runtime += seconds;
        } else if comm.starts_with(SQLX_THREADS) {
            cpu.sqlite += seconds;
        } else if comm.starts_with(LOAD_THREADS) {
            cpu.load += seconds;
        }
    }
    cpu
}

fn floor(samples: &[SignedDelivery]) {
    let secret = SecretString::from(SECRET);
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        for delivery in samples {
            verify_signature(&secret, &delivery.body, delivery.signature.as_deref()).expect("a valid signature");
            std::hint::black_box(parse_delivery(&delivery.event, &delivery.body).expect("a valid payload"));
        }
    }
    let per = started.elapsed().as_secs_f64() * 1e6 / (rounds * samples.len()) as f64;
    let bytes: usize = samples.iter().map(|d| d.body.len()).sum::<usize>() / samples.len();
    println!("floor: HMAC verify + typed parse: {per:.1} µs per delivery (mean body {bytes} bytes)");
}

/// One replica: a server on its own store instance.
async fn start_server(github_url: String, app_id: u64, store: Arc<dyn Store>) -> RunningServer {
    let mut client = GithubClientConfig::new(AppCredentials {
        app_id,
        private_key_pem: SecretString::from(ghr_testkit::TEST_APP_PRIVATE_KEY_PEM),
    });
    client.api_base_url = github_url;
    let github = Arc::new(GithubClient::new(client).expect("client"));
    let mut settings = EngineSettings::from_config(&ghr_config::Config::builtin());
    settings.reconcile_interval = Duration::from_secs(3600);
    RunningServer::start(ServerConfig {
        ports: Ports::new(store, github, Arc::new(NoLaunches)),
        settings: Arc::new(settings),
        webhook_secret: SecretString::from(SECRET),
        admin_token: None,
        webhook_path: "/webhook".into(),
        max_body_bytes: 1 << 20,
        listen: "127.0.0.1:0".parse().expect("addr"),
        metrics_listen: Some("127.0.0.1:0".parse().expect("addr")),
    })
    .await
    .expect("server")
}

/// POST one delivery; panics unless it is acknowledged.
async fn send(client: &reqwest::Client, url: &str, delivery: &SignedDelivery) {
    let mut request = client.post(url);
    for (name, value) in delivery.headers() {
        request = request.header(name, value);
    }
    let response = request.body(delivery.body.clone()).send().await.expect("a delivery sent");
    assert!(response.status().is_success(), "delivery refused: {}", response.status());
}

fn report_cpu(label: &str, meter: Meter, before: Cpu, after: Cpu, count: usize) {
    let per = |before: f64, after: f64| (after - before) * 1e6 / count as f64;
    let (runtime, sqlite) = (per(before.runtime, after.runtime), per(before.sqlite, after.sqlite));
    if meter.postgres.is_some() {
        let (ghr, postgres) = (runtime + sqlite, per(before.postgres, after.postgres));
        println!(
            "{label}: ghr CPU/delivery {ghr:.0} µs (runtime threads of every replica); PostgreSQL CPU/delivery \
             {postgres:.0} µs; total {:.0} µs per durable delivery; load generator and emulator {:.0} µs",
            ghr + postgres,
            per(before.load, after.load)
        );
        return;
    }
    println!(
        "{label}: server CPU {:.0} µs per durable delivery ({runtime:.0} µs runtime threads, {sqlite:.0} µs SQLite \
         threads); load generator and emulator {:.0} µs",
        runtime + sqlite,
        per(before.load, after.load)
    );
}

/// The replica that takes delivery `index`: each in turn, as a round-robin load balancer sends them.
fn replica_url(urls: &[String], index: usize) -> &str {
    &urls[index % urls.len()]
}

async fn saturation(client: &reqwest::Client, urls: &[String], meter: Meter, batch: Vec<SignedDelivery>) {
    let count = batch.len();
    let batch = Arc::new(batch);
    let next = Arc::new(AtomicUsize::new(0));
    let urls: Arc<[String]> = urls.into();
    let before = meter.read();
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let (client, urls, batch, next) = (client.clone(), urls.clone(), batch.clone(), next.clone());
        senders.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(delivery) = batch.get(index) else { break };
                send(&client, replica_url(&urls, index), delivery).await;
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done.expect("a sender");
    }
    let elapsed = started.elapsed();
    println!(
        "saturation: {count} deliveries, {SENDERS} concurrent senders, {:.2?}: {:.0} deliveries/s",
        elapsed,
        count as f64 / elapsed.as_secs_f64()
    );
    report_cpu("saturation", meter, before, meter.read(), count);
}

fn at(sorted: &[Duration], percentile: f64) -> Duration {
    let rank = ((percentile / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

async fn fixed_rate(client: &reqwest::Client, urls: &[String], meter: Meter, batch: Vec<SignedDelivery>) {
    let count = batch.len();
    let rate = fixed_rate_per_second();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let before = meter.read();
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let mut requests = tokio::task::JoinSet::new();
    for (i, delivery) in batch.into_iter().enumerate() {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let (client, url) = (client.clone(), replica_url(urls, i).to_owned());
        requests.spawn(async move {
            send(&client, &url, &delivery).await;
            scheduled.elapsed()
        });
    }
    let mut latencies = Vec::with_capacity(count);
    while let Some(done) = requests.join_next().await {
        latencies.push(done.expect("a request"));
    }
    let elapsed = start.elapsed();
    latencies.sort();
    println!(
        "fixed rate: {count} deliveries at {rate}/s open loop (achieved {:.0}/s): ack p50 {:.2?} · p99 {:.2?} · \
         p99.9 {:.2?} · max {:.2?}",
        count as f64 / elapsed.as_secs_f64(),
        at(&latencies, 50.0),
        at(&latencies, 99.0),
        at(&latencies, 99.9),
        latencies[latencies.len() - 1]
    );
    report_cpu("fixed rate", meter, before, meter.read(), count);
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GHR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let load_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name(LOAD_THREADS)
        .enable_all()
        .build()
        .expect("load runtime");
    // `ghr serve`'s runtime: one worker per core.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .expect("server runtime");
    let n = scale();
    let backend = Backend::from_env();
    let emulator = load_runtime
        .block_on(GithubEmulator::start(EmulatorConfig { rate_limit_per_hour: u32::MAX, ..EmulatorConfig::default() }))
        .expect("emulator");
    // The stores are opened on the server's runtime: their connections are driven by its threads.
    let stores = server_runtime.block_on(Stores::open(backend, "ghr.db"));
    let servers: Vec<RunningServer> = stores
        .replicas
        .iter()
        .map(|store| {
            server_runtime.block_on(start_server(emulator.base_url().to_owned(), emulator.app_id(), store.clone()))
        })
        .collect();
    let urls: Vec<String> = servers.iter().map(|server| format!("http://{}/webhook", server.addr)).collect();
    println!("machine: {cores} cores; load average {}", support::load_average());
    let meter = Meter { postgres: backend.is_postgres().then(PgScope::of_test_server) };
    if let Some(scope) = meter.postgres {
        println!("store: {}; {} server(s), deliveries sent to each in turn", stores.description, urls.len());
        println!("{}", scope.describe());
    }

    let warmup = deliveries(1_000_000, 2_000);
    let saturated = deliveries(2_000_000, 20_000 * n);
    let paced = deliveries(3_000_000, (fixed_rate_per_second() as usize) * 10 * n);
    floor(&saturated[..2_000]);
    load_runtime.block_on(async {
        let client = reqwest::Client::new();
        saturation(&client, &urls, meter, warmup).await;
        saturation(&client, &urls, meter, saturated).await;
        fixed_rate(&client, &urls, meter, paced).await;
    });
    for server in servers {
        server_runtime.block_on(server.shutdown());
    }
    if backend.is_postgres() {
        println!("load average at the end: {}", support::load_average());
    }
    let _ = load_runtime.block_on(emulator.shutdown());
}
