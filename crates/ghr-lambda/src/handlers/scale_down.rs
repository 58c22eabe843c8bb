//! `<prefix>-scale-down`: runner teardowns from the `<prefix>-teardown` queue, and on its schedule the
//! reconciler's pass plus a full dispatch pass.
//!
//! A teardown frees the runner's slot once its instance is gone, which marks the tenant: the wake-up leaves
//! through the outbox to a tier queue, so the tenant's next waiting job starts within seconds of the slot
//! freeing. The scheduled pass is `ghr serve`'s reconciler (orphans, timeouts, missed webhooks, the recovery
//! poll, retention, counter repair), run under the store's lease so that overlapping schedules never run two
//! passes; the full dispatch pass after it is the backstop for any wake-up that was lost.

use super::budget::Budget;
use super::scale_up;
use super::sqs_batch::{self, BatchOutcome, TEARDOWN_RETRY_DELAY};
use crate::wiring::{Cold, EngineParts};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ghr_core::ports::{LeaseRequest, RECONCILER_LEASE};
use ghr_engine::error::ErrorChain;
use ghr_engine::queue::Work;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Handle one batch of the teardown queue, its work over by `budget`.
pub async fn handle_batch(cold: &Cold, parts: &EngineParts, event: SqsEvent, budget: Budget) -> SqsBatchResponse {
    let mut outcome = BatchOutcome::default();
    for received in sqs_batch::read(&event) {
        match received.work {
            Ok(Work::TeardownRunner { runner, cause }) => match budget
                .run(async {
                    parts.teardown.terminate_runner(&runner, cause).await.map_err(|e| ErrorChain(&e).to_string())
                })
                .await
            {
                Ok(done) => {
                    tracing::info!(runner = %runner, cause = cause.as_str(), terminated = done, "runner teardown")
                }
                Err(error) => {
                    tracing::error!(runner = %runner, %error, "runner teardown failed: sent again, delayed");
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

/// The scheduled pass: the reconciler under the lease, then a full dispatch pass, both over by `budget`. Answers
/// what it did.
pub async fn scheduled(cold: &Cold, parts: &EngineParts, budget: Budget) -> Value {
    let now = parts.ports.clock.now();
    let holder = cold.settings.replica_id.clone();
    let request =
        LeaseRequest { name: RECONCILER_LEASE.to_owned(), holder: holder.clone(), ttl: cold.env.timeout, now };
    let reconciler = match parts.ports.store.lease_acquire(request).await {
        Ok(lease) if lease.held_by(&holder) => {
            let pass = budget.run(async { Ok(parts.reconciler.pass(now).await) }).await;
            if let Err(error) = parts.ports.store.lease_release(RECONCILER_LEASE, &holder).await {
                tracing::warn!(error = %error, "could not give the reconciler lease back; it runs out by itself");
            }
            match pass {
                Ok(report) => {
                    tracing::info!(?report, "reconciler pass");
                    json!({ "ran": true, "errors": report.errors.len(), "report": format!("{report:?}") })
                }
                Err(why) => {
                    // Every rule is safe to run again: the next schedule starts over.
                    tracing::error!(%why, "the reconciler pass was abandoned");
                    json!({ "ran": false, "error": format!("abandoned: {why}") })
                }
            }
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
    let step = budget.run(scale_up::dispatch(parts, &cold.settings, &BTreeMap::new())).await;
    let dispatch = match step {
        Ok(step) => {
            for (work, delay) in step.retries.values() {
                if let Err(error) = cold.queue.send(vec![work.clone()], *delay).await {
                    tracing::error!(error = %error, "a launch retry could not be queued; the next scheduled pass covers it");
                }
            }
            let also = step.without_retried(parts.outbox.take().await);
            send_outbox(cold, also).await;
            json!({ "reserved": step.report.reserved, "covered": step.report.covered, "waiting": step.report.waiting.values().sum::<usize>() })
        }
        Err(error) => {
            tracing::error!(%error, "the scheduled dispatch pass failed; the next one retries");
            // The failed pass put its marks back: the next schedule covers them, so they are not sent.
            send_outbox(cold, scale_up::teardowns_only(parts.outbox.take().await)).await;
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
