//! Leases on singleton work, as conditional writes in `<p>-state` (`lease#<name>` → `holder` S,
//! `expires_at_ms` N).
//!
//! Taken or renewed by one `UpdateItem` conditioned on the lease being free, expired or already the asker's;
//! a refusal names the holder from the item the failed condition returns. DynamoDB has no server clock an
//! expression can read, so expiry is judged by the request's `now`, as on SQLite: replicas on several hosts
//! must keep their clocks in step (NTP, the Amazon Time Sync Service), since a replica whose clock runs ahead
//! by more than the lease's remaining time would take a lease its holder still believes it has.

use crate::DynamoStore;
use crate::error::{MAX_ATTEMPTS, backend, contended, corrupt};
use crate::item::{Item, Reader, n, s};
use crate::tables::state::{LEASE, PK};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use ghr_core::ports::StoreError;
use ghr_core::ports::{LeaseRequest, LeaseState};

const OP_ACQUIRE: &str = "lease_acquire";
const OP_RELEASE: &str = "lease_release";

const HOLDER: &str = "holder";
/// When the holder's lease runs out unless renewed (epoch milliseconds, N; not the TTL attribute: a lease
/// item is overwritten or deleted, never left to expire).
const EXPIRES_AT_MS: &str = "expires_at_ms";

fn pk(name: &str) -> String {
    format!("{LEASE}{name}")
}

fn state_from(op: &'static str, item: &Item) -> Result<LeaseState, StoreError> {
    let read = Reader::new(op, item);
    Ok(LeaseState { holder: read.s(HOLDER)?.to_owned(), expires_at: read.ts_ms(EXPIRES_AT_MS)? })
}

pub(crate) async fn acquire(store: &DynamoStore, request: LeaseRequest) -> Result<LeaseState, StoreError> {
    let now_ms = request.now.timestamp_millis();
    let expires_ms = now_ms.saturating_add(i64::try_from(request.ttl.as_millis()).unwrap_or(i64::MAX));
    for _ in 0..MAX_ATTEMPTS {
        let answer = store
            .client
            .update_item()
            .table_name(&store.tables.state)
            .key(PK, s(pk(&request.name)))
            .update_expression("SET #holder = :holder, #expires = :expires")
            .condition_expression("attribute_not_exists(#pk) OR #holder = :holder OR #expires <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#holder", HOLDER)
            .expression_attribute_names("#expires", EXPIRES_AT_MS)
            .expression_attribute_values(":holder", s(request.holder.as_str()))
            .expression_attribute_values(":expires", n(expires_ms))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match answer {
            Ok(answer) => {
                let item = answer.attributes.ok_or_else(|| corrupt(OP_ACQUIRE, "UpdateItem returned no lease"))?;
                return state_from(OP_ACQUIRE, &item);
            }
            Err(error) => error,
        };
        let Some(UpdateItemError::ConditionalCheckFailedException(refused)) = error.as_service_error() else {
            return Err(backend(OP_ACQUIRE)(error));
        };
        // Held by another, unexpired: the failed condition returns the lease as it stands.
        if let Some(item) = refused.item() {
            return state_from(OP_ACQUIRE, item);
        }
        // An endpoint that does not return it: read it, and ask again if it was released or ran out meanwhile.
        if let Some(item) = read(store, &request.name).await? {
            let state = state_from(OP_ACQUIRE, &item)?;
            if state.holder != request.holder && state.expires_at > request.now {
                return Ok(state);
            }
        }
    }
    Err(contended(OP_ACQUIRE))
}

async fn read(store: &DynamoStore, name: &str) -> Result<Option<Item>, StoreError> {
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.state)
        .key(PK, s(pk(name)))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(OP_ACQUIRE))?;
    Ok(answer.item)
}

/// Deleted only while `holder` holds it; otherwise (another holder, or no lease) nothing changes.
pub(crate) async fn release(store: &DynamoStore, name: &str, holder: &str) -> Result<(), StoreError> {
    let deleted = store
        .client
        .delete_item()
        .table_name(&store.tables.state)
        .key(PK, s(pk(name)))
        .condition_expression("#holder = :holder")
        .expression_attribute_names("#holder", HOLDER)
        .expression_attribute_values(":holder", s(holder))
        .send()
        .await;
    match deleted {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.as_service_error(), Some(DeleteItemError::ConditionalCheckFailedException(_))) => Ok(()),
        Err(e) => Err(backend(OP_RELEASE)(e)),
    }
}
