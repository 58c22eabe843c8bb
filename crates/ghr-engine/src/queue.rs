//! The work queue port: how the parts of the engine hand work to each other when they do not share a process.
//!
//! In `ghr serve` every part runs in one process and hands work over in memory: intake marks tenants on the
//! dispatcher's [`DispatchWake`] and queues teardowns on a [`TeardownHandle`]; [`LocalQueue`] is that
//! in-process implementation behind the port. In the serverless shape (`ghr-lambda`) each part is its own
//! function: after a function's engine step ran, [`take_outbox`] collects what it asked of the others (the
//! same marks and teardowns) and a [`WorkQueue`] over SQS carries them to the function that does the work.
//!
//! A work item is a signal, never the record of a job: jobs wait in the store, so a lost or duplicated item
//! only delays or repeats a pass (passes are idempotent, and the store's reservation decides every limit).

use crate::teardown::{TeardownCause, TeardownHandle, TeardownQueue, TeardownRequest};
use crate::wake::DispatchWake;
use async_trait::async_trait;
use ghr_core::ids::{InstallationId, RunnerName, TierName};
use std::sync::Arc;
use std::time::Duration;

/// One piece of work for another part of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Plan for a tenant's waiting jobs (`tenant: None`: for every tenant, a full pass).
    Dispatch {
        tenant: Option<InstallationId>,
        /// Where the work is routed (per-tier queues); the pass plans for all of the tenant's tiers.
        tier: Option<TierName>,
        /// Launch failures in a row behind this item (0 for a fresh wake-up): the backoff of the next retry.
        attempt: u32,
    },
    /// Terminate one runner and free its slot.
    TeardownRunner { runner: RunnerName, cause: TeardownCause },
    /// Terminate every live runner of a tenant (uninstalled, or suspended under `on_suspend = terminate`).
    TeardownTenant { tenant: InstallationId, cause: TeardownCause },
}

impl Work {
    /// A fresh wake-up for a tenant.
    pub fn dispatch(tenant: InstallationId, tier: Option<TierName>) -> Work {
        Work::Dispatch { tenant: Some(tenant), tier, attempt: 0 }
    }
}

impl From<TeardownRequest> for Work {
    fn from(request: TeardownRequest) -> Work {
        match request {
            TeardownRequest::Runner(runner, cause) => Work::TeardownRunner { runner, cause },
            TeardownRequest::Tenant(tenant, cause) => Work::TeardownTenant { tenant, cause },
        }
    }
}

/// Why work could not be handed over. The items named were not queued; the others were.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} work items could not be queued: {message}")]
pub struct QueueError {
    pub failed: usize,
    pub total: usize,
    pub message: String,
    /// The items that were not queued, to retry or to report.
    pub unsent: Vec<Work>,
}

/// The port: hands work to whoever carries it out.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Queue every item, each to be carried out no sooner than `delay` from now (a backoff; zero for at once),
    /// in batches as the transport allows. On error, the items not queued are named.
    async fn send(&self, work: Vec<Work>, delay: Duration) -> Result<(), QueueError>;
}

/// The in-process queue: work goes straight to this process's dispatcher wake-up and teardown worker.
#[derive(Clone)]
pub struct LocalQueue {
    wake: Arc<DispatchWake>,
    teardown: TeardownHandle,
}

impl LocalQueue {
    pub fn new(wake: Arc<DispatchWake>, teardown: TeardownHandle) -> Self {
        Self { wake, teardown }
    }
}

#[async_trait]
impl WorkQueue for LocalQueue {
    async fn send(&self, work: Vec<Work>, delay: Duration) -> Result<(), QueueError> {
        if !delay.is_zero() {
            let this = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                // In process, handing over cannot fail.
                let _ = this.send(work, Duration::ZERO).await;
            });
            return Ok(());
        }
        for item in work {
            match item {
                Work::Dispatch { tenant: Some(id), tier: Some(tier), .. } => self.wake.tenant_tier(id, tier),
                Work::Dispatch { tenant: Some(id), tier: None, .. } => self.wake.tenant(id),
                Work::Dispatch { tenant: None, .. } => self.wake.notify_one(),
                Work::TeardownRunner { runner, cause } => self.teardown.runner(runner, cause),
                Work::TeardownTenant { tenant, cause } => self.teardown.tenant(tenant, cause),
            }
        }
        Ok(())
    }
}

/// What an engine step asked of the other parts: the dispatcher's marks (with their tier hints) and the
/// queued teardowns, taken so that they are handed over once. Teardowns come first: they free slots.
pub fn take_outbox(wake: &DispatchWake, teardown: &mut TeardownQueue) -> Vec<Work> {
    let mut work: Vec<Work> = std::iter::from_fn(|| teardown.try_next()).map(Work::from).collect();
    let dirty = wake.take();
    if dirty.all {
        work.push(Work::Dispatch { tenant: None, tier: None, attempt: 0 });
    }
    for tenant in dirty.tenants {
        match dirty.tiers.get(&tenant) {
            Some(tiers) if !tiers.is_empty() => {
                work.extend(tiers.iter().map(|tier| Work::dispatch(tenant, Some(tier.clone()))))
            }
            _ => work.push(Work::dispatch(tenant, None)),
        }
    }
    work
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teardown;

    #[test]
    fn the_outbox_carries_teardowns_first_then_each_marked_tenant_once_per_tier_hint() {
        let wake = DispatchWake::new();
        let (handle, mut queue) = teardown::channel();
        wake.tenant(InstallationId(7));
        wake.tenant_tier(InstallationId(3), TierName::from("small"));
        wake.tenant_tier(InstallationId(3), TierName::from("large"));
        handle.runner(RunnerName::new("ghr-main-3-small-1"), TeardownCause::JobCompleted);
        handle.tenant(InstallationId(9), TeardownCause::TenantDeleted);
        let work = take_outbox(&wake, &mut queue);
        assert_eq!(
            work,
            vec![
                Work::TeardownRunner {
                    runner: RunnerName::new("ghr-main-3-small-1"),
                    cause: TeardownCause::JobCompleted
                },
                Work::TeardownTenant { tenant: InstallationId(9), cause: TeardownCause::TenantDeleted },
                Work::dispatch(InstallationId(3), Some(TierName::from("large"))),
                Work::dispatch(InstallationId(3), Some(TierName::from("small"))),
                Work::dispatch(InstallationId(7), None),
            ]
        );
        assert!(take_outbox(&wake, &mut queue).is_empty(), "taken once");
        wake.notify_one();
        assert_eq!(take_outbox(&wake, &mut queue), vec![Work::Dispatch { tenant: None, tier: None, attempt: 0 }]);
    }

    #[tokio::test]
    async fn the_local_queue_marks_the_wake_and_queues_teardowns_in_process() {
        let wake = DispatchWake::new();
        let (handle, mut queue) = teardown::channel();
        let local = LocalQueue::new(wake.clone(), handle);
        local
            .send(
                vec![
                    Work::dispatch(InstallationId(1), Some(TierName::from("small"))),
                    Work::TeardownTenant { tenant: InstallationId(2), cause: TeardownCause::TenantDeleted },
                ],
                Duration::ZERO,
            )
            .await
            .unwrap();
        let dirty = wake.take();
        assert!(dirty.tenants.contains(&InstallationId(1)));
        assert_eq!(queue.try_next(), Some(TeardownRequest::Tenant(InstallationId(2), TeardownCause::TenantDeleted)));
    }
}
