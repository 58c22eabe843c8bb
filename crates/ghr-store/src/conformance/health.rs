//! Contracts of the store's write check: it succeeds on a healthy store, can be repeated as often as a
//! readiness probe likes, and leaves no trace in the data the engine sees.

use super::fixtures::{active_tenant, ok};
use ghr_core::ports::{JobFilter, RunnerFilter, Store};
use ghr_core::tenant::TenantStatus;
use std::sync::Arc;

/// How many probes in a row the contract runs (a readiness probe repeats every few seconds).
const PROBES: usize = 5;

/// A healthy store proves a write commits, every time, and the probes change nothing visible.
pub async fn check_writable_repeats_without_side_effects(store: Arc<dyn Store>) {
    for probe in 0..PROBES {
        ok(store.check_writable().await, &format!("check_writable #{probe}"));
    }
    assert!(ok(store.tenant_list(None).await, "tenant_list").is_empty(), "probes create no tenants");
    assert!(ok(store.job_list(JobFilter::default()).await, "job_list").is_empty(), "probes create no jobs");
    assert!(ok(store.runner_list(RunnerFilter::default()).await, "runner_list").is_empty(), "probes create no runners");

    // Writes after the probes work as before.
    let tenant = active_tenant(store.as_ref(), 1, 1).await;
    assert_eq!(tenant.status, TenantStatus::Active);
    ok(store.check_writable().await, "check_writable after a write");
}
