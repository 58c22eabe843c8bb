//! Builders for the planner's table tests: tenants, jobs, runners and instances in a few words.

use crate::Timestamp;
use crate::ids::{InstallationId, InstanceId, JobId, RunnerName, RunnerSeq};
use crate::job::{Job, JobStatus};
use crate::ports::{Instance, InstanceState};
use crate::reason::Reason;
use crate::runner::{Runner, RunnerState};
use crate::tenant::{OrgType, Tenant, TenantMetadata, TenantStatus};

/// The tables' "now": one day after the epoch, so ages of up to a day are expressible.
pub fn now() -> Timestamp {
    at(86_400)
}

/// `secs` seconds after the epoch.
pub fn at(secs: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + chrono::Duration::seconds(secs)
}

/// `secs` seconds before [`now`].
pub fn ago(secs: i64) -> Timestamp {
    now() - chrono::Duration::seconds(secs)
}

pub fn tenant(id: u64, plan: &str, max_runners: u32) -> Tenant {
    Tenant {
        installation_id: InstallationId(id),
        org_name: format!("org{id}").as_str().into(),
        org_type: OrgType::Organization,
        status: TenantStatus::Active,
        tier: plan.into(),
        max_runners,
        created_at: at(0),
        updated_at: at(0),
        metadata: TenantMetadata::default(),
    }
}

pub fn with_status(mut tenant: Tenant, status: TenantStatus) -> Tenant {
    tenant.status = status;
    tenant
}

pub fn personal(mut tenant: Tenant) -> Tenant {
    tenant.org_type = OrgType::User;
    tenant
}

/// A queued job asking for `tier` (by its labels), received at `received` seconds.
pub fn job(id: u64, installation: u64, tier: &str, received: i64) -> Job {
    Job {
        job_id: JobId(id),
        installation_id: InstallationId(installation),
        repository: format!("org{installation}/app"),
        labels: vec!["self-hosted".into(), tier.into()],
        tier: Some(tier.into()),
        status: JobStatus::Queued,
        conclusion: None,
        runner_name: None,
        wait_reason: None,
        received_at: at(received),
        queued_at: None,
        started_at: None,
        completed_at: None,
        updated_at: at(received),
    }
}

pub fn in_repo(mut job: Job, repository: &str) -> Job {
    job.repository = repository.into();
    job
}

pub fn waiting(mut job: Job, reason: Reason) -> Job {
    job.wait_reason = Some(reason);
    job
}

/// A runner of `installation` on `tier`, created at `created` (seconds since the epoch).
pub fn runner(seq: u64, installation: u64, tier: &str, state: RunnerState, created: Timestamp) -> Runner {
    Runner {
        seq: RunnerSeq(seq),
        name: RunnerName::new(format!("ghr-test-{installation}-{tier}-{seq}")),
        installation_id: InstallationId(installation),
        tier: tier.into(),
        tenant_tier: tier.into(),
        scope_repo: None,
        state,
        instance_id: None,
        github_runner_id: None,
        intended_job: None,
        job_id: None,
        created_at: created,
        launched_at: None,
        registered_at: None,
        job_started_at: None,
        finished_at: None,
        terminated_at: None,
        last_error: None,
        updated_at: created,
    }
}

/// The runner launched at `launched` on instance `i-<seq>`.
pub fn launched(mut runner: Runner, launched: Timestamp) -> Runner {
    runner.instance_id = Some(InstanceId::new(format!("i-{}", runner.seq.0)));
    runner.launched_at = Some(launched);
    runner
}

pub fn registered(mut runner: Runner, at: Timestamp) -> Runner {
    runner.registered_at = Some(at);
    runner
}

/// The instance a launched runner runs on, as the provider lists it.
pub fn instance_of(runner: &Runner) -> Instance {
    Instance {
        id: runner.instance_id.clone().unwrap_or_else(|| InstanceId::new(format!("i-{}", runner.seq.0))),
        runner_name: Some(runner.name.clone()),
        installation_id: Some(runner.installation_id),
        tier: Some(runner.tier.clone()),
        state: InstanceState::Running,
        launched_at: runner.launched_at.or(Some(runner.created_at)),
        instance_type: None,
    }
}

/// An instance carrying no runner record's name, launched at `launched`.
pub fn stray_instance(id: &str, name: Option<&str>, launched: Option<Timestamp>) -> Instance {
    Instance {
        id: InstanceId::new(id),
        runner_name: name.map(RunnerName::new),
        installation_id: None,
        tier: None,
        state: InstanceState::Running,
        launched_at: launched,
        instance_type: None,
    }
}
