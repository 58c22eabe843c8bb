//! The demo's report: per-tenant outcomes, peak concurrency against the limit, latency percentiles,
//! usage, and the invariants whose failure makes `ghr demo` exit non-zero. Pure functions over records.

use ghr_core::Timestamp;
use ghr_core::runner::Runner;
use serde::Serialize;
use std::collections::BTreeMap;

/// The most runners of one tenant alive at the same instant (a runner holds its slot from reservation to
/// termination). Exact: a sweep over the recorded intervals, not a sampled gauge.
pub fn peak_concurrency(runners: &[&Runner], now: Timestamp) -> u32 {
    let mut edges: Vec<(Timestamp, i32)> = Vec::with_capacity(runners.len() * 2);
    for runner in runners {
        edges.push((runner.created_at, 1));
        edges.push((runner.terminated_at.unwrap_or(now), -1));
    }
    // At equal instants, releases come before reservations: the store frees a slot before granting it.
    edges.sort_by_key(|(at, delta)| (*at, *delta));
    let (mut live, mut peak) = (0i32, 0i32);
    for (_, delta) in edges {
        live += delta;
        peak = peak.max(live);
    }
    peak.max(0) as u32
}

/// The `p`-th percentile (0–100) of `values` by nearest rank; None when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

/// One tenant's line of the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TenantReport {
    pub org: String,
    pub installation_id: u64,
    pub tier: String,
    pub status: String,
    pub max_runners: u32,
    pub jobs_queued: usize,
    pub served: usize,
    pub waiting: BTreeMap<String, usize>,
    pub refused: BTreeMap<String, usize>,
    pub dropped: usize,
    pub peak_runners: u32,
    pub queued_to_running_p50_s: Option<f64>,
    pub queued_to_running_p95_s: Option<f64>,
    pub runner_seconds: f64,
    pub cost: f64,
}

/// The whole report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DemoReport {
    pub duration_s: f64,
    pub tenants: Vec<TenantReport>,
    pub violations: Vec<String>,
    /// Queued → running without and with a warm pool (absent with `--boot-ms 0`).
    pub latency: Option<super::LatencyComparison>,
}

impl DemoReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn render(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .tenants
            .iter()
            .map(|t| {
                let reasons = |m: &BTreeMap<String, usize>| {
                    if m.is_empty() {
                        "-".to_owned()
                    } else {
                        m.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
                    }
                };
                vec![
                    t.org.clone(),
                    format!("{} ({})", t.tier, t.status),
                    t.jobs_queued.to_string(),
                    t.served.to_string(),
                    reasons(&t.waiting),
                    reasons(&t.refused),
                    t.dropped.to_string(),
                    format!("{}/{}", t.peak_runners, t.max_runners),
                    format!("{} / {}", secs(t.queued_to_running_p50_s), secs(t.queued_to_running_p95_s)),
                    format!("{:.1}", t.runner_seconds),
                    format!("{:.6}", t.cost),
                ]
            })
            .collect();
        let mut out = crate::table::render(
            &[
                "TENANT",
                "PLAN",
                "JOBS",
                "SERVED",
                "WAITING",
                "REFUSED",
                "DROPPED",
                "PEAK/MAX",
                "QUEUED→RUNNING P50 / P95",
                "RUNNER-S",
                "COST",
            ],
            &rows,
        );
        if let Some(latency) = &self.latency {
            out.push_str(&format!("\n{}\n", latency.render()));
        }
        out.push_str(&format!("\nran for {:.1} s\n", self.duration_s));
        if self.violations.is_empty() {
            out.push_str("invariants: PASS (limits held, no job lost, nothing leaked)\n");
        } else {
            out.push_str("invariants: FAIL\n");
            for violation in &self.violations {
                out.push_str(&format!("  - {violation}\n"));
            }
        }
        out
    }
}

fn secs(value: Option<f64>) -> String {
    value.map(|v| format!("{v:.2}s")).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};
    use ghr_core::ids::{InstallationId, RunnerName, RunnerSeq};
    use ghr_core::runner::RunnerState;

    fn runner(start: i64, end: Option<i64>) -> Runner {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Runner {
            seq: RunnerSeq(1),
            name: RunnerName::new("r"),
            installation_id: InstallationId(1),
            tier: "small".into(),
            tenant_tier: "small".into(),
            scope_repo: None,
            state: if end.is_some() { RunnerState::Terminated } else { RunnerState::Busy },
            instance_id: None,
            github_runner_id: None,
            intended_job: None,
            job_id: None,
            created_at: t0 + Duration::seconds(start),
            launched_at: None,
            registered_at: None,
            job_started_at: None,
            finished_at: None,
            terminated_at: end.map(|e| t0 + Duration::seconds(e)),
            last_error: None,
            updated_at: t0,
        }
    }

    #[test]
    fn peak_is_exact() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap();
        let runners = [runner(0, Some(10)), runner(5, Some(15)), runner(10, Some(20)), runner(12, None)];
        let refs: Vec<&Runner> = runners.iter().collect();
        // At t=12: runners 2, 3 and 4 are live (runner 1 ended at 10, before runner 3 started at 10).
        assert_eq!(peak_concurrency(&refs, now), 3);
        assert_eq!(peak_concurrency(&[], now), 0);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(10.0));
        assert_eq!(percentile(&values, 95.0), Some(19.0));
        assert_eq!(percentile(&[3.0], 95.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
