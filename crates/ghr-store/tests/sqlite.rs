//! The conformance suite on SQLite (in memory and on a file), plus what only a real SQLite file
//! can show: atomic reservations across several store instances, restarts, concurrent opens and
//! corrupt data.

use ghr_core::ids::{DeliveryId, InstallationId, JobId, TierName};
use ghr_core::job::{JobObservation, JobStatus};
use ghr_core::ports::{DeliveryRecord, Reservation, ReserveRequest, RunnerUpdate, Store, StoreError};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{NewTenant, OrgType, TenantMetadata, TenantStatus};
use ghr_store::conformance::{self, at};
use ghr_store::{SqliteStore, StoreOptions, open_store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const TIERS: [&str; 2] = ["small", "large"];

#[tokio::test]
async fn conformance_in_memory() {
    conformance::run_all(|| async {
        let store = SqliteStore::open_in_memory().await.expect("open an in-memory store");
        Arc::new(store) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_conformance_on_file() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let counter = AtomicUsize::new(0);
    conformance::run_pool(|| {
        let path = dir.path().join(format!("pool-{}.db", counter.fetch_add(1, Ordering::Relaxed)));
        async move {
            let store = SqliteStore::open(&path.display().to_string()).await.expect("open a file store");
            Arc::new(store) as Arc<dyn ghr_core::ports::PoolStore>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_file() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let counter = AtomicUsize::new(0);
    conformance::run_all(|| {
        let path = dir.path().join(format!("store-{}.db", counter.fetch_add(1, Ordering::Relaxed)));
        async move {
            let store = SqliteStore::open(&path.display().to_string()).await.expect("open a file store");
            Arc::new(store) as Arc<dyn Store>
        }
    })
    .await;
}

fn tenant(id: u64, max_runners: u32) -> NewTenant {
    NewTenant {
        installation_id: InstallationId(id),
        org_name: format!("org-{id}").as_str().into(),
        org_type: OrgType::Organization,
        status: TenantStatus::Active,
        tier: "large".into(),
        max_runners,
        metadata: TenantMetadata::default(),
    }
}

fn queued(job: u64, installation: u64, tier: &str) -> JobObservation {
    JobObservation {
        job_id: JobId(job),
        installation_id: InstallationId(installation),
        repository: format!("org-{installation}/app"),
        labels: vec!["self-hosted".to_owned(), tier.to_owned()],
        tier: Some(TierName::from(tier)),
        status: JobStatus::Queued,
        conclusion: None,
        runner_name: None,
        queued_at: None,
        started_at: None,
        completed_at: None,
        observed_at: at(job as i64),
    }
}

fn request(installation: u64, tier: &str) -> ReserveRequest {
    conformance::reserve_request(installation, tier, 1_000)
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(&path.display().to_string()).await.unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

async fn live_of(store: &dyn Store, installation: u64) -> u32 {
    let counts = store.runner_live_counts().await.expect("runner_live_counts");
    counts.get(&InstallationId(installation)).copied().unwrap_or(0)
}

/// 64 tasks over 3 stores on one file hammer one tenant (max 3, two tiers) and a second tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservations_stay_within_limits_across_store_instances() {
    const BUSY_TENANT: u64 = 1;
    const BUSY_LIMIT: u32 = 3;
    const OTHER_TENANT: u64 = 2;
    const TASKS: u64 = 64;
    const ROUNDS: usize = 12;
    const OTHER_EVERY: u64 = 4;

    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("shared.db");
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(open(&path).await));
    }
    let setup = stores[0].as_ref();
    setup.tenant_create(tenant(BUSY_TENANT, BUSY_LIMIT), at(0)).await.expect("tenant_create");
    setup.tenant_create(tenant(OTHER_TENANT, 1_000), at(0)).await.expect("tenant_create");
    // 200 queued jobs over two tiers for the busy tenant; the other tenant's demand must never run
    // out, whichever tiers its tasks pick.
    let other_reservations = (TASKS / OTHER_EVERY) * ROUNDS as u64;
    for job in 0..200 {
        setup.job_observe(queued(1_000 + job, BUSY_TENANT, TIERS[(job % 2) as usize])).await.expect("job_observe");
    }
    for job in 0..other_reservations * 2 {
        setup.job_observe(queued(5_000 + job, OTHER_TENANT, TIERS[(job % 2) as usize])).await.expect("job_observe");
    }

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(&stores[(task % 3) as usize]);
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(task);
            let installation = if task % OTHER_EVERY == 0 { OTHER_TENANT } else { BUSY_TENANT };
            let mut held = None;
            let mut reserved = 0usize;
            for _ in 0..ROUNDS {
                // Free the held slot at random, through either end of the lifecycle.
                if installation == BUSY_TENANT
                    && rng.random_bool(0.5)
                    && let Some(name) = held.take()
                {
                    let end = if rng.random_bool(0.5) { RunnerState::Failed } else { RunnerState::Terminated };
                    let done = store.runner_update(&name, RunnerUpdate::state(end, at(2_000))).await;
                    assert_eq!(done.expect("runner_update").map(|r| r.state), Some(end));
                }
                let tier = TIERS[rng.random_range(0..TIERS.len())];
                let outcome = store.runner_reserve(request(installation, tier)).await.expect("runner_reserve");
                match outcome {
                    Reservation::Reserved(runner) => {
                        reserved += 1;
                        let live = live_of(store.as_ref(), BUSY_TENANT).await;
                        assert!(live <= BUSY_LIMIT, "tenant {BUSY_TENANT} has {live} live runners (max {BUSY_LIMIT})");
                        // Hold the new runner; a runner still held from before is terminated.
                        if installation == BUSY_TENANT
                            && let Some(previous) = held.replace(runner.name)
                        {
                            let update = RunnerUpdate::state(RunnerState::Terminated, at(2_000));
                            store.runner_update(&previous, update).await.expect("runner_update");
                        }
                    }
                    Reservation::Refused(Reason::TenantAtLimit) if installation == BUSY_TENANT => {}
                    other => panic!("tenant {installation}: unexpected outcome {other:?}"),
                }
            }
            (installation, reserved)
        });
    }
    let mut busy_reserved = 0;
    while let Some(joined) = tasks.join_next().await {
        let (installation, reserved) = joined.expect("reservation task");
        if installation == BUSY_TENANT {
            busy_reserved += reserved;
        }
    }
    // More reservations than slots means freed slots were reused (how many more depends on scheduling).
    assert!(busy_reserved > BUSY_LIMIT as usize, "freed slots are reused (only {busy_reserved} reservations)");
    for store in &stores {
        assert!(live_of(store.as_ref(), BUSY_TENANT).await <= BUSY_LIMIT, "every instance sees the limit held");
    }
    let all = stores[1].runner_list(Default::default()).await.expect("runner_list");
    let of_other = all.iter().filter(|r| r.installation_id == InstallationId(OTHER_TENANT)).count();
    assert_eq!(of_other as u64, other_reservations, "every reservation of the second tenant succeeded");
    let names: std::collections::BTreeSet<_> = all.iter().map(|r| r.name.clone()).collect();
    assert_eq!(names.len(), all.len(), "runner names are unique across instances");
}

/// Closing and reopening a file keeps tenants, jobs, runners, deliveries and the limit.
#[tokio::test]
async fn state_and_limits_survive_a_restart() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("restart.db");
    let delivery = DeliveryRecord {
        delivery_id: DeliveryId::from("d-1"),
        event: "workflow_job".to_owned(),
        action: Some("queued".to_owned()),
        installation_id: Some(InstallationId(1)),
        received_at: at(0),
    };
    let (first, second) = {
        let store = open(&path).await;
        store.tenant_create(tenant(1, 2), at(0)).await.expect("tenant_create");
        assert!(store.delivery_record(&delivery).await.expect("delivery_record"));
        for job in 1..=3 {
            store.job_observe(queued(job, 1, "small")).await.expect("job_observe");
        }
        let mut names = Vec::new();
        for _ in 0..2 {
            match store.runner_reserve(request(1, "small")).await.expect("runner_reserve") {
                Reservation::Reserved(runner) => names.push(*runner),
                other => panic!("expected a reservation, got {other:?}"),
            }
        }
        store.close().await;
        (names[0].clone(), names[1].clone())
    };

    let store = open(&path).await;
    assert_eq!(store.tenant_get(InstallationId(1)).await.expect("tenant_get").map(|t| t.max_runners), Some(2));
    assert!(!store.delivery_record(&delivery).await.expect("delivery_record"), "deduplication survives");
    assert_eq!(store.job_list_wanting_runner().await.expect("job_list_wanting_runner").len(), 3);
    assert_eq!(store.runner_get(&first.name).await.expect("runner_get"), Some(first.clone()));
    assert_eq!(live_of(&store, 1).await, 2);
    let outcome = store.runner_reserve(request(1, "small")).await.expect("runner_reserve");
    assert_eq!(outcome, Reservation::Refused(Reason::TenantAtLimit), "the limit counts runners from before");
    store.runner_update(&second.name, RunnerUpdate::state(RunnerState::Failed, at(5))).await.expect("runner_update");
    match store.runner_reserve(request(1, "small")).await.expect("runner_reserve") {
        Reservation::Reserved(third) => assert!(third.seq > second.seq, "sequence numbers are never reused"),
        other => panic!("expected a reservation after a slot was freed, got {other:?}"),
    }
}

/// Several processes starting at once on a new file: the schema is created exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_of_a_new_file_migrate_once() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("fresh.db");
    let opens = (0..4).map(|_| {
        let path = path.clone();
        async move { open(&path).await }
    });
    let stores: Vec<SqliteStore> = futures_join_all(opens).await;
    stores[0].tenant_create(tenant(1, 1), at(0)).await.expect("tenant_create");
    for store in &stores {
        assert!(store.tenant_get(InstallationId(1)).await.expect("tenant_get").is_some());
    }
}

/// Await every future, in parallel tasks.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

/// A value the domain does not know is reported as corrupt data, naming the column and value.
#[tokio::test]
async fn unknown_stored_values_are_corrupt() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("corrupt.db");
    let store = open(&path).await;
    store.tenant_create(tenant(1, 1), at(0)).await.expect("tenant_create");
    let url = format!("sqlite://{}", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("connect beside the store");
    sqlx::query("UPDATE tenants SET status = 'frozen' WHERE installation_id = 1").execute(&pool).await.expect("edit");
    pool.close().await;
    match store.tenant_get(InstallationId(1)).await {
        Err(StoreError::Corrupt { op, detail }) => {
            assert_eq!(op, "tenant_get");
            assert!(detail.contains("status") && detail.contains("frozen"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn open_store_accepts_urls_and_paths() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let memory = open_store("sqlite::memory:", &StoreOptions::default()).await.expect("open_store(memory)");
    memory.tenant_create(tenant(1, 1), at(0)).await.expect("tenant_create");
    let other_memory = open_store("sqlite::memory:", &StoreOptions::default()).await.expect("open_store(memory)");
    assert!(
        other_memory.tenant_get(InstallationId(1)).await.expect("tenant_get").is_none(),
        "memory stores are private"
    );

    let path = dir.path().join("url.db");
    let by_url = open_store(&format!("sqlite://{}", path.display()), &StoreOptions::default())
        .await
        .expect("open_store(sqlite://)");
    by_url.tenant_create(tenant(2, 1), at(0)).await.expect("tenant_create");
    let by_path = open_store(&path.display().to_string(), &StoreOptions::default()).await.expect("open_store(path)");
    assert!(by_path.tenant_get(InstallationId(2)).await.expect("tenant_get").is_some(), "same file, same data");

    let missing_dir = dir.path().join("no-such-dir").join("x.db");
    let err = open_store(&missing_dir.display().to_string(), &StoreOptions::default())
        .await
        .err()
        .expect("a missing directory fails");
    let chain = error_chain(&err);
    assert!(chain.contains("open") && chain.contains("no-such-dir"), "{chain}");
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
