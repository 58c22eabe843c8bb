//! Everything the console reads or changes, in one place: the admin surface ([`crate::admin::Admin`]) for
//! tenants, jobs, runners and usage, the store for whole-deployment counts, the Prometheus handle and the
//! reconciler for health. Pages get plain data from here and never call the admin surface themselves.

use super::{Console, UiError};
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use ghr_api::{ApiError, JobsQuery, MAX_PAGE_LIMIT, Page, RunnersQuery, SetTierRequest, TenantsQuery, UsageQuery};
/// The admin surface's answers the pages render, and the actions they ask for.
pub use ghr_api::{
    Job, JobDetail, JobStatus, Reason, Runner, RunnerStates, Tenant, TenantAction, TenantDetail, TenantStatus,
};
use ghr_core::Timestamp;
use ghr_core::ids::InstallationId;
use ghr_core::stats::{HourlyWaits, hourly_waits};
use std::collections::BTreeMap;

/// Hours of the overview's wait chart.
pub const WAIT_CHART_HOURS: u32 = 12;
/// Most jobs per status read for the wait chart (the newest; an hour with more starts is sampled).
const WAIT_SAMPLE_JOBS: u32 = 10_000;
/// How long the wait chart is reused before the jobs are read again.
pub const WAITS_TTL: std::time::Duration = std::time::Duration::from_secs(15);
/// Most tenants the overview and the tenants list detail (live runners, waiting jobs) one by one.
pub const DETAILED_TENANTS: usize = 200;
/// Most runners the runners page lists (the oldest first).
pub const MAX_RUNNERS_SHOWN: usize = 5_000;
/// Longest usage range of the tenant page's chart, in days.
pub const MAX_USAGE_DAYS: i64 = 92;

fn internal(error: ghr_core::ports::StoreError) -> UiError {
    tracing::error!(error = %ghr_engine::error::ErrorChain(&error), "console read failed");
    UiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; the server log has the cause")
}

/// The admin surface's errors as console error pages, with the same status as the API's answers.
impl From<ApiError> for UiError {
    fn from(error: ApiError) -> Self {
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &error {
            ApiError::Internal(_) => "internal error; the server log has the cause".to_owned(),
            other => ghr_core::text::clip_to(&other.to_string(), 1024).into_owned(),
        };
        Self { status, message }
    }
}

/// One tier of the catalog with its live runners.
pub struct TierLoad {
    pub name: String,
    /// The plan's limit per tenant.
    pub plan_max_runners: u32,
    pub price_per_hour: f64,
    /// Live runners of this size, all tenants.
    pub live: u32,
    /// Tenants (not deleted) on this plan.
    pub tenants: u32,
}

/// What the overview shows.
pub struct Overview {
    pub tenants_by_status: BTreeMap<TenantStatus, u64>,
    pub tenants: Vec<TenantDetail>,
    /// More tenants exist than were detailed.
    pub tenants_truncated: bool,
    pub tiers: Vec<TierLoad>,
    pub live_total: u32,
    pub global_max_runners: Option<u32>,
    /// Waiting jobs by reason code (`starting`: a runner is on its way).
    pub waiting: BTreeMap<String, u64>,
    pub waits: Vec<HourlyWaits>,
    pub health: Health,
}

/// Webhook and GitHub API health, from the process's counters and the reconciler's last pass.
pub struct Health {
    /// None when this process records no metrics.
    pub counters: Option<Counters>,
    /// When the reconciler last finished a pass, and the rule errors of that pass.
    pub reconciler: Option<(Timestamp, Vec<String>)>,
}

/// Totals of the process's counters since it started.
pub struct Counters {
    pub webhooks_received: f64,
    pub webhooks_rejected: f64,
    pub github_calls: f64,
    pub github_rate_limited: f64,
    /// The lowest remaining request budget of any GitHub rate-limit window, when known.
    pub github_remaining_min: Option<f64>,
}

/// Sum the samples of each metric of a Prometheus text exposition (labels ignored); gauges also keep the least.
fn parse_exposition(text: &str) -> (BTreeMap<&str, f64>, BTreeMap<&str, f64>) {
    let mut sums = BTreeMap::new();
    let mut mins: BTreeMap<&str, f64> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let name = series.split('{').next().unwrap_or(series);
        *sums.entry(name).or_insert(0.0) += value;
        let least = mins.entry(name).or_insert(value);
        *least = least.min(value);
    }
    (sums, mins)
}

impl Console {
    fn health(&self) -> Health {
        use crate::metrics as m;
        let counters = self.config.metrics.as_ref().map(|handle| {
            let text = handle.render();
            let (sums, mins) = parse_exposition(&text);
            let sum = |name: &str| sums.get(name).copied().unwrap_or(0.0);
            Counters {
                webhooks_received: sum(m::WEBHOOKS_RECEIVED),
                webhooks_rejected: sum(m::WEBHOOKS_REJECTED),
                github_calls: sum(m::GITHUB_CALLS),
                github_rate_limited: sum(m::GITHUB_RATE_LIMITED),
                github_remaining_min: mins.get(m::GITHUB_RATE_LIMIT_REMAINING).copied(),
            }
        });
        let reconciler =
            self.app.reconciler.as_ref().and_then(|r| r.last_report()).map(|(at, report)| (at, report.errors));
        Health { counters, reconciler }
    }

    /// The tenants (all, or with one status), and the details of the first [`DETAILED_TENANTS`] not deleted.
    pub async fn tenants(&self, status: Option<TenantStatus>) -> Result<(Vec<Tenant>, Vec<TenantDetail>), UiError> {
        let tenants = self.all_tenants(status).await?;
        let mut details = Vec::new();
        for tenant in tenants.iter().filter(|t| t.status != TenantStatus::Deleted).take(DETAILED_TENANTS) {
            details.push(self.app.admin.tenant_show(&tenant.installation_id.to_string()).await?);
        }
        Ok((tenants, details))
    }

    pub async fn overview(&self) -> Result<Overview, UiError> {
        let tenants_by_status = self
            .app
            .store
            .tenant_counts()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(status, n)| (TenantStatus::from(status), n))
            .collect();
        let (all, tenants) = self.tenants(None).await?;
        let shown = all.iter().filter(|t| t.status != TenantStatus::Deleted).count();
        let mut tiers: Vec<TierLoad> = self
            .config
            .catalog
            .tiers()
            .iter()
            .map(|tier| TierLoad {
                name: tier.name.to_string(),
                plan_max_runners: tier.max_runners,
                price_per_hour: tier.price_per_hour,
                live: 0,
                tenants: 0,
            })
            .collect();
        let live = self.app.store.runner_live_series().await.map_err(internal)?;
        let mut live_total = 0;
        for ((_, tier, _), n) in &live {
            live_total += n;
            if let Some(load) = tiers.iter_mut().find(|t| t.name == tier.as_str()) {
                load.live += n;
            }
        }
        for tenant in all.iter().filter(|t| t.status != TenantStatus::Deleted) {
            if let Some(load) = tiers.iter_mut().find(|t| t.name == tenant.tier.as_str()) {
                load.tenants += 1;
            }
        }
        let waiting = self
            .app
            .store
            .job_waiting_counts(None)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(reason, n)| (reason.map_or("starting", ghr_core::reason::Reason::code).to_owned(), n))
            .collect();
        Ok(Overview {
            tenants_by_status,
            tenants_truncated: shown > tenants.len(),
            tenants,
            tiers,
            live_total,
            global_max_runners: self.config.global_max_runners,
            waiting,
            waits: self.waits().await?,
            health: self.health(),
        })
    }

    /// Queued → running waits per hour over the last [`WAIT_CHART_HOURS`], recomputed at most every
    /// [`WAITS_TTL`].
    async fn waits(&self) -> Result<Vec<HourlyWaits>, UiError> {
        let fresh = |cached: &CachedWaits| cached.at.elapsed() < WAITS_TTL;
        if let Some(cached) = self.waits.lock().ok().and_then(|c| c.as_ref().filter(|c| fresh(c)).cloned()) {
            return Ok(cached.hours);
        }
        let hours = self.read_waits().await?;
        if let Ok(mut cache) = self.waits.lock() {
            *cache = Some(CachedWaits { at: std::time::Instant::now(), hours: hours.clone() });
        }
        Ok(hours)
    }

    async fn read_waits(&self) -> Result<Vec<HourlyWaits>, UiError> {
        let now = Utc::now();
        let since = now - Duration::hours(i64::from(WAIT_CHART_HOURS));
        let mut waits = Vec::new();
        for status in [JobStatus::InProgress, JobStatus::Completed] {
            let mut cursor = None;
            let mut read = 0;
            loop {
                let query =
                    JobsQuery { status: Some(status), limit: Some(MAX_PAGE_LIMIT), cursor, ..JobsQuery::default() };
                let page = self.app.admin.jobs_list(query).await?;
                read += page.items.len();
                // Newest first: once a page reaches back before the window, older pages cannot matter.
                let reached_back = page.items.last().is_none_or(|job| job.received_at < since);
                for job in page.items {
                    if let Some(started) = job.started_at.filter(|s| *s >= since) {
                        waits.push((job.received_at, started));
                    }
                }
                match page.next_cursor {
                    Some(next) if !reached_back && read < WAIT_SAMPLE_JOBS as usize => cursor = Some(next),
                    _ => break,
                }
            }
        }
        Ok(hourly_waits(&waits, now, WAIT_CHART_HOURS))
    }

    pub async fn tenant(&self, reference: &str) -> Result<TenantDetail, UiError> {
        Ok(self.app.admin.tenant_show(reference).await?)
    }

    /// Runner usage and cost of a tenant per UTC day of `[from, to)` (days after now count nothing).
    pub async fn daily_usage(&self, reference: &str, from: Timestamp, to: Timestamp) -> Result<Vec<DayUsage>, UiError> {
        let now = Utc::now();
        let mut days = Vec::new();
        let mut day = from;
        while day < to {
            let end = (day + Duration::days(1)).min(to);
            let (mut seconds, mut cost) = (0.0, 0.0);
            if day < now {
                let query = UsageQuery { from: Some(day), to: Some(end.min(now)), tenant: Some(reference.to_owned()) };
                for line in self.app.admin.usage(query).await?.rows {
                    seconds += line.runner_seconds;
                    cost += line.cost.unwrap_or(0.0);
                }
            }
            days.push(DayUsage { day, runner_hours: seconds / 3600.0, cost });
            day = end;
        }
        Ok(days)
    }

    /// One page of the newest jobs matching the filters (`tenant`: a login or installation id), from `cursor`.
    pub async fn jobs(
        &self,
        tenant: Option<String>,
        status: Option<JobStatus>,
        reason: Option<Reason>,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<Page<Job>, UiError> {
        Ok(self.app.admin.jobs_list(JobsQuery { tenant, status, reason, limit: Some(limit), cursor }).await?)
    }

    pub async fn job(&self, id: u64) -> Result<JobDetail, UiError> {
        Ok(self.app.admin.job_show(id).await?)
    }

    /// Runners in `state`, of one tenant or all (every page).
    pub async fn runners(&self, state: RunnerStates, tenant: Option<String>) -> Result<Vec<Runner>, UiError> {
        let mut runners = Vec::new();
        let mut cursor = None;
        loop {
            let query = RunnersQuery {
                state: Some(state),
                tenant: tenant.clone(),
                limit: Some(MAX_PAGE_LIMIT),
                cursor,
                ..RunnersQuery::default()
            };
            let page = self.app.admin.runners_list(query).await?;
            runners.extend(page.items);
            match page.next_cursor {
                Some(next) if runners.len() < MAX_RUNNERS_SHOWN => cursor = Some(next),
                _ => return Ok(runners),
            }
        }
    }

    /// Every tenant (with one status), following the pages.
    async fn all_tenants(&self, status: Option<TenantStatus>) -> Result<Vec<Tenant>, UiError> {
        let mut tenants = Vec::new();
        let mut cursor = None;
        loop {
            let query = TenantsQuery { status, limit: Some(MAX_PAGE_LIMIT), cursor };
            let page = self.app.admin.tenants_list(query).await?;
            tenants.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(tenants),
            }
        }
    }

    /// Org logins by installation, for tables that show runners and jobs.
    pub async fn tenant_names(&self) -> Result<BTreeMap<u64, String>, UiError> {
        let tenants = self.all_tenants(None).await?;
        Ok(tenants.into_iter().map(|t| (t.installation_id, t.org_name)).collect())
    }

    /// Tier names of the catalog, in plan order.
    pub fn tier_names(&self) -> Vec<String> {
        self.config.catalog.names()
    }

    /// Set a tenant's plan (and limit), then wake the dispatcher for it as the API does.
    pub async fn set_tier(&self, reference: &str, tier: String, max_runners: Option<u32>) -> Result<Tenant, UiError> {
        let tenant = self.app.admin.tenant_set_tier(reference, SetTierRequest { tier, max_runners }).await?;
        self.app.dispatcher_wake.tenant(InstallationId(tenant.installation_id));
        Ok(tenant)
    }

    /// Suspend, resume or approve a tenant, then wake the dispatcher for it as the API does.
    pub async fn tenant_action(&self, reference: &str, action: TenantAction) -> Result<Tenant, UiError> {
        let tenant = self.app.admin.tenant_action(reference, action).await?;
        self.app.dispatcher_wake.tenant(InstallationId(tenant.installation_id));
        Ok(tenant)
    }
}

/// The wait chart as last computed.
#[derive(Clone)]
pub struct CachedWaits {
    at: std::time::Instant,
    hours: Vec<HourlyWaits>,
}

/// One day of a tenant's usage.
pub struct DayUsage {
    pub day: Timestamp,
    pub runner_hours: f64,
    pub cost: f64,
}

#[cfg(test)]
mod tests {
    use super::parse_exposition;

    #[test]
    fn exposition_sums_series_and_keeps_the_least() {
        let text =
            "# HELP x\n# TYPE x counter\nx{event=\"a\"} 2\nx{event=\"b\"} 3\ny 7\ng{i=\"1\"} 40\ng{i=\"2\"} 12\n";
        let (sums, mins) = parse_exposition(text);
        assert_eq!(sums.get("x"), Some(&5.0));
        assert_eq!(sums.get("y"), Some(&7.0));
        assert_eq!(mins.get("g"), Some(&12.0));
        assert_eq!(sums.get("absent"), None);
    }
}
