//! Helpers of the adversarial tests: SQS events built by hand (to run several containers on one batch each at
//! the same moment), the process of a running function (to kill it mid-invocation), the deployment's secrets
//! read back from SSM, and a function environment with part of its configuration changed.

use crate::support::REGION;
use crate::support::stack::Stack;
use serde_json::{Value, json};
use std::collections::BTreeMap;

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
