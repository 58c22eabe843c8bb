//! The reservation rule: may one more runner start for a (tenant, tier, scope) now?
//!
//! Remaining demand is queued jobs minus unbound runners of the key; admission checks the tenant's status,
//! its live runners across all tiers against `max_runners`, and the global cap ([`crate::admission::admit`]).
//! The store's atomic `runner_reserve` reads these counts inside its write transaction and calls
//! [`decide_reservation`]; the dispatch planner uses the same function on its snapshot.

use super::dispatch::TenantLoad;
use crate::admission::{Admission, AdmissionInput, admit};
use crate::ids::InstallationId;
use crate::reason::Reason;
use crate::tenant::Tenant;
use std::collections::{BTreeMap, BTreeSet};

/// The counts one reservation decision needs, read atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveCounts {
    /// Queued jobs of the key.
    pub queued: u32,
    /// Unbound (requested, launching, idle) runners of the key.
    pub unbound: u32,
    /// The tenant's status, limit and live runners, and the global cap.
    pub admission: AdmissionInput,
}

/// The outcome of the reservation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveDecision {
    /// Take a slot: there is uncovered demand and the tenant (and the deployment) has room.
    Reserve,
    /// Every queued job of the key is covered by an unbound runner already.
    NoDemand,
    /// Admission refused; the jobs wait with this reason.
    Refused(Reason),
}

/// Queued jobs not yet covered by an unbound runner.
pub fn remaining_demand(queued: u32, unbound: u32) -> u32 {
    queued.saturating_sub(unbound)
}

/// Whether a tenant may start another runner at all (status, limit, global cap).
pub fn has_headroom(admission: AdmissionInput) -> bool {
    admit(admission) == Admission::Admit
}

/// How many more runners admission allows a tenant: its room under `max_runners`, bounded by the room under
/// the global cap (0 when its status forbids runners).
pub fn headroom(admission: AdmissionInput) -> u32 {
    if !has_headroom(admission) {
        return 0;
    }
    let tenant = admission.max_runners.saturating_sub(admission.tenant_live);
    match admission.global_cap {
        Some(cap) => tenant.min(cap.saturating_sub(admission.global_live)),
        None => tenant,
    }
}

/// Decide one reservation: no demand first (nothing to do), then admission.
pub fn decide_reservation(counts: ReserveCounts) -> ReserveDecision {
    if remaining_demand(counts.queued, counts.unbound) == 0 {
        return ReserveDecision::NoDemand;
    }
    match admit(counts.admission) {
        Admission::Admit => ReserveDecision::Reserve,
        Admission::Wait(reason) => ReserveDecision::Refused(reason),
    }
}

/// The tenants a demand snapshot reads, split by whether admission would start a runner for them now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headroom {
    /// Tenants with headroom: the snapshot reads their whole queue.
    pub open: BTreeSet<InstallationId>,
    /// Tenants admission refuses, by the refusal (`unknown_tenant` for one without a record): the snapshot reads
    /// only their jobs whose wait reason is not that refusal.
    pub closed: BTreeMap<Reason, BTreeSet<InstallationId>>,
}

/// Each tenant with its live runners (0 when the count has none for it), by installation.
pub fn tenant_loads(
    tenants: Vec<Tenant>,
    live: &BTreeMap<InstallationId, u32>,
) -> BTreeMap<InstallationId, TenantLoad> {
    tenants
        .into_iter()
        .map(|tenant| {
            let live = live.get(&tenant.installation_id).copied().unwrap_or(0);
            (tenant.installation_id, TenantLoad { tenant, live })
        })
        .collect()
}

/// Split `ids` by admission on the loads read and the deployment's live runners.
pub fn split_by_headroom(
    ids: &BTreeSet<InstallationId>,
    loads: &BTreeMap<InstallationId, TenantLoad>,
    global_cap: Option<u32>,
    global_live: u32,
) -> Headroom {
    let mut split = Headroom::default();
    for id in ids {
        let refusal = match loads.get(id) {
            None => Some(Reason::UnknownTenant),
            Some(load) => match admit(AdmissionInput {
                tenant_status: load.tenant.status,
                max_runners: load.tenant.max_runners,
                tenant_live: load.live,
                global_cap,
                global_live,
            }) {
                Admission::Admit => None,
                Admission::Wait(reason) => Some(reason),
            },
        };
        match refusal {
            None => {
                split.open.insert(*id);
            }
            Some(reason) => {
                split.closed.entry(reason).or_default().insert(*id);
            }
        }
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::TenantStatus::{self, *};

    fn counts(queued: u32, unbound: u32, status: TenantStatus, max: u32, live: u32, cap: Option<u32>) -> ReserveCounts {
        let admission = AdmissionInput {
            tenant_status: status,
            max_runners: max,
            tenant_live: live,
            global_cap: cap,
            global_live: live,
        };
        ReserveCounts { queued, unbound, admission }
    }

    #[test]
    fn reservation_table() {
        use ReserveDecision::*;
        let table = [
            // Demand covered: nothing to reserve, whatever the limits say.
            (counts(0, 0, Active, 3, 0, None), NoDemand),
            (counts(2, 2, Active, 3, 2, None), NoDemand),
            (counts(1, 3, Suspended, 3, 3, None), NoDemand),
            // Uncovered demand and room.
            (counts(1, 0, Active, 3, 0, None), Reserve),
            (counts(3, 2, Active, 3, 2, None), Reserve),
            // Uncovered demand, no room: the tenant's limit spans all tiers, then the global cap.
            (counts(3, 0, Active, 3, 3, None), Refused(Reason::TenantAtLimit)),
            (counts(3, 0, Active, 5, 2, Some(2)), Refused(Reason::GlobalCap)),
            (counts(1, 0, Pending, 3, 0, None), Refused(Reason::TenantPending)),
            (counts(1, 0, Deleted, 3, 0, None), Refused(Reason::TenantDeleted)),
        ];
        for (case, expected) in table {
            assert_eq!(decide_reservation(case), expected, "{case:?}");
        }
    }

    #[test]
    fn headroom_table() {
        let table = [
            (counts(0, 0, Active, 3, 0, None), 3),
            (counts(0, 0, Active, 3, 1, None), 2),
            (counts(0, 0, Active, 3, 3, None), 0),
            (counts(0, 0, Active, 3, 5, None), 0),
            // The global cap bounds every tenant's room (global live = 1 here).
            (counts(0, 0, Active, 5, 1, Some(3)), 2),
            (counts(0, 0, Suspended, 3, 0, None), 0),
        ];
        for (case, expected) in table {
            assert_eq!(headroom(case.admission), expected, "{case:?}");
            assert_eq!(has_headroom(case.admission), expected > 0, "{case:?}");
        }
        assert_eq!(remaining_demand(2, 5), 0);
        assert_eq!(remaining_demand(5, 2), 3);
    }

    #[test]
    fn headroom_splits_tenants_by_admission() {
        use crate::planner::fixtures::tenant;
        let mut suspended = tenant(3, "small", 2);
        suspended.status = Suspended;
        let live = BTreeMap::from([(InstallationId(1), 2), (InstallationId(2), 1)]);
        let loads = tenant_loads(vec![tenant(1, "small", 2), tenant(2, "small", 2), suspended], &live);
        assert_eq!(loads[&InstallationId(3)].live, 0, "no live count is none live");
        let ids: BTreeSet<_> = (1..=4).map(InstallationId).collect();
        let split = split_by_headroom(&ids, &loads, None, 3);
        assert_eq!(split.open, BTreeSet::from([InstallationId(2)]));
        assert_eq!(
            split.closed,
            BTreeMap::from([
                (Reason::TenantAtLimit, BTreeSet::from([InstallationId(1)])),
                (Reason::TenantSuspended, BTreeSet::from([InstallationId(3)])),
                (Reason::UnknownTenant, BTreeSet::from([InstallationId(4)])),
            ])
        );
        // The global cap closes every tenant that has a record.
        let capped = split_by_headroom(&ids, &loads, Some(3), 3);
        assert!(capped.open.is_empty());
        assert_eq!(capped.closed[&Reason::GlobalCap], BTreeSet::from([InstallationId(2)]));
    }
}
