//! The work queue over SQS: one queue per tier (`<prefix>-<tier>-builds`) for dispatch wake-ups, one for runner
//! teardowns (`<prefix>-teardown`) and one for tenant teardowns (`<prefix>-tenant-events`), each with a
//! dead-letter queue for poison messages.

use crate::env::QueueUrls;
use async_trait::async_trait;
use ghr_engine::queue::{QueueError, Work, WorkQueue};

/// The longest delay SQS allows on a message (`DelaySeconds`); longer backoffs are capped to it.
pub const MAX_DELAY_SECONDS: u64 = 900;

/// [`WorkQueue`] over SQS.
#[derive(Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    urls: QueueUrls,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, urls: QueueUrls) -> Self {
        Self { client, urls }
    }

    /// The queue URL an item goes to: a dispatch to its tier's queue (the default tier's when it names none or
    /// a tier without a queue), a runner teardown to the teardown queue, a tenant teardown to the tenant-events
    /// queue.
    pub fn route(&self, work: &Work) -> &str {
        let _ = (work, &self.client);
        unimplemented!("H1")
    }
}

#[async_trait]
impl WorkQueue for SqsQueue {
    async fn send(&self, work: Vec<Work>, delay: std::time::Duration) -> Result<(), QueueError> {
        let _ = (work, delay);
        unimplemented!("H1")
    }
}
