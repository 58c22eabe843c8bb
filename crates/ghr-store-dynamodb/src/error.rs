//! Errors: opening a store ([`OpenError`]) and turning SDK failures into [`StoreError`]s with context.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use ghr_core::ports::StoreError;
use std::time::Duration;

/// Why a DynamoDB store could not be opened or initialised.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("store.url {url:?} is not a usable DynamoDB URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "the DynamoDB tables of prefix {prefix:?} are missing ({}): run `ghr store init` to create them, or apply \
         the Terraform module",
        missing.join(", ")
    )]
    MissingTables { prefix: String, missing: Vec<String> },
    #[error("DynamoDB table {table} is not ghr's: {reason}")]
    WrongTable { table: String, reason: String },
    #[error("DynamoDB {doing} failed: {message}")]
    Backend { doing: String, message: String },
}

/// An SDK failure with everything it says (the SDK's own `Display` is only "service error").
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DynamoError {
    /// The service's error code, when it answered one (`ConditionalCheckFailedException`, ...).
    pub code: Option<String>,
    pub message: String,
}

/// An SDK failure of `op` as a [`StoreError::Backend`].
pub(crate) fn backend<E, R>(op: &'static str) -> impl FnOnce(SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    move |error| StoreError::Backend { op, source: Box::new(dynamo_error(&error)) }
}

pub(crate) fn dynamo_error<E, R>(error: &SdkError<E, R>) -> DynamoError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = error.as_service_error().and_then(|e| e.code()).map(str::to_owned);
    DynamoError { code, message: DisplayErrorContext(error).to_string() }
}

/// A stored item that does not decode.
pub(crate) fn corrupt(op: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt { op, detail: detail.into() }
}

/// Why each item of a cancelled `TransactWriteItems` failed (`ConditionalCheckFailed`, `TransactionConflict`,
/// `None` for the items that were fine), in request order; `None` when the failure was not a cancellation.
pub(crate) fn cancellation_codes<R>(error: &SdkError<TransactWriteItemsError, R>) -> Option<Vec<Option<String>>> {
    match error.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => Some(
            cancelled
                .cancellation_reasons()
                .iter()
                .map(|reason| reason.code().filter(|code| *code != "None").map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

/// Whether a transaction was cancelled only because another one touched the same items at the same time
/// (or DynamoDB throttled it): worth running again from a fresh read.
pub(crate) fn is_contention<R>(error: &SdkError<TransactWriteItemsError, R>) -> bool {
    if let Some(codes) = cancellation_codes(error) {
        return !codes.is_empty()
            && codes.iter().flatten().all(|code| {
                matches!(code.as_str(), "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded")
            });
    }
    matches!(error.as_service_error(), Some(TransactWriteItemsError::TransactionInProgressException(_)))
}

/// How many times a read-decide-write is run before contention is reported as a failure.
pub(crate) const MAX_ATTEMPTS: u32 = 12;

/// Wait before attempt `attempt` (1-based) of a contended read-decide-write: up to 5 ms doubling to 320 ms,
/// with full jitter (from the clock's nanoseconds) so that contenders do not stay in step.
pub(crate) async fn contention_backoff(attempt: u32) {
    let ceiling = 5u64 << attempt.min(6);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    tokio::time::sleep(Duration::from_millis(1 + u64::from(nanos) % ceiling)).await;
}

/// Contention that outlasted [`MAX_ATTEMPTS`].
pub(crate) fn contended(op: &'static str) -> StoreError {
    StoreError::Backend {
        op,
        source: Box::new(DynamoError {
            code: Some("TransactionConflict".into()),
            message: format!("still contended after {MAX_ATTEMPTS} attempts; the caller retries later"),
        }),
    }
}

// Single-item writes on items that transactions also write (tenants, deliveries).

/// Whether a single-item write was rejected because a `TransactWriteItems` was writing the same item at that
/// moment (`TransactionConflictException`, which the SDK does not retry by itself).
pub(crate) fn is_transaction_conflict<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    error.as_service_error().and_then(ProvideErrorMetadata::code) == Some("TransactionConflictException")
}

/// Run a single-item write, again (with [`contention_backoff`]) while a transaction on the same item rejects it,
/// up to [`MAX_ATTEMPTS`] in all; the last answer is returned as it is.
pub(crate) async fn retry_transaction_conflicts<T, E, R, F, Fut>(mut write: F) -> Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(error) if attempt < MAX_ATTEMPTS && is_transaction_conflict(&error) => {
                attempt += 1;
                contention_backoff(attempt).await;
            }
            answer => return answer,
        }
    }
}

#[cfg(test)]
mod transaction_conflict_tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
    use std::cell::Cell;

    fn rejected(code: &str) -> SdkError<UpdateItemError, ()> {
        SdkError::service_error(UpdateItemError::generic(ErrorMetadata::builder().code(code).build()), ())
    }

    #[tokio::test]
    async fn writes_run_again_only_while_a_transaction_holds_the_item() {
        let calls = Cell::new(0u32);
        let answer = retry_transaction_conflicts(|| {
            calls.set(calls.get() + 1);
            let call = calls.get();
            async move { if call < 3 { Err(rejected("TransactionConflictException")) } else { Ok(call) } }
        })
        .await;
        assert_eq!(answer.ok(), Some(3), "the third write went through");

        calls.set(0);
        let answer = retry_transaction_conflicts(|| {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(rejected("ConditionalCheckFailedException")) }
        })
        .await;
        assert!(answer.is_err() && calls.get() == 1, "other failures are answered at once");

        calls.set(0);
        let answer = retry_transaction_conflicts(|| {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(rejected("TransactionConflictException")) }
        })
        .await;
        assert!(answer.as_ref().is_err_and(is_transaction_conflict), "still in conflict after the last attempt");
        assert_eq!(calls.get(), MAX_ATTEMPTS);
    }
}
