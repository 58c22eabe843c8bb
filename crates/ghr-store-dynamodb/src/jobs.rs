//! Jobs: observe (forward only, optimistic on the item), get, list, waiting jobs and counts, wait reasons, timeline.

use crate::DynamoStore;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, JobId};
use ghr_core::job::{Job, JobChange, JobEvent, JobObservation};
use ghr_core::ports::JobFilter;
use ghr_core::ports::StoreError;
use ghr_core::reason::Reason;
use std::collections::BTreeMap;

pub(crate) async fn observe(store: &DynamoStore, observation: JobObservation) -> Result<JobChange, StoreError> {
    todo!("{store:?} {observation:?}")
}

pub(crate) async fn get(store: &DynamoStore, id: JobId) -> Result<Option<Job>, StoreError> {
    todo!("{store:?} {id}")
}

pub(crate) async fn list(store: &DynamoStore, filter: JobFilter) -> Result<Vec<Job>, StoreError> {
    todo!("{store:?} {filter:?}")
}

pub(crate) async fn list_wanting_runner(store: &DynamoStore) -> Result<Vec<Job>, StoreError> {
    todo!("{store:?}")
}

pub(crate) async fn waiting_counts(
    store: &DynamoStore,
    installation: Option<InstallationId>,
) -> Result<BTreeMap<Option<Reason>, u64>, StoreError> {
    todo!("{store:?} {installation:?}")
}

pub(crate) async fn set_wait_reason(
    store: &DynamoStore,
    id: JobId,
    reason: Option<Reason>,
    at: Timestamp,
) -> Result<(), StoreError> {
    todo!("{store:?} {id} {reason:?} {at}")
}

pub(crate) async fn set_wait_reasons(
    store: &DynamoStore,
    reasons: Vec<(JobId, Option<Reason>)>,
    at: Timestamp,
) -> Result<(), StoreError> {
    todo!("{store:?} {reasons:?} {at}")
}

pub(crate) async fn event_append(store: &DynamoStore, event: JobEvent) -> Result<(), StoreError> {
    todo!("{store:?} {event:?}")
}

pub(crate) async fn timeline(store: &DynamoStore, id: JobId) -> Result<Vec<JobEvent>, StoreError> {
    todo!("{store:?} {id}")
}
