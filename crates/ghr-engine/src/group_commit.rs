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
}

impl GroupCommit {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, queue: Mutex::new(VecDeque::new()), writer: Arc::new(tokio::sync::Mutex::new(())) }
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
