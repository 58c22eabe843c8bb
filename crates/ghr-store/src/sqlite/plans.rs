//! Query plans of the statements whose cost must follow the rows they return, not the table sizes: job
//! listings under every filter, the gauges' counts, `tenants show`'s waiting counts, retention's batches and
//! the reconciler's walks over stale jobs.
//! SQLite plans without statistics here exactly as it does on a full database (ghr never runs ANALYZE), so
//! an empty database shows the plan a million jobs get.

use super::SqliteStore;
use super::{counts, jobs};
use ghr_core::ids::InstallationId;
use ghr_core::job::JobStatus;
use ghr_core::ports::JobFilter;
use ghr_core::reason::Reason;
use sqlx::Row;

/// The plan's steps, one line each.
async fn plan(store: &SqliteStore, sql: &str) -> Vec<String> {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let rows = sqlx::query(sqlx::AssertSqlSafe(explain)).fetch_all(&store.pool).await.expect("explain");
    rows.iter().map(|row| row.get::<String, _>("detail")).collect()
}

/// No step reads a whole table or sorts.
fn assert_ranged(steps: &[String], what: &str) {
    assert!(!steps.is_empty(), "{what}: no plan");
    for step in steps {
        assert!(!step.contains("TEMP B-TREE"), "{what} sorts: {steps:?}");
        assert!(!step.starts_with("SCAN") || step.contains("INDEX"), "{what} reads a whole table: {steps:?}");
    }
}

#[tokio::test]
async fn every_job_listing_is_an_index_range_in_order() {
    let store = SqliteStore::open_in_memory().await.expect("open");
    let installations = [None, Some(InstallationId(7))];
    let statuses = [None, Some(JobStatus::Queued), Some(JobStatus::Completed)];
    let reasons = [None, Some(Reason::TenantAtLimit)];
    let cursors = [None, Some((chrono::DateTime::UNIX_EPOCH, ghr_core::ids::JobId(5)))];
    for installation_id in installations {
        for status in statuses {
            for (wait_reason, before) in reasons.into_iter().flat_map(|r| cursors.map(|c| (r, c))) {
                let filter = JobFilter { installation_id, status, wait_reason, before, limit: Some(100) };
                let query = jobs::list_query(&filter).expect("a query");
                let steps = plan(&store, query.sql().as_str()).await;
                assert_ranged(&steps, &format!("job_list({filter:?})"));
                let filtered = installation_id.is_some() || status.is_some() || wait_reason.is_some();
                if filtered {
                    assert!(steps.iter().any(|s| s.starts_with("SEARCH")), "{filter:?} searches an index: {steps:?}");
                }
            }
        }
    }
}

#[tokio::test]
async fn gauges_and_tenant_counts_read_live_rows_only() {
    let store = SqliteStore::open_in_memory().await.expect("open");
    let series = plan(&store, counts::LIVE_SERIES_SQL).await;
    assert_ranged(&series, "runner_live_series");
    assert!(series.iter().any(|s| s.contains("COVERING INDEX runners_live_series")), "{series:?}");
    // Grouping one tenant's queued jobs by reason may sort them: that is as many rows as it counts.
    let waiting = plan(&store, counts::WAITING_SQL).await;
    assert!(waiting.iter().any(|s| s.starts_with("SEARCH jobs") && s.contains("installation_id=?")), "{waiting:?}");
    assert!(!waiting.iter().any(|s| s.starts_with("SCAN")), "job_waiting_counts reads a whole table: {waiting:?}");
}

#[tokio::test]
async fn retention_batches_find_what_they_delete_by_index() {
    let store = SqliteStore::open_in_memory().await.expect("open");
    let jobs = plan(&store, super::retention::JOBS_BATCH_SQL).await;
    assert_ranged(&jobs, "completed jobs batch");
    assert!(jobs.iter().any(|s| s.contains("jobs_completed_by_update")), "{jobs:?}");
    let deliveries = plan(&store, super::retention::DELIVERIES_BATCH_SQL).await;
    assert_ranged(&deliveries, "deliveries batch");
}

#[tokio::test]
async fn the_reconcilers_stale_job_walks_read_their_page_by_index() {
    let store = SqliteStore::open_in_memory().await.expect("open");
    let queued = plan(&store, super::snapshot::STALE_QUEUED_SQL).await;
    assert_ranged(&queued, "stale queued walk");
    assert!(queued.iter().any(|s| s.starts_with("SEARCH jobs")), "{queued:?}");
    let running = plan(&store, super::snapshot::STALE_IN_PROGRESS_SQL).await;
    assert_ranged(&running, "stale in-progress walk");
    assert!(running.iter().any(|s| s.starts_with("SEARCH jobs")), "{running:?}");
}

#[tokio::test]
async fn the_waiting_gauge_reads_the_partial_index_of_waiting_jobs_only() {
    let store = SqliteStore::open_in_memory().await.expect("open");
    let steps = plan(&store, counts::WAITING_TOTALS_SQL).await;
    // The partial index holds queued jobs matched to a tier only: one entry per waiting job.
    assert!(steps.iter().any(|s| s.contains("INDEX jobs_queued_by_tenant_reason")), "{steps:?}");
    assert!(!steps.iter().any(|s| s.starts_with("SCAN jobs") && !s.contains("INDEX")), "{steps:?}");
}
