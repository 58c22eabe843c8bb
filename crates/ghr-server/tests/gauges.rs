//! The gauges that mirror the store (`metrics::refresh_gauges`): runners by tenant/tier/state from the live
//! runners only, jobs and tenants by status from the store's kept counts, waiting jobs by reason, and a series
//! that emptied set to 0.

use chrono::Utc;
use ghr_core::ids::{InstallationId, RunnerName};
use ghr_core::ports::{Reservation, RunnerUpdate, Store};
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{TenantStatus, TenantUpdate};
use ghr_server::metrics::{RunnerSeries, refresh_gauges};
use ghr_store::SqliteStore;
use ghr_store::conformance::{at, new_tenant, queued, reserve_request};
use metrics_exporter_prometheus::PrometheusBuilder;

async fn reserve(store: &dyn Store, installation: u64) -> RunnerName {
    match store.runner_reserve(reserve_request(installation, "small", 1)).await.expect("reserve") {
        Reservation::Reserved(runner) => runner.name,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

#[test]
fn gauges_mirror_live_runners_and_kept_counts() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = SqliteStore::open_in_memory().await.expect("store");
        for id in [1, 2, 3] {
            store
                .tenant_create(new_tenant(id, &format!("org-{id}"), TenantStatus::Active, "small", 5), at(0))
                .await
                .expect("tenant");
        }
        let deleted = TenantUpdate { status: Some(TenantStatus::Deleted), ..TenantUpdate::default() };
        store.tenant_update(InstallationId(3), deleted, at(1)).await.expect("delete tenant 3");
        for (job, installation) in [(10, 1), (11, 1), (12, 2)] {
            store.job_observe(queued(job, installation, "org/app", Some("small"), job as i64)).await.expect("job");
        }
        let suspended = Some(ghr_core::reason::Reason::TenantSuspended);
        store.job_set_wait_reason(ghr_core::ids::JobId(11), suspended, at(2)).await.expect("reason");
        let busy = reserve(&store, 1).await;
        let gone = reserve(&store, 2).await;
        store.runner_update(&busy, RunnerUpdate::state(RunnerState::Busy, Utc::now())).await.expect("busy");

        let mut seen = RunnerSeries::new();
        refresh_gauges(&store, &mut seen).await.expect("refresh");
        let text = handle.render();
        for line in [
            r#"ghr_runners{tenant="1",tier="small",state="busy"} 1"#,
            r#"ghr_runners{tenant="2",tier="small",state="requested"} 1"#,
            r#"ghr_jobs{status="queued"} 3"#,
            r#"ghr_jobs{status="completed"} 0"#,
            r#"ghr_tenants{status="active"} 2"#,
            r#"ghr_tenants{status="deleted"} 1"#,
            r#"ghr_jobs_waiting{reason="tenant_suspended"} 1"#,
            r#"ghr_jobs_waiting{reason="starting"} 2"#,
            r#"ghr_jobs_waiting{reason="tenant_at_limit"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in:\n{text}");
        }

        store.runner_update(&gone, RunnerUpdate::state(RunnerState::Terminated, Utc::now())).await.expect("gone");
        refresh_gauges(&store, &mut seen).await.expect("refresh");
        let text = handle.render();
        let emptied = r#"ghr_runners{tenant="2",tier="small",state="requested"} 0"#;
        assert!(text.lines().any(|l| l == emptied), "an emptied series reads 0:\n{text}");
        assert_eq!(seen.len(), 1, "only tenant 1's live series is carried: {seen:?}");

        // Reasons follow the store at every refresh, whoever changed them.
        store.job_set_wait_reason(ghr_core::ids::JobId(11), None, at(3)).await.expect("reason cleared");
        refresh_gauges(&store, &mut seen).await.expect("refresh");
        let text = handle.render();
        for line in [r#"ghr_jobs_waiting{reason="tenant_suspended"} 0"#, r#"ghr_jobs_waiting{reason="starting"} 3"#] {
            assert!(text.lines().any(|l| l == line), "missing {line} in:\n{text}");
        }
    });
}
