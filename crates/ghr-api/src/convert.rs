//! From ghr-core's domain types to the wire types, and from the wire's enums back to the domain's (the
//! server's side; the `domain` feature). Every enum maps by its spelling, which both sides share; the tests
//! check that every variant of each side has its counterpart.

use crate::{enums, model};
use ghr_core::cost::CostRow;
use ghr_core::{job, reason, runner, tenant};

/// A domain enum whose wire twin has the same spelling.
macro_rules! same_spelling {
    ($domain:ty => $wire:ty, $domain_text:expr) => {
        impl From<$domain> for $wire {
            fn from(value: $domain) -> Self {
                let text: &str = $domain_text(value);
                text.parse().unwrap_or_else(|_| unreachable!("{text:?}: the enum tests pin every spelling"))
            }
        }
    };
}

same_spelling!(tenant::TenantStatus => enums::TenantStatus, tenant::TenantStatus::as_str);
same_spelling!(tenant::OrgType => enums::OrgType, tenant::OrgType::as_str);
same_spelling!(job::JobStatus => enums::JobStatus, job::JobStatus::as_str);
same_spelling!(reason::Reason => enums::Reason, reason::Reason::code);
same_spelling!(runner::RunnerState => enums::RunnerState, runner::RunnerState::as_str);

impl From<enums::TenantStatus> for tenant::TenantStatus {
    fn from(value: enums::TenantStatus) -> Self {
        value.as_str().parse().unwrap_or_else(|_| unreachable!("{value}: the enum tests pin every spelling"))
    }
}

impl From<enums::OrgType> for tenant::OrgType {
    fn from(value: enums::OrgType) -> Self {
        match value {
            enums::OrgType::Organization => tenant::OrgType::Organization,
            enums::OrgType::User => tenant::OrgType::User,
        }
    }
}

impl From<enums::JobStatus> for job::JobStatus {
    fn from(value: enums::JobStatus) -> Self {
        value.as_str().parse().unwrap_or_else(|_| unreachable!("{value}: the enum tests pin every spelling"))
    }
}

impl From<enums::Reason> for reason::Reason {
    fn from(value: enums::Reason) -> Self {
        reason::Reason::from_code(value.as_str())
            .unwrap_or_else(|| unreachable!("{value}: the enum tests pin every spelling"))
    }
}

impl From<enums::RunnerState> for runner::RunnerState {
    fn from(value: enums::RunnerState) -> Self {
        value.as_str().parse().unwrap_or_else(|_| unreachable!("{value}: the enum tests pin every spelling"))
    }
}

impl From<tenant::Tenant> for model::Tenant {
    fn from(t: tenant::Tenant) -> Self {
        model::Tenant {
            installation_id: t.installation_id.0,
            org_name: t.org_name.0,
            org_type: t.org_type.into(),
            status: t.status.into(),
            tier: t.tier.0,
            max_runners: t.max_runners,
            created_at: t.created_at,
            updated_at: t.updated_at,
            metadata: model::TenantMetadata {
                github_account_id: t.metadata.github_account_id.map(|id| id.0),
                sender_login: t.metadata.sender_login,
                sender_id: t.metadata.sender_id.map(|id| id.0),
            },
        }
    }
}

impl From<job::Job> for model::Job {
    fn from(j: job::Job) -> Self {
        model::Job {
            job_id: j.job_id.0,
            installation_id: j.installation_id.0,
            repository: j.repository,
            labels: j.labels,
            tier: j.tier.map(|t| t.0),
            status: j.status.into(),
            conclusion: j.conclusion,
            runner_name: j.runner_name.map(|r| r.0),
            wait_reason: j.wait_reason.map(Into::into),
            received_at: j.received_at,
            queued_at: j.queued_at,
            started_at: j.started_at,
            completed_at: j.completed_at,
            updated_at: j.updated_at,
        }
    }
}

impl From<job::JobEvent> for model::JobEvent {
    fn from(e: job::JobEvent) -> Self {
        model::JobEvent { at: e.at, kind: e.kind, detail: e.detail }
    }
}

impl From<runner::Runner> for model::Runner {
    fn from(r: runner::Runner) -> Self {
        model::Runner {
            seq: r.seq.0,
            name: r.name.0,
            installation_id: r.installation_id.0,
            tier: r.tier.0,
            tenant_tier: r.tenant_tier.0,
            scope_repo: r.scope_repo,
            state: r.state.into(),
            instance_id: r.instance_id.map(|i| i.0),
            github_runner_id: r.github_runner_id.map(|i| i.0),
            intended_job: r.intended_job.map(|j| j.0),
            job_id: r.job_id.map(|j| j.0),
            created_at: r.created_at,
            launched_at: r.launched_at,
            registered_at: r.registered_at,
            job_started_at: r.job_started_at,
            finished_at: r.finished_at,
            terminated_at: r.terminated_at,
            last_error: r.last_error,
            updated_at: r.updated_at,
        }
    }
}

/// A priced usage row with the tenant's org name.
pub fn usage_line(cost: CostRow, org_name: Option<String>) -> model::UsageLine {
    model::UsageLine {
        installation_id: cost.installation_id.0,
        org_name,
        tier: cost.tier.0,
        runner_seconds: cost.runner_seconds,
        runners: cost.runners,
        price_per_hour: cost.price_per_hour,
        cost: cost.cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_variant_has_a_wire_twin_and_back() {
        for s in [
            tenant::TenantStatus::Pending,
            tenant::TenantStatus::Active,
            tenant::TenantStatus::Suspended,
            tenant::TenantStatus::Deleted,
        ] {
            assert_eq!(tenant::TenantStatus::from(enums::TenantStatus::from(s)), s);
        }
        assert_eq!(enums::TenantStatus::ALL.len(), 4);
        for t in [tenant::OrgType::Organization, tenant::OrgType::User] {
            assert_eq!(tenant::OrgType::from(enums::OrgType::from(t)), t);
        }
        for s in job::JobStatus::ALL {
            assert_eq!(job::JobStatus::from(enums::JobStatus::from(s)), s);
        }
        assert_eq!(enums::JobStatus::ALL.len(), job::JobStatus::ALL.len());
        for r in reason::Reason::ALL {
            assert_eq!(reason::Reason::from(enums::Reason::from(r)), r);
        }
        assert_eq!(enums::Reason::ALL.len(), reason::Reason::ALL.len());
        for s in runner::RunnerState::ALL {
            assert_eq!(runner::RunnerState::from(enums::RunnerState::from(s)), s);
        }
        assert_eq!(enums::RunnerState::ALL.len(), runner::RunnerState::ALL.len());
    }

    #[test]
    fn live_on_the_wire_is_live_in_the_domain() {
        let wire: Vec<runner::RunnerState> = enums::RunnerStates::Live.states().into_iter().map(Into::into).collect();
        assert_eq!(wire, runner::RunnerState::LIVE.to_vec());
    }
}
