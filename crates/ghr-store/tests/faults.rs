//! Store faults on a real SQLite file: a write transaction that SQLite aborts underneath the store
//! (what a full disk does) or that its caller abandons must not leave a pooled connection stuck inside
//! that transaction; a read-only, removed or replaced database refuses writes with a typed error
//! instead of acknowledging them. Group-commit intake (`Store::intake_jobs`): a batch member whose write SQLite
//! aborts fails alone, and a removed database fails every member without recording any.

use ghr_core::ids::{DeliveryId, InstallationId, JobId, TierName};
use ghr_core::intake::{JobIntake, JobIntakeChange, JobIntakeOutcome};
use ghr_core::job::{JobChange, JobObservation, JobStatus};
use ghr_core::ports::{DeliveryRecord, Reservation, Store, StoreError, Unavailability};
use ghr_core::tenant::{NewTenant, OrgType, TenantMetadata, TenantStatus};
use ghr_store::SqliteStore;
use ghr_store::conformance::{at, reserve_request};
use std::path::Path;
use std::time::Duration;

/// Repository of the marker job whose insert the simulated fault aborts.
const FAULTY_REPOSITORY: &str = "fault/disk-full";
/// More sequential operations than the file store has pooled connections (8): together they are
/// handed every connection the pool holds, including the one that saw the fault.
const FOLLOW_UPS: u64 = 20;

/// `RAISE(ROLLBACK)` aborts the whole transaction inside SQLite, exactly as `SQLITE_FULL` (disk full)
/// or an I/O error can: the driver still believes a transaction is open, and its own rollback then
/// fails with "no transaction is active".
const SIMULATED_DISK_FULL: &str = "CREATE TRIGGER simulated_disk_full BEFORE INSERT ON jobs \
     WHEN NEW.repository = 'fault/disk-full' \
     BEGIN SELECT RAISE(ROLLBACK, 'simulated disk full'); END";

fn tenant(id: u64) -> NewTenant {
    NewTenant {
        installation_id: InstallationId(id),
        org_name: format!("org-{id}").as_str().into(),
        org_type: OrgType::Organization,
        status: TenantStatus::Active,
        tier: "small".into(),
        max_runners: 1_000,
        metadata: TenantMetadata::default(),
    }
}

fn queued(job: u64, repository: &str) -> JobObservation {
    JobObservation {
        job_id: JobId(job),
        installation_id: InstallationId(1),
        repository: repository.to_owned(),
        labels: vec!["self-hosted".to_owned(), "small".to_owned()],
        tier: Some(TierName::from("small")),
        status: JobStatus::Queued,
        conclusion: None,
        runner_name: None,
        queued_at: None,
        started_at: None,
        completed_at: None,
        observed_at: at(job as i64),
    }
}

/// One `workflow_job.queued` delivery of an intake batch.
fn item(delivery: &str, job: u64, repository: &str) -> JobIntake {
    JobIntake {
        delivery: DeliveryRecord {
            delivery_id: DeliveryId::from(delivery),
            event: "workflow_job".to_owned(),
            action: Some("queued".to_owned()),
            installation_id: Some(InstallationId(1)),
            received_at: at(0),
        },
        job: Some(JobIntakeChange { observation: queued(job, repository), initial_wait_reason: None, runner: None }),
    }
}

async fn seen(store: &SqliteStore, id: &str) -> bool {
    store.delivery_seen(&DeliveryId::from(id)).await.expect("delivery_seen")
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(&path.display().to_string()).await.unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Install a fault beside the store, through a connection of its own.
async fn install(path: &Path, ddl: &'static str) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("connect beside");
    sqlx::query(ddl).execute(&pool).await.expect("install the fault");
    pool.close().await;
}

/// After a write whose transaction SQLite aborted, every following webhook write and reservation on
/// the same store succeeds: the connection that saw the fault is discarded, not handed out again
/// still "inside" the aborted transaction.
#[tokio::test]
async fn an_aborted_write_transaction_does_not_poison_the_pool() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("faults.db");
    let store = open(&path).await;
    store.tenant_create(tenant(1), at(0)).await.expect("tenant_create");
    install(&path, SIMULATED_DISK_FULL).await;

    let failed = store.job_observe(queued(1, FAULTY_REPOSITORY)).await;
    assert!(failed.is_err(), "the simulated disk-full aborts the write, got {failed:?}");

    for n in 0..FOLLOW_UPS {
        let job = 100 + n;
        store.job_observe(queued(job, "org-1/app")).await.unwrap_or_else(|e| panic!("job_observe #{n}: {e:?}"));
        let delivery = DeliveryRecord {
            delivery_id: DeliveryId::from(format!("d-{n}").as_str()),
            event: "workflow_job".to_owned(),
            action: Some("queued".to_owned()),
            installation_id: Some(InstallationId(1)),
            received_at: at(job as i64),
        };
        store.delivery_record(&delivery).await.unwrap_or_else(|e| panic!("delivery_record #{n}: {e:?}"));
        let reserved = store.runner_reserve(reserve_request(1, "small", 1_000)).await;
        match reserved {
            Ok(Reservation::Reserved(_)) => {}
            other => panic!("runner_reserve #{n}: expected a reservation, got {other:?}"),
        }
    }
    assert!(store.job_get(JobId(1)).await.expect("job_get").is_none(), "the aborted write left nothing behind");
}

fn delivery(id: &str) -> DeliveryRecord {
    DeliveryRecord {
        delivery_id: DeliveryId::from(id),
        event: "workflow_job".to_owned(),
        action: Some("queued".to_owned()),
        installation_id: Some(InstallationId(1)),
        received_at: at(0),
    }
}

/// Insist on `StoreError::Unavailable` for `reason`, naming the database.
fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, reason: Unavailability, database: &Path) {
    match result {
        Err(StoreError::Unavailable { reason: got, database: named, .. }) => {
            assert_eq!(got, reason);
            assert!(named.contains(&database.display().to_string()), "{named}");
        }
        other => panic!("expected Unavailable({reason:?}), got {other:?}"),
    }
}

/// A write abandoned half-way (its caller's future dropped, as when a webhook client disconnects)
/// leaves the store usable and keeps what was committed before, in memory (where the database lives
/// only as long as some connection to it) and on a file.
#[tokio::test]
async fn an_abandoned_write_leaves_the_store_usable() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let stores =
        [SqliteStore::open_in_memory().await.expect("open in memory"), open(&dir.path().join("abandoned.db")).await];
    for store in &stores {
        store.tenant_create(tenant(1), at(0)).await.expect("tenant_create");
        for n in 0..FOLLOW_UPS {
            // Polled once, then dropped: wherever it stopped, its transaction is abandoned.
            let abandoned = tokio::time::timeout(Duration::ZERO, store.job_observe(queued(10 + n, "org-1/app")));
            let _ = abandoned.await;
        }
        store.job_observe(queued(1, "org-1/app")).await.expect("job_observe after abandoned writes");
        assert!(store.tenant_get(InstallationId(1)).await.expect("tenant_get").is_some(), "earlier writes are kept");
        store.check_writable().await.expect("check_writable");
    }
}

/// A database opened read-only refuses every write, and the write check, with `Unavailable(ReadOnly)`;
/// reads still work. Read-only is simulated by opening the file with `?mode=ro`: the tests may run as
/// root, whom file permissions (chmod 0444) do not stop.
#[tokio::test]
async fn a_read_only_database_refuses_writes_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("read-only.db");
    let writable = open(&path).await;
    writable.tenant_create(tenant(1), at(0)).await.expect("tenant_create");
    writable.close().await;

    let store = SqliteStore::open(&format!("sqlite://{}?mode=ro", path.display())).await.expect("open read-only");
    assert!(store.tenant_get(InstallationId(1)).await.expect("tenant_get").is_some(), "reads work");
    assert_unavailable(store.check_writable().await, Unavailability::ReadOnly, &path);
    assert_unavailable(store.job_observe(queued(1, "org-1/app")).await, Unavailability::ReadOnly, &path);
    assert_unavailable(store.delivery_record(&delivery("d-1")).await, Unavailability::ReadOnly, &path);
    assert_unavailable(store.tenant_create(tenant(2), at(0)).await, Unavailability::ReadOnly, &path);
    let message = store.check_writable().await.expect_err("read-only").to_string();
    assert!(message.contains("read-only") && message.contains("writable"), "{message}");
}

/// Removing the database's directory while the store is open: nothing more is acknowledged (the
/// writes would land in a deleted file), and the error says what happened.
#[tokio::test]
async fn a_removed_database_refuses_writes() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("create the data directory");
    let path = data.join("ghr.db");
    let store = open(&path).await;
    store.tenant_create(tenant(1), at(0)).await.expect("tenant_create");
    store.check_writable().await.expect("check_writable before the removal");

    std::fs::remove_dir_all(&data).expect("remove the data directory");
    assert_unavailable(store.check_writable().await, Unavailability::Removed, &path);
    assert_unavailable(store.job_observe(queued(1, "org-1/app")).await, Unavailability::Removed, &path);
    assert_unavailable(store.delivery_record(&delivery("d-1")).await, Unavailability::Removed, &path);
    assert_unavailable(store.tenant_create(tenant(2), at(0)).await, Unavailability::Removed, &path);
    let reserved = store.runner_reserve(reserve_request(1, "small", 1)).await;
    assert!(reserved.is_err(), "no reservation on a removed database, got {reserved:?}");
    let message = store.check_writable().await.expect_err("removed").to_string();
    assert!(message.contains("removed") && message.contains("restart"), "{message}");
}

/// Deleting only the write-ahead log (`ghr.db-wal`) loses every commit not yet checkpointed — all of a young
/// database — so it is refused like a removed database, before anything more is acknowledged.
#[tokio::test]
async fn a_removed_write_ahead_log_refuses_writes() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("ghr.db");
    let store = open(&path).await;
    store.tenant_create(tenant(1), at(0)).await.expect("tenant_create");
    let wal = dir.path().join("ghr.db-wal");
    assert!(wal.exists(), "a WAL store keeps its log while connections are open");
    std::fs::remove_file(&wal).expect("remove the write-ahead log");

    assert_unavailable(store.check_writable().await, Unavailability::Removed, &path);
    assert_unavailable(store.delivery_record(&delivery("d-1")).await, Unavailability::Removed, &path);
    assert_unavailable(store.job_observe(queued(1, "org-1/app")).await, Unavailability::Removed, &path);
}

/// Replacing the database file (moved away, another file put in its place) is refused the same way.
#[tokio::test]
async fn a_replaced_database_refuses_writes() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("ghr.db");
    let store = open(&path).await;
    store.tenant_create(tenant(1), at(0)).await.expect("tenant_create");
    std::fs::rename(&path, dir.path().join("moved-away.db")).expect("move the database away");
    std::fs::write(&path, b"").expect("put another file in its place");

    assert_unavailable(store.check_writable().await, Unavailability::Replaced, &path);
    assert_unavailable(store.job_observe(queued(1, "org-1/app")).await, Unavailability::Replaced, &path);
}

#[tokio::test]
async fn an_intake_member_whose_transaction_sqlite_aborts_fails_alone() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("intake.db");
    let store = open(&path).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("connect beside");
    sqlx::query(SIMULATED_DISK_FULL).execute(&pool).await.expect("install the fault");
    pool.close().await;

    let batch = vec![
        item("a", 1, "org-1/app"),
        item("b", 2, "org-1/app"),
        item("poison", 3, FAULTY_REPOSITORY),
        item("c", 4, "org-1/app"),
    ];
    let results = store.intake_jobs(batch).await;
    assert!(results[2].is_err(), "the aborted member fails: {:?}", results[2]);
    for i in [0, 1, 3] {
        match &results[i] {
            Ok(JobIntakeOutcome::Recorded { change: Some(JobChange::Created), .. }) => {}
            other => panic!("member {i} must be applied despite its batch-mate: {other:?}"),
        }
    }
    assert!(!seen(&store, "poison").await, "the failed member stays unrecorded for its redelivery");
    for id in ["a", "b", "c"] {
        assert!(seen(&store, id).await, "{id} recorded");
    }
    // The connection that saw the abort was discarded: later batches commit.
    for n in 0..20 {
        let result = store.intake_jobs(vec![item(&format!("later-{n}"), 100 + n, "org-1/app")]).await;
        assert!(result[0].is_ok(), "batch {n} after the fault: {:?}", result[0]);
    }
}

#[tokio::test]
async fn a_removed_database_fails_every_intake_member() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("create the data directory");
    let path = data.join("ghr.db");
    let store = open(&path).await;
    store.intake_jobs(vec![item("before", 1, "org-1/app")]).await.remove(0).expect("intake before the removal");

    std::fs::remove_dir_all(&data).expect("remove the data directory");
    let results = store.intake_jobs(vec![item("x", 2, "org-1/app"), item("y", 3, "org-1/app")]).await;
    assert_eq!(results.len(), 2);
    for result in results {
        match result {
            Err(StoreError::Unavailable { reason: Unavailability::Removed, .. }) => {}
            other => panic!("every member must fail as Unavailable(Removed), got {other:?}"),
        }
    }
}
