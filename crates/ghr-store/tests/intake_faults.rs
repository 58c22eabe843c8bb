//! Group-commit intake (`Store::intake_jobs`) on a real SQLite file when things fail: a batch member whose
//! write SQLite aborts (what a full disk does) fails alone, and a removed database fails every member with
//! `Unavailable` without recording any.

use ghr_core::ids::{DeliveryId, InstallationId, JobId, TierName};
use ghr_core::intake::{JobIntake, JobIntakeChange, JobIntakeOutcome};
use ghr_core::job::{JobChange, JobObservation, JobStatus};
use ghr_core::ports::{DeliveryRecord, Store, StoreError, Unavailability};
use ghr_store::SqliteStore;
use ghr_store::conformance::at;
use std::path::Path;

/// Aborts the whole transaction inside SQLite for one repository, as `SQLITE_FULL` can.
const SIMULATED_DISK_FULL: &str = "CREATE TRIGGER simulated_disk_full BEFORE INSERT ON jobs \
     WHEN NEW.repository = 'fault/disk-full' \
     BEGIN SELECT RAISE(ROLLBACK, 'simulated disk full'); END";

fn item(delivery: &str, job: u64, repository: &str) -> JobIntake {
    let observation = JobObservation {
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
    };
    JobIntake {
        delivery: DeliveryRecord {
            delivery_id: DeliveryId::from(delivery),
            event: "workflow_job".to_owned(),
            action: Some("queued".to_owned()),
            installation_id: Some(InstallationId(1)),
            received_at: at(0),
        },
        job: Some(JobIntakeChange { observation, initial_wait_reason: None, runner: None }),
    }
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(&path.display().to_string()).await.unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

async fn seen(store: &SqliteStore, id: &str) -> bool {
    store.delivery_seen(&DeliveryId::from(id)).await.expect("delivery_seen")
}

#[tokio::test]
async fn a_member_whose_transaction_sqlite_aborts_fails_alone() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("intake.db");
    let store = open(&path).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("connect beside");
    sqlx::query(SIMULATED_DISK_FULL).execute(&pool).await.expect("install the fault");
    pool.close().await;

    let batch = vec![
        item("a", 1, "org-1/app"),
        item("b", 2, "org-1/app"),
        item("poison", 3, "fault/disk-full"),
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
async fn a_removed_database_fails_every_member() {
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
