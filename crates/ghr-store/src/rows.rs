//! Rows of the tables both SQL backends share (their schemas mirror each other column for column): the column
//! lists queries select, and the decoders from a row of either database to the domain type.

use crate::codec::{self, Columns};
use ghr_core::cost::RunnerInterval;
use ghr_core::ids::{
    AccountId, GithubRunnerId, InstallationId, InstanceId, JobId, OrgName, RunnerName, RunnerSeq, TierName,
};
use ghr_core::job::Job;
use ghr_core::ports::StoreError;
use ghr_core::reason::Reason;
use ghr_core::runner::Runner;
use ghr_core::tenant::{Tenant, TenantMetadata};
use sqlx::{ColumnIndex, Decode, Row, Type};

/// The columns of a tenant row, as a literal so queries stay `&'static str` (see [`tenant_from_row`]).
macro_rules! tenant_columns {
    () => {
        "installation_id, org_name, org_type, status, tier, max_runners, \
         github_account_id, sender_login, sender_id, created_at, updated_at"
    };
}
pub(crate) use tenant_columns;

/// Decode a row selected with [`tenant_columns`].
pub(crate) fn tenant_from_row<'r, R>(op: &'static str, row: &'r R) -> Result<Tenant, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let c = Columns::new(op, row);
    Ok(Tenant {
        installation_id: InstallationId(c.unsigned("installation_id")?),
        org_name: OrgName::new(c.text("org_name")?),
        org_type: c.parse("org_type")?,
        status: c.parse("status")?,
        tier: TierName::new(c.text("tier")?),
        max_runners: c.u32("max_runners")?,
        created_at: c.timestamp("created_at")?,
        updated_at: c.timestamp("updated_at")?,
        metadata: TenantMetadata {
            github_account_id: c.unsigned_opt("github_account_id")?.map(AccountId),
            sender_login: c.text_opt("sender_login")?,
            sender_id: c.unsigned_opt("sender_id")?.map(AccountId),
        },
    })
}

/// The columns of a job row, as a literal so queries stay `&'static str` (see [`job_from_row`]).
macro_rules! job_columns {
    () => {
        "job_id, installation_id, repository, labels, tier, status, conclusion, runner_name, wait_reason, \
         received_at, queued_at, started_at, completed_at, updated_at"
    };
}
pub(crate) use job_columns;

/// Decode a row selected with [`job_columns`].
pub(crate) fn job_from_row<'r, R>(op: &'static str, row: &'r R) -> Result<Job, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let c = Columns::new(op, row);
    let wait_reason = match c.text_opt("wait_reason")? {
        None => None,
        Some(code) => Some(
            Reason::from_code(&code)
                .ok_or_else(|| codec::corrupt(op, format!("column wait_reason: unknown reason {code:?}")))?,
        ),
    };
    Ok(Job {
        job_id: JobId(c.unsigned("job_id")?),
        installation_id: InstallationId(c.unsigned("installation_id")?),
        repository: c.text("repository")?,
        labels: codec::labels_from_json(op, &c.text("labels")?)?,
        tier: c.text_opt("tier")?.map(TierName::new),
        status: c.parse("status")?,
        conclusion: c.text_opt("conclusion")?,
        runner_name: c.text_opt("runner_name")?.map(RunnerName::new),
        wait_reason,
        received_at: c.timestamp("received_at")?,
        queued_at: c.timestamp_opt("queued_at")?,
        started_at: c.timestamp_opt("started_at")?,
        completed_at: c.timestamp_opt("completed_at")?,
        updated_at: c.timestamp("updated_at")?,
    })
}

/// The columns of a runner row, as a literal so queries stay `&'static str` (see [`runner_from_row`]).
macro_rules! runner_columns {
    () => {
        "seq, name, installation_id, tier, tenant_tier, scope_repo, state, instance_id, github_runner_id, \
         intended_job, job_id, created_at, launched_at, registered_at, job_started_at, finished_at, \
         terminated_at, last_error, updated_at"
    };
}
pub(crate) use runner_columns;

/// Decode a row selected with [`runner_columns`].
pub(crate) fn runner_from_row<'r, R>(op: &'static str, row: &'r R) -> Result<Runner, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let c = Columns::new(op, row);
    Ok(Runner {
        seq: RunnerSeq(c.unsigned("seq")?),
        name: RunnerName::new(c.text("name")?),
        installation_id: InstallationId(c.unsigned("installation_id")?),
        tier: TierName::new(c.text("tier")?),
        tenant_tier: TierName::new(c.text("tenant_tier")?),
        scope_repo: c.text_opt("scope_repo")?,
        state: c.parse("state")?,
        instance_id: c.text_opt("instance_id")?.map(InstanceId::new),
        github_runner_id: c.unsigned_opt("github_runner_id")?.map(GithubRunnerId),
        intended_job: c.unsigned_opt("intended_job")?.map(JobId),
        job_id: c.unsigned_opt("job_id")?.map(JobId),
        created_at: c.timestamp("created_at")?,
        launched_at: c.timestamp_opt("launched_at")?,
        registered_at: c.timestamp_opt("registered_at")?,
        job_started_at: c.timestamp_opt("job_started_at")?,
        finished_at: c.timestamp_opt("finished_at")?,
        terminated_at: c.timestamp_opt("terminated_at")?,
        last_error: c.text_opt("last_error")?,
        updated_at: c.timestamp("updated_at")?,
    })
}

/// Decode a row selecting `installation_id, tier, launched_at, terminated_at` of a launched runner (usage).
pub(crate) fn interval_from_row<'r, R>(op: &'static str, row: &'r R) -> Result<RunnerInterval, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let c = Columns::new(op, row);
    Ok(RunnerInterval {
        installation_id: InstallationId(c.unsigned("installation_id")?),
        tier: TierName::new(c.text("tier")?),
        launched: c.timestamp("launched_at")?,
        ended: c.timestamp_opt("terminated_at")?,
    })
}
