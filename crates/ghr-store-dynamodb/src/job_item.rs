//! The job item: encoding, decoding, and the sparse `open-index` keys.

use crate::item::Item;
use ghr_core::job::Job;
use ghr_core::ports::StoreError;

pub(crate) fn job_from_item(op: &'static str, item: &Item) -> Result<Job, StoreError> {
    todo!("{op} {item:?}")
}

/// Which open jobs a read of `open-index` wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenKind {
    /// Queued and matched to a tier (they want a runner).
    Queued,
    /// In progress and matched to a tier.
    InProgress,
}

/// One tenant's open jobs of `kind`, oldest first (a Query of the sparse `open-index`).
pub(crate) async fn query_open(
    store: &crate::DynamoStore,
    tenant: ghr_core::ids::InstallationId,
    kind: OpenKind,
) -> Result<Vec<Job>, StoreError> {
    todo!("{store:?} {tenant} {kind:?}")
}

/// Every tenant's open jobs of `kind`, oldest first (a Scan of the sparse `open-index`: one read per open job,
/// never the whole table).
pub(crate) async fn scan_open(store: &crate::DynamoStore, kind: OpenKind) -> Result<Vec<Job>, StoreError> {
    todo!("{store:?} {kind:?}")
}
