//! `copy_store` (`ghr store copy`) between backends: a populated SQLite store copied to PostgreSQL and back
//! answers exactly as before (tenants, jobs and timelines, runners, usage, deliveries, checkpoints, counts),
//! sequences continue past the copied ids, and a copy is refused into a non-empty or newer target, from a
//! missing or non-current source, and onto itself.

use ghr_core::ports::Store;
use ghr_store::copy::{CopyError, CopyReport, copy_store};
use ghr_store::sample::{self, CHECKPOINTS, DELIVERIES, TENANTS};
use ghr_store::testing::{fresh_schema_name, open_postgres_store, postgres_url, test_settings};
use ghr_store::{SchemaMismatch, SqliteStore, StoreOptions, schema_mismatch};
use std::path::Path;

fn options() -> StoreOptions {
    StoreOptions { postgres: test_settings() }
}

fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

/// A URL of a PostgreSQL schema that does not exist yet.
fn new_postgres_url() -> String {
    format!("{}?schema={}", postgres_url(), fresh_schema_name())
}

/// A SQLite file filled with the sample, and what it answers.
async fn populated_sqlite(dir: &Path) -> (String, sample::Contents) {
    let url = sqlite_url(dir, "source.db");
    let store = SqliteStore::open(&url).await.unwrap();
    sample::populate(&store).await.expect("populating the sample");
    let contents = sample::contents(&store).await.unwrap();
    store.close().await;
    (url, contents)
}

fn rows(report: &CopyReport, table: &str) -> u64 {
    let count = report.tables.iter().find(|c| c.table == table).unwrap_or_else(|| panic!("{table} in the report"));
    assert_eq!(count.source, count.target, "{table}");
    count.target
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let (source, before) = populated_sqlite(dir.path()).await;
    let timeline_entries: usize = before.timelines.values().map(Vec::len).sum();

    let postgres = new_postgres_url();
    let there = copy_store(&source, &postgres, &options()).await.expect("sqlite → postgres");
    assert_eq!(there.target_migrated.from, None, "the target schema was created");
    assert_eq!(rows(&there, "tenants"), TENANTS.len() as u64);
    assert_eq!(rows(&there, "webhook_deliveries"), DELIVERIES.len() as u64);
    assert_eq!(rows(&there, "jobs"), before.jobs.len() as u64);
    assert_eq!(rows(&there, "job_events"), timeline_entries as u64);
    assert_eq!(rows(&there, "runners"), before.runners.len() as u64);
    assert_eq!(rows(&there, "checkpoints"), CHECKPOINTS.len() as u64);
    assert!(!before.usage.is_empty() && before.runners.len() == 3, "the sample has usage and runners");

    // PostgreSQL's sequences continue past the copied ids; its trigger-kept counts equal a recount.
    let pg = open_postgres_store(&postgres).await;
    for (table, column) in [("runners", "seq"), ("job_events", "id")] {
        let max: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT MAX({column}) FROM {table}")))
            .fetch_one(pg.pool())
            .await
            .unwrap();
        let next: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT nextval(pg_get_serial_sequence('{table}', '{column}'))"
        )))
        .fetch_one(pg.pool())
        .await
        .unwrap();
        assert_eq!(next, max + 1, "{table}.{column} continues after the copied rows");
        let reported = there.sequences.iter().find(|s| s.table == table).unwrap().next;
        assert_eq!(reported, max + 1);
    }
    let job_counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, n FROM job_status_counts WHERE n <> 0 ORDER BY status")
            .fetch_all(pg.pool())
            .await
            .unwrap();
    let mut expected: Vec<(String, i64)> =
        before.job_counts.iter().map(|(status, n)| (status.as_str().to_owned(), *n as i64)).collect();
    expected.sort();
    assert_eq!(job_counts, expected, "the job counts were rebuilt on the target");
    let disabled: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_trigger WHERE tgrelid IN ('jobs'::regclass, 'tenants'::regclass)          AND NOT tgisinternal AND tgenabled <> 'O'",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(disabled, 0, "the count and wake triggers are on again after the copy");
    pg.close().await;

    let back = sqlite_url(dir.path(), "back.db");
    let report = copy_store(&postgres, &back, &options()).await.expect("postgres → sqlite");
    assert_eq!(report.tables, there.tables, "the same rows came back");
    let store = SqliteStore::open(&back).await.unwrap();
    let after = sample::contents(&store).await.unwrap();
    assert_eq!(after, before, "every record answers as before the round trip");

    // New runners of the copied store get new sequence numbers, so names never repeat.
    let job = ghr_store::conformance::queued(500, 1001, "acme/app", Some("small"), 20_000);
    store.job_observe(job).await.unwrap();
    let reserved = store.runner_reserve(ghr_store::conformance::reserve_request(1001, "small", 20_000)).await.unwrap();
    let ghr_core::ports::Reservation::Reserved(runner) = reserved else { panic!("a slot is free: {reserved:?}") };
    assert!(before.runners.iter().all(|r| r.name != runner.name), "{} is new", runner.name);
    store.close().await;
}

/// Reads the copied PostgreSQL store through the `Store` port (needs the PostgreSQL store's resource modules).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_postgres_store_answers_like_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let (source, before) = populated_sqlite(dir.path()).await;
    let postgres = new_postgres_url();
    copy_store(&source, &postgres, &options()).await.expect("sqlite → postgres");
    let pg = open_postgres_store(&postgres).await;
    let after = sample::contents(&pg as &dyn Store).await.expect("reading the copy through the Store port");
    assert_eq!(after.usage, before.usage, "usage is the same on both backends");
    assert_eq!(after, before);
    pg.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_that_would_lose_or_merge_data_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = populated_sqlite(dir.path()).await;

    let same = copy_store(&source, &source.replace("sqlite://", ""), &options()).await.unwrap_err();
    assert!(matches!(same, CopyError::SameStore(_)), "{same}");
    let missing = copy_store(&sqlite_url(dir.path(), "typo.db"), &new_postgres_url(), &options()).await.unwrap_err();
    assert!(matches!(missing, CopyError::SourceMissing(_)), "{missing}");
    assert!(!dir.path().join("typo.db").exists(), "a missing source is not created");

    // A target that already holds records: refused, naming the table, and left as it was.
    let postgres = new_postgres_url();
    copy_store(&source, &postgres, &options()).await.expect("the first copy");
    let again = copy_store(&source, &postgres, &options()).await.unwrap_err();
    assert!(matches!(again, CopyError::NotEmpty { table: "tenants", rows: 4, .. }), "{again}");
    assert!(again.to_string().contains("not empty: table tenants"), "{again}");
    let other = sqlite_url(dir.path(), "other.db");
    let store = SqliteStore::open(&other).await.unwrap();
    sample::populate(&store).await.unwrap();
    store.close().await;
    let into_sqlite = copy_store(&postgres, &other, &options()).await.unwrap_err();
    assert!(matches!(into_sqlite, CopyError::NotEmpty { table: "tenants", .. }), "{into_sqlite}");

    // A PostgreSQL source must be at this ghr's schema: a missing one is refused (not created).
    let absent = new_postgres_url();
    let error = copy_store(&absent, &sqlite_url(dir.path(), "empty.db"), &options()).await.unwrap_err();
    let CopyError::Source { source: cause, .. } = &error else { panic!("{error}") };
    assert!(matches!(schema_mismatch(cause), Some(SchemaMismatch::Missing { .. })), "{error}");
}
