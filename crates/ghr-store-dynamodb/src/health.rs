//! Health: a write that proves the tables take writes now.
//!
//! One real write, to `<p>-state`: the probe item `health#probe` counts probes (`ADD probes 1`) and stamps the
//! wall clock, the same item every time, so probes can repeat forever and leave one small item the engine
//! never reads. Each other table gets a `DeleteItem` whose condition can never hold, on a key no record has:
//! DynamoDB checks the caller's write permission and the table before the condition, so the answer
//! `ConditionalCheckFailed` proves the table is there and writable while writing nothing. The five requests
//! run at once (one round trip, five write units).

use crate::DynamoStore;
use crate::error::backend;
use crate::item::{Item, n, s};
use crate::tables::delivery::DELIVERY_ID;
use crate::tables::job::JOB_ID;
use crate::tables::runner::RUNNER_NAME;
use crate::tables::state::PK;
use crate::tables::tenant::INSTALLATION_ID;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use ghr_core::ports::StoreError;

const OP_CHECK_WRITABLE: &str = "check_writable";

/// The probe item's key in `<p>-state`.
const PROBE_PK: &str = "health#probe";
/// How many probes have written the item (N).
const PROBES: &str = "probes";
/// The wall clock of the last probe (epoch milliseconds, N).
const CHECKED_AT_MS: &str = "checked_at_ms";
/// The number key no record has (GitHub's installation and job ids start at 1).
const NO_NUMBER: u64 = 0;
/// The string key no record has (runner names start with `ghr-`, delivery ids are GUIDs).
const NO_STRING: &str = "health#probe";

pub(crate) async fn check_writable(store: &DynamoStore) -> Result<(), StoreError> {
    let tables = &store.tables;
    let (probe, tenants, jobs, runners, deliveries) = tokio::join!(
        touch(store),
        refused_delete(store, &tables.tenants, INSTALLATION_ID, n(NO_NUMBER)),
        refused_delete(store, &tables.jobs, JOB_ID, n(NO_NUMBER)),
        refused_delete(store, &tables.runners, RUNNER_NAME, s(NO_STRING)),
        refused_delete(store, &tables.deliveries, DELIVERY_ID, s(NO_STRING)),
    );
    probe.and(tenants).and(jobs).and(runners).and(deliveries)
}

async fn touch(store: &DynamoStore) -> Result<(), StoreError> {
    store
        .client
        .update_item()
        .table_name(&store.tables.state)
        .key(PK, s(PROBE_PK))
        .update_expression("ADD #probes :one SET #checked = :checked")
        .expression_attribute_names("#probes", PROBES)
        .expression_attribute_names("#checked", CHECKED_AT_MS)
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":checked", n(chrono::Utc::now().timestamp_millis()))
        .send()
        .await
        .map_err(backend(OP_CHECK_WRITABLE))?;
    Ok(())
}

/// A delete that DynamoDB authorises and routes to `table`, then refuses on its condition.
async fn refused_delete(
    store: &DynamoStore,
    table: &str,
    key_attribute: &str,
    value: AttributeValue,
) -> Result<(), StoreError> {
    let key: Item = [(key_attribute.to_owned(), value)].into();
    let answer = store
        .client
        .delete_item()
        .table_name(table)
        .set_key(Some(key))
        .condition_expression("attribute_exists(#k) AND attribute_not_exists(#k)")
        .expression_attribute_names("#k", key_attribute)
        .send()
        .await;
    match answer {
        Err(e) if matches!(e.as_service_error(), Some(DeleteItemError::ConditionalCheckFailedException(_))) => Ok(()),
        Err(e) => Err(backend(OP_CHECK_WRITABLE)(e)),
        // The condition cannot hold; should an endpoint accept it anyway, the key names no record.
        Ok(_) => Ok(()),
    }
}
