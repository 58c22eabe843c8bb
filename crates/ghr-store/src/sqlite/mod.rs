//! The SQLite store: opening (pragmas, pool, migrations) and the `Store` trait wiring.
//!
//! Every read-modify-write runs in a `BEGIN IMMEDIATE` transaction (see `write.rs`), which takes
//! SQLite's single write lock before anything is read. That makes each method atomic across tasks,
//! across several `SqliteStore`s opened on one file (several processes) and across restarts.

mod checkpoints;
mod counts;
mod deliveries;
mod health;
mod intake;
mod intake_item;
mod jobs;
mod leases;
#[cfg(test)]
mod plans;
mod pool;
mod reserve;
mod retention;
mod runners;
mod schema;
#[cfg(feature = "bench")]
pub mod seed;
mod snapshot;
mod tenants;
mod usage;
mod write;

use crate::codec;
use async_trait::async_trait;
use backon::Retryable;
use ghr_core::Timestamp;
use ghr_core::cost::UsageRow;
use ghr_core::ids::{DeliveryId, InstallationId, JobId, OrgName, RunnerName};
use ghr_core::intake::{JobIntake, JobIntakeOutcome};
use ghr_core::job::{Job, JobChange, JobEvent, JobObservation, JobStatus};
use ghr_core::planner::dispatch::DemandSnapshot;
use ghr_core::planner::fleet::{FleetRecords, StaleQuery};
use ghr_core::ports::{
    DeliveryRecord, DemandQuery, JobFilter, LeaseRequest, LeaseState, Pruned, Reservation, ReserveRequest,
    RunnerFilter, RunnerSeries, RunnerUpdate, Store, StoreError,
};
use ghr_core::reason::Reason;
use ghr_core::retry::RetryPolicy;
use ghr_core::runner::Runner;
use ghr_core::tenant::{NewTenant, Tenant, TenantStatus, TenantUpdate};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use write::{FileIdentity, Writer};

/// How long a connection waits for another writer (task or process) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The size the write-ahead log is cut back to whenever a checkpoint resets it: without a limit the file
/// stays at its high-water mark (hundreds of MB after a burst) for the life of the process.
const JOURNAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;
/// How long a caller waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections per file-backed store: WAL lets readers run beside the one writer.
const FILE_POOL_SIZE: u32 = 8;
/// Rows the connection's worker thread buffers ahead of the reader: large listings (100,000
/// tenants) fetch measurably faster with a deep buffer than with sqlx's default of 50.
const ROW_BUFFER_SIZE: usize = 1024;
/// sqlx's name for a fresh private in-memory database (a unique shared-cache name per use, so the
/// pool's connections and the store's anchor connection see the same database).
const FRESH_MEMORY_DATABASE: &str = "sqlite::memory:";
/// The URL query that opens a database file read-only.
const READ_ONLY_QUERY: &str = "?mode=ro";

/// Where a SQLite store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLocation {
    /// A private in-memory database (tests): gone when the store is dropped.
    Memory,
    /// A database file, created if missing.
    File(PathBuf),
    /// An existing database file opened read-only (`?mode=ro`): reads work, every write is refused
    /// with [`StoreError::Unavailable`] (inspecting a copy; `ghr serve` refuses to start on it).
    ReadOnlyFile(PathBuf),
}

impl SqliteLocation {
    /// Parse `sqlite::memory:`, `:memory:`, `sqlite://PATH`, `sqlite:PATH` or a bare path, each
    /// optionally followed by `?mode=ro`.
    pub fn parse(location: &str) -> Self {
        let location = location.trim();
        if matches!(location, "sqlite::memory:" | ":memory:" | "sqlite://:memory:" | "sqlite:memory:") {
            return SqliteLocation::Memory;
        }
        let path = location.strip_prefix("sqlite://").or_else(|| location.strip_prefix("sqlite:")).unwrap_or(location);
        match path.strip_suffix(READ_ONLY_QUERY) {
            Some(path) => SqliteLocation::ReadOnlyFile(PathBuf::from(path)),
            None => SqliteLocation::File(PathBuf::from(path)),
        }
    }
}

/// Opening the database failed; says which database.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the SQLite database {location}")]
struct OpenFailed {
    location: String,
    #[source]
    source: sqlx::Error,
}

/// [`Store`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Writer,
    location: SqliteLocation,
    /// In memory: a connection outside the pool that keeps the database alive while the pool closes
    /// and reopens its connection (which it does after a failed write transaction).
    anchor: Option<Arc<tokio::sync::Mutex<Option<SqliteConnection>>>>,
}

impl SqliteStore {
    /// Open (and create, and migrate) the store at `location` (see [`SqliteLocation::parse`]).
    pub async fn open(location: &str) -> Result<Self, StoreError> {
        Self::open_at(SqliteLocation::parse(location)).await
    }

    /// A fresh, private in-memory store.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        Self::open_at(SqliteLocation::Memory).await
    }

    /// Open the store at a parsed location.
    pub async fn open_at(location: SqliteLocation) -> Result<Self, StoreError> {
        Ok(Self::open_migrated(location).await?.0)
    }

    /// Open the store at a parsed location and say what migrating it did (`ghr store migrate`). A schema
    /// newer than this ghr knows is refused ([`crate::SchemaMismatch::Newer`]).
    pub async fn open_migrated(location: SqliteLocation) -> Result<(Self, crate::Migrated), StoreError> {
        Self::open_with(location, Opening::CreateAndMigrate).await
    }

    /// Open an existing store as it is, never creating or migrating it (operator commands on a database): a
    /// file that does not exist is refused ([`crate::SchemaMismatch::NoDatabase`]) and stays absent; a schema
    /// that is missing, older or newer than this ghr's is refused as a PostgreSQL one is, before anything is
    /// written to the file.
    pub async fn open_existing(location: SqliteLocation) -> Result<Self, StoreError> {
        Ok(Self::open_with(location, Opening::Existing).await?.0)
    }

    async fn open_with(location: SqliteLocation, opening: Opening) -> Result<(Self, crate::Migrated), StoreError> {
        let described = describe(&location);
        let open_failed = |source| StoreError::Backend {
            op: "open",
            source: Box::new(OpenFailed { location: described.clone(), source }),
        };
        if opening == Opening::Existing
            && let SqliteLocation::File(path) | SqliteLocation::ReadOnlyFile(path) = &location
        {
            check_existing_file(path, &described).await?;
        }
        // No ping before handing out a connection: a local file has no network link to lose, and the
        // ping would be a worker-thread round trip on every operation.
        let pool_options = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT).test_before_acquire(false);
        let (options, pool_options) = match &location {
            // One pooled connection: it serialises writers without SQLite's shared-cache locking (the
            // anchor connection below only keeps the database alive and never runs a statement).
            SqliteLocation::Memory => (
                SqliteConnectOptions::from_str(FRESH_MEMORY_DATABASE).map_err(open_failed)?,
                pool_options.max_connections(1).idle_timeout(None).max_lifetime(None),
            ),
            SqliteLocation::File(path) => {
                if opening == Opening::CreateAndMigrate {
                    create_file(path).map_err(|e| open_failed(sqlx::Error::Io(e)))?;
                }
                // Connections never create the file: one the pool opens after the database was removed
                // must fail rather than start an empty database at the old path.
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES.to_string());
                (options, pool_options.max_connections(FILE_POOL_SIZE))
            }
            SqliteLocation::ReadOnlyFile(path) => (
                SqliteConnectOptions::new().filename(path).read_only(true),
                pool_options.max_connections(FILE_POOL_SIZE),
            ),
        };
        let options = options.foreign_keys(true).busy_timeout(BUSY_TIMEOUT).row_buffer_size(ROW_BUFFER_SIZE);
        let memory_anchor = match &location {
            SqliteLocation::Memory => Some(options.connect().await.map_err(open_failed)?),
            SqliteLocation::File(_) | SqliteLocation::ReadOnlyFile(_) => None,
        };
        let pool = connect(pool_options, options.clone()).await.map_err(open_failed)?;
        let unchecked = Writer::new(pool.clone(), described.clone(), None);
        let migrated = match opening {
            Opening::CreateAndMigrate => {
                schema::migrate(&pool, &described).await.map_err(|error| unchecked.classify(error))?
            }
            Opening::Existing => {
                let mut conn = pool.acquire().await.map_err(open_failed)?;
                schema::check(&mut conn, &described).await?;
                let current = schema::known_version();
                crate::Migrated { from: Some(current), to: current }
            }
        };
        // A file store holds one connection open for its whole life as well: SQLite then never deletes the
        // write-ahead log (it does when the last connection closes), so a log that disappears or changes was
        // removed behind ghr's back, and every commit checks for that (see `write.rs`).
        let (anchor, file) = match &location {
            SqliteLocation::File(path) => {
                let anchor = options.connect().await.map_err(open_failed)?;
                (Some(anchor), Some(FileIdentity::of(path).map_err(|e| open_failed(sqlx::Error::Io(e)))?))
            }
            SqliteLocation::Memory => (memory_anchor, None),
            SqliteLocation::ReadOnlyFile(_) => (None, None),
        };
        let anchor = anchor.map(|conn| Arc::new(tokio::sync::Mutex::new(Some(conn))));
        let writer = Writer::new(pool.clone(), described.clone(), file);
        tracing::debug!(location = %described, "SQLite store open");
        Ok((Self { pool, writer, location, anchor }, migrated))
    }

    /// Checkpoint the write-ahead log and truncate it to zero bytes (retention does this after it deleted
    /// anything). False when readers still used the log, so it could not be truncated now.
    pub async fn truncate_wal(&self) -> Result<bool, StoreError> {
        Ok(retention::truncate_wal(&self.pool, BUSY_TIMEOUT).await?.complete)
    }

    /// The pool (`ghr store copy` reads and writes rows directly).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Where this store lives.
    pub fn location(&self) -> &SqliteLocation {
        &self.location
    }

    /// Close every connection (waits for running operations). The store refuses work afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(anchor) = &self.anchor
            && let Some(conn) = anchor.lock().await.take()
            && let Err(error) = conn.close().await
        {
            tracing::debug!(%error, "closing the in-memory database");
        }
    }
}

/// What opening a SQLite store may do to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// Create the file if it is missing and migrate the schema to this ghr's (`ghr serve`, `ghr store migrate`).
    CreateAndMigrate,
    /// Open a database that exists, at this ghr's schema, changing nothing (operator commands).
    Existing,
}

/// The file exists and holds this ghr's schema version. Read through a read-only connection of its own, so
/// that a file which is not a ghr store is refused untouched (the store's connections switch it to WAL).
async fn check_existing_file(path: &Path, described: &str) -> Result<(), StoreError> {
    let missing = || StoreError::Backend {
        op: "open",
        source: Box::new(crate::SchemaMismatch::NoDatabase { database: described.to_owned() }),
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(missing()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(error) => {
            let source = OpenFailed { location: described.to_owned(), source: sqlx::Error::Io(error) };
            return Err(StoreError::Backend { op: "open", source: Box::new(source) });
        }
    }
    let open_failed = |source| StoreError::Backend {
        op: "open",
        source: Box::new(OpenFailed { location: described.to_owned(), source }),
    };
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT)
        .connect()
        .await
        .map_err(open_failed)?;
    let checked = schema::check(&mut conn, described).await;
    if let Err(error) = conn.close().await {
        tracing::debug!(%error, location = described, "closing the schema check's connection");
    }
    checked
}

/// Create the database file if it is missing (an empty file is an empty SQLite database), so that
/// only opening the store creates it.
fn create_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new().create(true).append(true).open(path).map(drop)
}

/// Retries of opening a database another process is creating at the same moment: the workspace's one
/// retry policy ([`RetryPolicy`]), with short delays (the lock is held for milliseconds).
const OPEN_RETRY: RetryPolicy = RetryPolicy {
    base_delay: std::time::Duration::from_millis(20),
    max_delay: std::time::Duration::from_millis(500),
    max_retries: 20,
    jitter: true,
};

/// Connect, retrying while the file is busy. Switching a brand-new file to WAL takes an exclusive lock
/// that SQLite does not wait for (no busy handler), so processes starting together on a new file can see
/// `database is locked` once; the next attempt finds WAL already on.
async fn connect(pool_options: SqlitePoolOptions, options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    (|| pool_options.clone().connect_with(options.clone()))
        .retry(OPEN_RETRY.backoff())
        .when(is_busy)
        .notify(|error, delay| tracing::debug!(%error, ?delay, "SQLite file busy while opening; retrying"))
        .await
}

/// SQLITE_BUSY or SQLITE_LOCKED (and their extended codes).
fn is_busy(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|e| e.code()).and_then(|code| code.parse::<i32>().ok()).is_some_and(|code| {
        let primary = code & 0xff;
        primary == 5 || primary == 6
    })
}

fn describe(location: &SqliteLocation) -> String {
    match location {
        SqliteLocation::Memory => "(in memory)".to_owned(),
        SqliteLocation::File(path) => display_path(path),
        SqliteLocation::ReadOnlyFile(path) => format!("{} (opened with ?mode=ro)", display_path(path)),
    }
}

fn display_path(path: &Path) -> String {
    path.display().to_string()
}

#[async_trait]
impl Store for SqliteStore {
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.writer.run(health::OP_CHECK_WRITABLE, |conn| Box::pin(health::touch(conn))).await
    }

    async fn tenant_create(&self, tenant: NewTenant, now: Timestamp) -> Result<(Tenant, bool), StoreError> {
        self.writer.after_autocommit("tenant_create", tenants::create(&self.pool, tenant, now).await)
    }

    async fn tenant_get(&self, id: InstallationId) -> Result<Option<Tenant>, StoreError> {
        tenants::get(&self.pool, id).await
    }

    async fn tenant_find_by_org(&self, org: &OrgName) -> Result<Option<Tenant>, StoreError> {
        tenants::find_by_org(&self.pool, org).await
    }

    async fn tenant_list(&self, status: Option<TenantStatus>) -> Result<Vec<Tenant>, StoreError> {
        tenants::list(&self.pool, status).await
    }

    async fn tenant_ids_after(
        &self,
        status: TenantStatus,
        after: Option<InstallationId>,
        limit: u32,
    ) -> Result<Vec<InstallationId>, StoreError> {
        tenants::ids_after(&self.pool, status, after, limit).await
    }

    async fn tenant_counts(&self) -> Result<BTreeMap<TenantStatus, u64>, StoreError> {
        counts::tenants(&self.pool).await
    }

    async fn tenant_update(
        &self,
        id: InstallationId,
        update: TenantUpdate,
        now: Timestamp,
    ) -> Result<Option<Tenant>, StoreError> {
        self.writer.after_autocommit("tenant_update", tenants::update(&self.pool, id, update, now).await)
    }

    async fn delivery_record(&self, delivery: &DeliveryRecord) -> Result<bool, StoreError> {
        let delivery = delivery.clone();
        self.writer
            .run(deliveries::OP_RECORD, move |conn| Box::pin(async move { deliveries::record(conn, &delivery).await }))
            .await
    }

    async fn delivery_seen(&self, id: &DeliveryId) -> Result<bool, StoreError> {
        deliveries::seen(&self.pool, id).await
    }

    async fn job_observe(&self, observation: JobObservation) -> Result<JobChange, StoreError> {
        self.writer.run(jobs::OP_OBSERVE, move |conn| Box::pin(jobs::observe(conn, observation))).await
    }

    async fn job_get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        jobs::get(&self.pool, id).await
    }

    async fn job_list(&self, filter: JobFilter) -> Result<Vec<Job>, StoreError> {
        jobs::list(&self.pool, filter).await
    }

    async fn job_list_wanting_runner(&self) -> Result<Vec<Job>, StoreError> {
        jobs::list_wanting_runner(&self.pool).await
    }

    async fn prune(&self, before: Timestamp) -> Result<Pruned, StoreError> {
        let file_backed = matches!(self.location, SqliteLocation::File(_));
        retention::prune(&self.writer, &self.pool, file_backed, codec::ts(before), BUSY_TIMEOUT).await
    }

    async fn job_counts(&self) -> Result<BTreeMap<JobStatus, u64>, StoreError> {
        counts::jobs(&self.pool).await
    }

    async fn job_waiting_counts(
        &self,
        installation: Option<InstallationId>,
    ) -> Result<BTreeMap<Option<Reason>, u64>, StoreError> {
        counts::waiting(&self.pool, installation).await
    }

    async fn job_set_wait_reason(&self, id: JobId, reason: Option<Reason>, at: Timestamp) -> Result<(), StoreError> {
        self.writer
            .run(jobs::OP_SET_WAIT_REASON, move |conn| Box::pin(jobs::set_wait_reason(conn, id, reason, at)))
            .await
    }

    async fn job_event_append(&self, event: JobEvent) -> Result<(), StoreError> {
        self.writer
            .run(jobs::OP_APPEND, move |conn| Box::pin(async move { jobs::append_event(conn, &event).await }))
            .await
    }

    async fn job_timeline(&self, id: JobId) -> Result<Vec<JobEvent>, StoreError> {
        jobs::timeline(&self.pool, id).await
    }

    async fn runner_reserve(&self, request: ReserveRequest) -> Result<Reservation, StoreError> {
        // A refusal wrote nothing; committing it just releases the lock like a rollback would.
        self.writer.run(reserve::OP, move |conn| Box::pin(async move { reserve::reserve(conn, &request).await })).await
    }

    async fn runner_update(&self, name: &RunnerName, update: RunnerUpdate) -> Result<Option<Runner>, StoreError> {
        let name = name.clone();
        self.writer
            .run(runners::OP_UPDATE, move |conn| Box::pin(async move { runners::update(conn, &name, update).await }))
            .await
    }

    async fn runner_get(&self, name: &RunnerName) -> Result<Option<Runner>, StoreError> {
        runners::get(&self.pool, name).await
    }

    async fn runner_list(&self, filter: RunnerFilter) -> Result<Vec<Runner>, StoreError> {
        runners::list(&self.pool, filter).await
    }

    async fn runner_live_counts(&self) -> Result<BTreeMap<InstallationId, u32>, StoreError> {
        runners::live_counts(&self.pool).await
    }

    async fn runner_live_series(&self) -> Result<RunnerSeries, StoreError> {
        counts::live_series(&self.pool).await
    }

    async fn usage(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> Result<Vec<UsageRow>, StoreError> {
        usage::usage(&self.pool, from, to, now).await
    }

    async fn checkpoint_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        checkpoints::get(&self.pool, name).await
    }

    async fn checkpoint_set(&self, name: &str, value: &str, now: Timestamp) -> Result<(), StoreError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.writer
            .run(checkpoints::OP_SET, move |conn| {
                Box::pin(async move { checkpoints::set(conn, &name, &value, now).await })
            })
            .await
    }

    async fn intake_jobs(&self, batch: Vec<JobIntake>) -> Vec<Result<JobIntakeOutcome, StoreError>> {
        intake::intake(&self.writer, batch).await
    }

    // Planner snapshot
    async fn demand_snapshot(&self, query: DemandQuery) -> Result<DemandSnapshot, StoreError> {
        snapshot::demand(&self.pool, query).await
    }

    async fn fleet_records(&self, stale: StaleQuery) -> Result<FleetRecords, StoreError> {
        snapshot::fleet(&self.pool, stale).await
    }

    async fn job_set_wait_reasons(
        &self,
        reasons: Vec<(JobId, Option<Reason>)>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if reasons.is_empty() {
            return Ok(());
        }
        self.writer
            .run(jobs::OP_SET_WAIT_REASON, move |conn| {
                Box::pin(async move {
                    for (id, reason) in reasons {
                        jobs::set_wait_reason(conn, id, reason, at).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn lease_acquire(&self, request: LeaseRequest) -> Result<LeaseState, StoreError> {
        self.writer
            .run(leases::OP_ACQUIRE, move |conn| Box::pin(async move { leases::acquire(conn, &request).await }))
            .await
    }

    async fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.writer
            .run(leases::OP_RELEASE, move |conn| Box::pin(async move { leases::release(conn, &name, &holder).await }))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(SqliteLocation::parse("sqlite::memory:"), SqliteLocation::Memory);
        assert_eq!(SqliteLocation::parse(":memory:"), SqliteLocation::Memory);
        assert_eq!(SqliteLocation::parse("sqlite:///var/lib/ghr.db"), SqliteLocation::File("/var/lib/ghr.db".into()));
        assert_eq!(SqliteLocation::parse("sqlite://ghr.db"), SqliteLocation::File("ghr.db".into()));
        assert_eq!(SqliteLocation::parse("sqlite:ghr.db"), SqliteLocation::File("ghr.db".into()));
        assert_eq!(SqliteLocation::parse("data/ghr.db"), SqliteLocation::File("data/ghr.db".into()));
        assert_eq!(
            SqliteLocation::parse("sqlite:///var/lib/ghr.db?mode=ro"),
            SqliteLocation::ReadOnlyFile("/var/lib/ghr.db".into())
        );
    }
}
