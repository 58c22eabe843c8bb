//! The reservation rule: may one more runner start for a (tenant, tier, scope) now?
//!
//! Remaining demand is queued jobs minus unbound runners of the key; admission checks the tenant's status,
//! its live runners across all tiers against `max_runners`, and the global cap ([`crate::admission::admit`]).
//! The store's atomic `runner_reserve` reads these counts inside its write transaction and calls
//! [`decide_reservation`]; the dispatch planner uses the same function on its snapshot.

use crate::admission::{Admission, AdmissionInput, admit};
use crate::reason::Reason;

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
}
