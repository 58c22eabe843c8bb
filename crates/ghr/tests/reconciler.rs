//! End-to-end tests of the reconciler's rules, one (or more) per rule of the engine's reconciler: each
//! sets up the situation on a real stack (GitHub emulator, SQLite store, process runners, server), runs
//! explicit passes and checks what they did to records, processes and GitHub registrations.

mod support;

use ghr_core::ids::{InstallationId, JobId, OrgName, RUNNER_NAME_PREFIX, RunnerName};
use ghr_core::job::{JobStatus, event_kind};
use ghr_core::ports::{GitHubApi, JitRequest, LaunchRequest, Provider, Reservation, ReserveRequest, RunnerScope};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{TenantStatus, TenantUpdate};
use ghr_testkit::github::JobSpec;
use ghr_testkit::runner::{EmulatedRunner, RunEnd, RunnerOptions};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use support::{
    LARGE, SMALL, SOON, finish, has_event, instance_ids, job, kill_process, labels, live_runners, observe, options,
    pass_after, process_alive, runner, runners, runners_in, set_max_runners, start, timeline, wait,
};

/// Orphan grace, bootstrap timeout, maximum runtime and stale-job threshold of these tests: long, so a
/// pass "now" never acts on age and a pass shifted past the threshold always does.
const THRESHOLD: Duration = Duration::from_secs(60);
/// A shift just past [`THRESHOLD`].
const PAST_THRESHOLD: Duration = Duration::from_secs(61);
/// A job that outlives every test.
const LONG_JOB: Duration = Duration::from_secs(120);
/// Ids of jobs that exist only in ghr's store (far above the emulator's ids).
const UNKNOWN_JOB: JobId = JobId(900_000_001);
/// A second such job, for a second tenant.
const OTHER_UNKNOWN_JOB: JobId = JobId(900_000_002);

fn small_job(installation: InstallationId) -> JobSpec {
    JobSpec::new(installation, "app", &labels(SMALL))
}

/// An org tenant on the small plan, with a runner of ours that is connected to GitHub and idle: it was
/// started for a queued job that exists only in ghr's store, so GitHub never gives it work.
async fn tenant_with_idle_runner(
    stack: &ghr::stack::LocalStack,
    org: &str,
    unknown_job: JobId,
) -> (InstallationId, RunnerName) {
    let installation = stack.emulator.install_org(org).await.expect("installing the App");
    observe(stack, installation, &format!("{org}/app"), unknown_job, &labels(SMALL), JobStatus::Queued).await;
    stack.server.dispatcher_wake.notify_one();
    wait(stack, SOON, "a runner is launched for the queued job", || async {
        live_runners(stack, installation).await.iter().any(|r| r.state == RunnerState::Launching)
    })
    .await;
    let name = live_runners(stack, installation).await.remove(0).name;
    wait(stack, SOON, "the runner is online on GitHub", || async {
        stack.emulator.runner_by_name(name.as_str()).is_some_and(|r| r.online)
    })
    .await;
    (installation, name)
}

/// The job of [`tenant_with_idle_runner`] goes away; its surplus idle runner is terminated after the grace.
async fn retire_idle_runner(
    stack: &ghr::stack::LocalStack,
    installation: InstallationId,
    org: &str,
    unknown_job: JobId,
) {
    observe(stack, installation, &format!("{org}/app"), unknown_job, &labels(SMALL), JobStatus::Completed).await;
    let report = pass_after(stack, PAST_THRESHOLD).await;
    assert_eq!(report.orphans_terminated, 1, "the surplus idle runner is terminated: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_instance_is_terminated_after_the_grace() {
    let mut options = options(|s| s.orphan_grace = THRESHOLD);
    options.runner_command = support::never_connecting_runner();
    let stack = start(options).await;
    let name = RunnerName::new(format!("{RUNNER_NAME_PREFIX}-{}-999-{SMALL}-1", stack.settings.environment));
    let request = LaunchRequest {
        runner_architecture: "x64".into(),
        runner_name: name,
        installation_id: InstallationId(999),
        org_name: OrgName::from("nobody"),
        tenant_tier: SMALL.into(),
        tier: SMALL.into(),
        instance_types: vec!["t3.medium".into()],
        labels: labels(SMALL).into_iter().map(String::from).collect(),
        jit_config: SecretString::from("unused"),
    };
    let orphan = stack.provider.launch(request).await.expect("launching a process with no runner record");
    assert!(process_alive(&orphan.id));

    let report = pass_after(&stack, Duration::ZERO).await;
    assert_eq!(report.orphans_terminated, 0, "a young instance may still be recorded by its launch: {report:?}");
    assert!(process_alive(&orphan.id), "the instance survives a pass within the grace");

    let report = pass_after(&stack, PAST_THRESHOLD).await;
    assert_eq!(report.orphans_terminated, 1, "{report:?}");
    assert!(!process_alive(&orphan.id), "the orphan's process is gone");
    assert!(instance_ids(&stack).await.is_empty());
    assert_eq!(pass_after(&stack, PAST_THRESHOLD).await.orphans_terminated, 0, "nothing is left to terminate");
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_instance_releases_its_slot_for_a_waiting_job() {
    let mut options = options(|s| s.orphan_grace = THRESHOLD);
    // The emulator must not fail the killed runner's job (which would free the slot through the job's
    // `completed` webhook) before the pass runs.
    options.emulator.runner_lost_after = Duration::from_secs(10);
    let stack = start(options).await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    set_max_runners(&stack, acme, 1).await;
    let long = stack.emulator.queue_job(small_job(acme).duration(LONG_JOB)).await.unwrap();
    wait(&stack, SOON, "the first runner runs the long job", || async {
        runners_in(&stack, acme, RunnerState::Busy).await.len() == 1
    })
    .await;
    let first = runners_in(&stack, acme, RunnerState::Busy).await.remove(0);
    let waiting = stack.emulator.queue_job(small_job(acme)).await.unwrap();
    wait(&stack, SOON, "the second job waits at the tenant's limit", || async {
        job(&stack, waiting).await.is_some_and(|j| j.wait_reason == Some(Reason::TenantAtLimit))
    })
    .await;

    let instance = first.instance_id.clone().expect("a launched runner has an instance");
    kill_process(&instance);
    wait(&stack, SOON, "the provider no longer lists the killed process", || async {
        !instance_ids(&stack).await.contains(&instance)
    })
    .await;
    assert_eq!(runner(&stack, &first.name).await.state, RunnerState::Busy, "ghr has not noticed yet");

    let report = pass_after(&stack, PAST_THRESHOLD).await;
    assert_eq!(report.vanished_released, 1, "{report:?}");
    let released = runner(&stack, &first.name).await;
    assert_eq!(released.state, RunnerState::Terminated);
    assert_eq!(released.last_error.as_deref(), Some("instance vanished"));

    let served = stack.emulator.wait_for_job(waiting, JobStatus::Completed, SOON).await.unwrap();
    assert_eq!(served.conclusion.as_deref(), Some("success"));
    assert_ne!(served.runner_name.as_deref(), Some(first.name.as_str()), "a new runner took the waiting job");
    assert_eq!(runners(&stack, acme).await.len(), 2);
    // GitHub fails the job of the runner that died.
    let lost = stack.emulator.wait_for_job(long, JobStatus::Completed, SOON).await.unwrap();
    assert_ne!(lost.conclusion.as_deref(), Some("success"));
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_launch_is_failed_and_its_slot_freed() {
    // No dispatch pass unless something wakes the dispatcher, no redelivery of the withheld webhook:
    // the test alone decides when the job is seen and reserved.
    let stack = start(options(|s| {
        s.dispatch_tick = support::NEVER;
        s.redelivery_scan = 0;
        s.orphan_grace = THRESHOLD;
    }))
    .await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    set_max_runners(&stack, acme, 1).await;
    stack.emulator.drop_next_webhooks(1);
    let job_id = stack.emulator.queue_job(small_job(acme)).await.unwrap();
    let github_job = stack.emulator.job(job_id).expect("the emulator has the job");
    let job_labels: Vec<&str> = github_job.labels.iter().map(String::as_str).collect();
    observe(&stack, acme, &github_job.repository, job_id, &job_labels, JobStatus::Queued).await;

    // A dispatcher reserved a slot and died before launching: a `requested` runner with no instance.
    let request = ReserveRequest {
        installation_id: acme,
        tier: SMALL.into(),
        scope_repo: None,
        intended_job: Some(job_id),
        global_cap: None,
        environment: stack.settings.environment.clone(),
        now: chrono::Utc::now(),
    };
    let Reservation::Reserved(crashed) = stack.store.runner_reserve(request).await.unwrap() else {
        panic!("the slot is reserved");
    };
    assert_eq!((crashed.state, crashed.instance_id.clone()), (RunnerState::Requested, None));

    let report = pass_after(&stack, Duration::ZERO).await;
    assert_eq!(report.stale_requests_failed, 0, "a fresh reservation may still be launching: {report:?}");
    assert_eq!(runner(&stack, &crashed.name).await.state, RunnerState::Requested);

    let report = pass_after(&stack, PAST_THRESHOLD).await;
    assert_eq!(report.stale_requests_failed, 1, "{report:?}");
    let failed = runner(&stack, &crashed.name).await;
    assert_eq!(failed.state, RunnerState::Failed);
    assert!(failed.last_error.as_deref().is_some_and(|e| e.contains("launch did not complete")), "{failed:?}");

    // The tenant's only slot is free again: the job gets a real runner.
    let served = stack.emulator.wait_for_job(job_id, JobStatus::Completed, SOON).await.unwrap();
    assert_eq!(served.conclusion.as_deref(), Some("success"));
    let all = runners(&stack, acme).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(served.runner_name.as_deref(), Some(all[1].name.as_str()));
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_runner_is_marked_registered() {
    let stack = start(options(|s| s.orphan_grace = THRESHOLD)).await;
    let (acme, name) = tenant_with_idle_runner(&stack, "acme", UNKNOWN_JOB).await;
    assert_eq!(runner(&stack, &name).await.state, RunnerState::Launching);

    let report = pass_after(&stack, Duration::ZERO).await;
    assert_eq!(report.registered, 1, "{report:?}");
    let registered = runner(&stack, &name).await;
    assert_eq!(registered.state, RunnerState::Idle);
    assert!(registered.registered_at.is_some());
    assert_eq!(pass_after(&stack, Duration::ZERO).await.registered, 0, "an idle runner is registered once");

    retire_idle_runner(&stack, acme, "acme", UNKNOWN_JOB).await;
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_that_never_registers_is_replaced_after_the_bootstrap_timeout() {
    let mut options = options(|s| s.bootstrap_timeout = THRESHOLD);
    options.runner_command = support::never_connecting_runner();
    let stack = start(options).await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    let job_id = stack.emulator.queue_job(small_job(acme)).await.unwrap();
    wait(&stack, SOON, "a runner is launched", || async {
        live_runners(&stack, acme).await.iter().any(|r| r.state == RunnerState::Launching)
    })
    .await;
    let first = live_runners(&stack, acme).await.remove(0);
    let instance = first.instance_id.clone().expect("a launched runner has an instance");
    assert!(stack.emulator.runner_by_name(first.name.as_str()).is_some_and(|r| !r.online));

    let report = pass_after(&stack, Duration::ZERO).await;
    assert_eq!(report.bootstrap_timeouts, 0, "{report:?}");
    let report = pass_after(&stack, PAST_THRESHOLD).await;
    assert_eq!(report.bootstrap_timeouts, 1, "{report:?}");
    assert_eq!(runner(&stack, &first.name).await.state, RunnerState::Terminated);
    assert!(!process_alive(&instance), "the runner's process is gone");
    assert!(stack.emulator.runner_by_name(first.name.as_str()).is_none(), "its unused registration is deleted");

    // The demand comes back: the job is still queued and gets a new runner.
    let queued = job(&stack, job_id).await.expect("the job is known");
    assert!(queued.wants_runner(), "{queued:?}");
    wait(&stack, SOON, "a second runner is launched for the job", || async {
        live_runners(&stack, acme).await.iter().any(|r| r.state == RunnerState::Launching && r.name != first.name)
    })
    .await;

    // Clean-up: the job is cancelled; the second runner never registers either and times out too.
    stack.emulator.cancel_job(job_id).await.unwrap();
    wait(&stack, SOON, "ghr records the cancellation", || async {
        job(&stack, job_id).await.is_some_and(|j| j.status == JobStatus::Completed)
    })
    .await;
    assert_eq!(pass_after(&stack, PAST_THRESHOLD).await.bootstrap_timeouts, 1);
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_past_the_maximum_runtime_is_terminated() {
    let stack = start(options(|s| s.max_runtime = THRESHOLD)).await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    let job_id = stack.emulator.queue_job(small_job(acme).duration(LONG_JOB)).await.unwrap();
    wait(&stack, SOON, "the runner runs the job", || async {
        runners_in(&stack, acme, RunnerState::Busy).await.len() == 1
    })
    .await;
    let busy = runners_in(&stack, acme, RunnerState::Busy).await.remove(0);
    let instance = busy.instance_id.clone().expect("a launched runner has an instance");

    assert_eq!(pass_after(&stack, Duration::ZERO).await.max_runtime_terminated, 0);
    let report = pass_after(&stack, PAST_THRESHOLD).await;
    assert_eq!(report.max_runtime_terminated, 1, "{report:?}");
    assert_eq!(runner(&stack, &busy.name).await.state, RunnerState::Terminated);
    assert!(!process_alive(&instance), "the runner's process is gone");

    // GitHub fails the job of the killed runner; ghr records it and starts nothing for it.
    let failed = stack.emulator.wait_for_job(job_id, JobStatus::Completed, SOON).await.unwrap();
    assert_ne!(failed.conclusion.as_deref(), Some("success"));
    wait(&stack, SOON, "ghr records the job's end", || async {
        job(&stack, job_id).await.is_some_and(|j| j.status == JobStatus::Completed)
    })
    .await;
    assert_eq!(runners(&stack, acme).await.len(), 1);
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghost_registrations_of_ours_are_deleted() {
    let stack = start(options(|s| s.orphan_grace = THRESHOLD)).await;
    let (acme, ours) = tenant_with_idle_runner(&stack, "acme", UNKNOWN_JOB).await;
    let globex = stack.emulator.install_org("globex").await.unwrap();
    let environment = &stack.settings.environment;
    let register = |installation: InstallationId, org: &str, name: String| {
        let request = JitRequest {
            installation_id: installation,
            scope: RunnerScope::Org(OrgName::from(org)),
            name: RunnerName::new(name),
            labels: labels(SMALL).into_iter().map(String::from).collect(),
            runner_group: stack.settings.runner_group.clone(),
        };
        let github = stack.github.clone();
        async move { github.create_jit_config(&request).await.expect("registering a runner") }
    };
    let ghost = format!("{RUNNER_NAME_PREFIX}-{environment}-{acme}-{SMALL}-9001");
    let online = format!("{RUNNER_NAME_PREFIX}-{environment}-{acme}-{SMALL}-9002");
    let foreign = "build-box-1".to_owned();
    let other_tenant_ghost = format!("{RUNNER_NAME_PREFIX}-{environment}-{globex}-{SMALL}-9003");
    register(acme, "acme", ghost.clone()).await;
    let online_config = register(acme, "acme", online.clone()).await;
    register(acme, "acme", foreign.clone()).await;
    register(globex, "globex", other_tenant_ghost.clone()).await;
    let connected = EmulatedRunner::connect(online_config.encoded_jit_config.expose_secret(), RunnerOptions::default())
        .await
        .expect("an emulated runner connects");
    let online_runner = tokio::spawn(connected.run());
    wait(&stack, SOON, "the runner named like ours is online", || async {
        stack.emulator.runner_by_name(&online).is_some_and(|r| r.online)
    })
    .await;

    let report = pass_after(&stack, Duration::ZERO).await;
    assert_eq!(report.ghost_registrations_deleted, 1, "{report:?}");
    let present = |name: &str| stack.emulator.runner_by_name(name).is_some();
    assert!(!present(&ghost), "the offline registration named like ours with no record is deleted");
    assert!(present(&online), "an online registration is kept");
    assert!(present(&foreign), "a registration not named like ours is kept");
    assert!(present(&other_tenant_ghost), "a tenant without live runners is not scanned");
    assert!(present(ours.as_str()), "a live runner's own registration is kept");

    // Clean-up: the online runner's registration is removed, which ends it; the idle runner is retired.
    stack.github.delete_runner(acme, &RunnerScope::Org(OrgName::from("acme")), online_config.runner_id).await.unwrap();
    let ended = tokio::time::timeout(SOON, online_runner).await.expect("the runner ends").unwrap().unwrap();
    assert_eq!(ended.end, RunEnd::Deregistered);
    retire_idle_runner(&stack, acme, "acme", UNKNOWN_JOB).await;
    finish(stack).await;
}

/// Documents a bug: the ghost rule lists the registrations of every tenant with live runners, including a
/// suspended one (kept under `on_suspend = "let_finish"`), whose installation GitHub refuses (403); the
/// rule then stops at that error and never reaches the tenants after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghost_rule_is_not_blocked_by_a_suspended_tenant() {
    let stack = start(options(|s| s.orphan_grace = THRESHOLD)).await;
    // acme's runner comes first in the live runner list.
    let (acme, _) = tenant_with_idle_runner(&stack, "acme", UNKNOWN_JOB).await;
    let (globex, _) = tenant_with_idle_runner(&stack, "globex", OTHER_UNKNOWN_JOB).await;
    stack.emulator.suspend(acme).await.unwrap();
    wait(&stack, SOON, "ghr records the suspension", || async {
        stack.store.tenant_get(acme).await.unwrap().is_some_and(|t| t.status == TenantStatus::Suspended)
    })
    .await;
    let ghost = format!("{RUNNER_NAME_PREFIX}-{}-{globex}-{SMALL}-9001", stack.settings.environment);
    let request = JitRequest {
        installation_id: globex,
        scope: RunnerScope::Org(OrgName::from("globex")),
        name: RunnerName::new(ghost.clone()),
        labels: labels(SMALL).into_iter().map(String::from).collect(),
        runner_group: stack.settings.runner_group.clone(),
    };
    stack.github.create_jit_config(&request).await.expect("registering a ghost");

    let report = support::raw_pass_after(&stack, Duration::ZERO).await;
    let ghost_left = stack.emulator.runner_by_name(&ghost).is_some();

    // Clean-up first, so that a failure leaves nothing running.
    stack.emulator.unsuspend(acme).await.unwrap();
    wait(&stack, SOON, "ghr records the resumption", || async {
        stack.store.tenant_get(acme).await.unwrap().is_some_and(|t| t.status == TenantStatus::Active)
    })
    .await;
    support::raw_pass_after(&stack, Duration::ZERO).await;
    retire_idle_runner(&stack, acme, "acme", UNKNOWN_JOB).await;
    retire_idle_runner(&stack, globex, "globex", OTHER_UNKNOWN_JOB).await;
    finish(stack).await;

    assert!(!ghost_left && report.ghost_registrations_deleted == 1, "globex's ghost is deleted: {report:?}");
    assert!(report.errors.is_empty(), "a suspended tenant is not an error: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_cancelled_behind_our_back_is_resolved_as_no_longer_queued() {
    // The withheld webhook must not be redelivered: only the stale-job rule may find out.
    let stack = start(options(|s| {
        s.stale_job_after = THRESHOLD;
        s.redelivery_scan = 0;
    }))
    .await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    // A large job of a small-plan tenant waits (not entitled), so no runner takes it.
    let job_id = stack.emulator.queue_job(JobSpec::new(acme, "app", &labels(LARGE))).await.unwrap();
    wait(&stack, SOON, "the job waits, not entitled", || async {
        job(&stack, job_id).await.is_some_and(|j| j.wait_reason == Some(Reason::TierNotEntitled))
    })
    .await;
    stack.emulator.drop_next_webhooks(1);
    stack.emulator.cancel_job(job_id).await.unwrap();
    assert_eq!(stack.emulator.job(job_id).unwrap().conclusion.as_deref(), Some("cancelled"));
    assert_eq!(job(&stack, job_id).await.unwrap().status, JobStatus::Queued, "ghr did not hear of it");

    assert_eq!(pass_after(&stack, Duration::ZERO).await.stale_jobs_resolved, 0, "a young job is not checked");
    let report = pass_after(&stack, PAST_THRESHOLD).await;
    assert_eq!(report.stale_jobs_resolved, 1, "{report:?}");
    let resolved = job(&stack, job_id).await.unwrap();
    assert_eq!(resolved.status, JobStatus::Completed);
    assert_eq!(resolved.conclusion.as_deref(), Some("cancelled"));
    assert!(!resolved.wants_runner());
    let entries = timeline(&stack, job_id).await;
    assert!(has_event(&entries, event_kind::NO_LONGER_QUEUED, "cancelled"), "{entries:?}");
    assert_eq!(pass_after(&stack, PAST_THRESHOLD).await.stale_jobs_resolved, 0, "resolved once");
    assert!(runners(&stack, acme).await.is_empty());
    finish(stack).await;
}

/// A small-plan tenant (2 runners) with two runners busy on long jobs and a third job waiting at the limit.
async fn tenant_with_busy_runners(
    stack: &ghr::stack::LocalStack,
    job_duration: Duration,
) -> (InstallationId, Vec<JobId>, JobId) {
    let acme = stack.emulator.install_org("acme").await.unwrap();
    let mut busy = Vec::new();
    for _ in 0..2 {
        busy.push(stack.emulator.queue_job(small_job(acme).duration(job_duration)).await.unwrap());
    }
    wait(stack, SOON, "both runners run their jobs", || async {
        runners_in(stack, acme, RunnerState::Busy).await.len() == 2
    })
    .await;
    let waiting = stack.emulator.queue_job(small_job(acme)).await.unwrap();
    wait(stack, SOON, "the third job waits at the limit", || async {
        job(stack, waiting).await.is_some_and(|j| j.wait_reason == Some(Reason::TenantAtLimit))
    })
    .await;
    (acme, busy, waiting)
}

/// Every runner of the tenant is terminated with its process, and its waiting job gets no runner.
async fn assert_torn_down(stack: &ghr::stack::LocalStack, acme: InstallationId, waiting: JobId, reason: Reason) {
    let all = runners(stack, acme).await;
    assert_eq!(all.len(), 2, "{all:?}");
    for r in &all {
        assert_eq!(r.state, RunnerState::Terminated, "{r:?}");
        assert!(!process_alive(r.instance_id.as_ref().expect("launched")), "{}'s process is gone", r.name);
    }
    assert!(instance_ids(stack).await.is_empty());
    let dispatched = stack.server.dispatcher.pass().await.expect("a dispatch pass");
    assert_eq!(dispatched.reserved, 0, "{dispatched:?}");
    assert_eq!(job(stack, waiting).await.unwrap().wait_reason, Some(reason));
    assert_eq!(runners(stack, acme).await.len(), 2, "no new runner for the tenant's jobs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_tenant_keeps_no_runner() {
    let stack = start(options(|_| {})).await;
    let (acme, busy, waiting) = tenant_with_busy_runners(&stack, LONG_JOB).await;
    // The uninstall was recorded, but its teardown never ran (say, ghr stopped right after).
    let update = TenantUpdate { status: Some(TenantStatus::Deleted), ..TenantUpdate::default() };
    stack.store.tenant_update(acme, update, chrono::Utc::now()).await.unwrap();

    let report = pass_after(&stack, Duration::ZERO).await;
    assert_eq!(report.tenant_teardowns, 2, "{report:?}");
    assert_torn_down(&stack, acme, waiting, Reason::TenantDeleted).await;
    assert_eq!(pass_after(&stack, Duration::ZERO).await.tenant_teardowns, 0);
    for job_id in busy {
        stack.emulator.wait_for_job(job_id, JobStatus::Completed, SOON).await.unwrap();
    }
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_terminates_busy_runners() {
    let stack = start(options(|_| {})).await;
    let (acme, _busy, waiting) = tenant_with_busy_runners(&stack, LONG_JOB).await;
    stack.emulator.uninstall(acme).await.unwrap();
    wait(&stack, SOON, "the tenant's runners are terminated", || async {
        live_runners(&stack, acme).await.is_empty() && instance_ids(&stack).await.is_empty()
    })
    .await;
    let report = pass_after(&stack, Duration::ZERO).await;
    assert_eq!(report.tenant_teardowns, 0, "the uninstall webhook already tore everything down: {report:?}");
    assert_torn_down(&stack, acme, waiting, Reason::TenantDeleted).await;
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_tenant_keeps_no_runner_under_the_terminate_policy() {
    let mut options = options(|_| {});
    options.config_toml = "[tenants]\non_suspend = \"terminate\"\n".into();
    let stack = start(options).await;
    let (acme, busy, waiting) = tenant_with_busy_runners(&stack, LONG_JOB).await;
    // Suspended by an operator (no webhook, so only the reconciler acts on it).
    let update = TenantUpdate { status: Some(TenantStatus::Suspended), ..TenantUpdate::default() };
    stack.store.tenant_update(acme, update, chrono::Utc::now()).await.unwrap();

    let report = pass_after(&stack, Duration::ZERO).await;
    assert_eq!(report.tenant_teardowns, 2, "{report:?}");
    assert_torn_down(&stack, acme, waiting, Reason::TenantSuspended).await;
    for job_id in busy {
        stack.emulator.wait_for_job(job_id, JobStatus::Completed, SOON).await.unwrap();
    }
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_tenant_lets_running_jobs_finish_by_default() {
    let stack = start(options(|s| s.orphan_grace = THRESHOLD)).await;
    let (acme, busy, waiting) = tenant_with_busy_runners(&stack, Duration::from_secs(5)).await;
    stack.emulator.suspend(acme).await.unwrap();
    wait(&stack, SOON, "ghr records the suspension", || async {
        stack.store.tenant_get(acme).await.unwrap().is_some_and(|t| t.status == TenantStatus::Suspended)
    })
    .await;

    // Rules that call GitHub for the suspended tenant fail (see
    // `ghost_rule_is_not_blocked_by_a_suspended_tenant`); this test is about its runners.
    let report = support::raw_pass_after(&stack, Duration::ZERO).await;
    assert_eq!(report.tenant_teardowns, 0, "{report:?}");
    assert_eq!(runners_in(&stack, acme, RunnerState::Busy).await.len(), 2, "running jobs keep their runners");
    let dispatched = stack.server.dispatcher.pass().await.expect("a dispatch pass");
    assert_eq!(dispatched.reserved, 0);
    assert_eq!(job(&stack, waiting).await.unwrap().wait_reason, Some(Reason::TenantSuspended));

    for job_id in busy {
        let done = stack.emulator.wait_for_job(job_id, JobStatus::Completed, SOON).await.unwrap();
        assert_eq!(done.conclusion.as_deref(), Some("success"), "a running job finishes");
    }
    // A suspended installation sends no job webhooks: the runners' exits are noticed by the reconciler.
    wait(&stack, SOON, "the finished runners' processes exit", || async { instance_ids(&stack).await.is_empty() })
        .await;
    let report = support::raw_pass_after(&stack, PAST_THRESHOLD).await;
    assert_eq!(report.vanished_released, 2, "{report:?}");
    let still = job(&stack, waiting).await.unwrap();
    assert_eq!((still.status, still.wait_reason), (JobStatus::Queued, Some(Reason::TenantSuspended)));
    assert_eq!(runners(&stack, acme).await.len(), 2, "the waiting job got no runner");
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_webhook_is_redelivered_once_and_served() {
    let stack = start(options(|_| {})).await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    stack.emulator.drop_next_webhooks(1);
    let job_id = stack.emulator.queue_job(small_job(acme)).await.unwrap();
    assert!(job(&stack, job_id).await.is_none(), "ghr did not hear of the job");

    let report = pass_after(&stack, Duration::ZERO).await;
    assert_eq!(report.redeliveries_requested, 1, "{report:?}");
    let served = stack.emulator.wait_for_job(job_id, JobStatus::Completed, SOON).await.unwrap();
    assert_eq!(served.conclusion.as_deref(), Some("success"));
    wait(&stack, SOON, "ghr records the job as completed", || async {
        job(&stack, job_id).await.is_some_and(|j| j.status == JobStatus::Completed)
    })
    .await;
    let report = pass_after(&stack, Duration::ZERO).await;
    assert_eq!(report.redeliveries_requested, 0, "a redelivered webhook is not requested again: {report:?}");
    finish(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_forgets_old_deliveries_and_completed_jobs() {
    let stack = start(options(|s| s.retention = Some(Duration::from_secs(86_400)))).await;
    let acme = stack.emulator.install_org("acme").await.unwrap();
    let job_id = stack.emulator.queue_job(small_job(acme)).await.unwrap();
    wait(&stack, SOON, "ghr records the job as completed", || async {
        job(&stack, job_id).await.is_some_and(|j| j.status == JobStatus::Completed)
    })
    .await;
    let now = pass_after(&stack, Duration::ZERO).await;
    assert_eq!(now.pruned_records, 0, "nothing is a day old yet: {now:?}");

    // Two days later (and more than an hour after the last retention run): the job and its deliveries go.
    let later = pass_after(&stack, Duration::from_secs(2 * 86_400)).await;
    assert!(later.pruned_records >= 2, "the job and its deliveries are pruned: {later:?}");
    assert!(job(&stack, job_id).await.is_none(), "the completed job is forgotten");
    let tenant = stack.store.tenant_get(acme).await.unwrap().expect("tenants are never pruned");
    assert_eq!(tenant.status, TenantStatus::Active);
    let usage = stack
        .store
        .usage(chrono::Utc::now() - chrono::Duration::hours(1), chrono::Utc::now(), chrono::Utc::now())
        .await
        .unwrap();
    assert!(usage.iter().any(|row| row.installation_id == acme), "runners (the usage record) are kept");
    finish(stack).await;
}
