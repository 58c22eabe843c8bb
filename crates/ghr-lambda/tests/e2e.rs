//! The serverless deployment end to end, through the Lambda runtime interface: every function is the real
//! `ghr-lambda` binary taking its events from a runtime API stand-in, fed by the event sources Lambda runs
//! (API Gateway's HTTP API for the webhook, SQS mappings with partial batch responses, scale-down's schedule),
//! on moto (DynamoDB, SQS, EC2, SSM) with the GitHub emulator as GitHub, whose signed webhooks reach the
//! webhook function through the HTTP API stand-in.
//!
//! Start moto first: `eval "$(scripts/moto.sh start)"`. Every test has its own prefix (tables, queues,
//! `ghr:environment`), so they share one moto. A failing test prints the end of every function's log;
//! `GHR_E2E_LOG_DIR=<dir>` keeps all of them, one subdirectory per test.
//!
//! Every test ends by checking that no dead-letter queue holds anything but the poison it put there.

mod support;

use axum::http::StatusCode;
use ghr_cloud_ec2::{TAG_ENVIRONMENT, TAG_TENANT_ID, TAG_TENANT_TIER};
use ghr_core::job::JobStatus;
use ghr_core::reason::Reason;
use ghr_testkit::runner::RunEnd;
use ghr_testkit::webhook::SignedDelivery;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::aws::{GONE_STATES, n, s};
use support::event_source::past_visibility;
use support::runtime_api::InvokeError;
use support::stack::{ARM_LARGE, MAX_RECEIVE_COUNT, MEDIUM, SMALL, Stack, tier_spec};
use support::wait_for;

/// A job long enough to outlive the test's look at its runner.
const LONG_JOB: Duration = Duration::from_secs(120);
/// How many GitHub calls the failed-launch test refuses: each fails one launch (at its installation token),
/// whose retry waits longer each time (2 s, 4 s).
const FAILED_GITHUB_CALLS: u32 = 2;
/// How soon after a failed launch its delayed retry must have launched the runner (the launch backoff, or the
/// pass retry delay, plus polling).
const RETRY_WITHIN: Duration = Duration::from_secs(30);
/// How soon the waiting job's instance is launched once the teardown that frees its slot is on its queue.
const SLOT_TO_LAUNCH: Duration = Duration::from_secs(10);
/// How long a booted runner may take to run its (short) job.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// The message body of a dispatch, decoded.
fn body_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("the message body {text:?} is not JSON: {e}"))
}

/// Wait for a booted runner to finish its job; the job id it ran.
async fn ran(
    runner: tokio::task::JoinHandle<Result<ghr_testkit::runner::Outcome, ghr_testkit::runner::RunnerError>>,
) -> u64 {
    let outcome = tokio::time::timeout(RUN_TIMEOUT, runner)
        .await
        .expect("the booted runner finished in time")
        .expect("the runner task ran")
        .expect("the runner ran");
    match outcome.end {
        RunEnd::Completed { job, .. } => job.job_id,
        other => panic!("the runner ended without a job: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_writes_the_seed_tenant_item_and_bad_signatures_are_refused() {
    let stack = Stack::start("install").await;
    let acme = stack.install("acme").await;
    let delivery = stack.emulator.deliveries().into_iter().last().expect("the installation webhook was sent");
    assert!((200..300).contains(&delivery.status_code), "the HTTP API answered {delivery:?}");
    assert!(stack.webhook.invocations() >= 1, "the delivery went through the webhook function's runtime API");

    // `aws dynamodb get-item --table-name <prefix>-tenants --key '{"installation_id": {"N": "..."}}'`
    let item = stack.moto.tenant_item(stack.tenants_table(), acme.0).await.expect("the tenant item exists");
    assert_eq!(n(&item, "installation_id"), acme.0.to_string());
    assert_eq!(s(&item, "org_name"), "acme");
    assert_eq!(s(&item, "org_type"), "Organization");
    assert_eq!(s(&item, "status"), "active");
    assert_eq!(s(&item, "tier"), SMALL);
    assert_eq!(n(&item, "max_runners"), "2", "the small tier's limit");
    for stamp in ["created_at", "updated_at"] {
        let text = s(&item, stamp);
        assert!(text.len() >= 20 && text.contains('T') && text.ends_with('Z'), "{stamp} is ISO 8601 UTC: {text}");
    }
    let metadata = item.get("metadata").and_then(|m| m.as_m().ok()).expect("the seed's metadata map");
    assert!(metadata.get("github_account_id").is_some_and(|v| v.as_n().is_ok()), "{metadata:?}");

    // Installing wakes the new tenant (on the default tier's queue); the scale-up function takes it.
    stack.drain().await;

    // A delivery signed with another secret: 401 from the function, nothing stored, nothing queued.
    let forged = SignedDelivery::new("workflow_job", &json!({"action": "queued"}), b"not the secret");
    let answer = forged.send(&reqwest::Client::new(), &stack.http.webhook_url()).await.expect("the HTTP API answers");
    assert_eq!(answer.status().as_u16(), 401);
    for url in stack.tier_queues() {
        assert_eq!(stack.moto.queue_depth(url).await, 0, "nothing was queued on {url}");
    }
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_job_goes_to_its_tier_queue_and_scale_up_launches_a_tagged_instance_with_a_jit_config() {
    let stack = Stack::start("launch").await;
    let acme = stack.install("acme").await;
    stack.drain().await;
    // The seed's "Upgrade Tenant Tier": a medium plan, so a medium job is the tenant's to run.
    stack.moto.set_tenant_limit(stack.tenants_table(), acme.0, MEDIUM, 5).await;

    let job = stack.queue_job(acme, MEDIUM, Duration::ZERO).await;
    let medium_queue = stack.tier_queue(MEDIUM).to_owned();
    let bodies = stack.moto.peek(&medium_queue).await;
    assert_eq!(bodies.len(), 1, "one wake-up on the medium queue: {bodies:?}");
    let body = body_of(&bodies[0]);
    assert_eq!(
        (&body["v"], &body["work"], &body["tenant"], &body["tier"]),
        (&json!(1), &json!("dispatch"), &json!(acme.0), &json!(MEDIUM)),
        "{body}"
    );
    assert_eq!(stack.moto.queue_depth(stack.tier_queue(SMALL)).await, 0, "nothing on another tier's queue");
    assert_eq!(stack.job(job).await.status, JobStatus::Queued);

    let poll = stack.poll(&medium_queue).await;
    assert_eq!((poll.received.len(), poll.failed.len()), (1, 0), "{poll:?}");
    let active = stack.active_instances().await;
    assert_eq!(active.len(), 1, "one job, one instance: {active:?}");
    let instance = &active[0];
    assert_eq!(instance.tags.get(TAG_TENANT_ID), Some(&acme.0.to_string()), "{:?}", instance.tags);
    assert_eq!(instance.tags.get(TAG_TENANT_TIER).map(String::as_str), Some(MEDIUM), "{:?}", instance.tags);
    assert_eq!(instance.tags.get(TAG_ENVIRONMENT), Some(&stack.prefix), "{:?}", instance.tags);
    assert_eq!(stack.moto.queue_depth(&medium_queue).await, 0, "the message was deleted");

    // The user data's JIT config is one GitHub accepts: the runner it starts runs the job.
    let runner = stack.boot(&instance.id).await;
    assert_eq!(ran(runner).await, job.0);
    stack.wait_for_message("the completed job's teardown is queued", stack.teardown_queue()).await;
    stack.drain().await;
    let state = stack.moto.instance(&instance.id).await.state;
    assert!(GONE_STATES.contains(&state.as_str()), "scale-down terminated the instance: {state}");
    assert_eq!(stack.job(job).await.status, JobStatus::Completed);
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_arm64_tier_flows_from_the_configuration_to_its_queue_its_function_and_its_image() {
    let stack = Stack::start("arm").await;
    let acme = stack.install("acme").await;
    stack.drain().await;
    let spec = tier_spec(ARM_LARGE);
    stack.moto.set_tenant_limit(stack.tenants_table(), acme.0, ARM_LARGE, spec.max_runners).await;

    let job = stack.queue_job(acme, ARM_LARGE, LONG_JOB).await;
    let arm_queue = stack.tier_queue(ARM_LARGE).to_owned();
    assert!(arm_queue.ends_with(&format!("{}-{ARM_LARGE}-builds", stack.prefix)), "{arm_queue}");
    for tier in [SMALL, MEDIUM] {
        assert_eq!(stack.moto.queue_depth(stack.tier_queue(tier)).await, 0, "nothing on the {tier} queue");
    }
    let poll = stack.poll(&arm_queue).await;
    assert_eq!((poll.received.len(), poll.failed.len()), (1, 0), "{poll:?}");
    assert_eq!(stack.scale_up[ARM_LARGE].invocations(), 1, "the tier's own scale-up function took it");
    let active = stack.active_instances().await;
    assert_eq!(active.len(), 1, "{active:?}");
    let instance = &active[0];
    assert_eq!(instance.image_id, stack.moto.arm64_ami, "the ARM64 tier boots the ARM64 image: {instance:?}");
    assert!(spec.instance_types.contains(&instance.instance_type.as_str()), "{instance:?}");
    assert_eq!(instance.tags.get(TAG_TENANT_TIER).map(String::as_str), Some(ARM_LARGE), "{instance:?}");
    assert_eq!(stack.runners(acme).await[0].intended_job, Some(job));
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_limit_jobs_wait_in_the_store_and_start_when_a_slot_frees() {
    let stack = Stack::start("limit").await;
    let acme = stack.install("acme").await;
    stack.moto.set_tenant_limit(stack.tenants_table(), acme.0, SMALL, 1).await;
    let first = stack.queue_job(acme, SMALL, Duration::ZERO).await;
    let second = stack.queue_job(acme, SMALL, Duration::ZERO).await;
    stack.drain().await;

    let active = stack.active_instances().await;
    assert_eq!(active.len(), 1, "the tenant's limit holds: {active:?}");
    let waiting = stack.job(second).await;
    assert_eq!((waiting.status, waiting.wait_reason), (JobStatus::Queued, Some(Reason::TenantAtLimit)));
    for url in stack.tier_queues() {
        assert_eq!(stack.moto.queue_depth(url).await, 0, "the waiting job is in the store, not on {url}");
    }
    assert!(stack.dead_letters().await.is_empty(), "a waiting job is never dead-lettered");

    // The first runner runs its job; the completed webhook queues its teardown; scale-down terminates the
    // instance, which frees the slot and wakes the tenant on its tier's queue; scale-up launches the next.
    let runner = stack.boot(&active[0].id).await;
    assert_eq!(ran(runner).await, first.0);
    stack.wait_for_message("the completed job's teardown is queued", stack.teardown_queue()).await;
    // No schedule runs here: the freed slot itself starts the waiting job, within seconds.
    let freed = tokio::time::Instant::now();
    let polls = stack.drain().await;
    assert!(freed.elapsed() < SLOT_TO_LAUNCH, "the next job started {:?} after its slot freed", freed.elapsed());
    let queues: Vec<&str> = polls.iter().map(|(url, _)| url.as_str()).collect();
    assert!(queues.contains(&stack.teardown_queue()), "scale-down took the teardown: {queues:?}");
    assert!(queues.contains(&stack.tier_queue(SMALL)), "the freed slot woke scale-up: {queues:?}");
    let state = stack.moto.instance(&active[0].id).await.state;
    assert!(GONE_STATES.contains(&state.as_str()), "the finished runner's instance is terminated: {state}");
    let next = stack.active_instances().await;
    assert_eq!(next.len(), 1, "the waiting job got the freed slot: {next:?}");
    assert_ne!(next[0].id, active[0].id);

    let runner = stack.boot(&next[0].id).await;
    assert_eq!(ran(runner).await, second.0);
    stack.wait_for_message("the second teardown is queued", stack.teardown_queue()).await;
    stack.drain().await;
    assert!(stack.active_instances().await.is_empty(), "every instance is gone");
    for job in [first, second] {
        assert_eq!(stack.job(job).await.status, JobStatus::Completed);
    }
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_makes_the_tenant_manager_terminate_the_tenants_instances() {
    let stack = Stack::start("uninstall").await;
    let acme = stack.install("acme").await;
    let other = stack.install("other").await;
    for tenant in [acme, acme, other] {
        stack.queue_job(tenant, SMALL, LONG_JOB).await;
    }
    stack.drain().await;
    let active = stack.active_instances().await;
    assert_eq!(active.len(), 3, "{active:?}");

    stack.emulator.uninstall(acme).await.expect("uninstalling the App");
    let item = stack.moto.tenant_item(stack.tenants_table(), acme.0).await.expect("the item stays");
    assert_eq!(s(&item, "status"), "deleted", "the webhook wrote the status before answering");
    assert!(stack.moto.queue_depth(stack.tenant_events_queue()).await > 0, "the tenant's teardown is queued");
    let polls = stack.drain().await;
    assert!(polls.iter().any(|(url, _)| url == stack.tenant_events_queue()), "{polls:?}");
    assert!(stack.tenant_manager.invocations() >= 1, "the tenant manager took it");

    let left = stack.active_instances().await;
    let owners: Vec<&str> = left.iter().filter_map(|i| i.tags.get(TAG_TENANT_ID).map(String::as_str)).collect();
    assert_eq!(owners, vec![other.0.to_string().as_str()], "only the other tenant's instance runs: {left:?}");
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_reach_the_dead_letter_queue_after_max_receive_count_and_nothing_else_does() {
    let stack = Stack::start("poison").await;
    let acme = stack.install("acme").await;
    stack.drain().await;
    let small_queue = stack.tier_queue(SMALL).to_owned();
    let poison = ["this is not JSON", r#"{"v":99,"work":"dispatch"}"#];
    for body in poison {
        stack.moto.send_raw(&small_queue, body).await;
    }
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;

    // One batch: the poison is named in batchItemFailures, the real wake-up is served and deleted.
    let first = stack.poll(&small_queue).await;
    assert_eq!(first.received.len(), 3, "{first:?}");
    let failed_bodies: Vec<&str> = first
        .received
        .iter()
        .zip(&first.bodies)
        .filter(|(id, _)| first.failed.contains(id))
        .map(|(_, body)| body.as_str())
        .collect();
    assert_eq!(failed_bodies, poison.to_vec(), "only the poison is reported failed: {first:?}");
    assert_eq!(stack.active_instances().await.len(), 1, "the job in the same batch was served");
    assert_eq!(stack.runners(acme).await.len(), 1);
    assert_eq!(stack.runners(acme).await[0].intended_job, Some(job), "the runner is the job's");

    // SQS moves a message to the DLQ on the receive after its maxReceiveCount-th.
    let dlq = stack.dlq_of(&small_queue).to_owned();
    for _ in 1..MAX_RECEIVE_COUNT {
        past_visibility().await;
        let poll = stack.poll(&small_queue).await;
        assert_eq!(poll.failed.len(), poll.received.len(), "only poison is left: {poll:?}");
    }
    past_visibility().await;
    let last = stack.poll(&small_queue).await;
    assert!(last.received.is_empty(), "the poison left the queue: {last:?}");
    let mut dead: Vec<String> = stack.moto.peek(&dlq).await;
    dead.sort();
    let mut expected: Vec<String> = poison.iter().map(|b| (*b).to_owned()).collect();
    expected.sort();
    assert_eq!(dead, expected, "exactly the poison is dead-lettered");

    // The rest of the system runs on: nothing else is ever dead-lettered.
    stack.drain().await;
    stack.finish(&BTreeMap::from([(dlq, poison.len() as u64)])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_pass_runs_the_reconciler_and_starts_a_job_whose_wake_up_was_lost() {
    let stack = Stack::start("schedule").await;
    let acme = stack.install("acme").await;
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;
    let small_queue = stack.tier_queue(SMALL).to_owned();
    assert!(stack.moto.queue_depth(&small_queue).await > 0, "the webhook queued the wake-up");
    stack.moto.purge(&small_queue).await;
    assert!(stack.active_instances().await.is_empty());

    let answer = stack.schedule().await;
    assert_eq!(answer["reconciler"]["ran"], json!(true), "the reconciler ran under the lease: {answer}");
    assert_eq!(answer["reconciler"]["errors"], json!(0), "{answer}");
    assert_eq!(answer["dispatch"]["reserved"], json!(1), "the backstop pass started the job: {answer}");
    let active = stack.active_instances().await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(stack.runners(acme).await[0].intended_job, Some(job));

    let again = stack.schedule().await;
    assert_eq!(again["reconciler"]["ran"], json!(true), "the lease was given back: {again}");
    assert_eq!(again["dispatch"]["reserved"], json!(0), "nothing more to start: {again}");
    assert_eq!(stack.active_instances().await.len(), 1);
    stack.drain().await;
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_pass_recovers_a_job_whose_webhook_never_arrived() {
    let stack = Stack::start("missed").await;
    let acme = stack.install("acme").await;
    stack.drain().await;
    // GitHub never delivers the job's `queued` webhook: only the reconciler can learn of the job.
    stack.emulator.drop_next_webhooks(1);
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;
    assert!(stack.store.job_get(job).await.expect("reading a job").is_none(), "ghr never heard of the job");

    let answer = stack.schedule().await;
    assert_eq!(answer["reconciler"]["ran"], json!(true), "{answer}");
    let recovered = stack.store.job_get(job).await.expect("reading a job");
    assert!(recovered.is_some(), "the reconciler's recovery poll recorded the job: {answer}");
    // The recovered job starts: in the same scheduled pass, or by the wake-up it queued.
    stack.drain().await;
    let active = stack.active_instances().await;
    assert_eq!(active.len(), 1, "the recovered job got an instance: {active:?} ({answer})");
    assert_eq!(stack.runners(acme).await[0].intended_job, Some(job));
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_launch_comes_back_as_a_delayed_wake_up_and_is_never_dead_lettered() {
    let stack = Stack::start("retry").await;
    let acme = stack.install("acme").await;
    stack.drain().await;
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;
    let small_queue = stack.tier_queue(SMALL).to_owned();
    // GitHub refuses what the launch asks of it (the installation token, the JIT config): no runner can start.
    stack.emulator.fail_next(FAILED_GITHUB_CALLS, StatusCode::UNPROCESSABLE_ENTITY);
    let failed = stack.poll(&small_queue).await;
    assert_eq!(failed.received.len(), 1, "{failed:?}");
    assert!(failed.failed.is_empty(), "a failed launch never fails its message: {failed:?}");
    assert!(stack.active_instances().await.is_empty());
    assert_eq!(stack.moto.queue_depth(&small_queue).await, 1, "the wake-up was sent again, delayed");
    assert!(stack.moto.peek(&small_queue).await.is_empty(), "the retry is delayed, not visible at once");
    assert_eq!(stack.job(job).await.status, JobStatus::Queued, "the job waits in the store");

    // Once the delay has passed, the retry launches the runner.
    let started = tokio::time::Instant::now();
    while stack.active_instances().await.is_empty() {
        assert!(started.elapsed() < RETRY_WITHIN, "no launch within {RETRY_WITHIN:?} of the failure");
        let poll = stack.poll(&small_queue).await;
        assert!(poll.failed.is_empty(), "a retried wake-up is never failed: {poll:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let runners = stack.runners(acme).await;
    let live: Vec<_> = runners.iter().filter(|r| r.state.is_live()).collect();
    assert_eq!(live.len(), 1, "one runner for the job: {runners:?}");
    assert_eq!(live[0].intended_job, Some(job));
    let failed_launches = runners.len() - 1;
    assert_eq!(failed_launches, FAILED_GITHUB_CALLS as usize, "each refused call cost one launch: {runners:?}");
    stack.drain().await;
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_answers_an_event_it_does_not_take_with_a_function_error_and_keeps_serving() {
    let stack = Stack::start("wrong").await;
    let schedule = support::event_source::scheduled_event("not-the-tenant-managers-rule");
    match stack.tenant_manager.invoke(schedule, Duration::from_secs(10)).await {
        Err(InvokeError::Function { message, .. }) => {
            assert!(message.contains("tenant-manager takes SQS events"), "{message}")
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    let empty = stack.tenant_manager.invoke(json!({ "Records": [] }), Duration::from_secs(10)).await;
    assert_eq!(empty.expect("the next event is served")["batchItemFailures"], json!([]));
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_with_a_wrong_environment_reports_an_init_error_naming_the_variable() {
    let stack = Stack::start("init").await;
    let event = json!({ "Records": [] });
    let timeout = Duration::from_secs(10);

    let mut no_tier = stack.function_env("scale-up", Some(SMALL));
    no_tier.remove("GHR_TIER");
    let mut missing_queue = stack.function_env("scale-up", Some(SMALL));
    let only_small = json!({ SMALL: stack.tier_queue(SMALL) }).to_string();
    missing_queue.insert("GHR_TIER_QUEUES".into(), only_small);
    let mut no_secret = stack.function_env("webhook", None);
    let missing_parameter = format!("/{}/no-such-parameter", stack.prefix);
    no_secret.insert("GHR_WEBHOOK_SECRET_PARAMETER".into(), missing_parameter.clone());
    let cases = [
        ("no-tier", no_tier, vec!["GHR_TIER"]),
        ("missing-queue", missing_queue, vec!["GHR_TIER_QUEUES", MEDIUM]),
        ("no-secret", no_secret, vec![missing_parameter.as_str()]),
    ];
    for (name, env, named) in cases {
        let function = stack.start_function(&format!("{}-{name}", stack.prefix), &env).await;
        match function.invoke(event.clone(), timeout).await {
            Err(InvokeError::Init { error_type, message }) => {
                assert_eq!(error_type, "Runtime.ConfigError", "{name}: {message}");
                for word in named {
                    assert!(message.contains(word), "{name}: the init error names {word}: {message}");
                }
            }
            other => panic!("{name}: expected an init error, got {other:?}\n{}", function.log_tail()),
        }
        assert_eq!(function.invocations(), 0, "{name}: the function never took an event");
        wait_for("the function's process exits", async || function.exited()).await;
    }
    stack.finish(&BTreeMap::new()).await;
}
