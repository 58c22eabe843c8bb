//! Prometheus exposition: one process-wide recorder, rendered on its own listener, plus the gauges the
//! server refreshes from the store.

use ghr_core::ports::Store;
use ghr_core::reason::Reason;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// The `reason` label of jobs a runner is on its way for.
const STARTING: &str = "starting";

/// Counter: webhook requests received, by `event`.
pub const WEBHOOKS_RECEIVED: &str = "ghr_webhooks_received_total";
/// Counter: webhook requests rejected, by `reason`.
pub const WEBHOOKS_REJECTED: &str = "ghr_webhooks_rejected_total";
/// Histogram (seconds): webhook request received → answered.
pub const WEBHOOK_ACK: &str = "ghr_webhook_ack_seconds";
/// Gauge: jobs ghr has recorded, by GitHub `status` (queued, in_progress, completed).
pub const JOBS: &str = "ghr_jobs";
/// Gauge: tenants by `status`.
pub const TENANTS: &str = "ghr_tenants";
/// Counter: GitHub API requests sent (token requests and retries included).
pub const GITHUB_CALLS: &str = "ghr_github_api_calls_total";
/// Counter: installation tokens requested.
pub const GITHUB_TOKEN_REQUESTS: &str = "ghr_github_token_requests_total";
/// Counter: GitHub answers that were rate limits.
pub const GITHUB_RATE_LIMITED: &str = "ghr_github_rate_limited_total";
/// Gauge: requests left in the current GitHub rate-limit window, by `installation` (`app` for the App's JWT).
pub const GITHUB_RATE_LIMIT_REMAINING: &str = "ghr_github_rate_limit_remaining";

/// Histogram buckets (seconds) shared by every latency histogram.
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];

/// A gauge series not set for this long leaves the exposition. Every gauge is set by a periodic loop (the gauges
/// every 5 s, the dispatcher's waiting counts every pass, at least every tick), so only series nothing reports
/// any more go: a tenant's runner series, set to 0 once when its last runner went, disappears after this, which
/// keeps the runners gauge's cardinality to the tenants that had live runners lately instead of every tenant
/// that ever had one.
const GAUGE_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The (tenant, tier, state) series of the runners gauge emitted by the last refresh.
pub type RunnerSeries = std::collections::BTreeSet<(String, String, &'static str)>;

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Install the process-wide Prometheus recorder (once) and return its handle.
pub fn prometheus() -> Result<PrometheusHandle, String> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE_TIMEOUT))
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .map_err(|e| e.to_string())?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder)
                .map_err(|e| format!("a metrics recorder is already installed: {e}"))?;
            Ok(handle)
        })
        .clone()
}

/// Export what the GitHub client spent: calls, token requests, rate limits, and what is left per installation.
pub fn refresh_github(github: &dyn ghr_core::ports::GitHubApi) {
    let usage = github.usage();
    metrics::counter!(GITHUB_CALLS).absolute(usage.calls);
    metrics::counter!(GITHUB_TOKEN_REQUESTS).absolute(usage.token_requests);
    metrics::counter!(GITHUB_RATE_LIMITED).absolute(usage.rate_limited);
    for (installation, remaining) in usage.remaining {
        metrics::gauge!(GITHUB_RATE_LIMIT_REMAINING, "installation" => installation.to_string()).set(remaining as f64);
    }
    if let Some(remaining) = usage.app_remaining {
        metrics::gauge!(GITHUB_RATE_LIMIT_REMAINING, "installation" => "app").set(remaining as f64);
    }
}

/// Refresh the gauges that mirror the store: runners by tenant/tier/state, jobs by status, tenants by status.
///
/// Every read costs in proportion to what is live, not to the tables: the runner series come from an index over
/// live runners only (terminated runners, kept as the usage record, are never read), and jobs and tenants per
/// status are counts the store keeps as rows change. Tenant is a label of the runners gauge only for tenants that
/// have live runners (at most the live runners' count of series, bounded by the limits); `seen` carries the series
/// set last time, so one that emptied is set to 0 once rather than left stale.
pub async fn refresh_gauges(store: &dyn Store, seen: &mut RunnerSeries) -> Result<(), ghr_core::ports::StoreError> {
    let live = store.runner_live_series().await?;
    let counts: BTreeMap<(String, String, &'static str), u32> = live
        .into_iter()
        .map(|((tenant, tier, state), n)| ((tenant.to_string(), tier.to_string(), state.as_str()), n))
        .collect();
    for key in seen.iter().filter(|key| !counts.contains_key(*key)) {
        let (tenant, tier, state) = key.clone();
        metrics::gauge!(ghr_engine::metrics::RUNNERS, "tenant" => tenant, "tier" => tier, "state" => state).set(0.0);
    }
    *seen = counts.keys().cloned().collect();
    for ((tenant, tier, state), n) in counts {
        metrics::gauge!(ghr_engine::metrics::RUNNERS, "tenant" => tenant, "tier" => tier, "state" => state)
            .set(f64::from(n));
    }
    let jobs = store.job_counts().await?;
    for status in ghr_core::job::JobStatus::ALL {
        metrics::gauge!(JOBS, "status" => status.as_str()).set(jobs.get(&status).copied().unwrap_or(0) as f64);
    }
    // Jobs wanting a runner, by why they wait (`starting`: a runner is on its way), read whole every time so
    // the gauge never lags the store, whichever replica or pass changed a reason.
    let waiting = store.job_waiting_counts(None).await?;
    for reason in Reason::ALL.into_iter().filter(|r| r.is_waiting()) {
        let n = waiting.get(&Some(reason)).copied().unwrap_or(0);
        metrics::gauge!(ghr_engine::metrics::JOBS_WAITING, "reason" => reason.code()).set(n as f64);
    }
    let starting = waiting.get(&None).copied().unwrap_or(0);
    metrics::gauge!(ghr_engine::metrics::JOBS_WAITING, "reason" => STARTING).set(starting as f64);
    let tenants = store.tenant_counts().await?;
    for status in ghr_core::tenant::TenantStatus::ALL {
        metrics::gauge!(TENANTS, "status" => status.as_str()).set(tenants.get(&status).copied().unwrap_or(0) as f64);
    }
    Ok(())
}
