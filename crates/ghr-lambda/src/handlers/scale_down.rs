//! `<prefix>-scale-down`: runner teardowns from the `<prefix>-teardown` queue, and on its schedule the
//! reconciler's pass plus a full dispatch pass.
//!
//! A teardown frees the runner's slot once its instance is gone, which marks the tenant: the wake-up leaves
//! through the outbox to a tier queue, so the tenant's next waiting job starts within seconds of the slot
//! freeing. The scheduled pass is `ghr serve`'s reconciler (orphans, timeouts, missed webhooks, the recovery
//! poll, retention, counter repair), run under the store's lease so that overlapping schedules never run two
//! passes; the full dispatch pass after it is the backstop for any wake-up that was lost.

use super::scale_up;
use super::sqs_batch::{self, BatchOutcome};
use crate::wiring::{Cold, EngineParts};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ghr_core::ports::{LeaseRequest, RECONCILER_LEASE};
use ghr_engine::error::ErrorChain;
use ghr_engine::queue::Work;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long a runner teardown that failed (the store or EC2 unavailable) waits before it is tried again.
pub const TEARDOWN_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Handle one batch of the teardown queue.
pub async fn handle_batch(cold: &Cold, parts: &EngineParts, event: SqsEvent) -> SqsBatchResponse {
    let mut outcome = BatchOutcome::default();
    for received in sqs_batch::read(&event) {
        match received.work {
            Ok(Work::TeardownRunner { runner, cause }) => match parts.teardown.terminate_runner(&runner, cause).await {
                Ok(done) => {
                    tracing::info!(runner = %runner, cause = cause.as_str(), terminated = done, "runner teardown")
                }
                Err(error) => {
                    tracing::error!(runner = %runner, error = %ErrorChain(&error), "runner teardown failed: sent again, delayed");
                    outcome.retry_after(
                        &received.message_id,
                        Work::TeardownRunner { runner, cause },
                        TEARDOWN_RETRY_DELAY,
                    );
                }
            },
            Ok(other) => outcome.poison(&received.message_id, &format!("the teardown queue got {other:?}")),
            Err(poison) => outcome.poison(&received.message_id, &poison),
        }
    }
    let also = parts.outbox.take().await;
    outcome.finish(cold.queue.as_ref(), also).await
}

/// The scheduled pass: the reconciler under the lease, then a full dispatch pass. Answers what it did.
pub async fn scheduled(cold: &Cold, parts: &EngineParts) -> Value {
    let now = parts.ports.clock.now();
    let holder = cold.settings.replica_id.clone();
    let request =
        LeaseRequest { name: RECONCILER_LEASE.to_owned(), holder: holder.clone(), ttl: cold.env.timeout, now };
    let reconciler = match parts.ports.store.lease_acquire(request).await {
        Ok(lease) if lease.held_by(&holder) => {
            let report = parts.reconciler.pass(now).await;
            if let Err(error) = parts.ports.store.lease_release(RECONCILER_LEASE, &holder).await {
                tracing::warn!(error = %error, "could not give the reconciler lease back; it runs out by itself");
            }
            tracing::info!(?report, "reconciler pass");
            json!({ "ran": true, "errors": report.errors.len(), "report": format!("{report:?}") })
        }
        Ok(lease) => {
            tracing::info!(holder = %lease.holder, "another reconciler pass is under way; this one is skipped");
            json!({ "ran": false, "holder": lease.holder })
        }
        Err(error) => {
            tracing::error!(error = %ErrorChain(&error), "the reconciler lease could not be read; the pass is skipped");
            json!({ "ran": false, "error": ErrorChain(&error).to_string() })
        }
    };
    parts.wake.notify_one();
    let dispatch = match scale_up::dispatch(parts, &cold.settings, &BTreeMap::new()).await {
        Ok(step) => {
            let retried: BTreeSet<_> = step
                .retries
                .iter()
                .filter_map(|(work, _)| if let Work::Dispatch { tenant, .. } = work { *tenant } else { None })
                .collect();
            for (work, delay) in &step.retries {
                if let Err(error) = cold.queue.send(vec![work.clone()], *delay).await {
                    tracing::error!(error = %error, "a launch retry could not be queued; the next scheduled pass covers it");
                }
            }
            let also = scale_up::without_retried(parts.outbox.take().await, &retried);
            send_outbox(cold, also).await;
            json!({ "reserved": step.report.reserved, "covered": step.report.covered, "waiting": step.report.waiting.values().sum::<usize>() })
        }
        Err(error) => {
            tracing::error!(%error, "the scheduled dispatch pass failed; the next one retries");
            send_outbox(cold, parts.outbox.take().await).await;
            json!({ "error": error })
        }
    };
    json!({ "reconciler": reconciler, "dispatch": dispatch })
}

async fn send_outbox(cold: &Cold, work: Vec<Work>) {
    if !work.is_empty()
        && let Err(error) = cold.queue.send(work, Duration::ZERO).await
    {
        tracing::error!(error = %error, "work for other functions could not be queued; the next scheduled pass covers it");
    }
}
