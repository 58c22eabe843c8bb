//! `<prefix>-tenant-manager`: the slow side of installation events. The webhook wrote the tenant's record (created,
//! suspended, uninstalled) before GitHub got its answer; this function terminates the runners of a tenant that was
//! uninstalled (or suspended under `on_suspend = "terminate"`), so the seed's `aws logs tail
//! /aws/lambda/<prefix>-tenant-manager` shows what happened to a tenant's machines.

use super::budget::Budget;
use super::sqs_batch::{self, BatchOutcome, TEARDOWN_RETRY_DELAY};
use crate::wiring::{Cold, EngineParts};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ghr_engine::error::ErrorChain;
use ghr_engine::queue::Work;

/// Handle one batch of the tenant-events queue, its work over by `budget`.
pub async fn handle(cold: &Cold, parts: &EngineParts, event: SqsEvent, budget: Budget) -> SqsBatchResponse {
    let mut outcome = BatchOutcome::default();
    for received in sqs_batch::read(&event) {
        match received.work {
            Ok(Work::TeardownTenant { tenant, cause }) => match budget
                .run(async {
                    parts.teardown.terminate_tenant(tenant, cause).await.map_err(|e| ErrorChain(&e).to_string())
                })
                .await
            {
                Ok(terminated) => {
                    tracing::info!(installation_id = %tenant, cause = cause.as_str(), terminated, "tenant's runners terminated")
                }
                Err(error) => {
                    tracing::error!(installation_id = %tenant, %error, "tenant teardown failed: sent again, delayed");
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
