//! The copy's table list against the real schemas of both backends, and which URLs name one store.

use super::tables::{Kind, TABLES};
use super::*;

/// Column names and kinds (Int / Text) of a copied table as the spec lists them.
fn spec(table: &str) -> Vec<(String, Kind)> {
    let table = TABLES.iter().find(|t| t.name == table).expect("a copied table");
    table.columns.iter().map(|c| (c.name.to_owned(), c.kind)).collect()
}

fn kind_of(declared: &str) -> Kind {
    let declared = declared.to_ascii_lowercase();
    if declared.contains("int") || declared == "bigserial" { Kind::Int } else { Kind::Text }
}

#[tokio::test]
async fn the_table_list_matches_the_sqlite_schema() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    for table in TABLES {
        let rows: Vec<(String, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT name, type FROM pragma_table_info('{}')", table.name)))
                .fetch_all(store.pool())
                .await
                .unwrap();
        let actual: Vec<(String, Kind)> = rows.into_iter().map(|(name, ty)| (name, kind_of(&ty))).collect();
        assert_eq!(actual, spec(table.name), "SQLite table {}", table.name);
    }
}

#[tokio::test]
async fn the_table_list_matches_the_postgres_schema() {
    let store = crate::testing::fresh_postgres_store().await;
    for table in TABLES {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table.name)
        .fetch_all(store.pool())
        .await
        .unwrap();
        let actual: Vec<(String, Kind)> = rows.into_iter().map(|(name, ty)| (name, kind_of(&ty))).collect();
        assert_eq!(actual, spec(table.name), "PostgreSQL table {}", table.name);
    }
    store.close().await;
}

#[test]
fn same_store_is_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ghr.db");
    std::fs::write(&path, b"").unwrap();
    let by_url = format!("sqlite://{}", path.display());
    let by_path = path.display().to_string();
    let relative_dir =
        format!("sqlite://{}/../{}/ghr.db", dir.path().display(), dir.path().file_name().unwrap().to_str().unwrap());
    assert!(same_store(&by_url, &by_path));
    assert!(same_store(&by_url, &relative_dir));
    assert!(same_store("postgres://h/db", "postgres://h/db"));
    assert!(!same_store(&by_url, &format!("sqlite://{}", dir.path().join("other.db").display())));
    assert!(!same_store("postgres://h/db?schema=a", "postgres://h/db?schema=b"));
}
