//! End-to-end fault paths: GitHub failing or rate limiting, the provider failing to launch, a tenant
//! deleted in the middle of a launch, and a ghr restart in the middle of a burst. Each test checks that
//! jobs wait with the right reason, are served once the fault is gone, and that nothing is left over.

mod support;

use ghr_core::ids::{InstallationId, JobId};
use ghr_core::job::{JobStatus, event_kind};
use ghr_core::ports::{Reservation, ReserveRequest, RunnerUpdate};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_testkit::github::{JobSpec, StatusCode};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use support::{
    LiveSampler, Restart, SMALL, SOON, finish, has_event, instance_ids, job, labels, live_runners, options, pass_after,
    process_alive, runner, runners, runners_in, start, timeline, wait,
};

/// First retry delay after a failed launch in these tests (doubling up to [`RETRY_MAX`]).
const RETRY_BASE: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(2);

fn small_job(installation: InstallationId) -> JobSpec {
    JobSpec::new(installation, "app", &labels(SMALL))
}

/// Wait until ghr records the job as completed.
async fn wait_recorded_completed(stack: &ghr::stack::LocalStack, job_id: JobId) {
    wait(stack, SOON, "ghr records the job as completed", || async {
        job(stack, job_id).await.is_some_and(|j| j.status == JobStatus::Completed)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_jit_call_makes_the_job_wait_until_github_recovers() {
    let stack = start(options(|s| {
        s.retry_base = RETRY_BASE;
        s.retry_max = RETRY_MAX;
    }))
    .await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    // Every REST call fails until the fault is lifted: each launch exhausts the client's retries.
    stack.emulator.fail_next(u32::MAX, StatusCode::INTERNAL_SERVER_ERROR);
    let job_id = stack.emulator.queue_job(small_job(acme)).await.unwrap();
    wait(&stack, SOON, "the job waits with github_error", || async {
        job(&stack, job_id).await.is_some_and(|j| j.wait_reason == Some(Reason::GithubError))
    })
    .await;
    let failed = runners_in(&stack, acme, RunnerState::Failed).await;
    assert!(!failed.is_empty());
    for r in &failed {
        assert!(r.last_error.as_deref().is_some_and(|e| e.starts_with("jit")), "{r:?}");
        assert!(r.instance_id.is_none() && r.github_runner_id.is_none(), "{r:?}");
        assert!(r.terminated_at.is_some(), "a failed runner no longer holds its slot: {r:?}");
    }
    let entries = timeline(&stack, job_id).await;
    assert!(has_event(&entries, event_kind::LAUNCH_FAILED, Reason::GithubError.code()), "{entries:?}");
    assert!(stack.emulator.counters().injected_failures > 0);

    stack.emulator.fail_next(0, StatusCode::INTERNAL_SERVER_ERROR);
    let served = stack.emulator.wait_for_job(job_id, JobStatus::Completed, SOON).await.unwrap();
    assert_eq!(served.conclusion.as_deref(), Some("success"));
    let server = served.runner_name.expect("a runner took the job");
    assert!(!failed.iter().any(|r| r.name.as_str() == server), "a new runner served the job");
    wait_recorded_completed(&stack, job_id).await;
    assert_eq!(job(&stack, job_id).await.unwrap().wait_reason, None);
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_github_is_waited_for() {
    let stack = start(options(|_| {})).await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    const RETRY_AFTER_SECS: u64 = 1;
    stack.emulator.rate_limit_next(1, RETRY_AFTER_SECS);
    let job_id = stack.emulator.queue_job(small_job(acme)).await.unwrap();

    let served = stack.emulator.wait_for_job(job_id, JobStatus::Completed, SOON).await.unwrap();
    assert_eq!(served.conclusion.as_deref(), Some("success"));
    let waited = served.started_at.expect("started") - served.created_at;
    assert!(waited >= chrono::Duration::seconds(RETRY_AFTER_SECS as i64), "the client waited: {waited}");
    assert_eq!(stack.emulator.counters().injected_rate_limits, 1);
    let stats = stack.github.stats();
    assert!(stats.rate_limited >= 1 && stats.retries >= 1, "{stats:?}");
    let all = runners(&stack, acme).await;
    assert_eq!(all.len(), 1, "the first launch succeeded: {all:?}");
    let entries = timeline(&stack, job_id).await;
    assert!(!entries.iter().any(|e| e.kind == event_kind::LAUNCH_FAILED), "{entries:?}");
    wait_recorded_completed(&stack, job_id).await;
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failure_deletes_the_registration_and_backs_off() {
    let scripts = tempfile::tempdir().unwrap();
    let script = scripts.path().join("runner.sh");
    let hidden = scripts.path().join("runner.sh.away");
    std::fs::write(&script, format!("#!/bin/sh\nexec '{}' emulated-runner\n", env!("CARGO_BIN_EXE_ghr"))).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut options = options(|s| {
        s.retry_base = RETRY_BASE;
        s.retry_max = RETRY_MAX;
    });
    options.runner_command = vec![script.to_string_lossy().into_owned()];
    let stack = start(options).await;
    // The runner program disappears after the provider checked it at start.
    std::fs::rename(&script, &hidden).unwrap();

    let acme = stack.emulator.install_org("acme").await.unwrap();
    let job_id = stack.emulator.queue_job(small_job(acme)).await.unwrap();
    wait(&stack, SOON, "the job waits with provider_error after two failed launches", || async {
        job(&stack, job_id).await.is_some_and(|j| j.wait_reason == Some(Reason::ProviderError))
            && runners_in(&stack, acme, RunnerState::Failed).await.len() >= 2
    })
    .await;
    let failed = runners_in(&stack, acme, RunnerState::Failed).await;
    for r in &failed {
        assert!(r.last_error.as_deref().is_some_and(|e| e.starts_with("provider")), "{r:?}");
        assert!(r.instance_id.is_none(), "{r:?}");
        assert!(stack.emulator.runner_by_name(r.name.as_str()).is_none(), "{}'s registration is deleted", r.name);
    }
    for pair in failed.windows(2) {
        let gap = (pair[1].created_at - pair[0].created_at).to_std().unwrap_or_default();
        assert!(
            gap >= RETRY_BASE.mul_f64(0.9),
            "launches back off: {gap:?} between {} and {}",
            pair[0].name,
            pair[1].name
        );
    }
    let entries = timeline(&stack, job_id).await;
    assert!(has_event(&entries, event_kind::LAUNCH_FAILED, Reason::ProviderError.code()), "{entries:?}");

    std::fs::rename(&hidden, &script).unwrap();
    let served = stack.emulator.wait_for_job(job_id, JobStatus::Completed, SOON).await.unwrap();
    assert_eq!(served.conclusion.as_deref(), Some("success"));
    wait_recorded_completed(&stack, job_id).await;
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_deleted_while_its_runner_is_launched_leaves_no_instance() {
    let stack = start(options(|_| {})).await;
    let (gated, mut gate) = support::GatedProvider::new(stack.provider.clone());
    let stack = support::restart_server(stack, Restart::SameAdapters { provider: gated }).await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    stack.emulator.queue_job(small_job(acme)).await.unwrap();
    let instance = tokio::time::timeout(SOON, gate.launched.recv())
        .await
        .expect("the provider starts a runner")
        .expect("the gate is open");
    assert!(process_alive(&instance.id));
    let held = live_runners(&stack, acme).await.remove(0);
    assert_eq!(held.state, RunnerState::Requested, "the launch has not returned yet");

    stack.emulator.uninstall(acme).await.unwrap();
    // The teardown cannot stop a process whose launch has not recorded it yet: the slot stays held
    // (`finished`) until the instance is known gone. (It used to be marked terminated here, freeing the slot
    // while the process still ran.)
    wait(&stack, SOON, "the uninstall asks for the runner's teardown", || async {
        runner(&stack, &held.name).await.state == RunnerState::Finished
    })
    .await;
    assert!(process_alive(&instance.id), "the process still runs");
    assert_eq!(live_runners(&stack, acme).await.len(), 1, "its slot is held while it runs");
    gate.release_one();
    wait(&stack, SOON, "the launch terminates its instance", || async {
        !process_alive(&instance.id) && instance_ids(&stack).await.is_empty()
    })
    .await;
    wait(&stack, SOON, "the slot is freed once the process is gone", || async {
        runner(&stack, &held.name).await.state == RunnerState::Terminated
    })
    .await;
    let torn = runner(&stack, &held.name).await;
    assert!(torn.instance_id.is_some(), "the instance was recorded, then terminated: {torn:?}");
    let report = pass_after(&stack, support::NEVER).await;
    assert_eq!(report.orphans_terminated, 0, "nothing was left for the reconciler: {report:?}");
    assert_eq!(runners(&stack, acme).await.len(), 1);
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_deleted_while_its_registration_is_minted_leaves_nothing() {
    let stack = start(options(|_| {})).await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    // Every REST answer takes this long: the launch is still minting when the uninstall lands.
    stack.emulator.set_latency(Duration::from_secs(2));
    stack.emulator.queue_job(small_job(acme)).await.unwrap();
    wait(&stack, SOON, "a runner is reserved", || async { !runners(&stack, acme).await.is_empty() }).await;
    stack.emulator.uninstall(acme).await.unwrap();
    wait(&stack, SOON, "the uninstall tears the runner down", || async { live_runners(&stack, acme).await.is_empty() })
        .await;
    tokio::time::timeout(SOON, stack.server.dispatcher.drain()).await.expect("the launch ends");
    stack.emulator.set_latency(Duration::ZERO);

    let all = runners(&stack, acme).await;
    assert_eq!(all.len(), 1, "{all:?}");
    // The slot was held until the launch ended; no instance ever existed, so the runner ends as failed.
    assert_eq!(all[0].state, RunnerState::Failed);
    assert!(instance_ids(&stack).await.is_empty());
    assert!(stack.emulator.runner_by_name(all[0].name.as_str()).is_none(), "no registration was minted");
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_burst_completes_every_job_within_the_limit() {
    const SHORT: Duration = Duration::from_millis(1000);
    const LONG: Duration = Duration::from_secs(8);
    const QUEUED_BEHIND: usize = 4;
    const WHILE_DOWN: usize = 2;
    // The reconciler runs on its own here: after the restart it must find what the stopped server missed.
    let stack = start(options(|s| s.reconcile_interval = Duration::from_secs(1))).await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    let limit = stack.store.tenant_get(acme).await.unwrap().expect("the tenant").max_runners;
    assert_eq!(limit, 2);
    let sampler = LiveSampler::start(stack.store.clone(), acme);
    // GitHub hands out the oldest queued job first: the first two runners take the short and the long job.
    let short = stack.emulator.queue_job(small_job(acme).duration(SHORT)).await.unwrap();
    let long = stack.emulator.queue_job(small_job(acme).duration(LONG)).await.unwrap();
    let mut jobs = vec![short, long];
    for _ in 0..QUEUED_BEHIND {
        jobs.push(stack.emulator.queue_job(small_job(acme).duration(SHORT)).await.unwrap());
    }
    wait(&stack, SOON, "the first two jobs run", || async {
        runners_in(&stack, acme, RunnerState::Busy).await.len() == 2
    })
    .await;
    let long_runner = stack.emulator.job(long).and_then(|j| j.runner_name).expect("the long job has a runner");
    let long_instance = runner(&stack, &long_runner.as_str().into()).await.instance_id.expect("launched");

    let most_before = sampler.stop().await;
    let stopped = support::stop_server(stack).await;
    // While ghr is down: the short job finishes, new jobs are queued; their webhooks fail.
    stopped.emulator.wait_for_job(short, JobStatus::Completed, SOON).await.unwrap();
    for _ in 0..WHILE_DOWN {
        jobs.push(stopped.emulator.queue_job(small_job(acme).duration(SHORT)).await.unwrap());
    }
    let missed = stopped.emulator.deliveries().iter().filter(|d| !d.succeeded()).count();
    // The new jobs' `queued` deliveries are missed (and the short job's completion too, when it finished
    // after the stop; under load it may have finished before).
    assert!(missed >= WHILE_DOWN, "the new jobs' deliveries were missed ({missed})");

    let stack = support::start_server(stopped, Restart::Reopen).await;
    let sampler = LiveSampler::start(stack.store.clone(), acme);
    assert!(instance_ids(&stack).await.contains(&long_instance), "the new ghr adopts the runner still running");
    let all_done = stack
        .wait_for(Duration::from_secs(30), || async {
            stack.emulator.jobs().iter().all(|j| j.status == JobStatus::Completed)
        })
        .await;
    let unfinished: Vec<_> = stack.emulator.jobs().into_iter().filter(|j| j.status != JobStatus::Completed).collect();
    assert!(all_done, "every job completes after the restart; unfinished: {unfinished:?}");
    for job_id in &jobs {
        let done = stack.emulator.job(*job_id).unwrap();
        assert_eq!((done.conclusion.as_deref(), done.assignments), (Some("success"), 1), "{done:?}");
        wait_recorded_completed(&stack, *job_id).await;
    }
    let most_after = sampler.stop().await;
    // The store's own count, read continuously, and the records' intervals afterwards.
    assert!(most_before <= limit && most_after <= limit, "live runners {most_before}/{most_after}, limit {limit}");
    let peak = support::peak(&stack, acme).await;
    let history: Vec<String> = runners(&stack, acme)
        .await
        .iter()
        .map(|r| format!("{} {} {}..{:?}", r.name, r.state, r.created_at, r.terminated_at))
        .collect();
    assert!(peak <= limit, "the records show {peak} runners at once, limit {limit}: {history:#?}");
    assert_eq!(most_after, limit, "the jobs after the restart used the tenant's whole limit");
    finish(stack).await;
}

/// A reservation reads the dispatcher's clock before it waits for the store's write lock; when another
/// runner's release commits meanwhile, the new record must still not be dated before that release, or the
/// records (read as `created_at..terminated_at` intervals) show the tenant above its limit although the
/// store never admitted more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_never_show_a_tenant_above_its_limit() {
    let stack = start(options(|s| {
        s.dispatch_tick = support::NEVER;
        s.orphan_grace = Duration::from_secs(60);
    }))
    .await;
    // Straight into the store: no webhook wakes the dispatcher, so only this test reserves.
    let acme = InstallationId(900_001);
    let tenant = ghr_core::tenant::NewTenant {
        installation_id: acme,
        org_name: "acme".into(),
        org_type: ghr_core::tenant::OrgType::Organization,
        status: ghr_core::tenant::TenantStatus::Active,
        tier: SMALL.into(),
        max_runners: 1,
        metadata: Default::default(),
    };
    stack.store.tenant_create(tenant, chrono::Utc::now()).await.unwrap();
    for id in [JobId(900_000_011), JobId(900_000_012)] {
        support::observe(&stack, acme, "acme/app", id, &labels(SMALL), JobStatus::Queued).await;
    }
    let reserve = |now: chrono::DateTime<chrono::Utc>| ReserveRequest {
        installation_id: acme,
        tier: SMALL.into(),
        scope_repo: None,
        intended_job: None,
        global_cap: None,
        environment: stack.settings.environment.clone(),
        now,
    };
    let Reservation::Reserved(first) = stack.store.runner_reserve(reserve(chrono::Utc::now())).await.unwrap() else {
        panic!("the first runner is admitted");
    };
    // A dispatcher reads the clock, then waits for the write lock; meanwhile the first runner is released.
    let read_before_lock = chrono::Utc::now();
    let released_at = read_before_lock + chrono::Duration::milliseconds(1);
    stack.store.runner_update(&first.name, RunnerUpdate::state(RunnerState::Terminated, released_at)).await.unwrap();
    let Reservation::Reserved(second) = stack.store.runner_reserve(reserve(read_before_lock)).await.unwrap() else {
        panic!("the freed slot is admitted");
    };
    let peak = support::peak(&stack, acme).await;

    // Clean-up: the second reservation is never launched; the reconciler fails it.
    assert_eq!(pass_after(&stack, Duration::from_secs(61)).await.stale_requests_failed, 1);
    finish(stack).await;
    assert_eq!(
        peak, 1,
        "the store admitted one runner at a time, the records show {peak}: {} created at {}, {} terminated at {}",
        second.name, second.created_at, first.name, released_at
    );
}
