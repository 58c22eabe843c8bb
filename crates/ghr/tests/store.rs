//! `ghr store migrate` and `ghr store copy` as an operator runs them, and `ghr serve` / `--db` refusing a
//! schema they cannot run on (a PostgreSQL schema missing or newer, a SQLite database a later ghr wrote),
//! saying what to run. Needs the PostgreSQL test server (`GHR_TEST_POSTGRES_URL`).

use ghr_store::SqliteStore;
use ghr_store::testing::{fresh_schema_name, postgres_url};
use std::path::Path;
use std::process::{Command, Output};

/// A schema version no ghr has written yet.
const FUTURE_VERSION: i64 = 9_999;

fn ghr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ghr"))
        .args(args)
        .env_remove("GHR_SERVER")
        .env_remove("GHR_ADMIN_TOKEN")
        .env_remove("GHR_DB")
        .env_remove("GHR_CONFIG")
        .env("GHR_WEBHOOK_SECRET", "s3cret")
        .output()
        .expect("ghr runs")
}

fn ok(args: &[&str]) -> String {
    let out = ghr(args);
    assert!(out.status.success(), "ghr {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn fails(args: &[&str]) -> String {
    let out = ghr(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "ghr {args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr.contains("panicked"), "ghr {args:?} panicked: {stderr}");
    stderr
}

fn new_postgres_url() -> String {
    format!("{}?schema={}", postgres_url(), fresh_schema_name())
}

fn sqlite(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

/// Record a migration from the future in a store's migration table.
async fn apply_future_migration(url: &str) {
    let sql = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
               VALUES ($1, 'from the future', true, '\\x00', 0)";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).bind(FUTURE_VERSION).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let store = ghr_store::testing::open_postgres_store(url).await;
        sqlx::query(sql).bind(FUTURE_VERSION).execute(store.pool()).await.unwrap();
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_then_copy_sqlite_to_postgres_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite(dir.path(), "source.db");
    let store = SqliteStore::open(&source).await.unwrap();
    ghr_store::sample::populate(&store).await.unwrap();
    store.close().await;

    let fresh = sqlite(dir.path(), "fresh.db");
    assert!(ok(&["store", "migrate", "--db", &fresh]).contains("schema version none → 8 (created)"));
    assert!(ok(&["store", "migrate", "--db", &fresh]).contains("schema version 8 → 8 (already current)"));

    let postgres = new_postgres_url();
    let unmigrated = fails(&["tenants", "list", "--db", &postgres]);
    assert!(unmigrated.contains("no ghr schema") && unmigrated.contains("ghr store migrate"), "{unmigrated}");

    let copied = ok(&["store", "copy", "--from", &source, "--to", &postgres]);
    assert!(copied.contains("schema version none → 2 (created)"), "the target was migrated first: {copied}");
    let tenants = copied.lines().find(|l| l.starts_with("tenants ")).expect("a row per table");
    assert_eq!(tenants.split_whitespace().collect::<Vec<_>>(), ["tenants", "4", "4", "ok"], "{copied}");
    assert!(copied.contains("copied and verified") && copied.contains("runners.seq continues at 4"), "{copied}");
    assert!(ok(&["store", "migrate", "--db", &postgres]).contains("schema version 2 → 2 (already current)"));

    let again = fails(&["store", "copy", "--from", &source, "--to", &postgres]);
    assert!(again.contains("not empty: table tenants has 4 rows"), "{again}");

    let back = sqlite(dir.path(), "back.db");
    ok(&["store", "copy", "--from", &postgres, "--to", &back]);
    for args in [
        &["tenants", "list", "--json"][..],
        &["runners", "list", "--state", "all", "--json"],
        &["jobs", "list", "--json"],
        &["jobs", "show", "4", "--json"],
        &["usage", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z", "--csv"],
    ] {
        let before = ok(&[args, &["--db", &source]].concat());
        let after = ok(&[args, &["--db", &back]].concat());
        assert_eq!(after, before, "ghr {args:?} answers the same after the round trip");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_commands_refuse_a_schema_they_cannot_run_on() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = new_postgres_url();
    let config = dir.path().join("ghr.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n[store]\nurl = \"{postgres}\"\n\
             [store.pool]\nmax_connections = 2\nmin_connections = 0\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let checked = ok(&["config", "check", "--config", config]);
    assert!(checked.contains("store: postgres") && checked.contains("max_connections=2"), "{checked}");

    let missing = fails(&["serve", "--config", config]);
    assert!(missing.contains("store.url") && missing.contains("run `ghr store migrate`"), "{missing}");
    assert!(ok(&["store", "migrate", "--config", config]).contains("none → 2 (created)"));
    apply_future_migration(&postgres).await;
    let newer = fails(&["serve", "--config", config]);
    assert!(newer.contains("newer than version 2") && newer.contains("run that ghr version"), "{newer}");
    assert!(fails(&["store", "migrate", "--config", config]).contains("newer than version 2"));

    // SQLite migrates at start, but not a database a later ghr wrote.
    let later = sqlite(dir.path(), "later.db");
    ok(&["store", "migrate", "--db", &later]);
    apply_future_migration(&later).await;
    let refused = fails(&["tenants", "list", "--db", &later]);
    assert!(refused.contains("newer than version 8") && !refused.contains("previously applied"), "{refused}");
}
