//! Test support on the moto emulator: SQS and SSM clients, and the queues the Terraform module creates (each
//! with its dead-letter queue and redrive policy), for the end-to-end tests and the bench.
//!
//! `GHR_TEST_MOTO_ENDPOINT` names the emulator (`eval "$(scripts/moto.sh start)"` starts it and exports it with
//! throwaway credentials and a region). Without it the tests fail, saying so; they never skip.

use crate::env::QueueUrls;
use aws_config::BehaviorVersion;
use aws_sdk_sqs::types::QueueAttributeName;
use ghr_core::ids::TierName;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The environment variable naming the emulator's endpoint.
pub const ENDPOINT_ENV: &str = "GHR_TEST_MOTO_ENDPOINT";
/// The suffix of a queue's dead-letter queue.
pub const DLQ_SUFFIX: &str = "-dlq";
/// How long a dead-letter queue keeps a message (SQS's maximum, 14 days, as the module sets it).
pub const DLQ_RETENTION_SECONDS: u32 = 1_209_600;

/// The queues [`create_queues`] made.
#[derive(Debug, Clone)]
pub struct TestQueues {
    /// What the functions' environment would name (the default tier is the first tier given).
    pub urls: QueueUrls,
    /// Queue name → the URL of its dead-letter queue.
    pub dlqs: BTreeMap<String, String>,
}

/// The emulator's endpoint, or a panic that says how to start one.
pub fn moto_endpoint() -> String {
    std::env::var(ENDPOINT_ENV).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| {
        panic!(
            "{ENDPOINT_ENV} is not set: these tests need the moto emulator. Run scripts/test.sh, or \
             `eval \"$(scripts/moto.sh start)\"` in the same shell first (it exports {ENDPOINT_ENV}, credentials \
             and a region)"
        )
    })
}

/// The SDK configuration for the emulator at `endpoint`: region and credentials from the environment
/// `scripts/moto.sh start` exports.
async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    let config = aws_config::defaults(BehaviorVersion::latest()).endpoint_url(endpoint).load().await;
    if config.region().is_none() {
        panic!("no AWS region in the environment: `eval \"$(scripts/moto.sh start)\"` exports AWS_REGION for moto");
    }
    config
}

/// An SQS client on the emulator at `endpoint`, with the functions' timeouts.
pub async fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    crate::sqs::client(&sdk_config(endpoint).await)
}

/// An SSM client on the emulator at `endpoint`, with the functions' timeouts.
pub async fn ssm_client(endpoint: &str) -> aws_sdk_ssm::Client {
    crate::secrets::client(&sdk_config(endpoint).await)
}

/// A name prefix no other test (in this or another process) uses; short enough for SQS's 80-character names.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("t{}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), nanos % 1_000_000_000)
}

/// Create, as the Terraform module does, `<prefix>-<tier>-builds` for each tier, `<prefix>-teardown` and
/// `<prefix>-tenant-events`, each with a `<name>-dlq` and a redrive policy moving a message there after
/// `max_receive_count` receives, and `visibility_timeout`. Panics (naming the queue) when the emulator refuses.
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
    tiers: &[&str],
    max_receive_count: u32,
    visibility_timeout: Duration,
) -> TestQueues {
    let default_tier = tiers.first().unwrap_or_else(|| panic!("create_queues needs at least one tier"));
    let mut dlqs = BTreeMap::new();
    let mut tier_urls = BTreeMap::new();
    for tier in tiers {
        let name = format!("{prefix}-{tier}-builds");
        let (url, dlq) = queue_with_dlq(sqs, &name, max_receive_count, visibility_timeout).await;
        tier_urls.insert(TierName::from(*tier), url);
        dlqs.insert(name, dlq);
    }
    let mut single = |name: String, url_dlq: (String, String)| {
        dlqs.insert(name, url_dlq.1);
        url_dlq.0
    };
    let teardown_name = format!("{prefix}-teardown");
    let teardown =
        single(teardown_name.clone(), queue_with_dlq(sqs, &teardown_name, max_receive_count, visibility_timeout).await);
    let events_name = format!("{prefix}-tenant-events");
    let tenant_events =
        single(events_name.clone(), queue_with_dlq(sqs, &events_name, max_receive_count, visibility_timeout).await);
    let urls = QueueUrls { tiers: tier_urls, default_tier: TierName::from(*default_tier), teardown, tenant_events };
    TestQueues { urls, dlqs }
}

/// The queue `name` and its dead-letter queue: their URLs.
async fn queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout: Duration,
) -> (String, String) {
    let dlq_name = format!("{name}{DLQ_SUFFIX}");
    let dlq_url = create_queue(
        sqs,
        &dlq_name,
        [(QueueAttributeName::MessageRetentionPeriod, DLQ_RETENTION_SECONDS.to_string())].into(),
    )
    .await;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("reading the ARN of {dlq_name}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
    let dlq_arn = attributes
        .attributes
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_else(|| panic!("{dlq_name} has no QueueArn attribute"));
    let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count });
    let url = create_queue(
        sqs,
        name,
        [
            (QueueAttributeName::VisibilityTimeout, visibility_timeout.as_secs().to_string()),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ]
        .into(),
    )
    .await;
    (url, dlq_url)
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: BTreeMap<QueueAttributeName, String>,
) -> String {
    let output = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.into_iter().collect()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating queue {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
    output.queue_url.unwrap_or_else(|| panic!("creating queue {name}: no URL in the answer"))
}
