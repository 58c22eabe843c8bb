//! `ghr store copy`: every record of one store moved into another, empty one, of either backend (SQLite to
//! PostgreSQL when a deployment grows past one machine; PostgreSQL to SQLite to go back).
//!
//! The schemas mirror each other column for column, so the copy is table-driven (`tables.rs`): each table
//! is read in key order a page at a time from one snapshot of the source and inserted in multi-row
//! statements into the target, all in **one** target transaction. Before it commits, the copy checks per
//! table that the target holds as many rows as the source snapshot, that the target's status counts (kept by
//! SQLite's triggers as rows are inserted; rebuilt from a recount on PostgreSQL, whose per-row count triggers
//! are quadratic in one bulk transaction) equal a recount, and moves PostgreSQL's sequences past the copied
//! ids; any failure rolls the whole copy back, so the target is either a full copy or untouched.

mod backend;
mod tables;

pub use backend::StatusDrift;

use crate::postgres::{Migrated, PgLocation, PgStore};
use crate::sqlite::{SqliteLocation, SqliteStore};
use crate::{StoreKind, StoreOptions};
use backend::End;
use ghr_core::ports::StoreError;
use tables::{TABLES, Value};

/// Rows read from the source per query.
const PAGE_ROWS: usize = 1_000;
/// Rows per insert statement: at most 19 columns × 250 = 4,750 bound values, under both SQLite's (32,766)
/// and PostgreSQL's (65,535) limits.
const INSERT_ROWS: usize = 250;

/// Rows of one table in the source snapshot and in the target after the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub source: u64,
    pub target: u64,
}

/// Where a serial column of the target continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceNext {
    pub table: &'static str,
    pub column: &'static str,
    /// The value the next inserted row gets.
    pub next: i64,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The source and the target as named in messages (without passwords).
    pub source: String,
    pub target: String,
    /// What preparing the target's schema did (`from: None`: it was created).
    pub target_migrated: Migrated,
    pub tables: Vec<TableCount>,
    pub sequences: Vec<SequenceNext>,
}

/// Why a copy did not happen; nothing was written to the target in any case.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("--from and --to name the same store ({0}); copy into a new, empty database")]
    SameStore(String),
    #[error("the source SQLite database {0} does not exist")]
    SourceMissing(String),
    #[error("cannot open the source store {url}")]
    Source {
        url: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot prepare the target store {url}")]
    Target {
        url: String,
        #[source]
        source: StoreError,
    },
    #[error(
        "the target store {url} is not empty: table {table} has {rows} rows; copy into a new database (or a new \
         schema, ?schema=NAME) so that nothing is merged or overwritten"
    )]
    NotEmpty { url: String, table: &'static str, rows: u64 },
    #[error("copying table {table} failed; nothing was written to the target")]
    Table {
        table: &'static str,
        #[source]
        source: StoreError,
    },
    #[error(
        "verification failed, nothing was written to the target: table {table} has {source_rows} rows in the source \
         and {target_rows} in the target"
    )]
    CountMismatch { table: &'static str, source_rows: u64, target_rows: u64 },
    #[error(
        "verification failed, nothing was written to the target: {} on the target is {:?}, a recount gives {:?}",
        .0.table, .0.kept, .0.recount
    )]
    StatusCounts(StatusDrift),
}

/// One end of a copy, opened.
enum Opened {
    Sqlite(SqliteStore, String),
    Postgres(Box<PgStore>),
}

impl Opened {
    fn describe(&self) -> String {
        match self {
            Opened::Sqlite(_, described) => described.clone(),
            Opened::Postgres(store) => store.describe(),
        }
    }

    async fn close(&self) {
        match self {
            Opened::Sqlite(store, _) => store.close().await,
            Opened::Postgres(store) => store.close().await,
        }
    }
}

/// Copy every record of the store at `from` into the empty store at `to` (see the module documentation).
/// The source must be at this ghr's schema version (a SQLite source is migrated on open like any SQLite
/// store; a PostgreSQL one is refused otherwise); the target is created or migrated first.
pub async fn copy_store(from: &str, to: &str, options: &StoreOptions) -> Result<CopyReport, CopyError> {
    if same_store(from, to) {
        return Err(CopyError::SameStore(from.to_owned()));
    }
    let source = open_source(from, options).await?;
    let (target, target_migrated) = open_target(to, options).await?;
    let outcome = copy_between(&source, &target).await;
    let report = outcome.map(|(tables, sequences)| CopyReport {
        source: source.describe(),
        target: target.describe(),
        target_migrated,
        tables,
        sequences,
    });
    source.close().await;
    target.close().await;
    report
}

async fn copy_between(source: &Opened, target: &Opened) -> Result<(Vec<TableCount>, Vec<SequenceNext>), CopyError> {
    let target_name = target.describe();
    let prepare = |source: StoreError| CopyError::Target { url: target_name.clone(), source };
    let mut into = match target {
        Opened::Sqlite(store, _) => End::sqlite_target(store.pool()).await,
        Opened::Postgres(store) => End::postgres_target(store.pool(), TABLES).await,
    }
    .map_err(prepare)?;
    for table in TABLES {
        let rows = into.count(table.name).await.map_err(prepare)?;
        if rows > 0 {
            return Err(CopyError::NotEmpty { url: target_name, table: table.name, rows });
        }
    }
    let mut from = match source {
        Opened::Sqlite(store, _) => End::sqlite_source(store.pool()).await,
        Opened::Postgres(store) => End::postgres_source(store.pool()).await,
    }
    .map_err(|error| CopyError::Source { url: source.describe(), source: error })?;

    let mut counts = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let failed = |source| CopyError::Table { table: table.name, source };
        let key = table.columns.iter().position(|c| c.name == table.key).unwrap_or(0);
        let mut after: Option<Value> = None;
        loop {
            let page = from.page(table, after.as_ref(), PAGE_ROWS).await.map_err(failed)?;
            for chunk in page.chunks(INSERT_ROWS) {
                into.insert(table, chunk).await.map_err(failed)?;
            }
            match page.last() {
                Some(last) if page.len() == PAGE_ROWS => after = Some(last[key].clone()),
                _ => break,
            }
        }
        let source_rows = from.count(table.name).await.map_err(failed)?;
        let target_rows = into.count(table.name).await.map_err(failed)?;
        counts.push(TableCount { table: table.name, source: source_rows, target: target_rows });
    }
    if let Some(bad) = counts.iter().find(|c| c.source != c.target) {
        return Err(CopyError::CountMismatch { table: bad.table, source_rows: bad.source, target_rows: bad.target });
    }
    let verify = |source| CopyError::Table { table: "(verification)", source };
    into.rebuild_status_counts().await.map_err(verify)?;
    if let Some(drift) = into.status_count_drift().await.map_err(verify)?.into_iter().next() {
        return Err(CopyError::StatusCounts(drift));
    }
    let sequences = into
        .advance_sequences()
        .await
        .map_err(verify)?
        .into_iter()
        .map(|(table, column, next)| SequenceNext { table, column, next })
        .collect();
    into.commit().await.map_err(verify)?;
    Ok((counts, sequences))
}

async fn open_source(url: &str, options: &StoreOptions) -> Result<Opened, CopyError> {
    let failed = |source| CopyError::Source { url: url.to_owned(), source };
    match StoreKind::of(url) {
        StoreKind::Postgres => {
            Ok(Opened::Postgres(Box::new(PgStore::open(url, &options.postgres).await.map_err(failed)?)))
        }
        StoreKind::Sqlite => {
            let location = SqliteLocation::parse(url);
            if let SqliteLocation::File(path) | SqliteLocation::ReadOnlyFile(path) = &location
                && !path.exists()
            {
                return Err(CopyError::SourceMissing(path.display().to_string()));
            }
            Ok(Opened::Sqlite(SqliteStore::open_at(location).await.map_err(failed)?, url.to_owned()))
        }
    }
}

async fn open_target(url: &str, options: &StoreOptions) -> Result<(Opened, Migrated), CopyError> {
    let failed = |source| CopyError::Target { url: url.to_owned(), source };
    match StoreKind::of(url) {
        StoreKind::Postgres => {
            let location = PgLocation::parse(url)
                .map_err(|e| failed(StoreError::Backend { op: "copy_open", source: Box::new(e) }))?;
            let (store, migrated) = PgStore::migrate(location, &options.postgres).await.map_err(failed)?;
            Ok((Opened::Postgres(Box::new(store)), migrated))
        }
        StoreKind::Sqlite => {
            let (store, migrated) = SqliteStore::open_migrated(SqliteLocation::parse(url)).await.map_err(failed)?;
            Ok((Opened::Sqlite(store, url.to_owned()), migrated))
        }
    }
}

/// Whether two URLs name one store: the same PostgreSQL URL, or the same SQLite file.
fn same_store(from: &str, to: &str) -> bool {
    if from.trim() == to.trim() {
        return true;
    }
    match (SqliteLocation::parse(from), SqliteLocation::parse(to), StoreKind::of(from), StoreKind::of(to)) {
        (
            SqliteLocation::File(a) | SqliteLocation::ReadOnlyFile(a),
            SqliteLocation::File(b) | SqliteLocation::ReadOnlyFile(b),
            StoreKind::Sqlite,
            StoreKind::Sqlite,
        ) => a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
