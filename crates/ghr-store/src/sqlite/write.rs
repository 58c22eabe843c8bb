//! Write transactions on SQLite: the one place every write goes through. A write runs under
//! `BEGIN IMMEDIATE`, commits only while the database path still names the file the store opened,
//! and a connection whose transaction failed in any way is closed, never handed out again.
//!
//! Why close instead of rolling back: when SQLite aborts a transaction itself (a full disk, an I/O
//! error, `RAISE(ROLLBACK)`), sqlx still counts the transaction as open and its own rollback then
//! fails, so the pooled connection would come back "at non-zero transaction depth" and refuse every
//! later transaction. A fresh connection costs an open; a poisoned one costs every write after it.

use crate::codec::backend;
use ghr_core::ports::{StoreError, Unavailability};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// The statement that opens every read-modify-write transaction (takes the write lock first).
pub(super) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
/// The name SQLite gives a database's write-ahead log: the database path plus this.
const WAL_SUFFIX: &str = "-wal";
/// SQLite's primary result code for a write to a read-only database (`SQLITE_READONLY`).
const SQLITE_READONLY: i32 = 8;
/// Extended result codes carry the primary code in their low byte.
const PRIMARY_CODE_MASK: i32 = 0xff;

/// The body of a write transaction: runs on the transaction's connection.
pub(super) type Work<'c, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>;

/// Runs write transactions on a pool (see the module documentation).
#[derive(Debug, Clone)]
pub(super) struct Writer {
    pool: SqlitePool,
    /// The database as named in errors.
    database: String,
    /// The file whose identity every commit checks; `None` for an in-memory database.
    file: Option<FileIdentity>,
}

impl Writer {
    pub(super) fn new(pool: SqlitePool, database: String, file: Option<FileIdentity>) -> Self {
        Self { pool, database, file }
    }

    /// Run `work` in a write transaction and commit it; on any failure nothing is written and the
    /// connection is closed.
    pub(super) async fn run<T, F>(&self, op: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Work<'c, T> + Send,
    {
        let conn = self.pool.acquire().await.map_err(|e| self.explain(op, backend(op)(e)))?;
        let mut checkout = Checkout::new(conn);
        let outcome = self.attempt(op, checkout.connection(), work).await;
        match outcome {
            Ok(value) => {
                checkout.keep();
                Ok(value)
            }
            Err(error) => {
                tracing::debug!(op, error = %ghr_core::error::ErrorChain(&error), "write failed; closing its connection");
                drop(checkout);
                Err(self.explain(op, error))
            }
        }
    }

    async fn attempt<T, F>(&self, op: &'static str, conn: &mut SqliteConnection, work: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Work<'c, T>,
    {
        let mut tx = conn.begin_with(BEGIN_WRITE).await.map_err(backend(op))?;
        let value = work(&mut tx).await?;
        self.confirm_file(op)?;
        tx.commit().await.map_err(backend(op))?;
        Ok(value)
    }

    /// For a write that committed on its own (outside [`Writer::run`]): report a read-only database as
    /// such, and refuse to acknowledge a write that went to a file the path no longer names.
    pub(super) fn after_autocommit<T>(&self, op: &'static str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let value = result.map_err(|error| self.explain(op, error))?;
        self.confirm_file(op)?;
        Ok(value)
    }

    /// The most useful account of a failed write: a removed or replaced database file explains
    /// whatever SQLite said (often "unable to open database file"); then a read-only database.
    fn explain(&self, op: &'static str, error: StoreError) -> StoreError {
        match self.confirm_file(op) {
            Err(unavailable @ StoreError::Unavailable { .. }) => unavailable,
            _ => self.classify(error),
        }
    }

    /// Fail unless the database path still names the file this store opened.
    fn confirm_file(&self, op: &'static str) -> Result<(), StoreError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let unavailable = |reason| StoreError::Unavailable { op, database: self.database.clone(), reason };
        match file.current() {
            // In WAL mode the write-ahead log holds every commit not yet checkpointed (all of a young database):
            // while this connection is open SQLite keeps it, so a missing one was deleted behind ghr's back and
            // commits would land in a file nothing names.
            Ok(identity) if identity == file.identity => match file.current_wal() {
                Ok(wal) if file.wal_identity.is_none_or(|opened| opened == wal) => Ok(()),
                // Another log than the one opened: the original was deleted (SQLite then starts a new one for
                // the next connection that writes), and the commits it held are gone.
                Ok(_) => Err(unavailable(Unavailability::Removed)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(unavailable(Unavailability::Removed)),
                Err(source) => Err(StoreError::Backend {
                    op,
                    source: Box::new(IdentityUnknown { database: self.database.clone(), source }),
                }),
            },
            Ok(_) => Err(unavailable(Unavailability::Replaced)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(unavailable(Unavailability::Removed)),
            Err(source) => Err(StoreError::Backend {
                op,
                source: Box::new(IdentityUnknown { database: self.database.clone(), source }),
            }),
        }
    }

    /// A write refused because the database is read-only becomes [`StoreError::Unavailable`].
    pub(super) fn classify(&self, error: StoreError) -> StoreError {
        match error {
            StoreError::Backend { op, source } if is_read_only(source.as_ref()) => {
                StoreError::Unavailable { op, database: self.database.clone(), reason: Unavailability::ReadOnly }
            }
            other => other,
        }
    }
}

/// Whether a driver error anywhere in the chain is SQLite's `SQLITE_READONLY` (or an extended code).
pub(super) fn is_read_only(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        let code = error
            .downcast_ref::<sqlx::Error>()
            .and_then(sqlx::Error::as_database_error)
            .and_then(|e| e.code())
            .and_then(|code| code.parse::<i32>().ok());
        if code.is_some_and(|code| code & PRIMARY_CODE_MASK == SQLITE_READONLY) {
            return true;
        }
        current = error.source();
    }
    false
}

/// The database file cannot be examined, so a write cannot be proven durable.
#[derive(Debug, thiserror::Error)]
#[error("cannot check that the database file {database} is still the one ghr opened")]
struct IdentityUnknown {
    database: String,
    #[source]
    source: std::io::Error,
}

/// Which file a path named when the store opened it: device and inode. A file removed (or a directory
/// removed) while open keeps taking writes through open descriptors, into an inode nothing names.
#[derive(Debug, Clone)]
pub(super) struct FileIdentity {
    path: PathBuf,
    identity: (u64, u64),
    /// The write-ahead log next to it (`<path>-wal`), which exists while any connection is open.
    wal: PathBuf,
    /// Which file the log was when the store opened (None: no log then, so any log found later is accepted).
    wal_identity: Option<(u64, u64)>,
}

impl FileIdentity {
    /// Remember what `path` names now.
    pub(super) fn of(path: &Path) -> std::io::Result<Self> {
        let identity = identity(path)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push(WAL_SUFFIX);
        let wal = PathBuf::from(wal);
        let wal_identity = identity_of_wal(&wal)?;
        Ok(Self { path: path.to_owned(), identity, wal, wal_identity })
    }

    /// What the path names now (one `stat`).
    fn current(&self) -> std::io::Result<(u64, u64)> {
        identity(&self.path)
    }

    /// What the log's path names now (one `stat`); NotFound when the log is gone. A store opened without a
    /// log (not in WAL mode) has nothing to check.
    fn current_wal(&self) -> std::io::Result<(u64, u64)> {
        match self.wal_identity {
            Some(_) => identity(&self.wal),
            None => Ok((0, 0)),
        }
    }
}

fn identity_of_wal(wal: &Path) -> std::io::Result<Option<(u64, u64)>> {
    match identity(wal) {
        Ok(identity) => Ok(Some(identity)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.dev(), metadata.ino()))
}

/// A pooled connection checked out for one write transaction. Unless [`Checkout::keep`] says the
/// transaction committed, the connection is closed when the checkout drops (`close_on_drop`), also
/// when the caller's future is dropped half-way through the transaction.
struct Checkout {
    conn: PoolConnection<Sqlite>,
    committed: bool,
}

impl Checkout {
    fn new(conn: PoolConnection<Sqlite>) -> Self {
        Self { conn, committed: false }
    }

    fn connection(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// The transaction committed: the connection goes back to the pool.
    fn keep(mut self) {
        self.committed = true;
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}
