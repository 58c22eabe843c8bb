//! Helpers of the adversarial tests: SQS events built by hand (to run several containers on one batch each at
//! the same moment), the process of a running function (to kill it mid-invocation), the deployment's secrets
//! read back from SSM, and a function environment with part of its configuration changed.

use crate::slow_proxy::SlowProxy;
use crate::support::REGION;
use crate::support::event_source::{self, INVOKE_TIMEOUT, past_visibility};
use crate::support::function::Function;
use crate::support::stack::{SMALL, Stack};
use ghr_core::ids::{InstallationId, JobId};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// The variable Lambda sets to the function's name; the functions started by one test have unique names.
const FUNCTION_NAME_VAR: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// An SQS event of one record per body, as the event source mapping would build it (message ids `<tag>-<n>`).
pub fn sqs_event(tag: &str, bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(n, body)| {
            json!({ "messageId": format!("{tag}-{n}"), "receiptHandle": format!("{tag}-handle-{n}"), "body": body,
                    "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": REGION })
        })
        .collect();
    json!({ "Records": records })
}

/// The body of a tenant's wake-up on `tier`.
pub fn dispatch_body(tenant: u64, tier: &str) -> String {
    json!({ "v": 1, "work": "dispatch", "tenant": tenant, "tier": tier, "attempt": 0 }).to_string()
}

/// The message ids a partial batch response names.
pub fn failed_ids(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The process id of the function named `name` (started by this test process), found by its environment.
pub fn pid_of_function(name: &str) -> Option<u32> {
    let wanted = format!("{FUNCTION_NAME_VAR}={name}");
    let own = std::process::id();
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
        let parent = status.lines().find_map(|l| l.strip_prefix("PPid:"))?.trim().parse::<u32>().ok()?;
        if parent != own {
            return None;
        }
        let environ = std::fs::read(entry.path().join("environ")).ok()?;
        environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes()).then_some(pid)
    })
}

/// SIGKILL the function's process (as Lambda does at a timeout, or a crash would): no cleanup runs.
pub fn kill_function(name: &str) {
    let pid = pid_of_function(name).unwrap_or_else(|| panic!("no process of function {name}"));
    let status = std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status().expect("running kill");
    assert!(status.success(), "kill -9 {pid} ({name}) failed: {status}");
}

/// The webhook secret the deployment keeps in SSM (the seed's `webhook_secret` output).
pub async fn webhook_secret(stack: &Stack) -> String {
    let name = format!("/{}/github-app/webhook-secret", stack.prefix);
    let output = stack
        .moto
        .ssm
        .get_parameter()
        .name(&name)
        .with_decryption(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetParameter {name}: {}", aws_sdk_ssm::error::DisplayErrorContext(e)));
    output.parameter().and_then(|p| p.value()).expect("the parameter has a value").to_owned()
}

/// The environment of `function` with `change` applied to its `GHR_CONFIG` object.
pub fn env_with_config(
    stack: &Stack,
    function: &str,
    tier: Option<&str>,
    change: impl FnOnce(&mut Value),
) -> BTreeMap<String, String> {
    let mut env = stack.function_env(function, tier);
    let key = ghr_lambda::env::ENV_CONFIG;
    let mut config: Value = serde_json::from_str(&env[key]).expect("GHR_CONFIG is JSON");
    change(&mut config);
    env.insert(key.to_owned(), config.to_string());
    env
}

/// The replacement containers' function timeout.
pub const SHORT_TIMEOUT_SECONDS: u64 = 2;
/// The replacements' `orphan_grace_seconds` and `bootstrap_timeout_seconds`.
pub const SHORT_GRACE_SECONDS: u64 = 3;
/// How long the job of a killed launch may take to get its instance, reconciler included.
pub const RECOVERY_WITHIN: Duration = Duration::from_secs(40);

/// The tenant's live runner records.
pub async fn live_runners(stack: &Stack, tenant: InstallationId) -> Vec<ghr_core::runner::Runner> {
    stack.runners(tenant).await.into_iter().filter(|r| r.state.is_live()).collect()
}

/// The environment of a replacement container: a short function timeout, so that its reconciler may release a
/// dead launch's reservation soon (`orphan_grace_seconds` and `bootstrap_timeout_seconds` must be longer).
pub fn replacement_env(stack: &Stack, function: &str, tier: Option<&str>) -> BTreeMap<String, String> {
    let mut env = env_with_config(stack, function, tier, |config| {
        config["reconciler"] =
            json!({ "bootstrap_timeout_seconds": SHORT_GRACE_SECONDS, "orphan_grace_seconds": SHORT_GRACE_SECONDS })
    });
    env.insert(ghr_lambda::env::ENV_FUNCTION_TIMEOUT.to_owned(), SHORT_TIMEOUT_SECONDS.to_string());
    env
}

/// Run the replacement containers (mappings, then the schedule) until the job has a recorded instance and that
/// instance is the only one running; fail after [`RECOVERY_WITHIN`].
pub async fn recover(stack: &Stack, tenant: InstallationId, job: JobId, scale_up: &Function, scale_down: &Function) {
    let mappings = [
        (stack.tier_queue(SMALL), scale_up),
        (stack.teardown_queue(), scale_down),
        (stack.tenant_events_queue(), &stack.tenant_manager),
    ];
    let started = tokio::time::Instant::now();
    loop {
        past_visibility().await;
        let polls = event_source::drain(&stack.moto.sqs, &mappings).await;
        assert!(event_source::failed_ids(&polls).is_empty(), "a live container failed a message: {polls:?}");
        let answer = scale_down
            .invoke(event_source::scheduled_event("attack-schedule"), INVOKE_TIMEOUT)
            .await
            .expect("the scheduled pass answers");
        event_source::drain(&stack.moto.sqs, &mappings).await;
        let live = live_runners(stack, tenant).await;
        let active = stack.active_instances().await;
        let recorded = live.iter().find(|r| r.intended_job == Some(job)).and_then(|r| r.instance_id.clone());
        if let Some(instance) = &recorded
            && active.len() == 1
            && active[0].id == instance.to_string()
        {
            return;
        }
        assert!(
            started.elapsed() < RECOVERY_WITHIN,
            "no single recorded instance for the job within {RECOVERY_WITHIN:?}: live runners {live:?}, instances \
             {active:?}, last schedule {answer}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The payload 2.0 event of a webhook request, its body base64-encoded when `encoded`.
pub fn webhook_request(headers: &[(&str, String)], body: &[u8], encoded: bool) -> Value {
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    let mut event = crate::support::apigw::webhook_event(&headers, body);
    if encoded {
        use base64::Engine as _;
        event["body"] = Value::from(base64::engine::general_purpose::STANDARD.encode(body));
        event["isBase64Encoded"] = Value::from(true);
    }
    event
}

/// A deployment whose webhook function reaches `service` (`AWS_ENDPOINT_URL_<SERVICE>`) through a proxy that
/// will hang; GitHub delivers to it. Returns the stack, the proxy, the tenant, and keeps the function alive.
pub async fn webhook_through_proxy(
    name: &str,
    service_endpoint_var: &str,
) -> (Stack, SlowProxy, InstallationId, crate::support::apigw::HttpApi) {
    let stack = Stack::start(name).await;
    let proxy = SlowProxy::start(&stack.moto.endpoint).await;
    let mut env = stack.function_env("webhook", None);
    env.insert(service_endpoint_var.to_owned(), proxy.url());
    let webhook = std::sync::Arc::new(stack.start_function(&format!("{}-webhook-proxied", stack.prefix), &env).await);
    let http = crate::support::apigw::HttpApi::start(webhook).await;
    stack.emulator.set_webhook_target(http.webhook_url(), webhook_secret(&stack).await);
    let acme = stack.install("acme").await;
    stack.drain().await;
    (stack, proxy, acme, http)
}
