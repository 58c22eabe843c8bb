//! Retention on a real SQLite file: pruning crosses several bounded batches and keeps the counts right, the
//! write-ahead log shrinks back afterwards, and the shrunken log is still the file the store opened, so every
//! later write commits (the identity check of each commit does not mistake truncation for removal).

use ghr_core::ids::{InstallationId, JobId, TierName};
use ghr_core::job::{JobObservation, JobStatus};
use ghr_core::ports::{DeliveryRecord, Store};
use ghr_core::tenant::{NewTenant, OrgType, TenantMetadata, TenantStatus};
use ghr_store::SqliteStore;
use ghr_store::conformance::at;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// More completed jobs than one prune batch (1,000) holds, so a pass takes several transactions.
const COMPLETED_JOBS: u64 = 2_300;
/// Deliveries to prune: more than one delivery batch (5,000).
const DELIVERIES: u64 = 5_200;
/// The seconds at which the seeded jobs completed and the deliveries arrived (all before the cut).
const SEEDED_AT: i64 = 100;
/// The prune cut: everything seeded is older.
const CUT_AT: i64 = 1_000;

fn observation(job: u64, status: JobStatus, secs: i64) -> JobObservation {
    JobObservation {
        job_id: JobId(job),
        installation_id: InstallationId(1),
        repository: "org-1/app".to_owned(),
        labels: vec!["self-hosted".to_owned(), "small".to_owned()],
        tier: Some(TierName::from("small")),
        status,
        conclusion: (status == JobStatus::Completed).then(|| "success".to_owned()),
        runner_name: None,
        queued_at: Some(at(secs)),
        started_at: None,
        completed_at: (status == JobStatus::Completed).then(|| at(secs)),
        observed_at: at(secs),
    }
}

fn wal_of(db: &Path) -> std::path::PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

#[tokio::test]
async fn retention_prunes_in_batches_then_shrinks_the_log_it_still_writes_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("ghr.db");
    let store = SqliteStore::open(&db.display().to_string()).await.expect("open");
    let tenant = NewTenant {
        installation_id: InstallationId(1),
        org_name: "org-1".into(),
        org_type: OrgType::Organization,
        status: TenantStatus::Active,
        tier: "small".into(),
        max_runners: 10,
        metadata: TenantMetadata::default(),
    };
    store.tenant_create(tenant, at(0)).await.expect("tenant");
    for job in 0..COMPLETED_JOBS {
        store.job_observe(observation(job, JobStatus::Queued, SEEDED_AT)).await.expect("queued");
        store.job_observe(observation(job, JobStatus::Completed, SEEDED_AT)).await.expect("completed");
    }
    store.job_observe(observation(COMPLETED_JOBS, JobStatus::Queued, SEEDED_AT)).await.expect("a waiting job");
    for n in 0..DELIVERIES {
        let delivery = DeliveryRecord {
            delivery_id: format!("delivery-{n}").as_str().into(),
            event: "workflow_job".to_owned(),
            action: Some("queued".to_owned()),
            installation_id: Some(InstallationId(1)),
            received_at: at(SEEDED_AT),
        };
        store.delivery_record(&delivery).await.expect("delivery");
    }
    let wal = wal_of(&db);
    let before = std::fs::metadata(&wal).expect("the log exists while the store is open");
    assert!(before.len() > 0, "the writes went through the log");

    let pruned = store.prune(at(CUT_AT)).await.expect("prune");
    assert_eq!((pruned.jobs, pruned.deliveries), (COMPLETED_JOBS, DELIVERIES), "{pruned:?}");
    assert!(pruned.job_events >= 2 * COMPLETED_JOBS, "timelines go with their jobs: {pruned:?}");
    let counts = store.job_counts().await.expect("counts");
    assert_eq!(counts, [(JobStatus::Queued, 1)].into_iter().collect(), "counts follow the batches");

    let after = std::fs::metadata(&wal).expect("the log is kept, only shortened");
    assert_eq!(after.len(), 0, "the log is truncated after retention (it was {} bytes)", before.len());
    assert_eq!((after.dev(), after.ino()), (before.dev(), before.ino()), "truncated in place, not replaced");

    // Every write commits after the truncation: the store still recognises its log.
    store.check_writable().await.expect("a write commits after truncation");
    store.job_observe(observation(COMPLETED_JOBS + 1, JobStatus::Queued, CUT_AT)).await.expect("job after truncation");
    assert!(store.truncate_wal().await.expect("a second truncation"), "no reader holds the log");
    store.check_writable().await.expect("a write commits after a second truncation");
    assert_eq!(store.job_counts().await.expect("counts").get(&JobStatus::Queued), Some(&2));
    store.close().await;

    let reopened = SqliteStore::open(&db.display().to_string()).await.expect("reopen");
    assert_eq!(reopened.job_counts().await.expect("counts").get(&JobStatus::Queued), Some(&2), "nothing lost");
    assert!(reopened.job_get(JobId(0)).await.expect("job_get").is_none(), "pruned jobs stay pruned");
}
