//! Schema versions on both backends: SQLite migrates on open but refuses a database a later ghr migrated;
//! PostgreSQL is never migrated by opening it, refuses a missing, older or newer schema, and
//! `migrate_store` (`ghr store migrate`) creates and upgrades it, idempotently, refusing a newer one.
//! `open_existing_store` (operator commands) never creates or migrates a SQLite store either.

use ghr_store::testing::{fresh_schema_name, postgres_url};
use ghr_store::{
    Migrated, SchemaMismatch, SqliteStore, StoreOptions, migrate_store, open_existing_store, open_store,
    schema_mismatch,
};

/// A schema version no ghr has written yet.
const FUTURE_VERSION: i64 = 9_999;

fn options() -> StoreOptions {
    StoreOptions { postgres: ghr_store::testing::test_settings() }
}

#[tokio::test]
async fn sqlite_migrates_on_open_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ghr.db").display());
    let created = migrate_store(&url, &options()).await.expect("a new file is created and migrated");
    assert_eq!(created.from, None);
    let again = migrate_store(&url, &options()).await.expect("migrating again");
    assert_eq!(again, Migrated { from: Some(created.to), to: created.to }, "idempotent");

    // A later ghr applied a migration this one does not know.
    let store = SqliteStore::open(&url).await.unwrap();
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from the future', 1, x'00', 0)",
    )
    .bind(FUTURE_VERSION)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    for refused in [open_store(&url, &options()).await.err(), migrate_store(&url, &options()).await.err()] {
        let error = refused.expect("a newer schema is refused");
        let message = ghr_core::error::error_chain(&error);
        assert!(
            matches!(schema_mismatch(&error), Some(SchemaMismatch::Newer { applied: FUTURE_VERSION, .. })),
            "{message}"
        );
        assert!(message.contains("newer") && message.contains("run that ghr version or a later one"), "{message}");
        assert!(!message.contains("previously applied"), "the operator message, not sqlx's: {message}");
    }
}

/// A SQLite store at the schema of an earlier ghr: every migration but the last applied.
async fn sqlite_one_version_behind(url: &str) -> i64 {
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let migrator = sqlx::migrate::Migrator::new(migrations).await.unwrap();
    let previous = migrator.iter().map(|m| m.version).max().unwrap() - 1;
    let options = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    migrator.run_to(previous, &pool).await.unwrap();
    pool.close().await;
    previous
}

async fn sqlite_applied_version(url: &str) -> Option<i64> {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let version = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    pool.close().await;
    version
}

#[tokio::test]
async fn sqlite_opened_as_existing_is_never_created_or_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let url = format!("sqlite://{}", path.display());
    let error = open_existing_store(&url, &options()).await.err().expect("a missing file is refused");
    assert!(matches!(schema_mismatch(&error), Some(SchemaMismatch::NoDatabase { .. })), "{error:?}");
    let message = ghr_core::error::error_chain(&error);
    assert!(message.contains(&path.display().to_string()) && message.contains("ghr store migrate"), "{message}");
    assert!(!path.exists(), "opening an existing store never creates the file");

    // A SQLite database that is not a ghr store: refused, and left as it was (not switched to WAL).
    let foreign = dir.path().join("foreign.db");
    let foreign_url = format!("sqlite://{}", foreign.display());
    let options_create = foreign_url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options_create).await.unwrap();
    sqlx::query("CREATE TABLE notes (body TEXT)").execute(&pool).await.unwrap();
    pool.close().await;
    let error = open_existing_store(&foreign_url, &options()).await.err().expect("no ghr schema is refused");
    assert!(matches!(schema_mismatch(&error), Some(SchemaMismatch::Missing { .. })), "{error:?}");
    let pool = sqlx::SqlitePool::connect(&foreign_url).await.unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'").fetch_all(&pool).await.unwrap();
    pool.close().await;
    assert_eq!((journal.as_str(), tables), ("delete", vec!["notes".to_owned()]), "the foreign file is untouched");

    // An earlier ghr's store: refused and not migrated; `migrate_store` upgrades it, then it opens.
    let older = format!("sqlite://{}", dir.path().join("older.db").display());
    let previous = sqlite_one_version_behind(&older).await;
    let error = open_existing_store(&older, &options()).await.err().expect("an older schema is refused");
    assert!(
        matches!(schema_mismatch(&error), Some(SchemaMismatch::Older { applied, .. }) if *applied == previous),
        "{error:?}"
    );
    assert!(ghr_core::error::error_chain(&error).contains("run `ghr store migrate`"));
    assert_eq!(sqlite_applied_version(&older).await, Some(previous), "opening it did not migrate it");
    let migrated = migrate_store(&older, &options()).await.expect("ghr store migrate upgrades it");
    assert_eq!(migrated, Migrated { from: Some(previous), to: previous + 1 });
    let store = open_existing_store(&older, &options()).await.expect("a current store opens");
    assert!(store.tenant_list(None).await.unwrap().is_empty());
    store.check_writable().await.expect("an existing store opened this way is writable");
}

#[tokio::test]
async fn postgres_opens_only_a_current_schema_and_migrates_explicitly() {
    let url = format!("{}?schema={}", postgres_url(), fresh_schema_name());
    let missing = open_store(&url, &options()).await.err().expect("no schema yet");
    assert!(matches!(schema_mismatch(&missing), Some(SchemaMismatch::Missing { .. })), "{missing:?}");
    assert!(ghr_core::error::error_chain(&missing).contains("ghr store migrate"));

    let created = migrate_store(&url, &options()).await.expect("migrate creates the schema");
    assert_eq!(created.from, None);
    let again = migrate_store(&url, &options()).await.expect("migrating again");
    assert_eq!(again, Migrated { from: Some(created.to), to: created.to }, "idempotent");
    let store = open_store(&url, &options()).await.expect("a current schema opens");
    drop(store);

    let pool = ghr_store::testing::open_postgres_store(&url).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from the future', true, '\\x00', 0)",
    )
    .bind(FUTURE_VERSION)
    .execute(pool.pool())
    .await
    .unwrap();
    pool.close().await;
    for refused in [open_store(&url, &options()).await.err(), migrate_store(&url, &options()).await.err()] {
        let error = refused.expect("a newer schema is refused");
        assert!(
            matches!(schema_mismatch(&error), Some(SchemaMismatch::Newer { applied: FUTURE_VERSION, .. })),
            "{error:?}"
        );
    }
}
