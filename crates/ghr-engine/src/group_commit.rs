//! Group commit for webhook intake: deliveries that arrive while the store is writing share its next write
//! transaction ([`Store::intake_jobs`]), and each caller gets its own outcome only after that batch committed.
//!
//! No timer and no background task: the first caller to find the writer free becomes the leader, takes
//! everything queued (up to [`MAX_BATCH`]) and writes it; whoever arrives meanwhile queues and waits for its
//! answer, or leads the next batch when its delivery was not taken. Under light load a batch is one delivery
//! and adds no delay; under heavy load a batch is whatever queued during one commit, so commits per second
//! stay bounded by the disk while deliveries per second grow with the batch.
//!
//! The batching lives here rather than in the store so every backend (and the simulation's faulty store)
//! gets it unchanged: the store only promises that one call is one transaction whose members fail alone.
//! The batch is written by a spawned task that holds the writer until it is done, so a caller whose request
//! is abandoned (its client disconnected) neither cancels its batch-mates' transaction nor lets a second
//! batch start beside it.

use ghr_core::intake::{JobIntake, JobIntakeOutcome};
use ghr_core::ports::{Store, StoreError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// Most deliveries in one transaction: bounds how long one commit holds SQLite's write lock (and so how long
/// the dispatcher's reservations wait behind it).
pub const MAX_BATCH: usize = 128;
/// The store operation named in errors of this module.
const OP: &str = "intake_jobs";

type Reply = oneshot::Sender<Result<JobIntakeOutcome, StoreError>>;

/// A delivery whose batch never answered (its writer task panicked): nothing is known to be durable.
#[derive(Debug, thiserror::Error)]
#[error("the intake batch holding this delivery ended without an answer")]
struct BatchLost;

/// Shared by every clone of the intake.
pub struct GroupCommit {
    store: Arc<dyn Store>,
    queue: Mutex<VecDeque<(JobIntake, Reply)>>,
    writer: Arc<tokio::sync::Mutex<()>>,
    stats: Arc<Stats>,
}

/// Batches written and deliveries in them, since start.
#[derive(Debug, Default)]
struct Stats {
    batches: AtomicU64,
    deliveries: AtomicU64,
}

impl GroupCommit {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            queue: Mutex::new(VecDeque::new()),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            stats: Arc::default(),
        }
    }

    /// `(batches, deliveries)` written so far: their ratio is the mean batch size.
    pub fn written(&self) -> (u64, u64) {
        (self.stats.batches.load(Ordering::Relaxed), self.stats.deliveries.load(Ordering::Relaxed))
    }

    /// Apply one delivery in the next batch; returns once that batch committed (or failed).
    pub async fn submit(&self, item: JobIntake) -> Result<JobIntakeOutcome, StoreError> {
        let (reply, mut answer) = oneshot::channel();
        self.lock_queue().push_back((item, reply));
        loop {
            let writer = tokio::select! {
                biased;
                result = &mut answer => return result.unwrap_or_else(|_| Err(lost())),
                writer = self.writer.clone().lock_owned() => writer,
            };
            // The writer is free: no batch is in flight, so this delivery was answered or is still queued.
            if let Ok(result) = answer.try_recv() {
                return result;
            }
            let batch: Vec<(JobIntake, Reply)> = {
                let mut queue = self.lock_queue();
                let take = queue.len().min(MAX_BATCH);
                queue.drain(..take).collect()
            };
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            self.stats.deliveries.fetch_add(batch.len() as u64, Ordering::Relaxed);
            let store = self.store.clone();
            let written = tokio::spawn(async move {
                let _writer = writer;
                write(store.as_ref(), batch).await;
            });
            if let Err(error) = written.await {
                tracing::error!(%error, "intake batch task failed");
            }
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<(JobIntake, Reply)>> {
        // The queue is only pushed to and drained; a panic elsewhere cannot leave it half-changed.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Write one batch and answer each member.
async fn write(store: &dyn Store, batch: Vec<(JobIntake, Reply)>) {
    if batch.is_empty() {
        return;
    }
    let (items, replies): (Vec<JobIntake>, Vec<Reply>) = batch.into_iter().unzip();
    let mut results = store.intake_jobs(items).await.into_iter();
    for reply in replies {
        // A store that answered fewer items than it was given has lost the rest: say so rather than guess.
        let result = results.next().unwrap_or_else(|| Err(lost()));
        // The caller may have gone (its client disconnected); its delivery is written all the same.
        let _ = reply.send(result);
    }
}

fn lost() -> StoreError {
    StoreError::Backend { op: OP, source: Box::new(BatchLost) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghr_core::ids::{DeliveryId, InstallationId};
    use ghr_core::intake::JobIntakeChange;
    use ghr_core::job::{JobChange, JobObservation};
    use ghr_core::ports::DeliveryRecord;
    use ghr_store::SqliteStore;
    use ghr_store::conformance::queued;

    /// More concurrent deliveries than fit one batch.
    const DELIVERIES: u64 = 300;
    /// A job id no store can hold: its delivery fails in the middle of a batch.
    const IMPOSSIBLE_JOB: u64 = u64::MAX;

    fn item(delivery: &str, job: u64) -> JobIntake {
        let now = chrono::Utc::now();
        let observation = JobObservation { observed_at: now, ..queued(job, 1, "acme/app", Some("small"), 0) };
        JobIntake {
            delivery: DeliveryRecord {
                delivery_id: DeliveryId::new(delivery),
                event: "workflow_job".to_owned(),
                action: Some("queued".to_owned()),
                installation_id: Some(InstallationId(1)),
                received_at: now,
            },
            job: Some(JobIntakeChange { observation, initial_wait_reason: None, runner: None }),
        }
    }

    /// Many concurrent submits, with every delivery id sent twice, every job reported by two delivery ids and
    /// one impossible member: all are answered, each job is created exactly once, the impossible one fails
    /// alone and stays unrecorded, and the deliveries shared transactions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_deliveries_share_batches_and_apply_exactly_once() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("ghr.db").display().to_string()).await.expect("open the store"),
        );
        let commit = Arc::new(GroupCommit::new(store.clone()));
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..DELIVERIES {
            for copy in 0..2 {
                let commit = commit.clone();
                let job = if n == DELIVERIES / 2 { IMPOSSIBLE_JOB } else { 1_000 + n / 2 };
                tasks.spawn(async move { (n, copy, commit.submit(item(&format!("d-{n}"), job)).await) });
            }
        }
        let (mut created, mut unchanged, mut duplicates, mut failed) = (0, 0, 0, 0);
        while let Some(joined) = tasks.join_next().await {
            let (n, _, result) = joined.expect("a submit task");
            match result {
                Ok(JobIntakeOutcome::Recorded { change: Some(JobChange::Created), .. }) => created += 1,
                Ok(JobIntakeOutcome::Recorded { change: Some(JobChange::Unchanged), .. }) => unchanged += 1,
                Ok(JobIntakeOutcome::Duplicate) => duplicates += 1,
                Ok(other) => panic!("delivery {n}: unexpected {other:?}"),
                Err(_) => {
                    assert_eq!(n, DELIVERIES / 2, "only the impossible delivery fails");
                    failed += 1;
                }
            }
        }
        // 300 delivery ids over 150 jobs, one id impossible (both of its copies fail).
        assert_eq!(failed, 2, "both copies of the impossible delivery fail");
        assert_eq!(created, DELIVERIES / 2, "each job is created exactly once");
        assert_eq!(unchanged, DELIVERIES - 1 - DELIVERIES / 2, "the job's second delivery id changes nothing");
        assert_eq!(duplicates, DELIVERIES - 1, "each repeated delivery id is a duplicate");
        for n in 0..DELIVERIES {
            let seen = store.delivery_seen(&DeliveryId::new(format!("d-{n}"))).await.expect("delivery_seen");
            assert_eq!(seen, n != DELIVERIES / 2, "delivery d-{n} recorded exactly when applied");
        }
        let (batches, deliveries) = commit.written();
        assert_eq!(deliveries, 2 * DELIVERIES, "every submit was written once");
        assert!(batches < deliveries, "concurrent deliveries shared transactions: {batches} batches");
    }
}
