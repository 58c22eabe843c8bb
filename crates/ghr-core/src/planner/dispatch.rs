//! The dispatch plan: which queued jobs wait (and why), which are covered by a runner on its way, and
//! which get a new runner, in what order.
//!
//! 1. Classify every job of the snapshot (tier, tenant status, entitlement): a job that cannot be served
//!    waits with the reason.
//! 2. Jobs covered by an unbound runner of their [`DemandKey`] wait for it (oldest first): runners are
//!    fungible, GitHub decides which runner takes which job.
//! 3. The rest are served **round-robin across tenants** (installation order, starting after the tenant
//!    served last: the cursor), **FIFO within a tenant**: each round gives every tenant at most one runner,
//!    so a tenant at its limit never delays another tenant's job.
//! 4. A key backing off after failed launches waits until its backoff ends (the plan's `retry_after`); a
//!    tenant without room waits with admission's reason; the global cap stops the plan for everyone.
//!
//! The plan is what the snapshot allows. The store's atomic reservation re-checks each planned runner with
//! the same rule ([`super::reserve`]) against the counts at that instant, so concurrent dispatchers never
//! exceed a limit; a refusal there only ends the tenant's (or, for the global cap, everyone's) reservations.

use super::backoff::LaunchBackoff;
use super::{DemandKey, org_type_of};
use crate::Timestamp;
use crate::admission::{Admission, AdmissionInput, admit, classify};
use crate::entitlement::TierAccess;
use crate::ids::{InstallationId, JobId};
use crate::job::Job;
use crate::reason::Reason;
use crate::tenant::Tenant;
use crate::tier::TierCatalog;
use std::collections::{BTreeMap, VecDeque};

/// A tenant and its live runners across all tiers, as the store read them.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantLoad {
    pub tenant: Tenant,
    pub live: u32,
}

/// What the store knows about demand and supply, for some tenants or all, read at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemandSnapshot {
    /// The tenants of the jobs (an installation ghr has no tenant for is absent).
    pub tenants: BTreeMap<InstallationId, TenantLoad>,
    /// Queued jobs matched to a tier, oldest first (received, then job id). For a tenant admission refuses
    /// outright (no headroom), only the jobs whose reason is not that refusal: the others keep theirs.
    pub jobs: Vec<Job>,
    /// Unbound runners (requested, launching, idle) per key of these tenants.
    pub unbound: BTreeMap<DemandKey, u32>,
    /// Live runners of every tenant (for the global cap).
    pub global_live: u32,
    /// The jobs not read (of tenants without headroom, already waiting with the tenant's refusal), by reason.
    /// Counted by full snapshots only (for the waiting-jobs gauge); empty otherwise.
    pub kept_reasons: BTreeMap<Reason, u32>,
}

/// Which tenants a demand snapshot (`Store::demand_snapshot`) reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemandQuery {
    /// These tenants only; None for every tenant with a queued job matched to a tier (a full pass).
    pub tenants: Option<Vec<InstallationId>>,
    /// The deployment-wide cap on live runners: a tenant is without headroom when it is reached.
    pub global_cap: Option<u32>,
}

/// Everything one dispatch plan is made from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DispatchSnapshot {
    pub demand: DemandSnapshot,
    pub backoff: LaunchBackoff,
    /// The tenant served last: the next round starts after it.
    pub cursor: Option<InstallationId>,
}

/// The settings a dispatch plan depends on.
#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings<'a> {
    pub catalog: &'a TierCatalog,
    pub tier_access: TierAccess,
    pub global_cap: Option<u32>,
}

/// One runner to reserve for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedReservation {
    pub key: DemandKey,
    /// The job at the head of the tenant's queue (the runner's intended job, a hint).
    pub job_id: JobId,
    pub received_at: Timestamp,
    /// The job's wait reason before this pass (cleared once the runner is reserved).
    pub reason_before: Option<Reason>,
}

/// What a dispatch pass does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchPlan {
    /// Wait reasons that change (only changes; jobs planned for a reservation are not listed).
    pub reasons: Vec<(JobId, Option<Reason>)>,
    /// Runners to reserve, in round-robin order.
    pub reservations: Vec<PlannedReservation>,
    /// Jobs covered by a runner already on its way.
    pub covered: usize,
    /// Jobs that cannot get a runner now, by reason.
    pub waiting: BTreeMap<Reason, usize>,
    /// Tenants with launches backing off, and the earliest time one of their keys may launch again.
    pub retry_after: BTreeMap<InstallationId, Timestamp>,
}

impl DispatchPlan {
    fn wait(&mut self, job: &Job, reason: Reason) {
        *self.waiting.entry(reason).or_default() += 1;
        self.set(job, Some(reason));
    }

    fn cover(&mut self, job: &Job) {
        self.covered += 1;
        self.set(job, None);
    }

    fn set(&mut self, job: &Job, reason: Option<Reason>) {
        if job.wait_reason != reason {
            self.reasons.push((job.job_id, reason));
        }
    }
}

type Queue<'s> = VecDeque<(&'s Job, DemandKey)>;

/// Plan one dispatch pass at `now`.
pub fn plan_dispatch(snapshot: &DispatchSnapshot, settings: &DispatchSettings<'_>, now: Timestamp) -> DispatchPlan {
    let demand = &snapshot.demand;
    let mut plan = DispatchPlan::default();
    let mut supply = demand.unbound.clone();
    let mut queues: BTreeMap<InstallationId, Queue<'_>> = BTreeMap::new();
    for job in &demand.jobs {
        let tenant = demand.tenants.get(&job.installation_id).map(|t| &t.tenant);
        let tier = match classify(settings.catalog, settings.tier_access, tenant, &job.labels) {
            Ok(tier) => tier.name.clone(),
            Err(reason) => {
                plan.wait(job, reason);
                continue;
            }
        };
        let key = DemandKey::of_job(job.installation_id, tier, org_type_of(tenant), &job.repository);
        if let Some(available) = supply.get_mut(&key).filter(|n| **n > 0) {
            *available -= 1;
            plan.cover(job);
            continue;
        }
        queues.entry(job.installation_id).or_default().push_back((job, key));
    }

    let mut planned: BTreeMap<InstallationId, u32> = BTreeMap::new();
    let mut planned_total = 0u32;
    let order = round_robin(queues.keys().copied().collect(), snapshot.cursor);
    'rounds: while queues.values().any(|q| !q.is_empty()) {
        for installation in &order {
            let Some(queue) = queues.get_mut(installation) else { continue };
            let Some((job, key)) = queue.front().cloned() else { continue };
            let backoff_key = (key.installation_id, key.tier.clone());
            if let Some(backoff) = snapshot.backoff.waiting(&backoff_key, now) {
                let (blocked, rest): (Queue<'_>, Queue<'_>) =
                    queue.drain(..).partition(|(_, k)| k.tier == backoff_key.1);
                *queue = rest;
                for (job, _) in blocked {
                    plan.wait(job, backoff.reason);
                }
                let retry = plan.retry_after.entry(*installation).or_insert(backoff.until);
                *retry = (*retry).min(backoff.until);
                continue;
            }
            let Some(load) = demand.tenants.get(installation) else {
                // Unreachable: a job of an unknown tenant is classified as waiting above.
                queue.clear();
                continue;
            };
            let input = AdmissionInput {
                tenant_status: load.tenant.status,
                max_runners: load.tenant.max_runners,
                tenant_live: load.live.saturating_add(planned.get(installation).copied().unwrap_or(0)),
                global_cap: settings.global_cap,
                global_live: demand.global_live.saturating_add(planned_total),
            };
            match admit(input) {
                Admission::Admit => {
                    queue.pop_front();
                    *planned.entry(*installation).or_default() += 1;
                    planned_total += 1;
                    plan.reservations.push(PlannedReservation {
                        key,
                        job_id: job.job_id,
                        received_at: job.received_at,
                        reason_before: job.wait_reason,
                    });
                }
                Admission::Wait(Reason::GlobalCap) => {
                    for (job, _) in queues.values_mut().flat_map(|q| q.drain(..)) {
                        plan.wait(job, Reason::GlobalCap);
                    }
                    break 'rounds;
                }
                Admission::Wait(reason) => {
                    for (job, _) in queue.drain(..) {
                        plan.wait(job, reason);
                    }
                }
            }
        }
    }
    plan
}

/// Tenants in installation order, starting after `cursor` (the one served last).
pub fn round_robin(mut tenants: Vec<InstallationId>, cursor: Option<InstallationId>) -> Vec<InstallationId> {
    tenants.sort();
    if let Some(cursor) = cursor {
        let split = tenants.iter().position(|t| *t > cursor).unwrap_or(tenants.len());
        tenants.rotate_left(split);
    }
    tenants
}
