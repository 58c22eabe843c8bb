//! Planner snapshots: demand for dispatch and the fleet for the reconciler, read from the sparse indexes.

use crate::DynamoStore;
use ghr_core::planner::dispatch::{DemandQuery, DemandSnapshot};
use ghr_core::planner::fleet::{FleetRecords, StaleQuery};
use ghr_core::ports::StoreError;

pub(crate) async fn demand_snapshot(store: &DynamoStore, query: DemandQuery) -> Result<DemandSnapshot, StoreError> {
    todo!("{store:?} {query:?}")
}

pub(crate) async fn fleet_records(store: &DynamoStore, stale: StaleQuery) -> Result<FleetRecords, StoreError> {
    todo!("{store:?} {stale:?}")
}
