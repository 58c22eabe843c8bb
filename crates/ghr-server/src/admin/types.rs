//! Request and response bodies of the admin API (shared by the server and the CLI).

use ghr_core::Timestamp;
use ghr_core::cost::CostRow;
use ghr_core::ids::{InstallationId, TierName};
use ghr_core::job::{Job, JobEvent, JobStatus};
use ghr_core::reason::Reason;
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::{OrgType, Tenant, TenantStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A tenant with its live runners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: Tenant,
    /// Live runners across all tiers (counted against `max_runners`).
    pub live_runners: u32,
    /// Live runners per tier.
    pub live_by_tier: BTreeMap<String, u32>,
    /// Jobs waiting for a runner, by reason code.
    pub waiting_jobs: BTreeMap<String, u32>,
}

/// `POST /api/v1/tenants`: onboard a tenant by hand (repair, or before the App is installed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenantRequest {
    pub installation_id: InstallationId,
    pub org_name: String,
    #[serde(default = "default_org_type")]
    pub org_type: OrgType,
    /// Plan; the configured default tier when absent.
    #[serde(default)]
    pub tier: Option<TierName>,
}

fn default_org_type() -> OrgType {
    OrgType::Organization
}

/// `PUT /api/v1/tenants/{ref}/tier`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTierRequest {
    pub tier: TierName,
    /// Explicit limit; derived from the tier when absent.
    #[serde(default)]
    pub max_runners: Option<u32>,
}

/// `POST /api/v1/tenants/{ref}/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantAction {
    Suspend,
    Resume,
    Approve,
}

impl TenantAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantAction::Suspend => "suspend",
            TenantAction::Resume => "resume",
            TenantAction::Approve => "approve",
        }
    }
}

/// `GET /api/v1/runners?tenant=&tier=&state=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnersQuery {
    /// Installation id or org login.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub tier: Option<TierName>,
    /// One state; `live` for every state that holds a slot. Default: live.
    #[serde(default)]
    pub state: Option<String>,
}

impl RunnersQuery {
    /// The states this query selects, or an error naming the allowed values.
    pub fn states(&self) -> Result<Vec<RunnerState>, String> {
        match self.state.as_deref() {
            None | Some("live") => Ok(RunnerState::LIVE.to_vec()),
            Some("all") => Ok(RunnerState::ALL.to_vec()),
            Some(other) => other.parse::<RunnerState>().map(|s| vec![s]).map_err(|e| format!("{e}, live, all")),
        }
    }
}

/// `GET /api/v1/jobs?tenant=&status=&reason=&limit=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub status: Option<JobStatus>,
    #[serde(default)]
    pub reason: Option<Reason>,
    /// At most this many, newest first. Default 100.
    #[serde(default)]
    pub limit: Option<u32>,
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

/// `GET /api/v1/usage?from=&to=&tenant=` (RFC 3339 instants; default: the last 30 days).
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
}

/// One usage row with the tenant's org name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageLine {
    pub org_name: Option<String>,
    #[serde(flatten)]
    pub cost: CostRow,
}

impl UsageReport {
    /// The report as CSV (header + one line per row).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("installation_id,org_name,tier,runners,runner_seconds,price_per_hour,cost\n");
        for line in &self.rows {
            let c = &line.cost;
            out.push_str(&format!(
                "{},{},{},{},{:.3},{},{}\n",
                c.installation_id,
                csv_field(line.org_name.as_deref().unwrap_or("")),
                csv_field(c.tier.as_str()),
                c.runners,
                c.runner_seconds,
                c.price_per_hour.map(|p| p.to_string()).unwrap_or_default(),
                c.cost.map(|p| format!("{p:.6}")).unwrap_or_default(),
            ));
        }
        out
    }
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value.to_owned() }
}

/// The JSON body of every admin API error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// Parse an optional RFC 3339 instant given as `name` (a query parameter or a CLI flag); the error says
/// what form is expected.
pub fn parse_instant(name: &str, value: Option<&str>) -> Result<Option<Timestamp>, String> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| format!("`{name}` must be an RFC 3339 instant such as 2026-01-31T00:00:00Z: {e}"))
        })
        .transpose()
}

/// Whether a tenant status filter string is valid (for query parsing).
pub fn parse_status(value: &str) -> Result<TenantStatus, String> {
    value.parse::<TenantStatus>().map_err(|e| e.to_string())
}

/// Whether a runner is live (helper for tables).
pub fn is_live(runner: &Runner) -> bool {
    runner.state.is_live()
}
