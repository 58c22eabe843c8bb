//! What one job costs on DynamoDB: read and write request units per job lifecycle (queued → runner →
//! completed), step by step, priced at the on-demand list prices, and admission decisions per second on the
//! emulator.
//!
//! Drives the `Store` calls the engine makes for one job (see `BENCHMARKS.md`, section DynamoDB) through a
//! store whose client carries a [`CapacityMeter`]; the units are the meter's model of DynamoDB's published
//! rules, not the emulator's answers. Needs the moto emulator: `eval "$(scripts/moto.sh start)"`, then
//! `cargo bench -p ghr-store-dynamodb --bench lifecycle`.
//!
//! Knobs: `GHR_BENCH_JOBS` (lifecycles per run, default 60), `GHR_BENCH_OPEN` (comma-separated numbers of jobs
//! of one tenant open at once, default `1,10`), `GHR_BENCH_DECISIONS` (reservations per admission run, default
//! 48).

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use ghr_core::Timestamp;
use ghr_core::ids::{DeliveryId, GithubRunnerId, InstallationId, InstanceId, JobId};
use ghr_core::intake::{JobIntake, JobIntakeChange, RunnerBinding};
use ghr_core::job::{JobEvent, JobObservation, JobStatus, event_kind};
use ghr_core::planner::fleet::StaleQuery;
use ghr_core::ports::{DeliveryRecord, DemandQuery, LeaseRequest, RECONCILER_LEASE, Reservation, RunnerUpdate, Store};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::TenantStatus;
use ghr_store::conformance::{new_tenant, queued, reserve_request};
use ghr_store_dynamodb::capacity::{CapacityMeter, OpTotals, price};
use ghr_store_dynamodb::testing::{ENDPOINT_ENV, TEST_REGION, unique_prefix};
use ghr_store_dynamodb::{DynamoOptions, DynamoStore, Tables, init_tables};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIER: &str = "small";
const REPOSITORY: &str = "acme-corp/payments-service";
/// The deployment-wide cap the dispatcher passes (a cap makes admission also move the `runners#live` item).
const GLOBAL_CAP: u32 = 100_000;
/// Stale-job page the fleet reconciler reads per pass (`STALE_JOBS_PAGE`).
const STALE_PAGE: u32 = 200;
/// The reconciler's default interval (`reconciler.interval_seconds`).
const RECONCILE_EVERY: Duration = Duration::from_secs(30);
/// Seconds in a 30-day month, for per-month figures.
const MONTH_SECS: f64 = 30.0 * 24.0 * 3600.0;

fn knob(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

fn number(name: &str, default: usize) -> usize {
    let text = knob(name, &default.to_string());
    text.parse().unwrap_or_else(|_| panic!("{name}={text:?} is not a number"))
}

/// A store on a fresh prefix whose client carries `meter`.
async fn metered_store(endpoint: &str) -> (DynamoStore, CapacityMeter) {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "ghr-bench"))
        .endpoint_url(endpoint)
        .load()
        .await;
    let prefix = unique_prefix();
    let tables = Tables::new(&prefix);
    let meter = CapacityMeter::new(&tables).asking_reported_capacity();
    let client = meter.client(&config);
    init_tables(&client, &tables).await.unwrap_or_else(|e| panic!("creating the tables of {prefix}: {e}"));
    (DynamoStore::with_client(client, &prefix, DynamoOptions::default()), meter)
}

/// An error and its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The value, or a panic naming the call and the error's whole chain of causes.
fn ok<T, E: std::error::Error>(result: Result<T, E>, call: &str) -> T {
    result.unwrap_or_else(|e| panic!("{call} failed: {}", chain(&e)))
}

/// Cost per named step, summed over every job.
#[derive(Default)]
struct Steps {
    order: Vec<&'static str>,
    totals: BTreeMap<&'static str, OpTotals>,
    by_operation: BTreeMap<&'static str, OpTotals>,
    /// Requests of each operation per step.
    requests: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
}

impl Steps {
    /// Run `call` alone and charge what the meter saw to `step`.
    async fn run<T>(&mut self, meter: &CapacityMeter, step: &'static str, call: impl Future<Output = T>) -> T {
        meter.reset();
        let value = call.await;
        if !self.order.contains(&step) {
            self.order.push(step);
        }
        add(self.totals.entry(step).or_default(), &meter.total());
        for (op, totals) in meter.by_operation() {
            add(self.by_operation.entry(op).or_default(), &totals);
            *self.requests.entry(step).or_default().entry(op).or_default() += totals.calls;
        }
        value
    }
}

fn add(sum: &mut OpTotals, more: &OpTotals) {
    sum.calls += more.calls;
    sum.refused += more.refused;
    sum.cost += more.cost;
    sum.reported_calls += more.reported_calls;
    sum.reported_units += more.reported_units;
}

fn delivery(id: String, action: &str, installation: InstallationId, at: Timestamp) -> DeliveryRecord {
    DeliveryRecord {
        delivery_id: DeliveryId::new(id),
        event: "workflow_job".to_owned(),
        action: Some(action.to_owned()),
        installation_id: Some(installation),
        received_at: at,
    }
}

fn intake(observation: JobObservation, action: &str, runner: Option<RunnerBinding>) -> Vec<JobIntake> {
    let id = format!("{}-{action}", observation.job_id);
    let record = delivery(id, action, observation.installation_id, observation.observed_at);
    vec![JobIntake { delivery: record, job: Some(JobIntakeChange { observation, initial_wait_reason: None, runner }) }]
}

fn event(job: JobId, at: Timestamp, kind: &str, detail: String) -> JobEvent {
    JobEvent { job_id: job, at, kind: kind.to_owned(), detail }
}

/// `jobs` lifecycles of one tenant, `open` of them in flight at once, the way the engine drives the store.
async fn lifecycles(endpoint: &str, jobs: usize, open: usize) -> (Steps, OpTotals, usize) {
    let (store, meter) = metered_store(endpoint).await;
    let tenant = InstallationId(4_200);
    let new = new_tenant(tenant.0, "acme-corp", TenantStatus::Active, TIER, (open as u32).max(1) * 2);
    let now = chrono::Utc::now();
    ok(store.tenant_create(new, now).await, "tenant_create");
    let mut steps = Steps::default();
    let mut next_job = 1u64;
    let mut reconcile = OpTotals::default();
    let mut passes = 0;
    while (next_job as usize) <= jobs {
        let wave: Vec<u64> = (next_job..next_job + open as u64).filter(|j| *j as usize <= jobs).collect();
        next_job += wave.len() as u64;
        let mut observations = Vec::new();
        for &job in &wave {
            let mut seen = queued(job, tenant.0, REPOSITORY, Some(TIER), 0);
            seen.queued_at = Some(chrono::Utc::now());
            seen.observed_at = chrono::Utc::now();
            let call = store.intake_jobs(intake(seen.clone(), "queued", None));
            let results = steps.run(&meter, "webhook `queued`: intake_jobs (delivery + job)", call).await;
            results.into_iter().for_each(|r| drop(ok(r, "intake_jobs queued")));
            observations.push(seen);
        }
        let mut runners = Vec::new();
        for seen in &observations {
            let query = DemandQuery { tenants: Some(vec![tenant]), global_cap: Some(GLOBAL_CAP) };
            let step = "dispatch pass: demand_snapshot (tenant-scoped)";
            ok(steps.run(&meter, step, store.demand_snapshot(query)).await, "demand_snapshot");
            let mut request = reserve_request(tenant.0, TIER, 0);
            request.intended_job = Some(seen.job_id);
            request.global_cap = Some(GLOBAL_CAP);
            request.now = chrono::Utc::now();
            let step = "dispatch pass: runner_reserve (admitted)";
            let runner = match ok(steps.run(&meter, step, store.runner_reserve(request)).await, "runner_reserve") {
                Reservation::Reserved(runner) => *runner,
                other => panic!("job {}: expected a reservation, got {other:?}", seen.job_id),
            };
            let requested =
                event(seen.job_id, chrono::Utc::now(), event_kind::RUNNER_REQUESTED, runner.name.to_string());
            let step = "dispatch pass: job_event_append runner_requested";
            ok(steps.run(&meter, step, store.job_event_append(requested)).await, "job_event_append");
            runners.push((seen.clone(), runner.name.clone()));
        }
        for (n, (seen, name)) in runners.iter().enumerate() {
            let launched = RunnerUpdate {
                instance_id: Some(InstanceId::new(format!("i-0{:016x}", seen.job_id.0))),
                github_runner_id: Some(GithubRunnerId(90_000 + seen.job_id.0)),
                ..RunnerUpdate::state(RunnerState::Launching, chrono::Utc::now())
            };
            let step = "launch: runner_update launching (instance, GitHub id)";
            ok(steps.run(&meter, step, store.runner_update(name, launched)).await, "runner_update launching");
            let note = event(seen.job_id, chrono::Utc::now(), event_kind::RUNNER_LAUNCHED, name.to_string());
            let step = "launch: job_event_append runner_launched";
            ok(steps.run(&meter, step, store.job_event_append(note)).await, "job_event_append");
            let idle = RunnerUpdate::state(RunnerState::Idle, chrono::Utc::now());
            let step = "fleet reconciler: runner_update registered (idle)";
            ok(steps.run(&meter, step, store.runner_update(name, idle)).await, "runner_update idle");
            if n == runners.len() / 2 {
                add(&mut reconcile, &reconciler_pass(&store, &meter).await);
                for (op, totals) in meter.by_operation() {
                    *steps.requests.entry(RECONCILE).or_default().entry(op).or_default() += totals.calls;
                }
                passes += 1;
            }
        }
        for (seen, name) in &runners {
            let mut running = seen.clone();
            running.status = JobStatus::InProgress;
            running.runner_name = Some(name.clone());
            running.started_at = Some(chrono::Utc::now());
            running.observed_at = chrono::Utc::now();
            let binding = RunnerBinding::for_status(name.clone(), JobStatus::InProgress);
            let call = store.intake_jobs(intake(running.clone(), "in_progress", binding));
            let step = "webhook `in_progress`: intake_jobs (binds the runner, busy)";
            steps.run(&meter, step, call).await.into_iter().for_each(|r| drop(ok(r, "intake in_progress")));
        }
        for (seen, name) in &runners {
            let mut done = seen.clone();
            done.status = JobStatus::Completed;
            done.conclusion = Some("success".to_owned());
            done.runner_name = Some(name.clone());
            done.completed_at = Some(chrono::Utc::now());
            done.observed_at = chrono::Utc::now();
            let binding = RunnerBinding::for_status(name.clone(), JobStatus::Completed);
            let call = store.intake_jobs(intake(done, "completed", binding));
            let step = "webhook `completed`: intake_jobs (runner finished)";
            steps.run(&meter, step, call).await.into_iter().for_each(|r| drop(ok(r, "intake completed")));
        }
        for (_, name) in &runners {
            let step = "teardown: runner_get + runner_update terminated (releases the slot)";
            steps
                .run(&meter, step, async {
                    ok(store.runner_get(name).await, "runner_get");
                    let gone = RunnerUpdate::state(RunnerState::Terminated, chrono::Utc::now());
                    ok(store.runner_update(name, gone).await, "runner_update terminated");
                })
                .await;
        }
    }
    let waited = wait_reasons(&store, &meter, tenant, jobs).await;
    steps.order.push(WAITED);
    steps.totals.insert(WAITED, waited);
    (steps, reconcile, passes)
}

const RECONCILE: &str = "reconciler pass";
const WAITED: &str = "only if the job waited: job_set_wait_reasons + job_set_wait_reason(None)";

/// A job that waits once (tenant at its limit) has its reason written by a pass and cleared at admission.
async fn wait_reasons(store: &DynamoStore, meter: &CapacityMeter, tenant: InstallationId, jobs: usize) -> OpTotals {
    let mut sum = OpTotals::default();
    for job in 1..=jobs as u64 {
        let mut seen = queued(100_000 + job, tenant.0, REPOSITORY, Some(TIER), 0);
        seen.observed_at = chrono::Utc::now();
        seen.queued_at = Some(seen.observed_at);
        store.intake_jobs(intake(seen.clone(), "queued", None)).await.into_iter().for_each(|r| drop(ok(r, "intake")));
        meter.reset();
        let reasons = vec![(seen.job_id, Some(Reason::TenantAtLimit))];
        ok(store.job_set_wait_reasons(reasons, chrono::Utc::now()).await, "job_set_wait_reasons");
        ok(store.job_set_wait_reason(seen.job_id, None, chrono::Utc::now()).await, "job_set_wait_reason");
        add(&mut sum, &meter.total());
    }
    sum
}

/// One reconciler pass as the leader runs it: lease renewal, counter repair, the fleet snapshot.
async fn reconciler_pass(store: &DynamoStore, meter: &CapacityMeter) -> OpTotals {
    meter.reset();
    let now = chrono::Utc::now();
    let lease =
        LeaseRequest { name: RECONCILER_LEASE.to_owned(), holder: "bench".to_owned(), ttl: RECONCILE_EVERY * 3, now };
    ok(store.lease_acquire(lease).await, "lease_acquire");
    ok(store.repair_counts(now).await, "repair_counts");
    let stale = StaleQuery {
        before: now - chrono::Duration::minutes(10),
        queued_after: None,
        in_progress_after: None,
        limit: STALE_PAGE,
    };
    ok(store.fleet_records(stale).await, "fleet_records");
    meter.total()
}

fn per(total: &OpTotals, jobs: usize) -> (f64, f64, f64) {
    let jobs = jobs as f64;
    (total.rru() / jobs, total.wru() as f64 / jobs, total.calls as f64 / jobs)
}

fn report_lifecycles(jobs: usize, open: usize, steps: &Steps, reconcile: &OpTotals, passes: usize) {
    println!("\n## {jobs} lifecycles, {open} job(s) of the tenant open at once\n");
    println!("| step | requests/job | RRU/job | WRU/job | requests |");
    println!("|---|---:|---:|---:|---|");
    let mut lifecycle = OpTotals::default();
    for step in &steps.order {
        let totals = &steps.totals[step];
        let (rru, wru, calls) = per(totals, jobs);
        let ops: Vec<String> = steps
            .requests
            .get(step)
            .into_iter()
            .flatten()
            .map(|(op, n)| format!("{op} {:.1}", *n as f64 / jobs as f64))
            .collect();
        println!("| {step} | {calls:.1} | {rru:.1} | {wru:.1} | {} |", ops.join(", "));
        if *step != WAITED {
            add(&mut lifecycle, totals);
        }
    }
    let (rru, wru, calls) = per(&lifecycle, jobs);
    println!("| **lifecycle (admitted at once)** | **{calls:.1}** | **{rru:.1}** | **{wru:.1}** | |");
    let usd = lifecycle.usd() / jobs as f64 * 1e6;
    let waited = &steps.totals[WAITED];
    let usd_waited = (lifecycle.usd() + waited.usd()) / jobs as f64 * 1e6;
    println!(
        "\nOn-demand, us-east-1 list prices (${}/M RRU, ${}/M WRU):",
        price::USD_PER_MILLION_RRU,
        price::USD_PER_MILLION_WRU
    );
    println!("- **${usd:.2} per million jobs** (${usd_waited:.2} if every job also waited once)");
    if passes > 0 {
        let (rru, wru, calls) = per(reconcile, passes);
        let pass_usd = reconcile.usd() / passes as f64;
        let month = MONTH_SECS / RECONCILE_EVERY.as_secs_f64() * pass_usd;
        let ops: Vec<String> = steps
            .requests
            .get(RECONCILE)
            .into_iter()
            .flatten()
            .map(|(op, n)| format!("{op} {:.0}", *n as f64 / passes as f64))
            .collect();
        println!(
            "- reconciler pass ({open} live runner(s)): {calls:.0} requests ({}), {rru:.1} RRU, {wru:.1} WRU; every {} s that is ${month:.2}/month, whatever the job volume",
            ops.join(", "),
            RECONCILE_EVERY.as_secs()
        );
    }
    println!("\nBy operation, the model against what the emulator reported (moto answers constants):\n");
    println!("| operation | requests | refused | model RRU | model WRU (table + index) | reported units (requests) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (op, t) in &steps.by_operation {
        println!(
            "| {op} | {} | {} | {:.1} | {} ({} + {}) | {:.1} ({}) |",
            t.calls,
            t.refused,
            t.rru(),
            t.wru(),
            t.cost.write_units,
            t.cost.index_write_units,
            t.reported_units,
            t.reported_calls
        );
    }
    let unmodelled: u64 = steps.by_operation.values().map(|t| t.cost.unmodelled).sum();
    println!("\nUpdate expressions the model could not apply: {unmodelled}");
}

/// `decisions` reservations by `callers` concurrent tasks; `refused` runs them against a tenant at its limit.
/// What an admission run measured.
struct AdmissionRun {
    per_second: f64,
    totals: OpTotals,
    decisions: usize,
    /// Calls that failed (contention retries exhausted, emulator errors), and the first one's causes.
    errors: usize,
    first_error: Option<String>,
}

async fn admissions(endpoint: &str, callers: usize, decisions: usize, refused: bool, cap: Option<u32>) -> AdmissionRun {
    let (store, meter) = metered_store(endpoint).await;
    let store = Arc::new(store);
    let per_caller = decisions.div_ceil(callers);
    let now = chrono::Utc::now();
    let mut tenants = Vec::new();
    for caller in 0..callers {
        let id = 7_000 + caller as u64;
        let limit = if refused { 1 } else { (per_caller * 2) as u32 };
        ok(
            store.tenant_create(new_tenant(id, &format!("org-{id}"), TenantStatus::Active, TIER, limit), now).await,
            "tenant",
        );
        let jobs = if refused { 2 } else { per_caller };
        for j in 0..jobs as u64 {
            let mut seen = queued(id * 10_000 + j, id, REPOSITORY, Some(TIER), 0);
            seen.observed_at = chrono::Utc::now();
            seen.queued_at = Some(seen.observed_at);
            store.intake_jobs(intake(seen, "queued", None)).await.into_iter().for_each(|r| drop(ok(r, "intake")));
        }
        if refused {
            let mut request = reserve_request(id, TIER, 0);
            request.now = chrono::Utc::now();
            ok(store.runner_reserve(request).await, "filling the tenant's one slot");
        }
        tenants.push(id);
    }
    meter.reset();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in tenants {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..per_caller {
                let mut request = reserve_request(id, TIER, 0);
                request.global_cap = cap;
                request.now = chrono::Utc::now();
                outcomes.push(store.runner_reserve(request).await.map_err(|e| chain(&e)));
            }
            outcomes
        }));
    }
    let (mut made, mut errors, mut first_error) = (0, 0, None);
    for task in tasks {
        for outcome in task.await.expect("a caller panicked") {
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(error) => {
                    errors += 1;
                    first_error.get_or_insert(error);
                    continue;
                }
            };
            let expected = if refused {
                matches!(outcome, Reservation::Refused(Reason::TenantAtLimit))
            } else {
                matches!(outcome, Reservation::Reserved(_))
            };
            assert!(expected, "unexpected outcome {outcome:?} (refused run: {refused})");
            made += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    AdmissionRun { per_second: made as f64 / elapsed, totals: meter.total(), decisions: made, errors, first_error }
}

async fn run(endpoint: String) {
    let jobs = number("GHR_BENCH_JOBS", 60);
    let decisions = number("GHR_BENCH_DECISIONS", 48);
    let opens: Vec<usize> = knob("GHR_BENCH_OPEN", "1,10")
        .split(',')
        .map(|v| v.trim().parse().unwrap_or_else(|_| panic!("GHR_BENCH_OPEN: {v:?} is not a number")))
        .collect();
    println!("# DynamoDB capacity per job lifecycle (model of the on-demand rules; emulator at {endpoint})");
    for open in opens {
        let (steps, reconcile, passes) = lifecycles(&endpoint, jobs, open.max(1)).await;
        report_lifecycles(jobs, open.max(1), &steps, &reconcile, passes);
    }
    println!("\n## Admission decisions on the emulator ({decisions} runner_reserve calls per run)\n");
    println!(
        "| outcome | global cap | callers | decisions/s | ms per decision per caller | requests/decision | RRU/decision | WRU/decision | failed calls |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut errors = Vec::new();
    for (refused, cap) in [(false, None), (false, Some(GLOBAL_CAP)), (true, None)] {
        for callers in [1, 8] {
            let run = admissions(&endpoint, callers, decisions, refused, cap).await;
            let (rru, wru, calls) = per(&run.totals, run.decisions.max(1));
            let latency = callers as f64 / run.per_second * 1000.0;
            let outcome = if refused { "refused (tenant at its limit)" } else { "admitted" };
            let cap = if cap.is_some() { "yes (`runners#live`)" } else { "no" };
            println!(
                "| {outcome} | {cap} | {callers} | {:.1} | {latency:.0} | {calls:.1} | {rru:.1} | {wru:.1} | {} |",
                run.per_second, run.errors
            );
            errors.extend(run.first_error.map(|e| format!("{outcome}, cap {cap}, {callers} callers: {e}")));
        }
    }
    for error in errors {
        println!("\nFirst failed call of a run: {error}");
    }
    println!("\nModel for DynamoDB itself: decisions/s ≈ callers / (requests per decision × per-request latency).");
}

fn main() {
    let Some(endpoint) = std::env::var(ENDPOINT_ENV).ok().filter(|v| !v.is_empty()) else {
        eprintln!(
            "{ENDPOINT_ENV} is not set: this bench measures the DynamoDB store on the moto emulator. Start it with \
             `eval \"$(scripts/moto.sh start)\"` (it exports {ENDPOINT_ENV}), then run \
             `cargo bench -p ghr-store-dynamodb --bench lifecycle` again."
        );
        std::process::exit(2);
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    runtime.block_on(run(endpoint));
}
