//! Runners: update (a release lowers the live counts in the same transaction), get, list, live counts and series.

use crate::DynamoStore;
use ghr_core::ids::{InstallationId, RunnerName};
use ghr_core::ports::StoreError;
use ghr_core::ports::{RunnerFilter, RunnerSeries, RunnerUpdate};
use ghr_core::runner::Runner;
use std::collections::BTreeMap;

pub(crate) async fn update(
    store: &DynamoStore,
    name: &RunnerName,
    update: RunnerUpdate,
) -> Result<Option<Runner>, StoreError> {
    todo!("{store:?} {name} {update:?}")
}

pub(crate) async fn get(store: &DynamoStore, name: &RunnerName) -> Result<Option<Runner>, StoreError> {
    todo!("{store:?} {name}")
}

pub(crate) async fn list(store: &DynamoStore, filter: RunnerFilter) -> Result<Vec<Runner>, StoreError> {
    todo!("{store:?} {filter:?}")
}

pub(crate) async fn live_counts(store: &DynamoStore) -> Result<BTreeMap<InstallationId, u32>, StoreError> {
    todo!("{store:?}")
}

pub(crate) async fn live_series(store: &DynamoStore) -> Result<RunnerSeries, StoreError> {
    todo!("{store:?}")
}
