//! Warm pools end to end on the local stack: pool machines are real `ghr agent` processes that say hello
//! over HTTP, are bound to a tenant's runner by the dispatcher, fetch its JIT config once and run the
//! emulated runner, which takes its job from the GitHub emulator.

mod support;

use ghr::stack::LocalStack;
use ghr_api::agent::{AGENT_PREFIX, Assignment, bearer};
use ghr_core::ids::InstanceId;
use ghr_core::ids::{InstallationId, JobId, MachineId, TierName};
use ghr_core::job::{JobStatus, event_kind};
use ghr_core::pool::{MachineState, PoolFilter, PoolMachine, PoolTransition};
use ghr_core::ports::{
    BindRequest, Instance, LaunchRequest, PoolLaunchRequest, Provider, ProviderError, Reservation, ReserveRequest,
};
use ghr_engine::EngineSettings;
use ghr_testkit::github::JobSpec;
use std::time::Duration;
use support::{
    LiveSampler, Restart, SMALL, SOON, finish, has_event, job, kill_process, labels, observe, options, restart_server,
    set_max_runners, start, timeline, wait,
};

/// The small tier's warm pool in these tests.
const POOL_SIZE: u32 = 2;
/// A pool machine "boots" this long before its agent says hello (a VM's boot, compressed).
const BOOT: &str = "1.5";

/// Built-in tiers, the small one with a warm pool of `size`.
fn pooled_config(size: u32) -> String {
    format!(
        r#"
        [[tiers]]
        name = "small"
        labels = ["self-hosted", "linux", "x64", "small"]
        instance_types = ["t3.small"]
        max_runners = 2
        warm_pool = {{ size = {size} }}

        [[tiers]]
        name = "large"
        labels = ["self-hosted", "linux", "x64", "large"]
        instance_types = ["t3.large"]
        max_runners = 4
        "#
    )
}

/// A stack whose small tier keeps a pool of `size`; pool machines take [`BOOT`] seconds to say hello.
async fn pooled_stack(size: u32) -> LocalStack {
    pooled_stack_tuned(size, |_| {}).await
}

async fn pooled_stack_tuned(size: u32, tune: impl FnOnce(&mut EngineSettings) + Send + 'static) -> LocalStack {
    let mut options = options(tune);
    options.config_toml = pooled_config(size);
    let agent = format!("sleep {BOOT}; exec \"$0\" agent \"$@\"");
    options.agent_command = vec!["/bin/sh".into(), "-c".into(), agent, env!("CARGO_BIN_EXE_ghr").into()];
    start(options).await
}

async fn machines(stack: &LocalStack) -> Vec<PoolMachine> {
    let pool = stack.pool.as_ref().expect("the stack has a pool store");
    pool.pool_list(PoolFilter::default()).await.expect("listing pool machines")
}

async fn ready(stack: &LocalStack) -> usize {
    machines(stack).await.iter().filter(|m| m.state == MachineState::Ready).count()
}

fn small_job(installation: InstallationId, duration: Duration) -> JobSpec {
    JobSpec { duration, ..JobSpec::new(installation, "app", &labels(SMALL)) }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_larger_than_the_pool_is_served_pool_first_then_cold_within_the_limit() {
    let stack = pooled_stack(POOL_SIZE).await;
    wait(&stack, SOON, "the pool is full of ready machines", || async { ready(&stack).await == POOL_SIZE as usize })
        .await;
    let acme = stack.emulator.install_org("acme").await.expect("installing the App");
    set_max_runners(&stack, acme, 3).await;
    let sampler = LiveSampler::start(stack.store.clone(), acme);
    let mut jobs: Vec<JobId> = Vec::new();
    for _ in 0..5 {
        jobs.push(stack.emulator.queue_job(small_job(acme, Duration::from_millis(800))).await.expect("queueing"));
    }
    wait(&stack, Duration::from_secs(40), "every job of the burst completed", || async {
        let mut done = 0;
        for id in &jobs {
            done += usize::from(job(&stack, *id).await.is_some_and(|j| j.status == JobStatus::Completed));
        }
        done == jobs.len()
    })
    .await;
    let peak = sampler.stop().await;
    assert!(peak <= 3, "the tenant's limit of 3 held at binding: peak {peak}");

    let mut pooled = 0;
    let mut cold = 0;
    for id in &jobs {
        let events = timeline(&stack, *id).await;
        if has_event(&events, event_kind::POOL_BOUND, "") {
            pooled += 1;
            for kind in [event_kind::CONFIG_DELIVERED, event_kind::RUNNER_STARTED] {
                assert!(has_event(&events, kind, ""), "job {id}: a pooled start records {kind}: {events:?}");
            }
        } else if has_event(&events, event_kind::RUNNER_LAUNCHED, "") {
            cold += 1;
        }
    }
    assert!(pooled >= POOL_SIZE as usize, "the ready machines served the first jobs: {pooled} pooled, {cold} cold");
    assert!(cold >= 1, "the third concurrent job found the pool empty (refills take {BOOT} s) and started cold");
    assert_eq!(pooled + cold, jobs.len(), "every job had exactly one runner");

    let all = machines(&stack).await;
    let bound: Vec<_> = all.iter().filter(|m| m.runner_name.is_some()).collect();
    let names: std::collections::HashSet<_> = bound.iter().map(|m| m.runner_name.clone()).collect();
    assert_eq!(names.len(), bound.len(), "a machine never serves two runners");
    wait(&stack, SOON, "the pool refilled", || async { ready(&stack).await == POOL_SIZE as usize }).await;
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bound_machine_carries_its_tenant_and_runner_and_no_other() {
    let stack = pooled_stack(POOL_SIZE).await;
    wait(&stack, SOON, "the pool is full", || async { ready(&stack).await == POOL_SIZE as usize }).await;
    let neutral = stack.provider.list().await.expect("listing");
    assert!(
        neutral.iter().all(|i| i.runner_name.is_none() && i.installation_id.is_none()),
        "pool machines start tenant-neutral: {neutral:?}"
    );
    let acme = stack.emulator.install_org("acme").await.expect("installing");
    let globex = stack.emulator.install_org("globex").await.expect("installing");
    let a = stack.emulator.queue_job(small_job(acme, Duration::from_secs(5))).await.expect("queueing");
    let b = stack.emulator.queue_job(small_job(globex, Duration::from_secs(5))).await.expect("queueing");
    wait(&stack, SOON, "both jobs run", || async {
        let in_progress = |j: Option<ghr_core::job::Job>| j.is_some_and(|j| j.status == JobStatus::InProgress);
        in_progress(job(&stack, a).await) && in_progress(job(&stack, b).await)
    })
    .await;
    let instances = stack.provider.list().await.expect("listing");
    for machine in machines(&stack).await.iter().filter(|m| m.runner_name.is_some()) {
        let runner = stack.store.runner_get(machine.runner_name.as_ref().unwrap()).await.unwrap().unwrap();
        let instance = instances.iter().find(|i| Some(&i.id) == machine.instance_id.as_ref()).expect("listed");
        assert_eq!(instance.runner_name.as_ref(), Some(&runner.name), "tagged with its runner");
        assert_eq!(instance.installation_id, Some(runner.installation_id), "tagged with its tenant, no other");
        assert_eq!(runner.instance_id.as_ref(), Some(&instance.id), "the runner runs on the machine it was bound to");
    }
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_or_replayed_bootstrap_secret_gets_nothing() {
    // A pool of size 0: the keeper launches nothing, the test records its own machine with a secret it knows.
    // The dispatcher sleeps: the test reserves the runner of its queued job itself.
    let stack = pooled_stack_tuned(0, |s| {
        s.dispatch_tick = Duration::from_secs(3600);
        s.queued_poll = None;
    })
    .await;
    let pool = stack.pool.clone().expect("a pool store");
    let acme = stack.emulator.install_org("acme").await.expect("installing");
    observe(&stack, acme, "acme/app", JobId(990_001), &labels(SMALL), JobStatus::Queued).await;
    let secret = "the-bootstrap-secret-of-this-test";
    let id = MachineId::new("pool-small-0123456789abcdef");
    let hash = ghr_engine::pool::secret::hash_secret(secret);
    let mut machine = PoolMachine::new(id.clone(), TierName::from(SMALL), hash, chrono::Utc::now());
    machine.instance_id = Some("proc-1-1".into());
    pool.pool_insert(&machine).await.expect("recording the machine");

    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{AGENT_PREFIX}/{path}", stack.url());
    let hello = serde_json::json!({ "agent_version": "test", "booted_at": null });
    let send_hello =
        |credential: String| http.post(url("hello")).header("authorization", credential).json(&hello).send();
    let fetch =
        |credential: String| http.get(url("assignment?wait_seconds=1")).header("authorization", credential).send();
    assert_eq!(send_hello(bearer(id.as_str(), "wrong")).await.unwrap().status(), 401, "a wrong secret is refused");
    assert_eq!(send_hello("Bearer nonsense".into()).await.unwrap().status(), 401, "a malformed credential is refused");
    let other = bearer("pool-small-ffffffffffffffff", secret);
    assert_eq!(fetch(other).await.unwrap().status(), 401, "the secret of one machine opens no other");

    // Ready, then bound to a reserved runner of acme, as the dispatcher binds (with no pause in between, so
    // the keeper never sees it idle beyond a pool of size 0).
    let request = ReserveRequest {
        installation_id: acme,
        tier: SMALL.into(),
        scope_repo: None,
        intended_job: None,
        global_cap: None,
        environment: stack.settings.environment.clone(),
        now: chrono::Utc::now(),
    };
    let Reservation::Reserved(runner) = stack.store.runner_reserve(request).await.unwrap() else {
        panic!("a slot is reserved");
    };
    let ready = PoolTransition::to(MachineState::Ready, chrono::Utc::now());
    pool.pool_transition(&id, &[MachineState::Starting], ready).await.unwrap().expect("ready");
    let claimed = pool.pool_claim(&TierName::from(SMALL), &runner.name, chrono::Utc::now()).await.unwrap();
    assert_eq!(claimed.map(|m| m.id), Some(id.clone()), "the test's machine was bound");

    assert_eq!(send_hello(bearer(id.as_str(), secret)).await.unwrap().status(), 200, "a bound machine may say hello");
    assert_eq!(fetch(bearer(id.as_str(), "wrong")).await.unwrap().status(), 401, "a wrong secret fetches nothing");
    // Eight fetches at once with the right secret: exactly one config leaves ghr, the others find it spent.
    let mut fetches = tokio::task::JoinSet::new();
    for _ in 0..8 {
        fetches.spawn(fetch(bearer(id.as_str(), secret)));
    }
    let mut answers = fetches.join_all().await.into_iter().map(|a| a.unwrap()).collect::<Vec<_>>();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "one config per secret: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 410), "the others are told it is spent: {statuses:?}");
    let answer = answers.swap_remove(statuses.iter().position(|s| *s == 200).unwrap());
    assert_eq!(answer.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"));
    let assignment: Assignment = answer.json().await.unwrap();
    assert_eq!(assignment.runner_name, runner.name.as_str(), "the config of the runner it was bound to");
    assert!(!assignment.jit_config.is_empty());
    assert_eq!(fetch(bearer(id.as_str(), secret)).await.unwrap().status(), 410, "a replayed secret gets nothing");
    assert_eq!(send_hello(bearer(id.as_str(), secret)).await.unwrap().status(), 410, "nor a second hello");
    assert!(
        stack.emulator.runner_by_name(runner.name.as_str()).is_some(),
        "the config was minted at GitHub for that runner"
    );
    let recorded = stack.store.runner_get(&runner.name).await.unwrap().unwrap();
    assert!(recorded.github_runner_id.is_some(), "its registration id is recorded");
    stack.stop().await.expect("stopping");
}

#[tokio::test(flavor = "multi_thread")]
async fn pool_machines_that_die_are_replaced() {
    let stack = pooled_stack(POOL_SIZE).await;
    wait(&stack, SOON, "the pool is full", || async { ready(&stack).await == POOL_SIZE as usize }).await;
    let before = machines(&stack).await;
    let victim = before[0].clone();
    kill_process(victim.instance_id.as_ref().expect("an instance"));
    let keeper = stack.server.pool_keeper.clone().expect("a pool keeper");
    wait(&stack, Duration::from_secs(30), "the dead machine is retired and replaced by a ready one", || {
        let keeper = keeper.clone();
        let stack = &stack;
        let victim = victim.id.clone();
        async move {
            let _ = keeper.pass().await;
            let now = machines(stack).await;
            !now.iter().any(|m| m.id == victim)
                && now.iter().filter(|m| m.state == MachineState::Ready).count() == POOL_SIZE as usize
        }
    })
    .await;
    let pool = stack.pool.clone().unwrap();
    let retired = pool.pool_get(&victim.id).await.unwrap().expect("kept for usage");
    assert_eq!(retired.state, MachineState::Retired);
    assert_eq!(retired.retire_reason.as_deref(), Some("instance_gone"));
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_warm_pool_nothing_changes() {
    let stack = start(options(|_| {})).await;
    assert!(stack.server.pool_keeper.is_none(), "no keeper without warm_pool");
    let answer = reqwest::Client::new()
        .post(format!("{}{AGENT_PREFIX}/hello", stack.url()))
        .header("authorization", bearer("pool-small-1", "x"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404, "no agent endpoints without pools");
    let acme = stack.emulator.install_org("acme").await.expect("installing");
    let id = stack.emulator.queue_job(small_job(acme, Duration::from_millis(300))).await.expect("queueing");
    wait(&stack, SOON, "the job completed on a cold runner", || async {
        job(&stack, id).await.is_some_and(|j| j.status == JobStatus::Completed)
    })
    .await;
    let events = timeline(&stack, id).await;
    assert!(has_event(&events, event_kind::RUNNER_LAUNCHED, "") && !has_event(&events, event_kind::POOL_BOUND, ""));
    finish(stack).await;
}

/// The process provider, except that tagging a pool machine for its tenant fails.
struct BindFails(std::sync::Arc<ghr_cloud::ProcessProvider>);

#[async_trait::async_trait]
impl Provider for BindFails {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    async fn launch(&self, request: LaunchRequest) -> Result<Instance, ProviderError> {
        self.0.launch(request).await
    }
    async fn terminate(&self, id: &InstanceId) -> Result<(), ProviderError> {
        self.0.terminate(id).await
    }
    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        self.0.list().await
    }
    fn supports_pools(&self) -> bool {
        true
    }
    async fn launch_pool(&self, request: PoolLaunchRequest) -> Result<Instance, ProviderError> {
        self.0.launch_pool(request).await
    }
    async fn bind(&self, _: &InstanceId, _: &BindRequest) -> Result<(), ProviderError> {
        Err(ProviderError::throttled("tagging refused (test)"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_machine_that_cannot_be_bound_is_retired_and_the_job_starts_cold() {
    let stack = pooled_stack(1).await;
    wait(&stack, SOON, "the pool is full", || async { ready(&stack).await == 1 }).await;
    let provider = std::sync::Arc::new(BindFails(stack.provider.clone()));
    let stack = restart_server(stack, Restart::SameAdapters { provider }).await;
    let acme = stack.emulator.install_org("acme").await.expect("installing");
    let id = stack.emulator.queue_job(small_job(acme, Duration::from_millis(300))).await.expect("queueing");
    wait(&stack, SOON, "the job completed", || async {
        job(&stack, id).await.is_some_and(|j| j.status == JobStatus::Completed)
    })
    .await;
    let events = timeline(&stack, id).await;
    assert!(has_event(&events, event_kind::RUNNER_LAUNCHED, ""), "served by a cold runner: {events:?}");
    assert!(!has_event(&events, event_kind::POOL_BOUND, ""));
    let pool = stack.pool.clone().unwrap();
    let all = pool.pool_list(PoolFilter { retired_since: Some(chrono::Utc::now() - chrono::Duration::hours(1)) });
    let retired: Vec<_> = all.await.unwrap().into_iter().filter(|m| m.state == MachineState::Retired).collect();
    assert_eq!(retired.len(), 1, "the machine that could not be tagged is retired, never reused");
    assert!(retired[0].retire_reason.as_deref().is_some_and(|r| r.starts_with("bind_failed")), "{retired:?}");
    assert!(retired[0].runner_name.is_some(), "it was bound to the runner that then started cold");
    finish(stack).await;
}
