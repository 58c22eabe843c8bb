//! The deployment's SQS queues as the Terraform module creates them: `<prefix>-<tier>-builds` per tier,
//! `<prefix>-teardown` and `<prefix>-tenant-events`, each with a `<name>-dlq` and a redrive policy, the
//! visibility timeout the function timeout plus 30 s.

use std::collections::BTreeMap;
use std::time::Duration;

/// The seed's `maxReceiveCount`.
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// The visibility timeout is the function timeout plus this.
const VISIBILITY_MARGIN: Duration = Duration::from_secs(30);

/// The queue URLs of one deployment.
#[derive(Debug, Clone)]
pub struct TestQueues {
    /// Tier name → builds queue URL.
    pub tiers: BTreeMap<String, String>,
    pub teardown: String,
    pub tenant_events: String,
    /// Queue URL → its dead-letter queue's URL.
    pub dlqs: BTreeMap<String, String>,
}

impl TestQueues {
    /// Every dead-letter queue's URL.
    pub fn dead_letter_queues(&self) -> Vec<String> {
        self.dlqs.values().cloned().collect()
    }

    /// The dead-letter queue of the queue at `url`.
    pub fn dlq_of(&self, url: &str) -> &str {
        self.dlqs.get(url).unwrap_or_else(|| panic!("no dead-letter queue for {url}"))
    }
}

/// Why a queue could not be created.
#[derive(Debug, thiserror::Error)]
#[error("queue {name}: {message}")]
pub struct QueueSetupError {
    name: String,
    message: String,
}

/// Create the queues of `prefix` for `tiers`, for functions whose timeout is `timeout`.
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
    tiers: &[String],
    timeout: Duration,
) -> Result<TestQueues, QueueSetupError> {
    let visibility = (timeout + VISIBILITY_MARGIN).as_secs().to_string();
    let mut dlqs = BTreeMap::new();
    let mut create = async |name: String| -> Result<String, QueueSetupError> {
        let fail = |message: String| QueueSetupError { name: name.clone(), message };
        let dlq_name = format!("{name}-dlq");
        let dlq = sqs
            .create_queue()
            .queue_name(&dlq_name)
            .send()
            .await
            .map_err(|e| fail(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        let dlq_url = dlq.queue_url().ok_or_else(|| fail("no URL for the DLQ".into()))?.to_owned();
        let arn = super::event_source::queue_arn(&dlq_url);
        let redrive = serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVE_COUNT });
        let queue = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, visibility.clone())
            .attributes(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .map_err(|e| fail(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        let url = queue.queue_url().ok_or_else(|| fail("no URL".into()))?.to_owned();
        dlqs.insert(url.clone(), dlq_url);
        Ok(url)
    };
    let mut tier_urls = BTreeMap::new();
    for tier in tiers {
        tier_urls.insert(tier.clone(), create(format!("{prefix}-{tier}-builds")).await?);
    }
    let teardown = create(format!("{prefix}-teardown")).await?;
    let tenant_events = create(format!("{prefix}-tenant-events")).await?;
    Ok(TestQueues { tiers: tier_urls, teardown, tenant_events, dlqs })
}
