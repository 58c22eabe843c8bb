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
use super::sqs_batch::{self, BatchOutcome};
use crate::wiring::{Cold, EngineParts};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ghr_core::ids::RunnerName;
use ghr_core::ports::{LeaseRequest, RECONCILER_LEASE};
use ghr_engine::error::ErrorChain;
use ghr_engine::queue::Work;
use ghr_engine::teardown::TeardownCause;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long a runner teardown that failed (the store or EC2 unavailable) waits before it is tried again.
pub const TEARDOWN_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Handle one batch of the teardown queue, its work over by `budget`.
pub async fn handle_batch(cold: &Cold, parts: &EngineParts, event: SqsEvent, budget: Budget) -> SqsBatchResponse {
    let mut outcome = BatchOutcome::default();
    for received in sqs_batch::read(&event) {
        match received.work {
            Ok(Work::TeardownRunner { runner, cause }) => match terminate(parts, &runner, cause, budget).await {
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

/// One runner's teardown within `budget`.
async fn terminate(
    parts: &EngineParts,
    runner: &RunnerName,
    cause: TeardownCause,
    budget: Budget,
) -> Result<bool, String> {
    if budget.spent() {
        return Err("no time left in this invocation".into());
    }
    match tokio::time::timeout_at(budget.until(), parts.teardown.terminate_runner(runner, cause)).await {
        Ok(done) => done.map_err(|error| ErrorChain(&error).to_string()),
        Err(_) => Err("it outlived the invocation's budget".into()),
    }
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
            let pass = tokio::time::timeout_at(budget.until(), parts.reconciler.pass(now)).await;
            if let Err(error) = parts.ports.store.lease_release(RECONCILER_LEASE, &holder).await {
                tracing::warn!(error = %error, "could not give the reconciler lease back; it runs out by itself");
            }
            match pass {
                Ok(report) => {
                    tracing::info!(?report, "reconciler pass");
                    json!({ "ran": true, "errors": report.errors.len(), "report": format!("{report:?}") })
                }
                Err(_) => {
                    // Every rule is safe to run again: the next schedule starts over.
                    tracing::error!("the reconciler pass outlived the invocation's budget and was abandoned");
                    json!({ "ran": false, "error": "abandoned: it outlived the invocation's budget" })
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
    let step = tokio::time::timeout_at(budget.until(), scale_up::dispatch(parts, &cold.settings, &BTreeMap::new()))
        .await
        .unwrap_or_else(|_| Err("the pass outlived the invocation's budget".into()));
    let dispatch = match step {
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
            // The failed pass put its marks back: the next schedule covers them, so they are not sent.
            let also =
                parts.outbox.take().await.into_iter().filter(|work| !matches!(work, Work::Dispatch { .. })).collect();
            send_outbox(cold, also).await;
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
