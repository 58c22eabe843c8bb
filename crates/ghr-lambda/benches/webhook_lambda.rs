//! Cold start and CPU per delivery of the webhook function (`GHR_FUNCTION=webhook`), measured on the release
//! `bootstrap` that `scripts/lambda-build.sh` packages, driven through the Lambda Runtime API as Lambda drives it.
//!
//! The bench creates the store's DynamoDB tables and the function's SQS queues on the moto emulator
//! (`GHR_TEST_MOTO_ENDPOINT`, or one it starts with `scripts/moto.sh`), registers a tenant through the function
//! itself (a signed `installation.created` delivery), then measures:
//!
//! - **cold start**: from spawning a fresh process (its one event already waiting) to the answer of that event, a
//!   signed `workflow_job.queued` delivery as an API Gateway HTTP API (payload format 2.0) event, over
//!   `GHR_BENCH_COLD_RUNS` processes; split into init (spawn → first `invocation/next`) and the first
//!   invocation; p50 and p95;
//! - **per warm delivery**: one process answering `GHR_BENCH_DELIVERIES` queued deliveries one after another
//!   (after `GHR_BENCH_WARMUP` unmeasured ones): the process's user + system CPU time (`/proc/<pid>/stat`) over
//!   them ÷ their number, and the wall time per delivery (moto's latency dominates it: the function makes its
//!   DynamoDB and SQS calls to a Python emulator on the same two cores).
//!
//! Every queued delivery must come back `202 applied` and leave one wake-up message on the tier's queue; the bench
//! fails otherwise. Knobs: `GHR_LAMBDA_BIN` (the binary, default `target/lambda/ghr-lambda/bootstrap`),
//! `GHR_BENCH_COLD_RUNS` (20), `GHR_BENCH_DELIVERIES` (300), `GHR_BENCH_WARMUP` (20).
//!
//! `cargo bench -p ghr-lambda --bench webhook_lambda --profile dev`: the harness itself need not be optimised
//! (it measures another process), and the dev profile reuses the debug build of the AWS SDK.

mod support;

use chrono::Utc;
use ghr_core::event::Account;
use ghr_core::ids::{AccountId, InstallationId, JobId, OrgName};
use ghr_core::job::JobStatus;
use ghr_core::tenant::OrgType;
use ghr_lambda::env::{
    ENV_CONFIG, ENV_FUNCTION, ENV_FUNCTION_TIMEOUT, ENV_TEARDOWN_QUEUE, ENV_TENANT_EVENTS_QUEUE, ENV_TIER_QUEUES,
};
use ghr_testkit::webhook::{
    Repository, SignedDelivery, WorkflowJobPayload, default_sender, installation_payload, workflow_job_payload,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use support::aws::{self, Moto, Queues};
use support::process::{self, FunctionProcess};
use support::runtime_api::{OutcomeKind, RuntimeApi};

const TIER: &str = "small";
const LABELS: [&str; 4] = ["self-hosted", "linux", "x64", "small"];
const WEBHOOK_PATH: &str = "/webhook";
const WEBHOOK_SECRET: &str = "bench-webhook-secret";
const INSTALLATION: InstallationId = InstallationId(42_000_001);
const APP_ID: u64 = 1_234_567;
/// How long the bench waits for one answer before it calls the function stuck.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// The function's timeout as its environment states it.
const FUNCTION_TIMEOUT_SECONDS: u32 = 60;

fn knob(name: &str, default: usize) -> usize {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        None => default,
        Some(text) => text.parse().unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    }
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a Tokio runtime");
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("webhook_lambda bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The account and the function's environment, set up once.
struct Bench {
    binary: PathBuf,
    moto: Moto,
    sdk: aws_config::SdkConfig,
    queues: Queues,
    env: Vec<(String, String)>,
    log: PathBuf,
    owner: Account,
    next_job: u64,
    processes: u32,
    _scratch: tempfile::TempDir,
}

async fn run() -> Result<(), String> {
    let cold_runs = knob("GHR_BENCH_COLD_RUNS", 20).max(1);
    let deliveries = knob("GHR_BENCH_DELIVERIES", 300).max(1);
    let warmup = knob("GHR_BENCH_WARMUP", 20);
    let mut bench = Bench::set_up().await?;
    println!("binary: {} ({})", bench.binary.display(), sizes(&bench.binary));
    println!("emulator: {}; function log: {}", bench.moto.endpoint, bench.log.display());

    bench.register_tenant().await?;
    let tier_queue = bench.queues.tiers[0].1.clone();
    // The installation may have queued a wake-up of its own: count from here.
    let before = aws::messages_on(&bench.sdk, &tier_queue).await?;

    let mut cold = Vec::with_capacity(cold_runs);
    for _ in 0..cold_runs {
        cold.push(bench.cold_start().await?);
    }
    let warm = bench.warm(warmup, deliveries).await?;

    let expected = (cold_runs + warmup + deliveries) as u64;
    let sent = aws::messages_on(&bench.sdk, &tier_queue).await?.saturating_sub(before);
    let sample = aws::peek(&bench.sdk, &tier_queue).await?.unwrap_or_default();
    println!("wake-ups on {TIER}-builds: {sent} for {expected} queued deliveries; one body: {sample}");
    if sent != expected {
        return Err(format!(
            "{expected} queued deliveries were answered but {sent} wake-up messages reached the {TIER} queue: the \
             function did not send what intake asked (see {})",
            bench.log.display()
        ));
    }
    report(&cold, &warm);
    Ok(())
}

impl Bench {
    async fn set_up() -> Result<Bench, String> {
        let binary = process::binary()?;
        let moto = Moto::find_or_start()?;
        let sdk = aws::sdk_config(&moto.endpoint).await;
        let prefix = ghr_store_dynamodb::testing::unique_prefix();
        aws::create_tables(&sdk, &prefix).await?;
        let queues = aws::create_queues(&sdk, &prefix, &[TIER]).await?;
        let scratch = tempfile::tempdir().map_err(|e| format!("a scratch directory: {e}"))?;
        let log = scratch.path().join("function.log");
        let env = function_env(&moto.endpoint, &prefix, &queues);
        let owner =
            Account { login: OrgName::from("bench-org"), id: AccountId(91_000_001), kind: OrgType::Organization };
        Ok(Bench {
            binary,
            moto,
            sdk,
            queues,
            env,
            log,
            owner,
            next_job: 7_000_000_001,
            processes: 0,
            _scratch: scratch,
        })
    }

    /// A process on its own Runtime API stand-in.
    async fn spawn(&mut self) -> Result<(RuntimeApi, FunctionProcess), String> {
        let api = RuntimeApi::start().await.map_err(|e| format!("starting the Runtime API stand-in: {e}"))?;
        let (process, _) = self.start_process(&api)?;
        Ok((api, process))
    }

    /// Start a function process on `api`; returns it and the instant just before the spawn.
    fn start_process(&mut self, api: &RuntimeApi) -> Result<(FunctionProcess, Instant), String> {
        self.processes += 1;
        let mut env = self.env.clone();
        env.push(("AWS_LAMBDA_RUNTIME_API".into(), api.address()));
        env.push(("AWS_LAMBDA_LOG_STREAM_NAME".into(), format!("2026/12/02/[$LATEST]bench{:04}", self.processes)));
        let spawned = Instant::now();
        let process = FunctionProcess::spawn(&self.binary, &env, &self.log)?;
        Ok((process, spawned))
    }

    /// Send one event and wait for its answer: the API Gateway response and when it arrived.
    async fn answer(
        &self,
        api: &mut RuntimeApi,
        process: &mut FunctionProcess,
        event: Vec<u8>,
    ) -> Result<(Value, Instant), String> {
        let id = api.invoke(event);
        let Some(outcome) = api.outcome(ANSWER_TIMEOUT).await else {
            let status = process.exited().map_or("still running".to_owned(), |s| format!("exited: {s}"));
            return Err(format!("no answer to {id} within {ANSWER_TIMEOUT:?} (process {status}); {}", self.log_tail()));
        };
        match outcome.kind {
            OutcomeKind::Response if outcome.id.as_deref() == Some(id.as_str()) => Ok((outcome.body, outcome.at)),
            OutcomeKind::Response => Err(format!("answer to {:?} while waiting for {id}", outcome.id)),
            OutcomeKind::Error => Err(format!("invocation {id} failed: {}; {}", outcome.body, self.log_tail())),
            OutcomeKind::InitError => Err(format!("the function failed its init: {}", outcome.body)),
        }
    }

    async fn register_tenant(&mut self) -> Result<(), String> {
        let payload = installation_payload("created", INSTALLATION, &self.owner, APP_ID, None, &default_sender());
        let delivery = SignedDelivery::new("installation", &payload, WEBHOOK_SECRET).with_target_id(APP_ID);
        let (mut api, mut process) = self.spawn().await?;
        let (response, _) = self.answer(&mut api, &mut process, api_gateway_event(&delivery)).await?;
        expect_applied(&response, "installation.created")
    }

    fn queued_delivery(&mut self) -> Vec<u8> {
        let job = JobId(self.next_job);
        self.next_job += 1;
        let now = Utc::now();
        let payload = WorkflowJobPayload {
            id: job,
            run_id: job.0 + 1,
            name: "build".into(),
            workflow_name: "CI".into(),
            head_branch: "main".into(),
            status: JobStatus::Queued,
            conclusion: None,
            labels: LABELS.iter().map(|l| (*l).to_owned()).collect(),
            runner_id: None,
            runner_name: None,
            runner_group_id: None,
            runner_group_name: None,
            created_at: now,
            started_at: None,
            completed_at: None,
        };
        let repository = Repository { id: 55_000_001, name: "payments-service".into(), owner: self.owner.clone() };
        let body = workflow_job_payload("queued", &payload, &repository, INSTALLATION, &default_sender());
        api_gateway_event(&SignedDelivery::new("workflow_job", &body, WEBHOOK_SECRET).with_target_id(APP_ID))
    }

    /// One cold start: a fresh process whose first event is a queued delivery.
    async fn cold_start(&mut self) -> Result<ColdStart, String> {
        let event = self.queued_delivery();
        let mut api = RuntimeApi::start().await.map_err(|e| format!("starting the Runtime API stand-in: {e}"))?;
        // The event waits before the process exists, as the event that causes a cold start does.
        let id = api.invoke(event);
        let (mut process, spawned) = self.start_process(&api)?;
        let Some(outcome) = api.outcome(ANSWER_TIMEOUT).await else {
            let status = process.exited().map_or("still running".to_owned(), |s| format!("exited: {s}"));
            return Err(format!(
                "cold start: no answer within {ANSWER_TIMEOUT:?} (process {status}); {}",
                self.log_tail()
            ));
        };
        let cpu = process.cpu_of_live_threads()?;
        let rss_kib = process.peak_rss_kib()?;
        if outcome.kind != OutcomeKind::Response || outcome.id.as_deref() != Some(id.as_str()) {
            return Err(format!("cold start: {:?} {}; {}", outcome.kind, outcome.body, self.log_tail()));
        }
        expect_applied(&outcome.body, "workflow_job.queued")?;
        let init = api.first_poll().map_or(Duration::ZERO, |at| at - spawned);
        Ok(ColdStart { total: outcome.at - spawned, init, cpu, rss_kib })
    }

    /// One process, `warmup` unmeasured deliveries, then `count` measured ones.
    async fn warm(&mut self, warmup: usize, count: usize) -> Result<Warm, String> {
        let (mut api, mut process) = self.spawn().await?;
        for _ in 0..warmup {
            let event = self.queued_delivery();
            let (response, _) = self.answer(&mut api, &mut process, event).await?;
            expect_applied(&response, "workflow_job.queued")?;
        }
        let cpu_before = process.cpu()?;
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(count);
        for _ in 0..count {
            let event = self.queued_delivery();
            let sent = Instant::now();
            let (response, answered) = self.answer(&mut api, &mut process, event).await?;
            latencies.push(answered - sent);
            expect_applied(&response, "workflow_job.queued")?;
        }
        let wall = started.elapsed();
        let cpu = process.cpu()? - cpu_before;
        let rss_kib = process.peak_rss_kib()?;
        Ok(Warm { count, cpu, wall, latencies, rss_kib })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!("last lines of the function's log:\n{}", lines[lines.len().saturating_sub(15)..].join("\n"))
    }
}

/// The function's environment: what the Terraform module sets, plus what Lambda itself sets.
fn function_env(endpoint: &str, prefix: &str, queues: &Queues) -> Vec<(String, String)> {
    let config = json!({
        "environment": "bench",
        "store": { "url": format!("dynamodb://{prefix}?region={}&endpoint={endpoint}", aws::REGION) },
        "tenants": { "default_tier": TIER },
        "tiers": [{
            "name": TIER, "labels": LABELS, "instance_types": ["t3.medium"], "max_runners": 2,
            "runner_os": "linux", "runner_architecture": "x64",
        }],
        "provider": { "kind": "ec2", "ec2": {
            "region": aws::REGION, "ami_id": "ami-0123456789abcdef0",
            "subnets": ["subnet-0123456789abcdef0"], "security_groups": ["sg-0123456789abcdef0"],
        }},
        "github": { "app_id": APP_ID },
    });
    let tier_queues: serde_json::Map<String, Value> =
        queues.tiers.iter().map(|(tier, url)| (tier.clone(), Value::String(url.clone()))).collect();
    let pairs = [
        (ENV_FUNCTION, "webhook".to_owned()),
        (ENV_CONFIG, config.to_string()),
        (ENV_TIER_QUEUES, Value::Object(tier_queues).to_string()),
        (ENV_TEARDOWN_QUEUE, queues.teardown.clone()),
        (ENV_TENANT_EVENTS_QUEUE, queues.tenant_events.clone()),
        (ghr_config::ENV_WEBHOOK_SECRET, WEBHOOK_SECRET.to_owned()),
        (ENV_FUNCTION_TIMEOUT, FUNCTION_TIMEOUT_SECONDS.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", "ghr-bench-webhook".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", process::MEMORY_MB.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ghr-bench-webhook".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", aws::REGION.to_owned()),
        ("AWS_DEFAULT_REGION", aws::REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", aws::ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", aws::SECRET_KEY.to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("TZ", ":UTC".to_owned()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A delivery as API Gateway's HTTP API hands it to the function (payload format 2.0).
fn api_gateway_event(delivery: &SignedDelivery) -> Vec<u8> {
    let mut headers = serde_json::Map::new();
    for (name, value) in delivery.headers() {
        headers.insert(name.to_owned(), Value::String(value));
    }
    headers.insert("content-length".into(), Value::String(delivery.body.len().to_string()));
    headers.insert("host".into(), Value::String("bench.execute-api.us-east-1.amazonaws.com".into()));
    let now = Utc::now();
    let route = format!("POST {WEBHOOK_PATH}");
    json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": WEBHOOK_PATH,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": { "method": "POST", "path": WEBHOOK_PATH, "protocol": "HTTP/1.1", "sourceIp": "140.82.115.1",
                      "userAgent": ghr_testkit::webhook::HOOKSHOT_USER_AGENT },
            "requestId": delivery.guid,
            "routeKey": route,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": String::from_utf8_lossy(&delivery.body),
        "isBase64Encoded": false,
    })
    .to_string()
    .into_bytes()
}

/// The API Gateway response must be `202 {"status":"applied"}`.
fn expect_applied(response: &Value, what: &str) -> Result<(), String> {
    let status = response["statusCode"].as_u64();
    let body: Value = response["body"].as_str().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    if status == Some(202) && body["status"] == "applied" {
        Ok(())
    } else {
        Err(format!("{what}: expected 202 applied, the function answered {response}"))
    }
}

struct ColdStart {
    total: Duration,
    init: Duration,
    cpu: Duration,
    rss_kib: u64,
}

struct Warm {
    count: usize,
    cpu: Duration,
    wall: Duration,
    latencies: Vec<Duration>,
    rss_kib: u64,
}

/// The `q` quantile (nearest rank) of `values`.
fn quantile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mean(values: &[Duration]) -> Duration {
    values.iter().sum::<Duration>() / u32::try_from(values.len().max(1)).unwrap_or(u32::MAX)
}

fn sizes(binary: &Path) -> String {
    let size = |path: &Path| std::fs::metadata(path).map(|m| format!("{:.1} MiB", m.len() as f64 / 1_048_576.0));
    let zip = binary.with_file_name("bootstrap.zip");
    match (size(binary), size(&zip)) {
        (Ok(binary), Ok(zip)) => format!("{binary}; bootstrap.zip {zip}"),
        (Ok(binary), Err(_)) => format!("{binary}; no bootstrap.zip beside it"),
        (Err(e), _) => format!("unreadable: {e}"),
    }
}

fn report(cold: &[ColdStart], warm: &Warm) {
    let totals: Vec<Duration> = cold.iter().map(|c| c.total).collect();
    let inits: Vec<Duration> = cold.iter().map(|c| c.init).collect();
    let firsts: Vec<Duration> = cold.iter().map(|c| c.total.saturating_sub(c.init)).collect();
    let cpus: Vec<Duration> = cold.iter().map(|c| c.cpu).collect();
    let rss = cold.iter().map(|c| c.rss_kib).max().unwrap_or(0);
    println!();
    println!("| measurement ({} cold starts, {} warm deliveries) | p50 | p95 | mean |", cold.len(), warm.count);
    println!("| --- | ---: | ---: | ---: |");
    let row = |name: &str, values: &[Duration]| {
        println!("| {name} | {} | {} | {} |", ms(quantile(values, 0.5)), ms(quantile(values, 0.95)), ms(mean(values)));
    };
    row("cold start: spawn → first event answered", &totals);
    row("… of which init: spawn → first `invocation/next`", &inits);
    row("… of which the first invocation", &firsts);
    row("CPU of the process (its threads' run time) at its first answer", &cpus);
    row("warm delivery: event handed → answered (wall)", &warm.latencies);
    println!();
    let count = u32::try_from(warm.count).unwrap_or(u32::MAX);
    println!(
        "warm: CPU per delivery {} ({} over {} deliveries); wall per delivery {}",
        ms(warm.cpu / count),
        ms(warm.cpu),
        warm.count,
        ms(warm.wall / count)
    );
    println!(
        "peak RSS: {:.1} MiB after a cold start, {:.1} MiB after the warm run",
        rss as f64 / 1024.0,
        warm.rss_kib as f64 / 1024.0
    );
}
