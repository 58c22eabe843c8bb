//! Checkpoints: named progress markers in `<p>-state` (`checkpoint#<name>` → `value` S, `updated_at` N ms),
//! written whole with an unconditional put (last write wins, as on SQLite and PostgreSQL).

use crate::DynamoStore;
use crate::error::backend;
use crate::item::{Item, Reader, s, ts_ms};
use crate::tables::state::{CHECKPOINT, PK};
use ghr_core::Timestamp;
use ghr_core::ports::StoreError;

const OP_GET: &str = "checkpoint_get";
const OP_SET: &str = "checkpoint_set";

/// The marker (S).
const VALUE: &str = "value";
/// When it was last written (epoch milliseconds, N), for operators.
const UPDATED_AT: &str = "updated_at";

fn pk(name: &str) -> String {
    format!("{CHECKPOINT}{name}")
}

pub(crate) async fn get(store: &DynamoStore, name: &str) -> Result<Option<String>, StoreError> {
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.state)
        .key(PK, s(pk(name)))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(OP_GET))?;
    answer.item.map(|item| Reader::new(OP_GET, &item).s(VALUE).map(str::to_owned)).transpose()
}

pub(crate) async fn set(store: &DynamoStore, name: &str, value: &str, now: Timestamp) -> Result<(), StoreError> {
    let item: Item =
        [(PK.to_owned(), s(pk(name))), (VALUE.to_owned(), s(value)), (UPDATED_AT.to_owned(), ts_ms(now))].into();
    store
        .client
        .put_item()
        .table_name(&store.tables.state)
        .set_item(Some(item))
        .send()
        .await
        .map_err(backend(OP_SET))?;
    Ok(())
}
