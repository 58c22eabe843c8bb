//! [`Admin`] on the store and the engine's tenant service: what the HTTP API serves and what the CLI uses
//! when pointed at a database.

use super::{Admin, AdminError, types::*};
use async_trait::async_trait;
use chrono::{Duration, Utc};
use ghr_core::cost::price;
use ghr_core::event::Account;
use ghr_core::ids::{AccountId, InstallationId, JobId, OrgName};
use ghr_core::input::{check_github_id, check_login};
use ghr_core::job::{Job, JobStatus};
use ghr_core::ports::{JobFilter, RunnerFilter, Store, StoreError};
use ghr_core::reason::Reason;
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::{OrgNameTaken, Tenant, TenantStatus, check_max_runners};
use ghr_engine::EngineError;
use ghr_engine::settings::EngineSettings;
use ghr_engine::tenants::{Onboarded, TenantService};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

/// Default page size of job listings.
pub const DEFAULT_JOB_LIMIT: u32 = 100;
/// Largest page size of job listings.
pub const MAX_JOB_LIMIT: u32 = 10_000;
/// Default usage window.
pub const DEFAULT_USAGE_DAYS: i64 = 30;

#[derive(Clone)]
pub struct LocalAdmin {
    store: Arc<dyn Store>,
    settings: Arc<EngineSettings>,
    tenants: TenantService,
}

impl LocalAdmin {
    pub fn new(store: Arc<dyn Store>, settings: Arc<EngineSettings>) -> Self {
        let tenants = TenantService::new(store.clone(), settings.clone());
        Self { store, settings, tenants }
    }

    /// The same admin stamping tenant changes with another clock (the engine's `Ports::clock`).
    pub fn with_clock(mut self, clock: Arc<dyn ghr_core::clock::Clock>) -> Self {
        self.tenants = self.tenants.with_clock(clock);
        self
    }

    async fn installation_of(&self, reference: Option<&str>) -> Result<Option<InstallationId>, AdminError> {
        match reference {
            None => Ok(None),
            Some(r) => Ok(Some(self.tenants.resolve(r).await.map_err(engine_error)?.installation_id)),
        }
    }
}

fn engine_error(error: EngineError) -> AdminError {
    if let Some(taken) = OrgNameTaken::find_in(&error) {
        return AdminError::Conflict(taken.to_string());
    }
    match &error {
        EngineError::UnknownTenant(_) | EngineError::UnknownTenantRef(_) => AdminError::NotFound(error.to_string()),
        EngineError::UnknownTier(_) | EngineError::ZeroMaxRunners => AdminError::BadRequest(error.to_string()),
        EngineError::InvalidTransition { .. } => AdminError::Conflict(error.to_string()),
        _ => {
            let message = ghr_engine::error::ErrorChain(&error).to_string();
            tracing::error!(error = %message, "admin operation failed");
            AdminError::Internal(message)
        }
    }
}

fn bad_input(error: ghr_core::input::InvalidInput) -> AdminError {
    AdminError::BadRequest(error.to_string())
}

fn store_error(error: StoreError) -> AdminError {
    let message = ghr_engine::error::ErrorChain(&error).to_string();
    tracing::error!(error = %message, "admin operation failed");
    AdminError::Internal(message)
}

/// The operator's answer to "why is this job (still) waiting?".
pub fn explain(job: &Job) -> String {
    match job.status {
        JobStatus::Completed => match &job.conclusion {
            Some(conclusion) => format!("completed ({conclusion})"),
            None => "completed".into(),
        },
        JobStatus::InProgress => match &job.runner_name {
            Some(runner) => format!("running on runner {runner}"),
            None => "running".into(),
        },
        JobStatus::Queued => match (job.wait_reason, &job.tier) {
            (Some(Reason::NoMatchingTier), _) | (None, None) => {
                format!("not for ghr: {} — {}", Reason::NoMatchingTier.code(), Reason::NoMatchingTier.explain())
            }
            (Some(reason), _) => format!("waiting: {} — {}", reason.code(), reason.explain()),
            (None, Some(tier)) => format!("a {tier} runner is starting for it (or starts on the next dispatch pass)"),
        },
    }
}

#[async_trait]
impl Admin for LocalAdmin {
    async fn tenants_list(&self, status: Option<TenantStatus>) -> Result<Vec<Tenant>, AdminError> {
        self.tenants.list(status).await.map_err(engine_error)
    }

    async fn tenant_show(&self, reference: &str) -> Result<TenantDetail, AdminError> {
        let tenant = self.tenants.resolve(reference).await.map_err(engine_error)?;
        let filter = RunnerFilter {
            installation_id: Some(tenant.installation_id),
            tier: None,
            states: RunnerState::LIVE.to_vec(),
        };
        let runners = self.store.runner_list(filter).await.map_err(store_error)?;
        let mut live_by_tier = BTreeMap::new();
        for runner in &runners {
            *live_by_tier.entry(runner.tier.to_string()).or_insert(0) += 1;
        }
        // Counted in the store over this tenant's waiting jobs only (listing the whole queue to filter it here
        // took a second with 100k jobs waiting).
        let waiting = self.store.job_waiting_counts(Some(tenant.installation_id)).await.map_err(store_error)?;
        let waiting_jobs = waiting
            .into_iter()
            .map(|(reason, n)| {
                (
                    reason.map_or_else(|| "starting".to_owned(), |r| r.code().to_owned()),
                    u32::try_from(n).unwrap_or(u32::MAX),
                )
            })
            .collect();
        Ok(TenantDetail { live_runners: runners.len() as u32, live_by_tier, waiting_jobs, tenant })
    }

    async fn tenant_add(&self, request: NewTenantRequest) -> Result<Tenant, AdminError> {
        check_github_id("installation_id", request.installation_id.0).map_err(bad_input)?;
        check_login("org_name", &request.org_name).map_err(bad_input)?;
        let account =
            Account { login: OrgName::from(request.org_name.as_str()), id: AccountId(0), kind: request.org_type };
        match self.tenants.add(request.installation_id, &account, request.tier).await.map_err(engine_error)? {
            Onboarded::Created(t) | Onboarded::Reinstalled(t) => Ok(t),
            Onboarded::AlreadyKnown(t) => Err(AdminError::Conflict(format!(
                "tenant {} already exists (org {}, status {})",
                t.installation_id, t.org_name, t.status
            ))),
        }
    }

    async fn tenant_set_tier(&self, reference: &str, request: SetTierRequest) -> Result<Tenant, AdminError> {
        if let Some(max_runners) = request.max_runners {
            check_max_runners(max_runners).map_err(bad_input)?;
        }
        let tenant = self.tenants.resolve(reference).await.map_err(engine_error)?;
        self.tenants.set_tier(tenant.installation_id, request.tier, request.max_runners).await.map_err(engine_error)
    }

    async fn tenant_action(&self, reference: &str, action: TenantAction) -> Result<Tenant, AdminError> {
        let id = self.tenants.resolve(reference).await.map_err(engine_error)?.installation_id;
        let result = match action {
            TenantAction::Suspend => self.tenants.suspend(id).await,
            TenantAction::Resume => self.tenants.resume(id).await,
            TenantAction::Approve => self.tenants.approve(id).await,
        };
        result.map_err(engine_error)
    }

    async fn runners_list(&self, query: RunnersQuery) -> Result<Vec<Runner>, AdminError> {
        let states = query.states().map_err(AdminError::BadRequest)?;
        if let Some(tier) = &query.tier {
            self.settings.catalog.require(tier).map_err(|e| AdminError::BadRequest(e.to_string()))?;
        }
        let installation_id = self.installation_of(query.tenant.as_deref()).await?;
        let filter = RunnerFilter { installation_id, tier: query.tier, states };
        self.store.runner_list(filter).await.map_err(store_error)
    }

    async fn jobs_list(&self, query: JobsQuery) -> Result<Vec<Job>, AdminError> {
        let limit = query.limit.unwrap_or(DEFAULT_JOB_LIMIT);
        if limit == 0 || limit > MAX_JOB_LIMIT {
            return Err(AdminError::BadRequest(format!("limit must be between 1 and {MAX_JOB_LIMIT}")));
        }
        let installation_id = self.installation_of(query.tenant.as_deref()).await?;
        let filter = JobFilter { installation_id, status: query.status, wait_reason: query.reason, limit: Some(limit) };
        self.store.job_list(filter).await.map_err(store_error)
    }

    async fn job_show(&self, id: JobId) -> Result<JobDetail, AdminError> {
        let job = self
            .store
            .job_get(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| AdminError::NotFound(format!("no job with id {id}")))?;
        let timeline = self.store.job_timeline(id).await.map_err(store_error)?;
        Ok(JobDetail { explanation: explain(&job), job, timeline })
    }

    async fn usage(&self, query: UsageQuery) -> Result<UsageReport, AdminError> {
        let now = Utc::now();
        let to = query.to.unwrap_or(now);
        let from = query.from.unwrap_or(to - Duration::days(DEFAULT_USAGE_DAYS));
        if from >= to {
            return Err(AdminError::BadRequest("`from` must be before `to`".into()));
        }
        let installation_id = self.installation_of(query.tenant.as_deref()).await?;
        let usage = self.store.usage(from, to, now).await.map_err(store_error)?;
        let usage: Vec<_> =
            usage.into_iter().filter(|row| installation_id.is_none_or(|id| row.installation_id == id)).collect();
        let mut names: BTreeMap<InstallationId, Option<String>> = BTreeMap::new();
        let mut rows = Vec::new();
        for cost in price(&self.settings.catalog, &usage) {
            let org_name = match names.entry(cost.installation_id) {
                Entry::Occupied(known) => known.get().clone(),
                Entry::Vacant(slot) => {
                    let tenant = self.store.tenant_get(cost.installation_id).await.map_err(store_error)?;
                    slot.insert(tenant.map(|t| t.org_name.to_string())).clone()
                }
            };
            rows.push(UsageLine { org_name, cost });
        }
        Ok(UsageReport { from, to, rows })
    }
}
