//! The engine (dispatcher, teardown, reconciler) driving the real `Ec2Provider` on moto, inside a real ghr
//! server with a SQLite store and the real GitHub client against the GitHub emulator.
//!
//! Start moto first: `eval "$(scripts/moto.sh start)"`. Every test has its own `ghr:environment`, so the tests
//! run in parallel on one moto, and each ends with no instance of its environment pending or running. See
//! `engine/support.rs` for how an instance "boots" on moto (no virtual machine runs there).
//!
//! The last test documents a gap in the engine's reconciler and fails until it is fixed (see its comment).

mod common;
#[path = "engine/support.rs"]
mod support;

use ghr_cloud_ec2::{TAG_ENVIRONMENT, TAG_ORG, TAG_RUNNER_NAME, TAG_TENANT_ID, TAG_TENANT_TIER, TAG_TIER};
use ghr_core::ids::{InstallationId, InstanceId, OrgName, RunnerName};
use ghr_core::job::{JobStatus, event_kind};
use ghr_core::ports::{LaunchRequest, Provider};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{TenantStatus, TenantUpdate};
use ghr_testkit::runner::RunEnd;
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::{BOOTSTRAP_TIMEOUT, LONG_JOB, MotoSampler, ORPHAN_GRACE, SMALL, SMALL_LABELS, Stack};

/// A plan above `small` (5 runners in the built-in catalog), so a tenant's plan and its runners' tier differ.
const MEDIUM: &str = "medium";
/// A job long enough to look at its runner while it runs.
const RUNNING_JOB: Duration = Duration::from_secs(3);
/// Just past the orphan grace.
const PAST_GRACE: Duration = Duration::from_secs(ORPHAN_GRACE.as_secs() + 1);
/// Just past the bootstrap timeout.
const PAST_BOOTSTRAP: Duration = Duration::from_secs(BOOTSTRAP_TIMEOUT.as_secs() + 1);
/// First and longest wait before a failed launch is retried.
const LAUNCH_RETRY: Duration = Duration::from_secs(1);
/// The emulator's route of org JIT configs (its request counters are keyed by route).
const JIT_CONFIG_ROUTE: &str = "POST /orgs/{org}/actions/runners/generate-jitconfig";
/// The EC2 states of an instance that was terminated (moto may still show `shutting-down` for a moment).
const GONE_STATES: [&str; 2] = ["shutting-down", "terminated"];

fn is_gone(state: &str) -> bool {
    GONE_STATES.contains(&state)
}

/// A launch request as the dispatcher would make for installation `installation` (no runner record behind it).
fn unrecorded_launch(environment: &str, installation: InstallationId) -> LaunchRequest {
    LaunchRequest {
        runner_architecture: "x64".into(),
        runner_name: RunnerName::new(format!("ghr-{environment}-{installation}-{SMALL}-1")),
        installation_id: installation,
        org_name: OrgName::new("nobody"),
        tenant_tier: SMALL.into(),
        tier: SMALL.into(),
        instance_types: vec!["t3.medium".into()],
        labels: SMALL_LABELS.iter().map(|l| (*l).to_owned()).collect(),
        jit_config: SecretString::from("dW51c2Vk"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_launch_tagged_instances_within_the_tenant_limit() {
    let stack = Stack::start("limit", |_| {}).await;
    let acme = stack.install("acme").await;
    let update = TenantUpdate { tier: Some(MEDIUM.into()), max_runners: Some(2), ..TenantUpdate::default() };
    stack.update_tenant(acme, update).await;
    let sampler = MotoSampler::start(&stack.moto, &stack.environment);

    let first = stack.queue(acme, RUNNING_JOB).await;
    stack.dispatch().await;
    let active = stack.active_instances().await;
    assert_eq!(active.len(), 1, "one queued job, one instance: {active:?}");
    let runners = stack.live_runners(acme).await;
    assert_eq!(runners.len(), 1, "{runners:?}");
    let runner = &runners[0];
    assert_eq!(runner.state, RunnerState::Launching);
    assert_eq!(runner.instance_id.as_ref(), Some(&active[0].id), "the record holds the instance id");
    assert_eq!(runner.intended_job, Some(first));
    assert!(runner.github_runner_id.is_some(), "the JIT registration is recorded");
    let expected = BTreeMap::from([
        (TAG_TENANT_ID, acme.to_string()),
        (TAG_TENANT_TIER, MEDIUM.to_owned()),
        (TAG_TIER, SMALL.to_owned()),
        (TAG_ENVIRONMENT, stack.environment.clone()),
        (TAG_RUNNER_NAME, runner.name.to_string()),
        (TAG_ORG, "acme".to_owned()),
    ]);
    let tags: BTreeMap<&str, String> =
        expected.keys().filter_map(|key| Some((*key, active[0].tags.get(*key)?.clone()))).collect();
    assert_eq!(tags, expected, "the instance carries the tenant's tags: {:?}", active[0].tags);
    assert_eq!(stack.dispatch().await.reserved, 0, "a second pass launches nothing more for one job");
    assert_eq!(stack.active_instances().await.len(), 1);

    // Three jobs for a tenant limited to two runners.
    stack.queue(acme, RUNNING_JOB).await;
    let third = stack.queue(acme, RUNNING_JOB).await;
    stack.dispatch().await;
    stack.dispatch().await;
    let active = stack.active_ids().await;
    assert_eq!(active.len(), 2, "the limit holds in EC2: {active:?}");
    let recorded: BTreeSet<InstanceId> =
        stack.live_runners(acme).await.into_iter().filter_map(|r| r.instance_id).collect();
    assert_eq!(recorded, active, "every instance has its runner record");
    assert_eq!(stack.job(third).await.wait_reason, Some(Reason::TenantAtLimit));

    // Both runners take a job; the third job gets an instance once one of them is torn down.
    let mut booted = Vec::new();
    for instance in &active {
        booted.push(stack.boot(instance).await);
    }
    for runner in booted {
        assert!(matches!(runner.finished().await.end, RunEnd::Completed { .. }));
    }
    stack
        .wait_for("a third runner is launched once a slot is free", async || {
            stack.runners(acme).await.get(2).is_some_and(|r| r.instance_id.is_some())
        })
        .await;
    let last = stack.runners(acme).await.remove(2).instance_id.unwrap();
    assert!(!active.contains(&last), "a new instance");
    let outcome = stack.boot(&last).await.finished().await;
    assert!(matches!(outcome.end, RunEnd::Completed { ref job, .. } if job.job_id == third.0), "{outcome:?}");
    for job in stack.emulator.jobs() {
        assert_eq!(job.conclusion.as_deref(), Some("success"), "{job:?}");
    }
    stack.finish().await;
    assert_eq!(sampler.stop().await, 2, "never more than two instances of the tenant in moto");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_job_terminates_its_instance_and_frees_the_slot() {
    let stack = Stack::start("done", |_| {}).await;
    let acme = stack.install("acme").await;
    stack.update_tenant(acme, TenantUpdate { max_runners: Some(1), ..TenantUpdate::default() }).await;
    let first = stack.queue(acme, RUNNING_JOB).await;
    let next = stack.queue(acme, Duration::ZERO).await;
    stack.dispatch().await;
    assert_eq!(stack.job(next).await.wait_reason, Some(Reason::TenantAtLimit));
    let runner = stack.live_runners(acme).await.remove(0);
    let instance = runner.instance_id.clone().expect("a launched runner has an instance");

    // The instance boots; GitHub gives its runner the oldest job and says so (`in_progress`, naming the runner).
    let booted = stack.boot(&instance).await;
    stack
        .wait_for("the in_progress webhook binds the job to the runner", async || {
            stack.runners(acme).await[0].state == RunnerState::Busy
        })
        .await;
    let busy = stack.runners(acme).await.remove(0);
    assert_eq!(busy.job_id, Some(first));
    let job = stack.job(first).await;
    assert_eq!((job.status, job.runner_name.as_ref()), (JobStatus::InProgress, Some(&runner.name)));
    assert_eq!(stack.active_ids().await.into_iter().collect::<Vec<_>>(), vec![instance.clone()], "a busy runner runs");

    // The job completes (`completed`, naming the runner): its instance is terminated in EC2, its slot freed.
    assert!(matches!(booted.finished().await.end, RunEnd::Completed { .. }));
    stack
        .wait_for("the instance is terminated in moto", async || is_gone(&stack.moto.instance(&instance).await.state))
        .await;
    stack
        .wait_for("the runner record is terminated", async || {
            stack.runners(acme).await[0].state == RunnerState::Terminated
        })
        .await;
    let done = stack.runners(acme).await.remove(0);
    assert!(done.finished_at.is_some() && done.terminated_at.is_some(), "{done:?}");
    assert_eq!(stack.job(first).await.status, JobStatus::Completed);

    stack
        .wait_for("the waiting job gets a new instance in the freed slot", async || {
            stack.live_runners(acme).await.first().is_some_and(|r| r.instance_id.is_some())
        })
        .await;
    let second = stack.live_runners(acme).await.remove(0).instance_id.unwrap();
    assert_ne!(second, instance);
    let outcome = stack.boot(&second).await.finished().await;
    assert!(matches!(outcome.end, RunEnd::Completed { ref job, .. } if job.job_id == next.0), "{outcome:?}");
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_instance_is_terminated_after_the_grace() {
    let stack = Stack::start("orphan", |_| {}).await;
    // A runner of a real tenant, with an instance as old as the orphan's: not an orphan.
    let acme = stack.install("acme").await;
    stack.queue(acme, Duration::ZERO).await;
    stack.dispatch().await;
    let owned = stack.live_runners(acme).await.remove(0).instance_id.expect("an instance");
    // An instance of this deployment with no runner record (a launch whose record was lost).
    let orphan = stack.provider.launch(unrecorded_launch(&stack.environment, InstallationId(999))).await.unwrap().id;
    // Another deployment's instance in the same account: never this deployment's to touch.
    let other_environment = format!("e2e-other-{:08x}", rand::random::<u32>());
    let other = ghr_cloud_ec2::Ec2Provider::from_client(
        stack.moto.client.clone(),
        stack.moto.provider_config(&other_environment),
    )
    .expect("a valid provider config");
    let foreign = other.launch(unrecorded_launch(&other_environment, InstallationId(999))).await.unwrap().id;

    let report = stack.reconcile_after(Duration::ZERO).await;
    assert_eq!(report.orphans_terminated, 0, "a young instance may still be recorded by its launch: {report:?}");
    assert_eq!(stack.active_ids().await, [owned.clone(), orphan.clone()].into_iter().collect());

    let report = stack.reconcile_after(PAST_GRACE).await;
    assert_eq!(report.orphans_terminated, 1, "{report:?}");
    let state = stack.moto.instance(&orphan).await.state;
    assert!(is_gone(&state), "the orphan is terminated in moto: {state}");
    assert_eq!(stack.active_ids().await, [owned.clone()].into_iter().collect(), "the owned instance runs on");
    let foreign_state = stack.moto.instance(&foreign).await.state;
    assert!(!is_gone(&foreign_state), "another environment's instance is untouched: {foreign_state}");
    assert_eq!(stack.reconcile_after(PAST_GRACE).await.orphans_terminated, 0, "nothing is left to terminate");

    other.terminate(&foreign).await.expect("terminating the other environment's instance");
    assert!(stack.moto.active_instances(&other_environment).await.is_empty());
    assert!(matches!(stack.boot(&owned).await.finished().await.end, RunEnd::Completed { .. }));
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_instance_releases_its_slot_for_a_waiting_job() {
    let stack = Stack::start("vanish", |_| {}).await;
    let acme = stack.install("acme").await;
    stack.update_tenant(acme, TenantUpdate { max_runners: Some(1), ..TenantUpdate::default() }).await;
    let long = stack.queue(acme, LONG_JOB).await;
    let waiting = stack.queue(acme, Duration::ZERO).await;
    stack.dispatch().await;
    assert_eq!(stack.job(waiting).await.wait_reason, Some(Reason::TenantAtLimit));
    let first = stack.live_runners(acme).await.remove(0);
    let instance = first.instance_id.clone().expect("an instance");
    let booted = stack.boot(&instance).await;
    stack
        .wait_for("the first runner runs the long job", async || stack.runners(acme).await[0].job_id == Some(long))
        .await;

    // A spot interruption: the instance goes away behind ghr's back, and its runner with it.
    stack.moto.terminate_behind_ghrs_back(&instance).await;
    booted.crash();
    assert!(!stack.active_ids().await.contains(&instance));
    assert_eq!(stack.runners(acme).await[0].state, RunnerState::Busy, "ghr has not noticed yet");

    let report = stack.reconcile_after(PAST_GRACE).await;
    assert_eq!(report.vanished_released, 1, "{report:?}");
    let released = stack.runners(acme).await.remove(0);
    assert_eq!(released.state, RunnerState::Terminated);
    assert_eq!(released.last_error.as_deref(), Some("instance vanished"));

    stack.dispatch().await;
    let second = stack.live_runners(acme).await;
    assert_eq!(second.len(), 1, "the freed slot went to the waiting job: {second:?}");
    let replacement = second[0].instance_id.clone().expect("an instance");
    assert_ne!(replacement, instance);
    assert_eq!(stack.active_ids().await, [replacement.clone()].into_iter().collect());
    assert_eq!(stack.job(waiting).await.wait_reason, None);
    let outcome = stack.boot(&replacement).await.finished().await;
    assert!(matches!(outcome.end, RunEnd::Completed { ref job, .. } if job.job_id == waiting.0), "{outcome:?}");
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstalled_tenant_loses_every_instance() {
    let stack = Stack::start("uninst", |_| {}).await;
    let acme = stack.install("acme").await;
    let globex = stack.install("globex").await;
    stack.queue(acme, LONG_JOB).await;
    let queued = stack.queue(acme, Duration::ZERO).await;
    stack.queue(globex, Duration::ZERO).await;
    stack.dispatch().await;
    assert_eq!(stack.active_instances().await.len(), 3);
    let acme_runners = stack.live_runners(acme).await;
    assert_eq!(acme_runners.len(), 2);
    // One of acme's runners is busy, the other still boots.
    let busy = stack.boot(acme_runners[0].instance_id.as_ref().unwrap()).await;
    stack
        .wait_for("acme's first runner runs its job", async || stack.runners(acme).await[0].state == RunnerState::Busy)
        .await;

    stack.emulator.uninstall(acme).await.expect("uninstalling the App");
    let tenant_id = acme.to_string();
    stack
        .wait_for("no instance of acme runs in moto", async || {
            stack.active_instances().await.iter().all(|i| i.tags.get(TAG_TENANT_ID) != Some(&tenant_id))
        })
        .await;
    busy.crash();
    for runner in &acme_runners {
        let id = runner.instance_id.as_ref().unwrap();
        assert!(is_gone(&stack.moto.instance(id).await.state), "{id} is terminated");
    }
    stack.wait_for("acme's runner records are terminated", async || stack.live_runners(acme).await.is_empty()).await;
    let tenant = stack.store.tenant_get(acme).await.unwrap().expect("the tenant record stays");
    assert_eq!(tenant.status, TenantStatus::Deleted);
    stack.dispatch().await;
    assert_eq!(stack.job(queued).await.wait_reason, Some(Reason::TenantDeleted));
    assert!(stack.live_runners(acme).await.is_empty(), "nothing is launched for a deleted tenant");

    // The other tenant's instance runs on, and serves its job.
    let globex_instance = stack.live_runners(globex).await.remove(0).instance_id.unwrap();
    assert_eq!(stack.active_ids().await, [globex_instance.clone()].into_iter().collect());
    assert!(matches!(stack.boot(&globex_instance).await.finished().await.end, RunEnd::Completed { .. }));
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_that_never_registers_is_replaced_after_the_bootstrap_timeout() {
    let stack = Stack::start("boot", |_| {}).await;
    let acme = stack.install("acme").await;
    let job = stack.queue(acme, Duration::ZERO).await;
    stack.dispatch().await;
    let stuck = stack.live_runners(acme).await.remove(0);
    let instance = stuck.instance_id.clone().expect("an instance");
    let registration = stack.emulator.runner_by_name(stuck.name.as_str()).expect("the JIT registration exists");
    assert!(!registration.online, "nothing boots on moto: the runner never connects");

    let report = stack.reconcile_after(PAST_GRACE).await;
    assert_eq!((report.bootstrap_timeouts, report.registered), (0, 0), "{report:?}");
    assert!(stack.active_ids().await.contains(&instance), "the instance may still be booting");

    let report = stack.reconcile_after(PAST_BOOTSTRAP).await;
    assert_eq!(report.bootstrap_timeouts, 1, "{report:?}");
    assert!(is_gone(&stack.moto.instance(&instance).await.state), "the instance is terminated in moto");
    assert_eq!(stack.runners(acme).await[0].state, RunnerState::Terminated);
    assert!(stack.emulator.runner_by_name(stuck.name.as_str()).is_none(), "its registration is deleted");

    // The job's demand is back: the next dispatch launches a new instance for it.
    stack.dispatch().await;
    let runners = stack.runners(acme).await;
    assert_eq!(runners.len(), 2, "{runners:?}");
    let replacement = runners[1].instance_id.clone().expect("a new instance");
    assert_ne!(replacement, instance);
    assert_eq!(runners[1].intended_job, Some(job));
    assert_eq!(stack.active_ids().await, [replacement.clone()].into_iter().collect());
    let outcome = stack.boot(&replacement).await.finished().await;
    assert!(matches!(outcome.end, RunEnd::Completed { job: ref ran, .. } if ran.job_id == job.0), "{outcome:?}");
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_errors_keep_the_job_waiting_until_ec2_has_capacity_again() {
    let stack = Stack::start("capacity", |settings| {
        settings.retry_base = LAUNCH_RETRY;
        settings.retry_max = LAUNCH_RETRY;
    })
    .await;
    let acme = stack.install("acme").await;
    stack.ec2.fail_launches(true);
    let job = stack.queue(acme, Duration::ZERO).await;
    stack.dispatch().await;
    // The failed launch backs off; a pass within the backoff records why the job waits.
    stack
        .wait_for("the job waits with reason provider_error", async || {
            let report = stack.dispatch().await;
            report.waiting.get(&Reason::ProviderError) == Some(&1)
                && stack.job(job).await.wait_reason == Some(Reason::ProviderError)
        })
        .await;

    let every_attempt: BTreeSet<String> = ["spot", "on-demand"]
        .iter()
        .flat_map(|purchase| stack.moto.subnets.iter().map(move |subnet| format!("t3.medium in {subnet} ({purchase})")))
        .collect();
    assert_eq!(stack.ec2.failed_attempts(), every_attempt, "every type, subnet and purchase option was tried");
    let failed: Vec<_> = stack.runners(acme).await.into_iter().filter(|r| r.state == RunnerState::Failed).collect();
    assert!(!failed.is_empty(), "the failed launch released its slot");
    assert!(stack.ec2.failed_count() >= failed.len() * every_attempt.len());
    for runner in &failed {
        let error = runner.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("InsufficientInstanceCapacity"), "{runner:?}");
        assert!(runner.instance_id.is_none());
        assert!(
            stack.emulator.runner_by_name(runner.name.as_str()).is_none(),
            "{}'s registration is deleted",
            runner.name
        );
    }
    let jit_calls = stack.emulator.counters().calls(JIT_CONFIG_ROUTE);
    assert!(jit_calls as usize >= failed.len(), "a registration was made for every launch: {jit_calls}");
    let timeline = stack.timeline(job).await;
    assert!(
        timeline.iter().any(|e| e.kind == event_kind::LAUNCH_FAILED
            && e.detail.contains("provider_error")
            && e.detail.contains("InsufficientInstanceCapacity")),
        "{timeline:?}"
    );
    assert!(stack.active_instances().await.is_empty(), "a failed launch leaves nothing running");

    // EC2 has capacity again: once the backoff has passed, the job gets an instance.
    stack.ec2.fail_launches(false);
    stack
        .wait_for("the job gets an instance", async || {
            stack.dispatch().await;
            stack.live_runners(acme).await.first().is_some_and(|r| r.instance_id.is_some())
        })
        .await;
    let runner = stack.live_runners(acme).await.remove(0);
    let instance = runner.instance_id.clone().unwrap();
    assert_eq!(stack.active_ids().await, [instance.clone()].into_iter().collect());
    assert_eq!(stack.job(job).await.wait_reason, None);
    assert!(
        stack.emulator.runner_by_name(runner.name.as_str()).is_some(),
        "the launched runner keeps its registration"
    );
    let outcome = stack.boot(&instance).await.finished().await;
    assert!(matches!(outcome.end, RunEnd::Completed { job: ref ran, .. } if ran.job_id == job.0), "{outcome:?}");
    stack.finish().await;
}

/// Regression test for a gap in the reconciler (failing until it is fixed): no rule retries the teardown of a
/// `finished` runner, so when TerminateInstances fails after `workflow_job.completed` (throttling is routine on
/// EC2), the runner holds its tenant's slot and its instance keeps running until the instance powers itself off
/// or `max_runtime` (6 h by default) passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_termination_after_a_completed_job_is_retried_by_the_reconciler() {
    let stack = Stack::start("throttle", |_| {}).await;
    let acme = stack.install("acme").await;
    stack.update_tenant(acme, TenantUpdate { max_runners: Some(1), ..TenantUpdate::default() }).await;
    stack.queue(acme, Duration::ZERO).await;
    let waiting = stack.queue(acme, Duration::ZERO).await;
    stack.dispatch().await;
    let runner = stack.live_runners(acme).await.remove(0);
    let instance = runner.instance_id.clone().expect("an instance");

    // EC2 throttles TerminateInstances while the `completed` webhook's teardown runs.
    stack.ec2.throttle_terminations(true);
    assert!(matches!(stack.boot(&instance).await.finished().await.end, RunEnd::Completed { .. }));
    stack
        .wait_for("the teardown of the finished runner was refused", async || {
            stack.ec2.throttled_terminations().contains(&instance.to_string())
        })
        .await;
    stack.ec2.throttle_terminations(false);
    assert_eq!(stack.runners(acme).await[0].state, RunnerState::Finished, "the slot is held while the instance runs");
    assert!(stack.active_ids().await.contains(&instance), "the instance still runs (and costs)");
    stack.dispatch().await;
    assert_eq!(stack.job(waiting).await.wait_reason, Some(Reason::TenantAtLimit));

    // The next reconciler pass should retry the teardown.
    stack.reconcile_after(PAST_GRACE).await;
    let state = stack.moto.instance(&instance).await.state;
    let record = stack.runners(acme).await.remove(0).state;
    if !is_gone(&state) {
        // Leave nothing running in moto, whatever the verdict.
        stack.provider.terminate(&instance).await.expect("terminating the instance left running");
    }
    assert!(is_gone(&state), "the reconciler terminates the finished runner's instance: it is {state}");
    assert_eq!(record, RunnerState::Terminated, "and frees its slot");
    stack
        .wait_for("the waiting job gets an instance in the freed slot", async || {
            stack.live_runners(acme).await.first().is_some_and(|r| r.instance_id.is_some())
        })
        .await;
    let replacement = stack.live_runners(acme).await.remove(0).instance_id.unwrap();
    assert!(matches!(stack.boot(&replacement).await.finished().await.end, RunEnd::Completed { .. }));
    stack.finish().await;
}
