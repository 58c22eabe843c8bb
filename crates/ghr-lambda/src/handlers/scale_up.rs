//! `<prefix>-<tier>-scale-up`: a batch from the tier's queue becomes one dispatch pass over the tenants its
//! messages name, and the launches that pass reserved, run to their end inside the invocation.
//!
//! The store's atomic reservation decides every limit, so scale-up functions of every tier and every container
//! may run at once. A tenant at its limit leaves its jobs waiting in the store with their reason and the
//! message is acknowledged: the job starts when a slot frees (the teardown that frees it sends the tenant's
//! wake-up), never by a retried message, and never from a dead-letter queue. A launch that fails (no capacity,
//! GitHub refusing the JIT config) re-sends the tenant's wake-up delayed by the launch backoff.

use super::budget::Budget;
use super::sqs_batch::{self, BatchOutcome};
use crate::wiring::{Cold, EngineParts};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ghr_core::ids::{InstallationId, TierName};
use ghr_core::planner::backoff_delay;
use ghr_engine::dispatcher::PassReport;
use ghr_engine::error::ErrorChain;
use ghr_engine::launch::LaunchOutcome;
use ghr_engine::queue::Work;
use ghr_engine::settings::EngineSettings;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a batch waits before its work is tried again when the pass itself failed (the store or GitHub
/// unavailable): the first launch backoff, at least.
pub const PASS_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Handle one batch of the tier queue, its work over by `budget`.
pub async fn handle(cold: &Cold, parts: &EngineParts, event: SqsEvent, budget: Budget) -> SqsBatchResponse {
    let mut outcome = BatchOutcome::default();
    let mut asked: Vec<(String, Option<InstallationId>, Option<TierName>, u32)> = Vec::new();
    for received in sqs_batch::read(&event) {
        match received.work {
            Ok(Work::Dispatch { tenant, tier, attempt, .. }) => {
                asked.push((received.message_id, tenant, tier, attempt))
            }
            Ok(other) => outcome.poison(&received.message_id, &format!("a scale-up queue got {other:?}")),
            Err(poison) => outcome.poison(&received.message_id, &poison),
        }
    }
    if asked.is_empty() {
        let also = parts.outbox.take().await;
        return outcome.finish(cold.queue.as_ref(), also).await;
    }
    let wake = &parts.wake;
    for (_, tenant, tier, _) in &asked {
        match (tenant, tier) {
            (Some(id), Some(tier)) => wake.tenant_tier(*id, tier.clone()),
            (Some(id), None) => wake.tenant(*id),
            (None, _) => wake.notify_one(),
        }
    }
    let attempts: BTreeMap<Option<InstallationId>, u32> =
        asked.iter().fold(BTreeMap::new(), |mut attempts, (_, tenant, _, attempt)| {
            let entry = attempts.entry(*tenant).or_insert(0);
            *entry = (*entry).max(*attempt);
            attempts
        });
    match budget.run(dispatch(parts, &cold.settings, &attempts)).await {
        Ok(step) => {
            tracing::info!(reserved = step.report.reserved, covered = step.report.covered, waiting = ?step.report.waiting, retries = step.retries.len(), "scale-up pass");
            let also = step.without_retried(parts.outbox.take().await);
            // Launch retries ride on the first message that named their tenant (or the first of the batch).
            for (tenant, (work, delay)) in step.retries {
                let carrier = asked.iter().find(|(_, t, ..)| *t == Some(tenant)).unwrap_or(&asked[0]);
                outcome.retry_after(&carrier.0, work, delay);
            }
            outcome.finish(cold.queue.as_ref(), also).await
        }
        Err(error) => {
            tracing::error!(error = %error, "scale-up pass failed: the batch's wake-ups are sent again, delayed");
            for (message_id, tenant, tier, attempt) in asked {
                let delay =
                    PASS_RETRY_DELAY.max(backoff_delay(cold.settings.retry_base, cold.settings.retry_max, attempt + 1));
                outcome.retry_after(&message_id, Work::Dispatch { tenant, tier, attempt: attempt + 1 }, delay);
            }
            // A failed pass puts its tenants' marks back; the delayed retries above stand for them.
            outcome.finish(cold.queue.as_ref(), teardowns_only(parts.outbox.take().await)).await
        }
    }
}

/// What a dispatch step did: the pass's report and the delayed wake-ups of tenants whose launch failed.
pub struct DispatchStep {
    pub report: PassReport,
    /// By tenant: the wake-up and its delay (the launch backoff).
    pub retries: BTreeMap<InstallationId, (Work, Duration)>,
}

impl DispatchStep {
    /// The outbox without the immediate wake-ups of tenants whose delayed retry this step queues (a failed launch
    /// marks its tenant; the retry carries the backoff instead).
    pub fn without_retried(&self, outbox: Vec<Work>) -> Vec<Work> {
        outbox
            .into_iter()
            .filter(|item| !matches!(item, Work::Dispatch { tenant: Some(id), .. } if self.retries.contains_key(id)))
            .collect()
    }
}

/// The outbox of a failed pass: only its teardowns. The pass put its tenants' marks back, and the retry (or the
/// next schedule) stands for them.
pub fn teardowns_only(outbox: Vec<Work>) -> Vec<Work> {
    outbox.into_iter().filter(|work| !matches!(work, Work::Dispatch { .. })).collect()
}

/// One dispatch pass over what is marked on the dispatcher's wake-up (everything on a container's first pass),
/// then every launch it reserved, at most `max_parallel_launches` at once. `attempts` carries the launch
/// failures behind the wake-ups of each tenant, so a backoff keeps growing across containers.
pub async fn dispatch(
    parts: &EngineParts,
    settings: &EngineSettings,
    attempts: &BTreeMap<Option<InstallationId>, u32>,
) -> Result<DispatchStep, String> {
    let (report, launches) = parts.dispatcher.pass_collecting().await.map_err(|e| ErrorChain(&e).to_string())?;
    let launcher = parts.dispatcher.launcher();
    let mut retries: BTreeMap<InstallationId, (Work, Duration)> = BTreeMap::new();
    let mut pending = launches.into_iter();
    loop {
        let wave: Vec<_> = pending.by_ref().take(settings.max_parallel_launches.max(1)).collect();
        if wave.is_empty() {
            break;
        }
        let outcomes = futures::future::join_all(wave.into_iter().map(|launch| {
            let launcher = &launcher;
            async move {
                let runner = launch.runner.clone();
                let outcome = launcher.launch(launch).await;
                (runner, outcome)
            }
        }))
        .await;
        for (runner, outcome) in outcomes {
            let Some(delay) = parts.dispatcher.launch_finished(&runner, &outcome) else { continue };
            let LaunchOutcome::Failed(reason) = outcome else { continue };
            let tenant = runner.installation_id;
            let attempt = attempts.get(&Some(tenant)).copied().unwrap_or(0) + 1;
            let delay = delay.max(backoff_delay(settings.retry_base, settings.retry_max, attempt));
            tracing::warn!(runner = %runner.name, reason = reason.code(), attempt, ?delay, "launch failed: the tenant's wake-up is sent again, delayed");
            retries.insert(
                tenant,
                (Work::Dispatch { tenant: Some(tenant), tier: Some(runner.tier.clone()), attempt }, delay),
            );
        }
    }
    Ok(DispatchStep { report, retries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_with_a_delayed_retry_gets_no_immediate_wake_up_too() {
        let outbox = vec![
            Work::dispatch(InstallationId(1), None),
            Work::dispatch(InstallationId(2), Some(TierName::from("small"))),
            Work::Dispatch { tenant: None, tier: None, attempt: 0 },
        ];
        let retry = (Work::dispatch(InstallationId(1), None), Duration::from_secs(2));
        let step =
            DispatchStep { report: PassReport::default(), retries: BTreeMap::from([(InstallationId(1), retry)]) };
        let kept = step.without_retried(outbox);
        assert_eq!(
            kept,
            vec![
                Work::dispatch(InstallationId(2), Some(TierName::from("small"))),
                Work::Dispatch { tenant: None, tier: None, attempt: 0 }
            ]
        );
    }
}
