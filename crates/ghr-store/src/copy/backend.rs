//! The two ends of a copy at SQL level: a transaction on a SQLite or a PostgreSQL pool, reading pages of a
//! table, inserting rows, counting, and advancing sequences. Works on the pools only (not on `Store`
//! methods), so a copy needs nothing of a backend beyond its schema.

use super::tables::{Kind, Placeholders, SERIALS, STATUS_COUNTS, Table, Value};
use crate::codec::{Columns, backend};
use ghr_core::ports::StoreError;
use sqlx::{AssertSqlSafe, PgPool, Postgres, Row, Sqlite, SqlitePool, Transaction};
use std::collections::BTreeMap;

const OP_READ: &str = "copy_read";
const OP_WRITE: &str = "copy_write";
const OP_VERIFY: &str = "copy_verify";
/// SQLite: take the write lock before reading anything, so the emptiness check and the inserts are one
/// decision no other writer can interleave with.
const SQLITE_BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
/// PostgreSQL source: one snapshot for every table (a consistent copy even while something writes).
const PG_BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// An open transaction on one end of the copy.
pub(super) enum End {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Bind every value of `values` to `query`, in order.
macro_rules! bind_all {
    ($query:expr, $values:expr) => {{
        let mut query = $query;
        for value in $values {
            query = match value {
                Value::Int(v) => query.bind(*v),
                Value::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }};
}

/// Decode one row of `table` with the shared codec.
fn decode<'r, R>(table: &Table, row: &'r R) -> Result<Vec<Value>, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let columns = Columns::new(OP_READ, row);
    table
        .columns
        .iter()
        .map(|column| match column.kind {
            Kind::Int => columns.int_opt(column.name).map(Value::Int),
            Kind::Text => columns.text_opt(column.name).map(Value::Text),
        })
        .collect()
}

impl End {
    /// A read transaction on the source: one snapshot of every table.
    pub(super) async fn sqlite_source(pool: &SqlitePool) -> Result<Self, StoreError> {
        // A deferred transaction: its first read fixes the snapshot (WAL), and writers are not blocked.
        Ok(End::Sqlite(pool.begin().await.map_err(backend(OP_READ))?))
    }

    pub(super) async fn postgres_source(pool: &PgPool) -> Result<Self, StoreError> {
        Ok(End::Postgres(pool.begin_with(PG_BEGIN_SNAPSHOT).await.map_err(backend(OP_READ))?))
    }

    /// A write transaction on the target, holding what keeps other writers out of the copied tables.
    pub(super) async fn sqlite_target(pool: &SqlitePool) -> Result<Self, StoreError> {
        Ok(End::Sqlite(pool.begin_with(SQLITE_BEGIN_WRITE).await.map_err(backend(OP_WRITE))?))
    }

    pub(super) async fn postgres_target(pool: &PgPool, tables: &[Table]) -> Result<Self, StoreError> {
        let mut tx = pool.begin().await.map_err(backend(OP_WRITE))?;
        // Writers (a replica started too early) wait until the copy commits; readers do not.
        let names = tables.iter().map(|t| t.name).collect::<Vec<_>>().join(", ");
        let lock = format!("LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE");
        sqlx::query(AssertSqlSafe(lock)).execute(&mut *tx).await.map_err(backend(OP_WRITE))?;
        // The count triggers update one row per status for every inserted row; in one transaction each update
        // adds a version of that row that the next one walks past, so a bulk insert under them is quadratic
        // (100,000 jobs: 3 minutes, against 1 s without). They are switched off for this transaction only
        // (ALTER TABLE is transactional; foreign keys are not user triggers and stay checked) and the counts
        // rebuilt from one recount each before commit (`rebuild_status_counts`).
        for &(_, counted) in STATUS_COUNTS {
            let disable = format!("ALTER TABLE {counted} DISABLE TRIGGER USER");
            sqlx::query(AssertSqlSafe(disable)).execute(&mut *tx).await.map_err(backend(OP_WRITE))?;
        }
        Ok(End::Postgres(tx))
    }

    /// PostgreSQL: rebuild each trigger-kept count table from a recount and switch its triggers back on (see
    /// `postgres_target`). SQLite's triggers counted every inserted row already (an update in place there).
    pub(super) async fn rebuild_status_counts(&mut self) -> Result<(), StoreError> {
        let End::Postgres(tx) = self else { return Ok(()) };
        for &(counts, counted) in STATUS_COUNTS {
            for sql in [
                format!("DELETE FROM {counts}"),
                format!("INSERT INTO {counts} (status, n) SELECT status, COUNT(*) FROM {counted} GROUP BY status"),
                format!("ALTER TABLE {counted} ENABLE TRIGGER USER"),
            ] {
                sqlx::query(AssertSqlSafe(sql)).execute(&mut **tx).await.map_err(backend(OP_WRITE))?;
            }
        }
        Ok(())
    }

    fn placeholders(&self) -> Placeholders {
        match self {
            End::Sqlite(_) => Placeholders::Question,
            End::Postgres(_) => Placeholders::Numbered,
        }
    }

    /// Up to `limit` rows of `table` in key order, after `after` (the last key of the previous page).
    pub(super) async fn page(
        &mut self,
        table: &Table,
        after: Option<&Value>,
        limit: usize,
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let sql = table.select_page(self.placeholders(), after.is_some(), limit);
        let after: Vec<Value> = after.cloned().into_iter().collect();
        match self {
            End::Sqlite(tx) => {
                let rows = bind_all!(sqlx::query(AssertSqlSafe(sql)), &after)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(backend(OP_READ))?;
                rows.iter().map(|row| decode(table, row)).collect()
            }
            End::Postgres(tx) => {
                let rows = bind_all!(sqlx::query(AssertSqlSafe(sql)), &after)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(backend(OP_READ))?;
                rows.iter().map(|row| decode(table, row)).collect()
            }
        }
    }

    /// Insert `rows` of `table` in one statement.
    pub(super) async fn insert(&mut self, table: &Table, rows: &[Vec<Value>]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = table.insert(self.placeholders(), rows.len());
        let values = rows.iter().flatten();
        match self {
            End::Sqlite(tx) => bind_all!(sqlx::query(AssertSqlSafe(sql)), values).execute(&mut **tx).await.map(drop),
            End::Postgres(tx) => bind_all!(sqlx::query(AssertSqlSafe(sql)), values).execute(&mut **tx).await.map(drop),
        }
        .map_err(backend(OP_WRITE))
    }

    /// The number of rows of `table` (in this transaction's view).
    pub(super) async fn count(&mut self, table: &str) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = match self {
            End::Sqlite(tx) => sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&mut **tx).await,
            End::Postgres(tx) => sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&mut **tx).await,
        }
        .map_err(backend(OP_VERIFY))?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Move every serial column's sequence past the largest copied value; the next value of each.
    pub(super) async fn advance_sequences(&mut self) -> Result<Vec<(&'static str, &'static str, i64)>, StoreError> {
        let mut next = Vec::new();
        for &(table, column) in SERIALS {
            let max = format!("SELECT COALESCE(MAX({column}), 0) FROM {table}");
            let value: i64 = match self {
                End::Sqlite(tx) => {
                    // SQLite advanced `sqlite_sequence` on every insert with an explicit id.
                    sqlx::query_scalar(AssertSqlSafe(max)).fetch_one(&mut **tx).await.map_err(backend(OP_WRITE))?
                }
                End::Postgres(tx) => {
                    let set = format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                         COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false) - 1"
                    );
                    sqlx::query_scalar(AssertSqlSafe(set)).fetch_one(&mut **tx).await.map_err(backend(OP_WRITE))?
                }
            };
            next.push((table, column, value + 1));
        }
        Ok(next)
    }

    /// Each trigger-kept count table against a recount of what it counts: `(count table, kept, recounted)`
    /// for every one that differs.
    pub(super) async fn status_count_drift(&mut self) -> Result<Vec<StatusDrift>, StoreError> {
        let mut drift = Vec::new();
        for &(counts, counted) in STATUS_COUNTS {
            let kept = self.status_map(&format!("SELECT status, n FROM {counts} WHERE n <> 0")).await?;
            let recount =
                self.status_map(&format!("SELECT status, COUNT(*) AS n FROM {counted} GROUP BY status")).await?;
            if kept != recount {
                drift.push(StatusDrift { table: counts, kept, recount });
            }
        }
        Ok(drift)
    }

    async fn status_map(&mut self, sql: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        let sql = sql.to_owned();
        let pairs: Vec<(String, i64)> = match self {
            End::Sqlite(tx) => sqlx::query_as(AssertSqlSafe(sql)).fetch_all(&mut **tx).await,
            End::Postgres(tx) => sqlx::query_as(AssertSqlSafe(sql)).fetch_all(&mut **tx).await,
        }
        .map_err(backend(OP_VERIFY))?;
        Ok(pairs.into_iter().collect())
    }

    pub(super) async fn commit(self) -> Result<(), StoreError> {
        match self {
            End::Sqlite(tx) => tx.commit().await,
            End::Postgres(tx) => tx.commit().await,
        }
        .map_err(backend(OP_WRITE))
    }
}

/// A trigger-kept count table that does not match a recount of its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusDrift {
    pub table: &'static str,
    pub kept: BTreeMap<String, i64>,
    pub recount: BTreeMap<String, i64>,
}
