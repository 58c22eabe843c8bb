//! `<prefix>-tenant-manager`: the slow side of installation events. The webhook wrote the tenant's record (created,
//! suspended, uninstalled) before GitHub got its answer; this function terminates the runners of a tenant that was
//! uninstalled (or suspended under `on_suspend = "terminate"`), so the seed's `aws logs tail
//! /aws/lambda/<prefix>-tenant-manager` shows what happened to a tenant's machines.

use super::budget::Budget;
use super::sqs_batch::{self, BatchOutcome};
use crate::wiring::{Cold, EngineParts};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ghr_core::ids::InstallationId;
use ghr_engine::error::ErrorChain;
use ghr_engine::queue::Work;
use ghr_engine::teardown::TeardownCause;
use std::time::Duration;

/// How long a tenant teardown that failed (the store or EC2 unavailable) waits before it is tried again.
pub const TEARDOWN_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Handle one batch of the tenant-events queue, its work over by `budget`.
pub async fn handle(cold: &Cold, parts: &EngineParts, event: SqsEvent, budget: Budget) -> SqsBatchResponse {
    let mut outcome = BatchOutcome::default();
    for received in sqs_batch::read(&event) {
        match received.work {
            Ok(Work::TeardownTenant { tenant, cause }) => match terminate(parts, tenant, cause, budget).await {
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

/// One tenant's teardown within `budget`.
async fn terminate(
    parts: &EngineParts,
    tenant: InstallationId,
    cause: TeardownCause,
    budget: Budget,
) -> Result<usize, String> {
    if budget.spent() {
        return Err("no time left in this invocation".into());
    }
    match tokio::time::timeout_at(budget.until(), parts.teardown.terminate_tenant(tenant, cause)).await {
        Ok(done) => done.map_err(|error| ErrorChain(&error).to_string()),
        Err(_) => Err("it outlived the invocation's budget".into()),
    }
}
