//! Job-status counters: sharded count items in `<p>-state`, changed in the same transaction as the job.

use crate::DynamoStore;
use ghr_core::job::JobStatus;
use ghr_core::ports::StoreError;
use std::collections::BTreeMap;

pub(crate) async fn job_counts(store: &DynamoStore) -> Result<BTreeMap<JobStatus, u64>, StoreError> {
    todo!("{store:?}")
}
