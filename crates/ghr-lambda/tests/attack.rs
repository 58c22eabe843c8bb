//! Adversarial tests of the serverless deployment, through the Lambda runtime interface as the end-to-end tests
//! drive it: several scale-up containers of every tier at once against one tenant's limit, a function killed in
//! the middle of a launch, an uninstall racing a launch, hostile SQS bodies and webhook requests, and webhooks
//! redelivered after their runner was torn down. Each states the promise it attacks.
//!
//! Start moto first: `eval "$(scripts/moto.sh start)"`.

#[allow(dead_code)]
#[path = "support/attack.rs"]
mod attack_support;
#[path = "support/slow_proxy.rs"]
mod slow_proxy;
#[allow(dead_code)]
mod support;

use attack_support::{
    dispatch_body, env_with_config, failed_ids, kill_function, live_runners, recover, replacement_env, sqs_event,
    webhook_request, webhook_secret, webhook_through_proxy,
};
use ghr_cloud_ec2::TAG_TENANT_ID;
use ghr_core::job::JobStatus;
use ghr_core::reason::Reason;
use ghr_testkit::webhook::SignedDelivery;
use serde_json::{Value, json};
use slow_proxy::SlowProxy;
use std::collections::BTreeMap;
use std::time::Duration;
use support::event_source::{self, INVOKE_TIMEOUT};
use support::runtime_api::InvokeError;
use support::stack::{MEDIUM, SMALL, Stack};
use support::wait_for;

/// A job long enough to outlive the test.
const LONG_JOB: Duration = Duration::from_secs(120);
/// GitHub's answer delay that keeps a launch in flight (its token and JIT config calls) long enough to act.
const SLOW_GITHUB: Duration = Duration::from_secs(3);
/// How long EC2's answers are held back from the container that is killed after EC2 started its instance.
const SLOW_EC2: Duration = Duration::from_secs(8);

/// A tenant whose plan allows small and medium jobs, limited to `limit` runners.
async fn tenant_with_limit(stack: &Stack, org: &str, limit: u32) -> ghr_core::ids::InstallationId {
    let tenant = stack.install(org).await;
    stack.drain().await;
    stack.moto.set_tenant_limit(stack.tenants_table(), tenant.0, MEDIUM, limit).await;
    tenant
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scale_up_containers_of_two_tiers_never_exceed_a_tenants_limit() {
    const LIMIT: u32 = 2;
    let stack = Stack::start("atk-conc").await;
    let acme = tenant_with_limit(&stack, "acme", LIMIT).await;
    for tier in [SMALL, MEDIUM, SMALL, MEDIUM, SMALL, MEDIUM] {
        stack.queue_job(acme, tier, LONG_JOB).await;
    }
    // Two containers of each tier's scale-up, each taking its own batch naming the tenant at the same moment.
    let small2 = stack
        .start_function(&format!("{}-small-scale-up-b", stack.prefix), &stack.function_env("scale-up", Some(SMALL)))
        .await;
    let medium2 = stack
        .start_function(&format!("{}-medium-scale-up-b", stack.prefix), &stack.function_env("scale-up", Some(MEDIUM)))
        .await;
    for round in 0..3 {
        let event = |tag: &str, tier: &str| sqs_event(&format!("{tag}-{round}"), &[dispatch_body(acme.0, tier)]);
        let (a, b, c, d) = tokio::join!(
            stack.scale_up[SMALL].invoke(event("s1", SMALL), INVOKE_TIMEOUT),
            small2.invoke(event("s2", SMALL), INVOKE_TIMEOUT),
            stack.scale_up[MEDIUM].invoke(event("m1", MEDIUM), INVOKE_TIMEOUT),
            medium2.invoke(event("m2", MEDIUM), INVOKE_TIMEOUT),
        );
        for answer in [a, b, c, d] {
            let answer = answer.expect("every container answers");
            assert!(failed_ids(&answer).is_empty(), "round {round}: a wake-up was failed: {answer}");
        }
        let live = live_runners(&stack, acme).await;
        assert!(
            live.len() <= LIMIT as usize,
            "round {round}: {} live runners over the limit {LIMIT}: {live:?}",
            live.len()
        );
    }
    stack.drain().await;
    let active = stack.active_instances().await;
    assert_eq!(active.len(), LIMIT as usize, "the limit is used, never exceeded: {active:?}");
    assert_eq!(live_runners(&stack, acme).await.len(), LIMIT as usize);
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uninstall_racing_an_in_flight_launch_leaves_no_instance_of_the_deleted_tenant() {
    let stack = Stack::start("atk-unin").await;
    let acme = stack.install("acme").await;
    stack.drain().await;
    stack.queue_job(acme, SMALL, LONG_JOB).await;
    stack.emulator.set_latency(SLOW_GITHUB);
    let small_queue = stack.tier_queue(SMALL).to_owned();
    let (poll, ()) = tokio::join!(stack.poll(&small_queue), async {
        // The reservation is written before the launch asks GitHub for its JIT config: uninstall right then.
        wait_for("the launch reserved its runner", async || !stack.runners(acme).await.is_empty()).await;
        stack.emulator.uninstall(acme).await.expect("uninstalling the App");
        let polls = event_source::drain(&stack.moto.sqs, &[(stack.tenant_events_queue(), &stack.tenant_manager)]).await;
        assert!(!polls.is_empty(), "the tenant manager took the tenant's teardown while the launch ran");
    });
    assert!(poll.failed.is_empty(), "the launch's wake-up is never failed: {poll:?}");
    stack.emulator.set_latency(Duration::ZERO);
    stack.drain().await;
    stack.schedule().await;
    stack.drain().await;
    let left: Vec<_> = stack
        .active_instances()
        .await
        .into_iter()
        .filter(|i| i.tags.get(TAG_TENANT_ID) == Some(&acme.0.to_string()))
        .collect();
    assert!(left.is_empty(), "an instance of the uninstalled tenant still runs: {left:?}");
    assert!(live_runners(&stack, acme).await.is_empty(), "no live runner of a deleted tenant");
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_up_killed_mid_launch_loses_no_job_and_leaks_no_slot_or_instance() {
    let stack = Stack::start("atk-kill").await;
    let acme = tenant_with_limit(&stack, "acme", 1).await;
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;
    stack.emulator.set_latency(SLOW_GITHUB);
    let small_queue = stack.tier_queue(SMALL).to_owned();
    let victim = stack.scale_up[SMALL].name.clone();
    let (poll, ()) = tokio::join!(stack.poll(&small_queue), async {
        wait_for("the launch reserved its runner", async || !stack.runners(acme).await.is_empty()).await;
        kill_function(&victim);
    });
    assert!(
        matches!(&poll.answer, Some(Err(InvokeError::Exited(_)))),
        "the killed container never answered: {:?}",
        poll.answer
    );
    stack.emulator.set_latency(Duration::ZERO);

    // Lambda starts new containers; the reconciler's bootstrap timeout is short so the test can see it act.
    let scale_up =
        stack.start_function(&format!("{victim}-b"), &replacement_env(&stack, "scale-up", Some(SMALL))).await;
    let scale_down = stack
        .start_function(&format!("{}-scale-down-b", stack.prefix), &replacement_env(&stack, "scale-down", None))
        .await;
    recover(&stack, acme, job, &scale_up, &scale_down).await;
    assert_eq!(stack.job(job).await.status, JobStatus::Queued, "the job waits for its booting runner");
    assert_eq!(live_runners(&stack, acme).await.len(), 1, "the dead reservation gave its slot back");
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_up_killed_after_ec2_started_the_instance_leaks_nothing_and_the_job_still_runs() {
    let stack = Stack::start("atk-kil2").await;
    let acme = tenant_with_limit(&stack, "acme", 1).await;
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;
    // This container reaches EC2 through a proxy that holds every answer back: RunInstances takes effect, the
    // function does not hear of it before it dies.
    let proxy = SlowProxy::start(&stack.moto.endpoint).await;
    let through_proxy = env_with_config(&stack, "scale-up", Some(SMALL), |config| {
        config["provider"]["ec2"]["endpoint_url"] = json!(proxy.url())
    });
    let victim = stack.start_function(&format!("{}-small-scale-up-v", stack.prefix), &through_proxy).await;
    proxy.set_delay(SLOW_EC2);
    let event = sqs_event("victim", &[dispatch_body(acme.0, SMALL)]);
    let (answer, ()) = tokio::join!(victim.invoke(event, INVOKE_TIMEOUT), async {
        wait_for("EC2 started the instance", async || !stack.active_instances().await.is_empty()).await;
        kill_function(&victim.name);
    });
    assert!(matches!(answer, Err(InvokeError::Exited(_))), "the killed container never answered: {answer:?}");
    let live = live_runners(&stack, acme).await;
    assert!(live.iter().all(|r| r.instance_id.is_none()), "the instance was never recorded: {live:?}");
    proxy.set_delay(Duration::ZERO);

    let scale_up = stack
        .start_function(
            &format!("{}-small-scale-up-b", stack.prefix),
            &replacement_env(&stack, "scale-up", Some(SMALL)),
        )
        .await;
    let scale_down = stack
        .start_function(&format!("{}-scale-down-b", stack.prefix), &replacement_env(&stack, "scale-down", None))
        .await;
    recover(&stack, acme, job, &scale_up, &scale_down).await;
    assert_eq!(live_runners(&stack, acme).await.len(), 1, "one slot, one runner");
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_foreign_and_garbage_messages_fails_only_the_poison_and_still_serves_the_real_job() {
    let stack = Stack::start("atk-sqs").await;
    let acme = stack.install("acme").await;
    stack.drain().await;
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;
    let small_queue = stack.tier_queue(SMALL).to_owned();
    let harmless = [
        dispatch_body(4_242_424_242, SMALL),
        dispatch_body(acme.0, "gpu-not-in-the-catalog"),
        json!({ "v": 1, "work": "dispatch", "tenant": acme.0, "tier": SMALL, "attempt": u32::MAX }).to_string(),
        json!({ "v": 1, "work": "dispatch", "tenant": u64::MAX >> 12 }).to_string(),
    ];
    let poison = [
        json!({ "v": 1, "work": "teardown_tenant", "tenant": acme.0, "cause": "tenant_deleted" }).to_string(),
        format!("{{\"v\":1,\"work\":\"dispatch\",\"pad\":\"{}\"}}", "x".repeat(200 * 1024)),
    ];
    for body in harmless.iter().chain(&poison) {
        stack.moto.send_raw(&small_queue, body).await;
    }
    let poll = stack.poll(&small_queue).await;
    assert_eq!(poll.received.len(), 1 + harmless.len() + poison.len(), "{:?}", poll.received);
    let mut failed: Vec<&str> = poll
        .received
        .iter()
        .zip(&poll.bodies)
        .filter(|(id, _)| poll.failed.contains(id))
        .map(|(_, body)| body.as_str())
        .collect();
    failed.sort();
    let mut expected: Vec<&str> = poison.iter().map(String::as_str).collect();
    expected.sort();
    assert!(failed == expected, "only the poison is failed, got {} failed: {:.200?}", failed.len(), failed);
    let live = live_runners(&stack, acme).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].intended_job, Some(job), "the real job was served in the same batch");

    // A teardown naming another deployment's runner, and a tenant teardown for a tenant nobody knows: done,
    // nothing of this deployment touched.
    let foreign =
        json!({ "v": 1, "work": "teardown_runner", "runner": "ghr-prod-1234-small-7", "cause": "job_completed" });
    stack.moto.send_raw(stack.teardown_queue(), &foreign.to_string()).await;
    let stranger = json!({ "v": 1, "work": "teardown_tenant", "tenant": 4_242_424_242u64, "cause": "tenant_deleted" });
    stack.moto.send_raw(stack.tenant_events_queue(), &stranger.to_string()).await;
    for url in [stack.teardown_queue().to_owned(), stack.tenant_events_queue().to_owned()] {
        let poll = stack.poll(&url).await;
        assert_eq!((poll.received.len(), poll.failed.len()), (1, 0), "{url}: {poll:?}");
    }
    assert_eq!(stack.active_instances().await.len(), 1, "the tenant's instance still runs");
    stack.finish(&BTreeMap::new()).await;
}

/// A hostile request: its name, headers, body and the status it must get.
type HostileCase = (&'static str, Vec<(&'static str, String)>, Vec<u8>, u16);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_webhook_requests_get_their_status_and_write_nothing() {
    let stack = Stack::start("atk-hook").await;
    let secret = webhook_secret(&stack).await;
    let ping = json!({ "zen": "Keep it logically awesome.", "hook_id": 1 });
    let status = |answer: Result<Value, InvokeError>| {
        let answer = answer.expect("the webhook function answers");
        support::apigw::read_answer(&answer).status
    };
    let invoke = |event: Value| stack.webhook.invoke(event, INVOKE_TIMEOUT);

    // A signed delivery whose body API Gateway hands over base64-encoded is the same delivery.
    let signed = SignedDelivery::new("ping", &ping, &secret);
    let plain = status(invoke(webhook_request(&signed.headers(), &signed.body, false)).await);
    let again = SignedDelivery::new("ping", &ping, &secret);
    let encoded = status(invoke(webhook_request(&again.headers(), &again.body, true)).await);
    assert!((200..300).contains(&plain), "a signed ping is accepted: {plain}");
    assert_eq!(encoded, plain, "a base64-encoded body is decoded before the signature is checked");

    let cases: Vec<HostileCase> = {
        let base = SignedDelivery::new("workflow_job", &json!({ "action": "queued" }), &secret);
        let without = |name: &str| base.headers().into_iter().filter(|(k, _)| *k != name).collect::<Vec<_>>();
        let form_body = b"payload=%7B%7D".to_vec();
        let form = SignedDelivery::from_body("workflow_job", form_body.clone(), &secret);
        let form_headers: Vec<(&str, String)> = form
            .headers()
            .into_iter()
            .map(
                |(k, v)| if k == "content-type" { (k, "application/x-www-form-urlencoded".to_owned()) } else { (k, v) },
            )
            .collect();
        let garbage = SignedDelivery::from_body("workflow_job", vec![0xff, 0x00, 0xfe, b'{'], &secret);
        vec![
            ("no signature", without("x-hub-signature-256"), base.body.clone(), 401),
            ("form content type", form_headers, form_body, 415),
            ("no event header", without("x-github-event"), base.body.clone(), 400),
            ("no delivery header", without("x-github-delivery"), base.body.clone(), 400),
            ("binary garbage", garbage.headers(), garbage.body.clone(), 400),
        ]
    };
    for (name, headers, body, expected) in cases {
        for encoded in [false, true] {
            let got = status(invoke(webhook_request(&headers, &body, encoded)).await);
            assert_eq!(got, expected, "{name} (base64: {encoded})");
        }
    }
    for url in stack.tier_queues().into_iter().chain([stack.teardown_queue(), stack.tenant_events_queue()]) {
        assert_eq!(stack.moto.queue_depth(url).await, 0, "nothing was queued on {url}");
    }
    assert!(stack.emulator.installations().is_empty());
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_redelivered_after_the_teardown_start_nothing_and_free_nothing_twice() {
    let stack = Stack::start("atk-redo").await;
    let acme = tenant_with_limit(&stack, "acme", 1).await;
    let job = stack.queue_job(acme, SMALL, Duration::ZERO).await;
    stack.drain().await;
    let active = stack.active_instances().await;
    assert_eq!(active.len(), 1, "{active:?}");
    let runner = stack.boot(&active[0].id).await;
    tokio::time::timeout(Duration::from_secs(20), runner).await.expect("the runner ran").expect("task").expect("run");
    stack.wait_for_message("the completed job's teardown is queued", stack.teardown_queue()).await;
    stack.drain().await;
    assert!(stack.active_instances().await.is_empty());
    assert_eq!(stack.job(job).await.status, JobStatus::Completed);

    // GitHub redelivers every job delivery (queued, in progress, completed), twice, in reverse order.
    let job_deliveries: Vec<u64> = stack
        .emulator
        .deliveries()
        .into_iter()
        .filter(|d| d.event == "workflow_job" && !d.redelivery)
        .map(|d| d.id)
        .collect();
    assert!(job_deliveries.len() >= 2, "{job_deliveries:?}");
    for _ in 0..2 {
        for id in job_deliveries.iter().rev() {
            stack.emulator.redeliver(*id).await.expect("redelivering");
        }
    }
    stack.drain().await;
    stack.schedule().await;
    stack.drain().await;
    assert!(stack.active_instances().await.is_empty(), "a redelivered `queued` started a completed job again");
    assert_eq!(stack.job(job).await.status, JobStatus::Completed);
    assert!(live_runners(&stack, acme).await.is_empty());
    // The slot was freed once: a new job still starts at limit 1.
    stack.queue_job(acme, SMALL, LONG_JOB).await;
    stack.drain().await;
    assert_eq!(stack.active_instances().await.len(), 1, "the tenant's one slot is free");
    stack.finish(&BTreeMap::new()).await;
}

/// GitHub gives up on a webhook delivery after this long and records it failed (no automatic redelivery).
const GITHUB_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the proxy holds SQS's answers back: SQS hangs.
const HUNG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_answers_within_githubs_timeout_while_sqs_hangs() {
    let (stack, proxy, acme, _http) = webhook_through_proxy("atk-hang", "AWS_ENDPOINT_URL_SQS").await;
    proxy.set_delay(HUNG);
    let sent = tokio::time::Instant::now();
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;
    let took = sent.elapsed();
    let delivery = stack.emulator.deliveries().into_iter().last().expect("the queued webhook was sent");
    // Nothing is lost either way: intake committed the job before the wake-up was tried.
    assert_eq!(stack.job(job).await.status, JobStatus::Queued, "the job is in the store");
    assert!(
        took < GITHUB_DELIVERY_TIMEOUT && (200..300).contains(&delivery.status_code),
        "the webhook answered after {took:?} (GitHub gives up after {GITHUB_DELIVERY_TIMEOUT:?}): {delivery:?}"
    );
    proxy.set_delay(Duration::ZERO);
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_answers_within_githubs_timeout_while_dynamodb_hangs() {
    let (stack, proxy, acme, _http) = webhook_through_proxy("atk-hdyn", "AWS_ENDPOINT_URL_DYNAMODB").await;
    proxy.set_delay(HUNG);
    let sent = tokio::time::Instant::now();
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;
    let took = sent.elapsed();
    let delivery = stack.emulator.deliveries().into_iter().last().expect("the queued webhook was sent");
    proxy.set_delay(Duration::ZERO);
    // The store could not take the job: the right answer is an error GitHub records (and a redelivery recovers),
    // given before GitHub gives up.
    assert!(
        took < GITHUB_DELIVERY_TIMEOUT && delivery.status_code >= 500 && delivery.status_code != 502,
        "the webhook answered after {took:?} (GitHub gives up after {GITHUB_DELIVERY_TIMEOUT:?}): {delivery:?}"
    );
    stack.emulator.redeliver(delivery.id).await.expect("redelivering");
    assert_eq!(stack.job(job).await.status, JobStatus::Queued, "the redelivery recorded the job");
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_freed_on_one_tier_starts_the_tenants_job_waiting_on_another_tier_within_seconds() {
    let stack = Stack::start("atk-xtier").await;
    let acme = tenant_with_limit(&stack, "acme", 1).await;
    let first = stack.queue_job(acme, SMALL, Duration::ZERO).await;
    stack.drain().await;
    let waiting = stack.queue_job(acme, MEDIUM, LONG_JOB).await;
    stack.drain().await;
    let active = stack.active_instances().await;
    assert_eq!(active.len(), 1, "{active:?}");
    let runner = stack.boot(&active[0].id).await;
    tokio::time::timeout(Duration::from_secs(20), runner).await.expect("the runner ran").expect("task").expect("run");
    assert_eq!(stack.job(first).await.status, JobStatus::Completed);
    stack.wait_for_message("the completed job's teardown is queued", stack.teardown_queue()).await;
    // No schedule: the teardown that frees the small slot must wake the medium job.
    let freed = tokio::time::Instant::now();
    stack.drain().await;
    let live = live_runners(&stack, acme).await;
    assert!(
        live.iter().any(|r| r.intended_job == Some(waiting) && r.instance_id.is_some()),
        "the medium job did not get the freed slot ({:?} after it freed): {live:?}",
        freed.elapsed()
    );
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_tenant_whose_item_was_deleted_by_hand_waits_in_the_store_with_its_reason() {
    let stack = Stack::start("atk-gone").await;
    let acme = stack.install("acme").await;
    stack.drain().await;
    // `aws dynamodb delete-item --table-name <prefix>-tenants --key '{"installation_id": {"N": "..."}}'`
    stack
        .moto
        .dynamodb
        .delete_item()
        .table_name(stack.tenants_table())
        .key("installation_id", aws_sdk_dynamodb::types::AttributeValue::N(acme.0.to_string()))
        .send()
        .await
        .expect("DeleteItem");
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;
    let delivery = stack.emulator.deliveries().into_iter().last().expect("the queued webhook was sent");
    assert!((200..300).contains(&delivery.status_code), "{delivery:?}");
    stack.drain().await;
    stack.schedule().await;
    stack.drain().await;
    // The job is kept, waiting with its reason, and no runner starts for a tenant ghr no longer has.
    let recorded = stack.job(job).await;
    assert_eq!(
        (recorded.status, recorded.wait_reason),
        (JobStatus::Queued, Some(Reason::UnknownTenant)),
        "{recorded:?}"
    );
    assert!(stack.active_instances().await.is_empty());
    assert!(stack.moto.tenant_item(stack.tenants_table(), acme.0).await.is_none(), "nothing re-created the item");
    stack.finish(&BTreeMap::new()).await;
}

/// An endpoint nothing listens on: every call is refused at once.
const CLOSED_ENDPOINT: &str = "http://127.0.0.1:9";
/// How soon a launch refused by EC2 must be retried successfully once EC2 is back.
const EC2_RETRY_WITHIN: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_refused_by_ec2_keeps_the_job_and_its_wake_up_and_dead_letters_nothing() {
    let stack = Stack::start("atk-ec2").await;
    let acme = tenant_with_limit(&stack, "acme", 1).await;
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;
    let small_queue = stack.tier_queue(SMALL).to_owned();
    let broken = env_with_config(&stack, "scale-up", Some(SMALL), |config| {
        config["provider"]["ec2"]["endpoint_url"] = json!(CLOSED_ENDPOINT)
    });
    let victim = stack.start_function(&format!("{}-small-scale-up-x", stack.prefix), &broken).await;
    let poll = event_source::poll_once(&stack.moto.sqs, &small_queue, &victim).await;
    assert_eq!(poll.received.len(), 1, "{poll:?}");
    assert!(poll.failed.is_empty(), "a refused launch never fails its message: {poll:?}");
    assert_eq!(stack.moto.queue_depth(&small_queue).await, 1, "the wake-up was sent again, delayed");
    assert_eq!(stack.job(job).await.status, JobStatus::Queued);
    assert!(live_runners(&stack, acme).await.is_empty(), "the failed launch gave its slot back");

    // EC2 is back (a container with a working endpoint takes the retry): the job starts.
    let started = tokio::time::Instant::now();
    while !live_runners(&stack, acme).await.iter().any(|r| r.intended_job == Some(job) && r.instance_id.is_some()) {
        assert!(started.elapsed() < EC2_RETRY_WITHIN, "no launch within {EC2_RETRY_WITHIN:?} of EC2's return");
        let poll = stack.poll(&small_queue).await;
        assert!(poll.failed.is_empty(), "a retried wake-up is never failed: {poll:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(stack.active_instances().await.len(), 1);
    stack.finish(&BTreeMap::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_webhook_arriving_after_its_jobs_completed_webhook_starts_nothing() {
    let stack = Stack::start("atk-order").await;
    let acme = stack.install("acme").await;
    stack.drain().await;
    // The `queued` delivery is held back; the job is cancelled, so `completed` reaches ghr first.
    stack.emulator.drop_next_webhooks(1);
    let job = stack.queue_job(acme, SMALL, LONG_JOB).await;
    stack.emulator.cancel_job(job).await.expect("cancelling the job");
    stack.drain().await;
    let queued = stack
        .emulator
        .deliveries()
        .into_iter()
        .find(|d| d.dropped && d.action.as_deref() == Some("queued"))
        .expect("the held-back queued delivery");
    // Now GitHub redelivers the `queued` one, twice.
    for _ in 0..2 {
        let again = stack.emulator.redeliver(queued.id).await.expect("redelivering").expect("a redelivery");
        assert!((200..300).contains(&again.status_code), "{again:?}");
    }
    stack.drain().await;
    stack.schedule().await;
    stack.drain().await;
    assert!(stack.active_instances().await.is_empty(), "a runner was started for a job that had completed");
    assert!(live_runners(&stack, acme).await.is_empty());
    let recorded = stack.job(job).await;
    assert_eq!(recorded.status, JobStatus::Completed, "the late `queued` does not reopen the job: {recorded:?}");
    stack.finish(&BTreeMap::new()).await;
}

/// How long the test watches the tier queue for wake-ups a failed pass sends at once.
const STORM_WATCH: Duration = Duration::from_secs(3);
/// How many more rounds of the mapping the test runs while the store stays down.
const STORM_ROUNDS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_failed_by_an_unreachable_store_sends_only_its_delayed_retry_not_an_immediate_wake_up_too() {
    let stack = Stack::start("atk-storm").await;
    let acme = stack.install("acme").await;
    stack.drain().await;
    let small_queue = stack.tier_queue(SMALL).to_owned();
    let proxy = SlowProxy::start(&stack.moto.endpoint).await;
    let mut env = stack.function_env("scale-up", Some(SMALL));
    env.insert("AWS_ENDPOINT_URL_DYNAMODB".to_owned(), proxy.url());
    let victim = stack.start_function(&format!("{}-small-scale-up-s", stack.prefix), &env).await;
    // A first batch while the store answers (the container's first, full, pass), then DynamoDB goes away.
    let warm = victim.invoke(sqs_event("warm", &[dispatch_body(acme.0, SMALL)]), INVOKE_TIMEOUT).await;
    assert!(failed_ids(&warm.expect("the warm-up batch is answered")).is_empty());
    stack.drain().await;
    proxy.set_refusing(true);

    let answer = victim.invoke(sqs_event("down", &[dispatch_body(acme.0, SMALL)]), INVOKE_TIMEOUT).await;
    let answer = answer.expect("the batch is answered");
    assert!(failed_ids(&answer).is_empty(), "an unreachable store fails no message: {answer}");
    // Expected: one delayed retry of the wake-up (the pass retry delay), nothing visible at once. An
    // immediate wake-up too would be taken at once, fail again and send another pair: a message storm that
    // grows while the store is down.
    let mut immediate = Vec::new();
    let watch = tokio::time::Instant::now();
    while watch.elapsed() < STORM_WATCH {
        immediate.extend(stack.moto.peek(&small_queue).await);
        if !immediate.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let depth = stack.moto.queue_depth(&small_queue).await;
    // Let the mapping run on a few rounds, as Lambda would while the store stays down: the queue grows.
    let mut depths = vec![depth];
    for _ in 0..STORM_ROUNDS {
        event_source::poll_once(&stack.moto.sqs, &small_queue, &victim).await;
        depths.push(stack.moto.queue_depth(&small_queue).await);
    }
    proxy.set_refusing(false);
    assert!(
        immediate.is_empty() && depth == 1,
        "a failed pass sent {depth} messages, {} of them visible at once: {immediate:?}; queue depth after each \
         further round: {depths:?}",
        immediate.len()
    );
    stack.finish(&BTreeMap::new()).await;
}

/// The function timeout of the scale-up container whose store hangs.
const VICTIM_TIMEOUT_SECONDS: u64 = 5;
/// What Lambda would allow beyond it before the invocation counts as timed out (none; a little for the test).
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_up_batch_is_answered_within_the_function_timeout_while_dynamodb_hangs() {
    let stack = Stack::start("atk-slow").await;
    let acme = stack.install("acme").await;
    stack.drain().await;
    let proxy = SlowProxy::start(&stack.moto.endpoint).await;
    let mut env = stack.function_env("scale-up", Some(SMALL));
    env.insert("AWS_ENDPOINT_URL_DYNAMODB".to_owned(), proxy.url());
    env.insert(ghr_lambda::env::ENV_FUNCTION_TIMEOUT.to_owned(), VICTIM_TIMEOUT_SECONDS.to_string());
    let victim = stack.start_function(&format!("{}-small-scale-up-h", stack.prefix), &env).await;
    let warm = victim.invoke(sqs_event("warm", &[dispatch_body(acme.0, SMALL)]), INVOKE_TIMEOUT).await;
    assert!(failed_ids(&warm.expect("the warm-up batch is answered")).is_empty());
    stack.drain().await;

    proxy.set_delay(HUNG);
    // On Lambda an invocation past its timeout fails its whole batch, every receive of it: after
    // maxReceiveCount the tenant's wake-ups are dead-lettered. The function must give up on the store in time
    // and answer with delayed retries instead.
    let limit = Duration::from_secs(VICTIM_TIMEOUT_SECONDS) + DEADLINE_MARGIN;
    let started = tokio::time::Instant::now();
    let answer = victim.invoke(sqs_event("hung", &[dispatch_body(acme.0, SMALL)]), limit).await;
    proxy.set_delay(Duration::ZERO);
    match answer {
        Ok(answer) => assert!(failed_ids(&answer).is_empty(), "a hung store fails no message: {answer}"),
        Err(error) => panic!(
            "the batch got no answer within the function timeout ({VICTIM_TIMEOUT_SECONDS}s) after {:?}: {error}",
            started.elapsed()
        ),
    }
    stack.finish(&BTreeMap::new()).await;
}
