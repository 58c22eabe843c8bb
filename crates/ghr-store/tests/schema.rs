//! Schema versions on both backends: SQLite migrates on open but refuses a database a later ghr migrated;
//! PostgreSQL is never migrated by opening it, refuses a missing, older or newer schema, and
//! `migrate_store` (`ghr store migrate`) creates and upgrades it, idempotently, refusing a newer one.

use ghr_store::testing::{fresh_schema_name, postgres_url};
use ghr_store::{Migrated, SchemaMismatch, SqliteStore, StoreOptions, migrate_store, open_store, schema_mismatch};

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
