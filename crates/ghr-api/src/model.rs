//! Request and response bodies of `/api/v1`, and the queries of its list endpoints.

use crate::enums::{JobStatus, OrgType, Reason, RunnerState, RunnerStates, TenantStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An instant on the wire: RFC 3339, UTC.
pub type Timestamp = DateTime<Utc>;

/// Page size of a list endpoint when the query names none.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// Largest page a list endpoint serves; follow `next_cursor` for more.
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// One page of a list endpoint. `next_cursor`, when present, is passed back as `cursor` (with the same
/// filters) for the next page; it is absent on the last page. Cursors are opaque.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The last page: `items` and nothing after them.
    pub fn last(items: Vec<T>) -> Self {
        Self { items, next_cursor: None }
    }
}

/// A customer: one GitHub App installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub installation_id: u64,
    pub org_name: String,
    pub org_type: OrgType,
    pub status: TenantStatus,
    /// The tenant's plan: a tier of the catalog.
    pub tier: String,
    /// Concurrent-runner limit across all tiers.
    pub max_runners: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub metadata: TenantMetadata,
}

/// Who installed the App, as GitHub reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantMetadata {
    pub github_account_id: Option<u64>,
    pub sender_login: Option<String>,
    pub sender_id: Option<u64>,
}

/// A tenant with its live runners and waiting jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: Tenant,
    /// Live runners across all tiers (counted against `max_runners`).
    pub live_runners: u32,
    /// Live runners per tier.
    pub live_by_tier: BTreeMap<String, u32>,
    /// Jobs waiting for a runner, by reason code (`starting` while a runner is on its way).
    pub waiting_jobs: BTreeMap<String, u32>,
}

/// A workflow job ghr has heard of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: u64,
    pub installation_id: u64,
    /// `owner/name` of the repository.
    pub repository: String,
    /// The job's `runs-on` labels.
    pub labels: Vec<String>,
    /// The tier the labels match; None when no tier does.
    pub tier: Option<String>,
    pub status: JobStatus,
    pub conclusion: Option<String>,
    /// The runner that took the job.
    pub runner_name: Option<String>,
    /// Why the job is not running yet.
    pub wait_reason: Option<Reason>,
    /// When ghr first heard of the job.
    pub received_at: Timestamp,
    /// GitHub's `created_at` of the job, when known.
    pub queued_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// One line of a job's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub at: Timestamp,
    /// A short kind: `queued`, `waiting`, `runner_requested`, `in_progress`, `completed`, ...
    pub kind: String,
    pub detail: String,
}

/// A job, its timeline and, while it waits, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: Job,
    pub timeline: Vec<JobEvent>,
    /// A sentence for operators: why the job is (still) waiting, or what happened.
    pub explanation: String,
}

/// An ephemeral runner ghr started (or is starting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runner {
    /// Creation order; runner listings are sorted by it.
    pub seq: u64,
    pub name: String,
    pub installation_id: u64,
    /// The runner's size.
    pub tier: String,
    /// The tenant's plan when the slot was reserved.
    pub tenant_tier: String,
    /// `owner/name` for repository-level runners (personal-account tenants).
    pub scope_repo: Option<String>,
    pub state: RunnerState,
    pub instance_id: Option<String>,
    pub github_runner_id: Option<u64>,
    /// The job it was started for.
    pub intended_job: Option<u64>,
    /// The job it ran.
    pub job_id: Option<u64>,
    pub created_at: Timestamp,
    pub launched_at: Option<Timestamp>,
    pub registered_at: Option<Timestamp>,
    pub job_started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub terminated_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub updated_at: Timestamp,
}

/// `GET /api/v1/tenants?status=&limit=&cursor=`: tenants by installation id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsQuery {
    #[serde(default)]
    pub status: Option<TenantStatus>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `POST /api/v1/tenants`: onboard a tenant by hand (repair, or before the App is installed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenantRequest {
    pub installation_id: u64,
    pub org_name: String,
    #[serde(default = "default_org_type")]
    pub org_type: OrgType,
    /// Plan; the configured default tier when absent.
    #[serde(default)]
    pub tier: Option<String>,
}

fn default_org_type() -> OrgType {
    OrgType::Organization
}

/// `PUT /api/v1/tenants/{tenant}/tier`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTierRequest {
    pub tier: String,
    /// Explicit limit; derived from the tier when absent.
    #[serde(default)]
    pub max_runners: Option<u32>,
}

/// `GET /api/v1/runners?tenant=&tier=&state=&limit=&cursor=`: runners in creation order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnersQuery {
    /// Installation id or org login.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    /// Default: live.
    #[serde(default)]
    pub state: Option<RunnerStates>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `GET /api/v1/jobs?tenant=&status=&reason=&limit=&cursor=`: jobs newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub status: Option<JobStatus>,
    #[serde(default)]
    pub reason: Option<Reason>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `GET /api/v1/usage?from=&to=&tenant=` (default: the last 30 days).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    #[serde(default)]
    pub from: Option<Timestamp>,
    #[serde(default)]
    pub to: Option<Timestamp>,
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Runner-seconds and estimated cost per tenant and tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub from: Timestamp,
    pub to: Timestamp,
    pub rows: Vec<UsageLine>,
    /// Warm-pool machines' idle time per tier: the operator's cost, never a tenant's (empty for a report on one
    /// tenant, and without warm pools).
    #[serde(default)]
    pub pool: Vec<PoolUsageLine>,
}

/// One tier's warm-pool idle time in a usage report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolUsageLine {
    pub tier: String,
    /// Seconds pool machines spent launched but unbound inside the period.
    pub machine_seconds: f64,
    /// The tier's price per runner-hour, the idle time's valuation; None when the tier is unknown.
    pub price_per_hour: Option<f64>,
    /// Idle time at that price, to 1e-6; None when the tier is unknown.
    pub cost: Option<f64>,
}

/// One usage row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageLine {
    pub installation_id: u64,
    pub org_name: Option<String>,
    pub tier: String,
    pub runner_seconds: f64,
    pub runners: u64,
    /// Price per runner-hour; None when the tier is no longer in the catalog.
    pub price_per_hour: Option<f64>,
    /// Estimated cost, to 1e-6; None when the tier is unknown.
    pub cost: Option<f64>,
}

impl UsageReport {
    /// The report as CSV (header + one line per row).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("installation_id,org_name,tier,runners,runner_seconds,price_per_hour,cost\n");
        for line in &self.rows {
            out.push_str(&format!(
                "{},{},{},{},{:.3},{},{}\n",
                line.installation_id,
                csv_field(line.org_name.as_deref().unwrap_or("")),
                csv_field(&line.tier),
                line.runners,
                line.runner_seconds,
                line.price_per_hour.map(|p| p.to_string()).unwrap_or_default(),
                line.cost.map(|p| format!("{p:.6}")).unwrap_or_default(),
            ));
        }
        out
    }
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// The last reconciler pass as `GET /api/v1/reconciler` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcilerStatus {
    /// When the last pass ran; None before the first pass.
    pub last_pass_at: Option<Timestamp>,
    /// What that pass did (counts per rule and the rules that failed).
    pub report: Option<serde_json::Value>,
}

/// Parse an optional RFC 3339 instant given as `name` (a query parameter or a CLI flag); the error says
/// what form is expected.
pub fn parse_instant(name: &str, value: Option<&str>) -> Result<Option<Timestamp>, String> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("`{name}` must be an RFC 3339 instant such as 2026-01-31T00:00:00Z: {e}"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_page_has_no_cursor_on_the_wire() {
        let page = Page::last(vec![1, 2]);
        assert_eq!(serde_json::to_string(&page).unwrap(), r#"{"items":[1,2]}"#);
        let next: Page<u32> = serde_json::from_str(r#"{"items":[],"next_cursor":"abc"}"#).unwrap();
        assert_eq!(next.next_cursor.as_deref(), Some("abc"));
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let at = Utc::now();
        let report = UsageReport {
            from: at,
            to: at,
            rows: vec![UsageLine {
                installation_id: 7,
                org_name: Some("a,\"b\"".into()),
                tier: "small".into(),
                runner_seconds: 1.5,
                runners: 2,
                price_per_hour: Some(0.5),
                cost: None,
            }],
            pool: Vec::new(),
        };
        assert!(report.to_csv().ends_with("7,\"a,\"\"b\"\"\",small,2,1.500,0.5,\n"), "{}", report.to_csv());
    }

    #[test]
    fn queries_refuse_unknown_parameters() {
        assert!(serde_json::from_str::<JobsQuery>(r#"{"staus":"queued"}"#).is_err());
        let query: RunnersQuery = serde_json::from_str(r#"{"state":"all","limit":5}"#).unwrap();
        assert_eq!(query.state, Some(RunnerStates::All));
    }

    #[test]
    fn instants_name_the_parameter() {
        let error = parse_instant("from", Some("yesterday")).unwrap_err();
        assert!(error.starts_with("`from` must be an RFC 3339 instant"), "{error}");
        assert_eq!(parse_instant("to", None), Ok(None));
    }
}
