//! The runner item: encoding, decoding, and the sparse `live-index` keys.

use crate::item::Item;
use ghr_core::ports::StoreError;
use ghr_core::runner::Runner;

pub(crate) fn runner_from_item(op: &'static str, item: &Item) -> Result<Runner, StoreError> {
    todo!("{op} {item:?}")
}

/// One tenant's live runners (all tiers), oldest first (a Query of the sparse `live-index`).
pub(crate) async fn query_live(
    store: &crate::DynamoStore,
    tenant: ghr_core::ids::InstallationId,
) -> Result<Vec<Runner>, StoreError> {
    todo!("{store:?} {tenant}")
}

/// Every live runner (a Scan of the sparse `live-index`: one read per live runner).
pub(crate) async fn scan_live(store: &crate::DynamoStore) -> Result<Vec<Runner>, StoreError> {
    todo!("{store:?}")
}
