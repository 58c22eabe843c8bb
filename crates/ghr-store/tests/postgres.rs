//! The conformance suite on PostgreSQL (a fresh schema per store), plus what only several store instances
//! on one database can show: atomic reservations across replicas, delivery dedupe across replicas, leases
//! and wake-ups between them, and the schema check on open.

use ghr_core::ports::Store;
use ghr_store::conformance;
use ghr_store::testing::fresh_postgres_store;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_postgres() {
    conformance::run_all(|| async { Arc::new(fresh_postgres_store().await) as Arc<dyn Store> }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_conformance_on_postgres() {
    conformance::run_pool(|| async { Arc::new(fresh_postgres_store().await) as Arc<dyn ghr_core::ports::PoolStore> })
        .await;
}

/// Operations cancelled mid-transaction (a reconciler pass abandoned when its lease runs out, a request whose
/// client went away) never leave their transaction open on a pooled connection: with one connection in the
/// pool, a write right after each cancelled read-only snapshot or write must run in a transaction of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_operations_leave_no_transaction_behind() {
    use ghr_core::planner::dispatch::DemandQuery;
    use ghr_core::ports::LeaseRequest;
    use ghr_store::PgSettings;
    use std::time::Duration;

    let url = ghr_store::testing::fresh_postgres_url().await;
    let settings = PgSettings { max_connections: 1, min_connections: 0, ..PgSettings::default() };
    let store = Arc::new(ghr_store::PgStore::open(&url, &settings).await.expect("open"));
    let tenant = conformance::new_tenant(1, "acme", ghr_core::tenant::TenantStatus::Active, "small", 3);
    store.tenant_create(tenant, conformance::at(0)).await.expect("tenant");
    for job in 1..=20 {
        store.job_observe(conformance::queued(job, 1, "acme/app", Some("small"), 0)).await.expect("a queued job");
    }
    for round in 0..500u64 {
        let cancelled = store.clone();
        let task = tokio::spawn(async move {
            if round % 2 == 0 {
                let _ = cancelled.demand_snapshot(DemandQuery::default()).await;
            } else {
                let request = LeaseRequest {
                    name: "cancelled".into(),
                    holder: format!("h{round}"),
                    ttl: Duration::from_millis(1),
                    now: conformance::at(i64::try_from(round).unwrap_or_default()),
                };
                let _ = cancelled.lease_acquire(request).await;
            }
        });
        // Cancel at a different moment each round: before, during or after the transaction's statements.
        tokio::time::sleep(Duration::from_micros(50 * (round % 40))).await;
        task.abort();
        let _ = task.await;
        store.check_writable().await.unwrap_or_else(|e| {
            panic!("round {round}: a write after a cancelled operation failed: {}", ghr_core::error::ErrorChain(&e))
        });
    }
}
