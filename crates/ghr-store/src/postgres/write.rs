//! Write transactions on PostgreSQL: the one place every read-modify-write goes through.
//!
//! A write runs in a READ COMMITTED transaction whose statements lock what its decision depends on
//! (`SELECT ... FOR UPDATE`). When the server aborts the transaction because it conflicted with another
//! one (a deadlock between replicas, a serialization failure), nothing of it was written, so it is run
//! again from the start, up to [`MAX_ATTEMPTS`] times, after a short randomised pause.

use crate::codec::backend;
use ghr_core::ports::StoreError;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Attempts of one write transaction the server aborted for a conflict before the error is returned.
pub(super) const MAX_ATTEMPTS: u32 = 8;
/// The pause before the first retry; doubled for each further one (with jitter).
const RETRY_BASE_DELAY: Duration = Duration::from_millis(5);
/// SQLSTATE of a deadlock the server broke by aborting this transaction.
const DEADLOCK_DETECTED: &str = "40P01";
/// SQLSTATE of a serialization failure.
const SERIALIZATION_FAILURE: &str = "40001";

/// The body of a write transaction: runs on the transaction's connection.
pub(super) type Work<'c, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>;

/// Runs write transactions on a pool (see the module documentation).
#[derive(Debug, Clone)]
pub(super) struct Writer {
    pool: PgPool,
}

impl Writer {
    pub(super) fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Run `work` in a transaction and commit it, again from the start when the server aborted it for a
    /// conflict. On any other failure nothing is written and the error is returned.
    pub(super) async fn run<T, F>(&self, op: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'c> Fn(&'c mut PgConnection) -> Work<'c, T> + Send + Sync,
    {
        let mut attempt = 1;
        loop {
            match self.attempt(op, &work).await {
                Err(error) if attempt < MAX_ATTEMPTS && is_conflict(&error) => {
                    tracing::debug!(op, attempt, error = %ghr_core::error::ErrorChain(&error), "write conflicted; retrying");
                    tokio::time::sleep(retry_delay(attempt)).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn attempt<T, F>(&self, op: &'static str, work: &F) -> Result<T, StoreError>
    where
        F: for<'c> Fn(&'c mut PgConnection) -> Work<'c, T>,
    {
        let mut checkout = Checkout::acquire(&self.pool, op).await?;
        let mut tx = checkout.connection().begin().await.map_err(backend(op))?;
        let value = work(&mut tx).await?;
        tx.commit().await.map_err(backend(op))?;
        checkout.finished();
        Ok(value)
    }
}

/// A pooled connection that goes back to the pool only once its transaction has ended (committed, or rolled
/// back in full). Dropped before that — the transaction failed, or the caller's future was dropped mid-way (a
/// reconciler pass abandoned when its lease ran out, a request whose client went away) — the connection is
/// closed instead: a transaction cancelled between sending its `BEGIN` and reading the answer is still open on
/// the server while sqlx believes none is, and the next `BEGIN` on that connection would join it ("there is
/// already a transaction in progress"), committing or failing with whatever the cancelled work left behind.
pub(super) struct Checkout {
    conn: Option<PoolConnection<Postgres>>,
}

impl Checkout {
    pub(super) async fn acquire(pool: &PgPool, op: &'static str) -> Result<Self, StoreError> {
        let conn = pool.acquire().await.map_err(backend(op))?;
        Ok(Self { conn: Some(conn) })
    }

    pub(super) fn connection(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a checkout holds its connection until finished or dropped")
    }

    /// The transaction ended cleanly: the connection goes back to the pool.
    pub(super) fn finished(mut self) {
        drop(self.conn.take());
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// Whether the server aborted a transaction because it conflicted with another (retrying may succeed).
pub(super) fn is_conflict(error: &StoreError) -> bool {
    let StoreError::Backend { source, .. } = error else { return false };
    source
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|e| e.code())
        .is_some_and(|code| code == DEADLOCK_DETECTED || code == SERIALIZATION_FAILURE)
}

fn retry_delay(attempt: u32) -> Duration {
    let base = RETRY_BASE_DELAY.saturating_mul(1 << attempt.min(6));
    // Jitter from the clock's sub-microsecond digits: replicas that collided once should not collide again.
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let spread = u64::try_from(base.as_micros()).unwrap_or(u64::MAX).max(1);
    base + Duration::from_micros(u64::from(nanos) % spread)
}
