//! `<prefix>-tenant-manager`: the slow side of installation events. The webhook wrote the tenant's record (created,
//! suspended, uninstalled) before GitHub got its answer; this function terminates the runners of a tenant that was
//! uninstalled (or suspended under `on_suspend = "terminate"`), so the seed's `aws logs tail
//! /aws/lambda/<prefix>-tenant-manager` shows what happened to a tenant's machines.

use super::sqs_batch::{self, BatchOutcome};
use crate::wiring::{Cold, EngineParts};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ghr_engine::error::ErrorChain;
use ghr_engine::queue::Work;
use std::time::Duration;

/// How long a tenant teardown that failed (the store or EC2 unavailable) waits before it is tried again.
pub const TEARDOWN_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Handle one batch of the tenant-events queue.
pub async fn handle(cold: &Cold, parts: &EngineParts, event: SqsEvent) -> SqsBatchResponse {
    let mut outcome = BatchOutcome::default();
    for received in sqs_batch::read(&event) {
        match received.work {
            Ok(Work::TeardownTenant { tenant, cause }) => match parts.teardown.terminate_tenant(tenant, cause).await {
                Ok(terminated) => {
                    tracing::info!(installation_id = %tenant, cause = cause.as_str(), terminated, "tenant's runners terminated")
                }
                Err(error) => {
                    tracing::error!(installation_id = %tenant, error = %ErrorChain(&error), "tenant teardown failed: sent again, delayed");
                    let retry = Work::TeardownTenant { tenant, cause };
                    outcome.retry_after(&received.message_id, retry, TEARDOWN_RETRY_DELAY);
                }
            },
            Ok(other) => outcome.poison(&received.message_id, &format!("the tenant-events queue got {other:?}")),
            Err(poison) => outcome.poison(&received.message_id, &poison),
        }
    }
    let also = parts.outbox.take().await;
    outcome.finish(cold.queue.as_ref(), also).await
}
