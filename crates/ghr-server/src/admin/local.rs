//! [`Admin`] on the store and the engine's tenant service: what the HTTP API serves and what the CLI uses
//! when pointed at a database. Domain records become wire types here (`ghr_api::convert`), and list
//! operations are paged by [`Cursor`].

use super::cursor::{Cursor, Filters};
use async_trait::async_trait;
use chrono::{Duration, Utc};
use ghr_api::convert::usage_line;
use ghr_api::{
    Admin, ApiError, DEFAULT_PAGE_LIMIT, JobDetail, JobsQuery, MAX_PAGE_LIMIT, NewTenantRequest, Page, PoolUsageLine,
    RunnersQuery, SetTierRequest, TenantAction, TenantDetail, TenantsQuery, UsageQuery, UsageReport,
};
use ghr_core::Timestamp;
use ghr_core::cost::price;
use ghr_core::event::Account;
use ghr_core::ids::{AccountId, InstallationId, JobId, OrgName, TierName};
use ghr_core::input::{check_github_id, check_login};
use ghr_core::job::{Job, JobStatus};
use ghr_core::ports::{JobFilter, PoolStore, RunnerFilter, Store, StoreError};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{OrgNameTaken, check_max_runners};
use ghr_engine::EngineError;
use ghr_engine::settings::EngineSettings;
use ghr_engine::tenants::{Onboarded, TenantService};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

/// Default usage window.
pub const DEFAULT_USAGE_DAYS: i64 = 30;

#[derive(Clone)]
pub struct LocalAdmin {
    store: Arc<dyn Store>,
    /// Warm-pool machines, for the operator's pool cost in usage reports.
    pool: Option<Arc<dyn PoolStore>>,
    settings: Arc<EngineSettings>,
    tenants: TenantService,
}

impl LocalAdmin {
    pub fn new(store: Arc<dyn Store>, settings: Arc<EngineSettings>) -> Self {
        let tenants = TenantService::new(store.clone(), settings.clone());
        Self { store, pool: None, settings, tenants }
    }

    /// The same admin reporting warm-pool idle time from `pool`.
    pub fn with_pool(mut self, pool: Option<Arc<dyn PoolStore>>) -> Self {
        self.pool = pool;
        self
    }

    /// Warm-pool idle time per tier in `[from, to)`, valued at each tier's price.
    async fn pool_usage(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> Result<Vec<PoolUsageLine>, ApiError> {
        let Some(pool) = &self.pool else { return Ok(Vec::new()) };
        let filter = ghr_core::pool::PoolFilter { retired_since: Some(from) };
        let machines = pool.pool_list(filter).await.map_err(store_error)?;
        let seconds = ghr_core::pool::pool_idle_seconds(&machines, from, to, now);
        Ok(seconds
            .into_iter()
            .map(|(tier, seconds)| {
                let price = self.settings.catalog.get(&tier).map(|t| t.price_per_hour);
                let cost = price.map(|p| (p * seconds as f64 / 3600.0 * 1e6).round() / 1e6);
                PoolUsageLine { tier: tier.to_string(), machine_seconds: seconds as f64, price_per_hour: price, cost }
            })
            .collect())
    }

    /// The same admin stamping tenant changes with another clock (the engine's `Ports::clock`).
    pub fn with_clock(mut self, clock: Arc<dyn ghr_core::clock::Clock>) -> Self {
        self.tenants = self.tenants.with_clock(clock);
        self
    }

    async fn installation_of(&self, reference: Option<&str>) -> Result<Option<InstallationId>, ApiError> {
        match reference {
            None => Ok(None),
            Some(r) => Ok(Some(self.tenants.resolve(r).await.map_err(engine_error)?.installation_id)),
        }
    }
}

/// The page size asked for, checked.
fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE_LIMIT) {
        0 => Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_PAGE_LIMIT}"))),
        n if n > MAX_PAGE_LIMIT => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE_LIMIT}; follow `next_cursor` for more"
        ))),
        n => Ok(n),
    }
}

/// A page from `limit + 1` rows read: the extra row only says that another page follows.
fn page_of<T, W: From<T>>(mut rows: Vec<T>, limit: u32, filters: Filters, cursor_of: impl Fn(&T) -> Cursor) -> Page<W> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|last| cursor_of(last).encode(filters)) } else { None };
    Page { items: rows.into_iter().map(W::from).collect(), next_cursor }
}

/// A filter value in a cursor's fingerprint; `-` when absent.
fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn engine_error(error: EngineError) -> ApiError {
    if let Some(taken) = OrgNameTaken::find_in(&error) {
        return ApiError::Conflict(taken.to_string());
    }
    match &error {
        EngineError::UnknownTenant(_) | EngineError::UnknownTenantRef(_) => ApiError::NotFound(error.to_string()),
        EngineError::UnknownTier(_) | EngineError::ZeroMaxRunners => ApiError::BadRequest(error.to_string()),
        EngineError::InvalidTransition { .. } => ApiError::Conflict(error.to_string()),
        _ => {
            let message = ghr_engine::error::ErrorChain(&error).to_string();
            tracing::error!(error = %message, "admin operation failed");
            ApiError::Internal(message)
        }
    }
}

fn bad_input(error: ghr_core::input::InvalidInput) -> ApiError {
    ApiError::BadRequest(error.to_string())
}

fn store_error(error: StoreError) -> ApiError {
    let message = ghr_engine::error::ErrorChain(&error).to_string();
    tracing::error!(error = %message, "admin operation failed");
    ApiError::Internal(message)
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
    async fn tenants_list(&self, query: TenantsQuery) -> Result<Page<ghr_api::Tenant>, ApiError> {
        let limit = page_limit(query.limit)?;
        let filters = Filters::of(&format!("status={}", or_dash(query.status)));
        let after = Cursor::tenants(query.cursor.as_deref(), filters)?;
        // Tenants are few (one per customer): the page is cut here rather than in each store.
        let mut tenants = self.tenants.list(query.status.map(Into::into)).await.map_err(engine_error)?;
        tenants.sort_by_key(|t| t.installation_id);
        tenants.retain(|t| after.is_none_or(|after| t.installation_id > after));
        tenants.truncate(limit as usize + 1);
        Ok(page_of(tenants, limit, filters, |t| Cursor::Tenants(t.installation_id)))
    }

    async fn tenant_show(&self, reference: &str) -> Result<TenantDetail, ApiError> {
        let tenant = self.tenants.resolve(reference).await.map_err(engine_error)?;
        let filter = RunnerFilter {
            installation_id: Some(tenant.installation_id),
            states: RunnerState::LIVE.to_vec(),
            ..RunnerFilter::default()
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
        Ok(TenantDetail {
            live_runners: u32::try_from(runners.len()).unwrap_or(u32::MAX),
            live_by_tier,
            waiting_jobs,
            tenant: tenant.into(),
        })
    }

    async fn tenant_add(&self, request: NewTenantRequest) -> Result<ghr_api::Tenant, ApiError> {
        check_github_id("installation_id", request.installation_id).map_err(bad_input)?;
        check_login("org_name", &request.org_name).map_err(bad_input)?;
        let account = Account {
            login: OrgName::from(request.org_name.as_str()),
            id: AccountId(0),
            kind: request.org_type.into(),
        };
        let id = InstallationId(request.installation_id);
        let tier = request.tier.map(TierName::new);
        match self.tenants.add(id, &account, tier).await.map_err(engine_error)? {
            Onboarded::Created(t) | Onboarded::Reinstalled(t) => Ok(t.into()),
            Onboarded::AlreadyKnown(t) => Err(ApiError::Conflict(format!(
                "tenant {} already exists (org {}, status {})",
                t.installation_id, t.org_name, t.status
            ))),
        }
    }

    async fn tenant_set_tier(&self, reference: &str, request: SetTierRequest) -> Result<ghr_api::Tenant, ApiError> {
        if let Some(max_runners) = request.max_runners {
            check_max_runners(max_runners).map_err(bad_input)?;
        }
        let tenant = self.tenants.resolve(reference).await.map_err(engine_error)?;
        let tier = TierName::new(request.tier);
        let updated =
            self.tenants.set_tier(tenant.installation_id, tier, request.max_runners).await.map_err(engine_error)?;
        Ok(updated.into())
    }

    async fn tenant_action(&self, reference: &str, action: TenantAction) -> Result<ghr_api::Tenant, ApiError> {
        let id = self.tenants.resolve(reference).await.map_err(engine_error)?.installation_id;
        let result = match action {
            TenantAction::Suspend => self.tenants.suspend(id).await,
            TenantAction::Resume => self.tenants.resume(id).await,
            TenantAction::Approve => self.tenants.approve(id).await,
        };
        result.map(Into::into).map_err(engine_error)
    }

    async fn runners_list(&self, query: RunnersQuery) -> Result<Page<ghr_api::Runner>, ApiError> {
        let limit = page_limit(query.limit)?;
        let tier = query.tier.map(TierName::new);
        if let Some(tier) = &tier {
            self.settings.catalog.require(tier).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        }
        let state = query.state.unwrap_or(ghr_api::RunnerStates::Live);
        let states = state.states().into_iter().map(Into::into).collect();
        let installation_id = self.installation_of(query.tenant.as_deref()).await?;
        let filters =
            Filters::of(&format!("tenant={};tier={};state={state}", or_dash(installation_id), or_dash(tier.as_ref())));
        let after_seq = Cursor::runners(query.cursor.as_deref(), filters)?;
        let filter = RunnerFilter { installation_id, tier, states, after_seq, limit: Some(limit + 1) };
        let runners = self.store.runner_list(filter).await.map_err(store_error)?;
        Ok(page_of(runners, limit, filters, |r| Cursor::Runners(r.seq)))
    }

    async fn jobs_list(&self, query: JobsQuery) -> Result<Page<ghr_api::Job>, ApiError> {
        let limit = page_limit(query.limit)?;
        let installation_id = self.installation_of(query.tenant.as_deref()).await?;
        let filters = Filters::of(&format!(
            "tenant={};status={};reason={}",
            or_dash(installation_id),
            or_dash(query.status),
            or_dash(query.reason)
        ));
        let before = Cursor::jobs(query.cursor.as_deref(), filters)?;
        let filter = JobFilter {
            installation_id,
            status: query.status.map(Into::into),
            wait_reason: query.reason.map(Into::into),
            before,
            limit: Some(limit + 1),
        };
        let jobs = self.store.job_list(filter).await.map_err(store_error)?;
        Ok(page_of(jobs, limit, filters, |j| Cursor::Jobs(j.received_at, j.job_id)))
    }

    async fn job_show(&self, id: u64) -> Result<JobDetail, ApiError> {
        let id = JobId(id);
        let job = self
            .store
            .job_get(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::NotFound(format!("no job with id {id}")))?;
        let timeline = self.store.job_timeline(id).await.map_err(store_error)?;
        Ok(JobDetail {
            explanation: explain(&job),
            job: job.into(),
            timeline: timeline.into_iter().map(Into::into).collect(),
        })
    }

    async fn usage(&self, query: UsageQuery) -> Result<UsageReport, ApiError> {
        let now = Utc::now();
        let to = query.to.unwrap_or(now);
        let from = query.from.unwrap_or(to - Duration::days(DEFAULT_USAGE_DAYS));
        if from >= to {
            return Err(ApiError::BadRequest("`from` must be before `to`".into()));
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
            rows.push(usage_line(cost, org_name));
        }
        // The pool is the operator's: a report on one tenant shows none of it.
        let pool = if installation_id.is_none() { self.pool_usage(from, to, now).await? } else { Vec::new() };
        Ok(UsageReport { from, to, rows, pool })
    }
}
