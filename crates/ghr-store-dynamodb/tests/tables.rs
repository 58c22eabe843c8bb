//! `ghr store init`'s table creation on the emulator: idempotent, the seed's tenant table as the seed defines it,
//! and a store refuses to open without its tables.

use ghr_store_dynamodb::testing::{client, unique_prefix, url_of};
use ghr_store_dynamodb::{DynamoOptions, DynamoStore, OpenError, Tables, init_tables};

#[tokio::test]
async fn init_creates_the_tables_once_and_open_refuses_without_them() {
    let prefix = unique_prefix();
    let error = DynamoStore::open(&url_of(&prefix), DynamoOptions::default()).await.unwrap_err();
    assert!(matches!(error, OpenError::MissingTables { ref missing, .. } if missing.len() == 5), "{error}");
    assert!(error.to_string().contains("ghr store init"), "{error}");

    let client = client().await;
    let tables = Tables::new(&prefix);
    let first = init_tables(&client, &tables).await.expect("init");
    assert_eq!(first.created.len(), 5, "{first:?}");
    let again = init_tables(&client, &tables).await.expect("init again");
    assert!(again.created.is_empty() && again.existing.len() == 5, "{again:?}");
    DynamoStore::open(&url_of(&prefix), DynamoOptions::default()).await.expect("open after init");

    let tenants = client.describe_table().table_name(&tables.tenants).send().await.unwrap().table.unwrap();
    let mut indexes: Vec<_> =
        tenants.global_secondary_indexes().iter().filter_map(|g| g.index_name().map(str::to_owned)).collect();
    indexes.sort();
    assert_eq!(indexes, ["org-name-index", "status-index"]);
}
