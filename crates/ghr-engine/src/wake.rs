//! Wake-ups of the dispatcher that say what changed, so a pass plans only for the tenants whose demand or
//! supply moved.
//!
//! Whoever changes a tenant's demand or supply marks it: intake (a job queued or completed, a tenant created
//! or resumed), teardown (a slot freed), the reconciler (runners released, jobs found or resolved), the
//! dispatcher itself (a launch failed, a backoff ended). [`DispatchWake::notify_one`] is the fallback for a
//! change whose tenants are not known (an operator's change, a test): the next pass plans for everyone. The
//! dispatcher also runs a full pass at start and on a slow safety tick, so a lost mark only delays a job.

use ghr_core::ids::{InstallationId, TierName};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// Which tenants a dispatch pass plans for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassScope {
    /// Every tenant with a queued job (start, safety tick, a change whose tenants are unknown).
    Full,
    /// Only these tenants (their demand or supply changed).
    Tenants(Vec<InstallationId>),
}

/// What changed since the last pass took the marks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    /// A change whose tenants are unknown: plan for everyone.
    pub all: bool,
    pub tenants: BTreeSet<InstallationId>,
    /// Tiers of the jobs that made a tenant dirty, where known (a queued job's tier). Only a routing hint for
    /// deployments that carry wake-ups between processes on per-tier queues (`ghr-lambda`); a pass always
    /// plans for all of a marked tenant's tiers.
    pub tiers: BTreeMap<InstallationId, BTreeSet<TierName>>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        !self.all && self.tenants.is_empty()
    }
}

/// The dispatcher's wake-up, carrying which tenants changed.
#[derive(Debug, Default)]
pub struct DispatchWake {
    notify: Notify,
    dirty: Mutex<Dirty>,
}

impl DispatchWake {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Something changed and which tenants is not known: the next pass plans for every tenant.
    pub fn notify_one(&self) {
        self.dirty.lock().unwrap_or_else(PoisonError::into_inner).all = true;
        self.notify.notify_one();
    }

    /// A tenant's demand or supply changed: the next pass plans for it.
    pub fn tenant(&self, id: InstallationId) {
        self.dirty.lock().unwrap_or_else(PoisonError::into_inner).tenants.insert(id);
        self.notify.notify_one();
    }

    /// A job of this tenant and tier was queued: the next pass plans for the tenant (the tier is a hint, see
    /// [`Dirty::tiers`]).
    pub fn tenant_tier(&self, id: InstallationId, tier: TierName) {
        {
            let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
            dirty.tenants.insert(id);
            dirty.tiers.entry(id).or_default().insert(tier);
        }
        self.notify.notify_one();
    }

    /// Take the marks (the pass about to run covers them).
    pub fn take(&self) -> Dirty {
        std::mem::take(&mut *self.dirty.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Put back the marks of a pass that failed, so the next one covers them again.
    pub fn restore(&self, scope: &PassScope) {
        let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        match scope {
            PassScope::Full => dirty.all = true,
            PassScope::Tenants(tenants) => dirty.tenants.extend(tenants.iter().copied()),
        }
    }

    /// Wait for the next wake-up.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_accumulate_until_taken_and_a_failed_pass_puts_them_back() {
        let wake = DispatchWake::new();
        assert!(wake.take().is_empty());
        wake.tenant(InstallationId(2));
        wake.tenant(InstallationId(1));
        wake.tenant(InstallationId(2));
        let dirty = wake.take();
        assert_eq!(dirty.tenants.into_iter().collect::<Vec<_>>(), vec![InstallationId(1), InstallationId(2)]);
        assert!(!dirty.all);
        assert!(wake.take().is_empty(), "taking clears the marks");
        wake.restore(&PassScope::Tenants(vec![InstallationId(3)]));
        assert_eq!(wake.take().tenants.len(), 1);
        wake.tenant_tier(InstallationId(4), TierName::from("large"));
        wake.tenant_tier(InstallationId(4), TierName::from("small"));
        let dirty = wake.take();
        assert_eq!(dirty.tenants.into_iter().collect::<Vec<_>>(), vec![InstallationId(4)]);
        assert_eq!(dirty.tiers[&InstallationId(4)].len(), 2, "both tiers are kept as hints");
        wake.notify_one();
        assert!(wake.take().all, "an unknown change plans for everyone");
        wake.restore(&PassScope::Full);
        assert!(wake.take().all);
    }
}
