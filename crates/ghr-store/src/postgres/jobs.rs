//! Jobs on PostgreSQL. (Being written.)
use crate::codec::backend;
use ghr_core::Timestamp;
use ghr_core::ids::JobId;
use ghr_core::job::{Job, JobChange, JobEvent, JobObservation};
use ghr_core::ports::{JobFilter, StoreError};
use ghr_core::reason::Reason;
use sqlx::{PgConnection, PgPool};

pub(super) const OP_OBSERVE: &str = "job_observe";
pub(super) const OP_SET_WAIT_REASON: &str = "job_set_wait_reason";
pub(super) const OP_APPEND: &str = "job_event_append";

fn pending(op: &'static str) -> StoreError {
    backend(op)(sqlx::Error::Protocol("not written yet".into()))
}

pub(super) async fn observe(_c: &mut PgConnection, _o: JobObservation) -> Result<JobChange, StoreError> {
    Err(pending("x"))
}
pub(super) async fn get(_p: &PgPool, _id: JobId) -> Result<Option<Job>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn list(_p: &PgPool, _f: JobFilter) -> Result<Vec<Job>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn list_wanting_runner(_p: &PgPool) -> Result<Vec<Job>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn set_wait_reason(
    _c: &mut PgConnection,
    _id: JobId,
    _r: Option<Reason>,
    _at: Timestamp,
) -> Result<(), StoreError> {
    Err(pending("x"))
}
pub(super) async fn set_wait_reasons(
    _c: &mut PgConnection,
    _r: &[(JobId, Option<Reason>)],
    _at: Timestamp,
) -> Result<(), StoreError> {
    Err(pending("x"))
}
pub(super) async fn append_event(_c: &mut PgConnection, _e: &JobEvent) -> Result<(), StoreError> {
    Err(pending("x"))
}
pub(super) async fn timeline(_p: &PgPool, _id: JobId) -> Result<Vec<JobEvent>, StoreError> {
    Err(pending("x"))
}
