//! Jobs: observe (forward only, optimistic on the item), get, list, waiting jobs and counts, wait reasons, timeline.
//!
//! Every change of a job is a read-decide-write on its item: read it (strongly consistent), decide with the
//! core's rule ([`JobStatus::advances_to`]) and the SQL stores' merge ([`job_item::advanced`]), then write
//! conditioned on the `version` read, in one `TransactWriteItems` with the status counters
//! ([`crate::counters`]). A write that lost to a concurrent one (its condition failed, or the transaction
//! conflicted) reads again and decides again, so two replicas never both move a job and no transition is
//! logged twice. An observation that changes nothing writes nothing.
//!
//! Waiting jobs are read from the sparse `open-index` (see [`job_item`]): a GSI, so on DynamoDB a job queued
//! or moved a moment ago may be missing from (or still in) `job_list_wanting_runner` and `job_waiting_counts`
//! for the index's replication lag (usually well under a second). Both are advisory (the dispatcher's next
//! pass sees it); nothing that must be exact (admission, dedupe) reads an index.

pub(crate) mod timeline;

use crate::DynamoStore;
use crate::counters::job_count_change;
use crate::error::{
    MAX_ATTEMPTS, backend, cancellation_codes, contended, contention_backoff, corrupt, retry_transaction_conflicts,
};
use crate::item::{Item, n, s};
use crate::job_item::{self, Expr, OpenKind, Stored, attr, check_id, storable};
use crate::tables::job as names;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, JobId};
use ghr_core::job::{Job, JobChange, JobEvent, JobObservation, JobStatus, event_kind};
use ghr_core::ports::JobFilter;
use ghr_core::ports::StoreError;
use ghr_core::reason::Reason;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) const OP_OBSERVE: &str = "job_observe";
const OP_GET: &str = "job_get";
const OP_LIST: &str = "job_list";
const OP_WANTING: &str = "job_list_wanting_runner";
const OP_WAITING_COUNTS: &str = "job_waiting_counts";
const OP_SET_WAIT_REASON: &str = "job_set_wait_reason";
const OP_APPEND: &str = "job_event_append";
const OP_TIMELINE: &str = "job_timeline";

/// Timeline detail of a `waiting` entry written when a job's wait reason is cleared (the SQL stores' word).
pub(crate) const WAIT_CLEARED_DETAIL: &str = "cleared";
/// Jobs whose wait reasons `job_set_wait_reasons` writes at once (each job's own changes stay in order).
const WAIT_REASON_CONCURRENCY: usize = 16;

/// What an observation does to its job: the change, and the writes that make it (none when Unchanged).
pub(crate) struct Planned {
    pub change: JobChange,
    pub writes: Vec<TransactWriteItem>,
}

/// Decide what `obs` does to the job read as `stored`, and build the writes (job item and counters). A job
/// created here starts with `initial_wait_reason` and its `waiting` entry (intake's rule).
pub(crate) fn plan(
    store: &DynamoStore,
    op: &'static str,
    stored: Option<&Stored>,
    obs: &JobObservation,
    initial_wait_reason: Option<Reason>,
) -> Result<Planned, StoreError> {
    check_id(op, "job id", obs.job_id.0)?;
    check_id(op, "installation id", obs.installation_id.0)?;
    let status_entry = JobEvent {
        job_id: obs.job_id,
        at: obs.observed_at,
        kind: obs.status.as_str().to_owned(),
        detail: job_item::status_detail(obs),
    };
    let mut expr = Expr::default();
    let (change, next, entries, counters) = match stored.and_then(|stored| stored.job.as_ref()) {
        None => {
            let job = job_item::created(obs, initial_wait_reason);
            let mut entries = vec![status_entry];
            if let Some(reason) = initial_wait_reason {
                entries.push(JobEvent {
                    job_id: obs.job_id,
                    at: obs.observed_at,
                    kind: event_kind::WAITING.to_owned(),
                    detail: reason.code().to_owned(),
                });
            }
            let counters = vec![job_count_change(store, obs.job_id, obs.status, 1)];
            (JobChange::Created, job, entries, counters)
        }
        Some(current) => {
            if !current.status.advances_to(obs.status) {
                return Ok(Planned { change: JobChange::Unchanged, writes: Vec::new() });
            }
            let counters = vec![
                job_count_change(store, obs.job_id, current.status, -1),
                job_count_change(store, obs.job_id, obs.status, 1),
            ];
            (
                JobChange::Advanced { from: current.status },
                job_item::advanced(current, obs),
                vec![status_entry],
                counters,
            )
        }
    };
    job_item::write_fields(store, &mut expr, &next);
    match stored {
        None => {
            let id = expr.name(names::JOB_ID);
            expr.condition(format!("attribute_not_exists({id})"));
            timeline::append(&mut expr, &entries);
            expr.bump_version(0);
        }
        Some(stored) => {
            expr.on_version(stored.version);
            timeline::add(&mut expr, &stored.timeline, stored.dropped, &entries);
            expr.bump_version(stored.version);
        }
    }
    let mut writes = vec![TransactWriteItem::builder().update(update(store, obs.job_id, expr)).build()];
    writes.extend(counters.into_iter().map(|c| TransactWriteItem::builder().update(c).build()));
    Ok(Planned { change, writes })
}

/// The `Update` of a job item that `expr` describes.
pub(crate) fn update(store: &DynamoStore, id: JobId, expr: Expr) -> Update {
    Update::builder()
        .table_name(&store.tables.jobs)
        .set_key(Some(job_item::key(id)))
        .update_expression(expr.update_expression())
        .set_condition_expression(expr.condition_expression())
        .set_expression_attribute_names(Some(expr.names))
        .set_expression_attribute_values((!expr.values.is_empty()).then_some(expr.values))
        .build()
        .expect("table, key and expression are set")
}

/// Why a transaction did not apply.
pub(crate) enum WriteFailed {
    /// Cancelled: why each item failed, in request order (None for the items that were fine).
    Cancelled(Vec<Option<String>>),
    Failed(StoreError),
}

/// Cancellation codes that mean "someone else wrote first": read again and decide again.
pub(crate) fn lost_a_race(codes: &[Option<String>]) -> bool {
    codes.iter().flatten().all(|code| {
        matches!(
            code.as_str(),
            "ConditionalCheckFailed" | "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    })
}

/// A transaction DynamoDB refused for another reason than a race (a validation error, an item too large).
pub(crate) fn refused(op: &'static str, codes: &[Option<String>]) -> StoreError {
    let code = codes.iter().flatten().find(|code| code.as_str() != "ConditionalCheckFailed").cloned();
    StoreError::Backend {
        op,
        source: Box::new(crate::error::DynamoError {
            message: format!("the transaction was cancelled: {codes:?}"),
            code,
        }),
    }
}

/// Run `writes` as one transaction, with an idempotency token so that the SDK's own retry of a request whose
/// answer was lost does not apply it twice (or fail on its own first application).
pub(crate) async fn transact(
    store: &DynamoStore,
    op: &'static str,
    writes: Vec<TransactWriteItem>,
) -> Result<(), WriteFailed> {
    let result = store
        .client
        .transact_write_items()
        .set_transact_items(Some(writes))
        .client_request_token(request_token())
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(error) => match cancellation_codes(&error) {
            Some(codes) => Err(WriteFailed::Cancelled(codes)),
            None if crate::error::is_contention(&error) => Err(WriteFailed::Cancelled(Vec::new())),
            None => Err(WriteFailed::Failed(backend(op)(error))),
        },
    }
}

/// A token unique to one logical transaction (at most 36 characters).
fn request_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("ghr-{:x}-{:x}-{:x}", std::process::id(), nanos % (1 << 64), NEXT.fetch_add(1, Ordering::Relaxed))
}

pub(crate) async fn observe(store: &DynamoStore, observation: JobObservation) -> Result<JobChange, StoreError> {
    for attempt in 1..=MAX_ATTEMPTS {
        let stored = if storable(observation.job_id.0) {
            job_item::read(store, OP_OBSERVE, observation.job_id).await?
        } else {
            None
        };
        let planned = plan(store, OP_OBSERVE, stored.as_ref(), &observation, None)?;
        if planned.writes.is_empty() {
            return Ok(planned.change);
        }
        match transact(store, OP_OBSERVE, planned.writes).await {
            Ok(()) => return Ok(planned.change),
            Err(WriteFailed::Cancelled(codes)) if lost_a_race(&codes) => contention_backoff(attempt).await,
            Err(WriteFailed::Cancelled(codes)) => return Err(refused(OP_OBSERVE, &codes)),
            Err(WriteFailed::Failed(error)) => return Err(error),
        }
    }
    Err(contended(OP_OBSERVE))
}

pub(crate) async fn get(store: &DynamoStore, id: JobId) -> Result<Option<Job>, StoreError> {
    if !storable(id.0) {
        return Ok(None);
    }
    let mut expr_names = HashMap::new();
    let projection = job_item::projection(&mut expr_names);
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.jobs)
        .set_key(Some(job_item::key(id)))
        .projection_expression(projection)
        .set_expression_attribute_names(Some(expr_names))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(OP_GET))?;
    match answer.item {
        Some(item) if item.contains_key(attr::STATUS) => job_item::job_from_item(OP_GET, &item).map(Some),
        _ => Ok(None),
    }
}

/// Newest first (by first sight, then job id), at most `limit`: a Scan of the jobs table with the filters
/// (strongly consistent; the table holds the open jobs and the completed ones of the retention period).
pub(crate) async fn list(store: &DynamoStore, filter: JobFilter) -> Result<Vec<Job>, StoreError> {
    let mut expr = Expr::default();
    let status_name = expr.name(attr::STATUS);
    expr.condition(format!("attribute_exists({status_name})"));
    if let Some(installation) = filter.installation_id {
        if !storable(installation.0) {
            return Ok(Vec::new());
        }
        let (name, value) = (expr.name(attr::INSTALLATION_ID), expr.value(n(installation.0)));
        expr.condition(format!("{name} = {value}"));
    }
    if let Some(status) = filter.status {
        let value = expr.value(s(status.as_str()));
        expr.condition(format!("{status_name} = {value}"));
    }
    if let Some(reason) = filter.wait_reason {
        let (name, value) = (expr.name(attr::WAIT_REASON), expr.value(s(reason.code())));
        expr.condition(format!("{name} = {value}"));
    }
    let projection = job_item::projection(&mut expr.names);
    let items: Vec<Item> = store
        .client
        .scan()
        .table_name(&store.tables.jobs)
        .consistent_read(true)
        .set_filter_expression(expr.condition_expression())
        .projection_expression(projection)
        .set_expression_attribute_names(Some(expr.names))
        .set_expression_attribute_values((!expr.values.is_empty()).then_some(expr.values))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(backend(OP_LIST))?;
    let mut jobs = job_item::decode_jobs(OP_LIST, &items)?;
    if let Some(before) = filter.before {
        jobs.retain(|job| (job.received_at, job.job_id) < before);
    }
    jobs.sort_by_key(|job| std::cmp::Reverse((job.received_at, job.job_id)));
    if let Some(limit) = filter.limit {
        jobs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(jobs)
}

/// Queued jobs matched to a tier, oldest first (the `open-index` entries of queued jobs).
pub(crate) async fn list_wanting_runner(store: &DynamoStore) -> Result<Vec<Job>, StoreError> {
    job_item::scan_open(store, OpenKind::Queued).await.map_err(|error| relabel(error, OP_WANTING))
}

fn relabel(error: StoreError, op: &'static str) -> StoreError {
    match error {
        StoreError::Backend { source, .. } => StoreError::Backend { op, source },
        StoreError::Corrupt { detail, .. } => StoreError::Corrupt { op, detail },
        other => other,
    }
}

/// Waiting jobs by reason, of one tenant (a Query of its `open-index` entries) or of all (a Scan of the
/// index): one index entry read per open job, only its wait reason projected.
pub(crate) async fn waiting_counts(
    store: &DynamoStore,
    installation: Option<InstallationId>,
) -> Result<BTreeMap<Option<Reason>, u64>, StoreError> {
    let names = HashMap::from([
        ("#open_tenant".to_owned(), names::OPEN_TENANT.to_owned()),
        ("#open_order".to_owned(), names::OPEN_ORDER.to_owned()),
        ("#wait_reason".to_owned(), attr::WAIT_REASON.to_owned()),
    ]);
    let prefix = s(OpenKind::Queued.prefix());
    let items: Vec<Item> = match installation {
        Some(tenant) if !storable(tenant.0) => return Ok(BTreeMap::new()),
        Some(tenant) => store
            .client
            .query()
            .table_name(&store.tables.jobs)
            .index_name(names::OPEN_INDEX)
            .key_condition_expression("#open_tenant = :tenant AND begins_with(#open_order, :prefix)")
            .set_expression_attribute_names(Some(names))
            .expression_attribute_values(":tenant", n(tenant.0))
            .expression_attribute_values(":prefix", prefix)
            .projection_expression("#wait_reason")
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(backend(OP_WAITING_COUNTS))?,
        None => store
            .client
            .scan()
            .table_name(&store.tables.jobs)
            .index_name(names::OPEN_INDEX)
            .filter_expression("begins_with(#open_order, :prefix)")
            .set_expression_attribute_names(Some(names))
            .expression_attribute_values(":prefix", prefix)
            .projection_expression("#wait_reason, #open_order, #open_tenant")
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(backend(OP_WAITING_COUNTS))?,
    };
    let mut counts = BTreeMap::new();
    for item in &items {
        let reason = match crate::item::Reader::new(OP_WAITING_COUNTS, item).opt_s(attr::WAIT_REASON)? {
            None => None,
            Some(code) => Some(Reason::from_code(code).ok_or_else(|| {
                corrupt(OP_WAITING_COUNTS, format!("attribute {}: unknown reason {code:?}", attr::WAIT_REASON))
            })?),
        };
        *counts.entry(reason).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Set or clear the wait reason, with a `waiting` entry only when the value changes (as the SQL stores). Only
/// a queued job takes a reason; clearing works on any job; an unknown job is left alone.
///
/// One conditional `UpdateItem` says all that in its condition; when it fails, the item it returns tells a
/// no-op (same reason, not queued, no job) from a full timeline, which is then trimmed on the version read.
pub(crate) async fn set_wait_reason(
    store: &DynamoStore,
    id: JobId,
    reason: Option<Reason>,
    at: Timestamp,
) -> Result<(), StoreError> {
    if !storable(id.0) {
        return Ok(());
    }
    let detail = reason.map_or(WAIT_CLEARED_DETAIL, Reason::code).to_owned();
    let entry = JobEvent { job_id: id, at, kind: event_kind::WAITING.to_owned(), detail };
    for attempt in 1..=MAX_ATTEMPTS {
        let mut expr = Expr::default();
        let status = expr.name(attr::STATUS);
        expr.condition(format!("attribute_exists({status})"));
        let wait = expr.name(attr::WAIT_REASON);
        match reason {
            Some(reason) => {
                let (code, queued) = (expr.value(s(reason.code())), expr.value(s(JobStatus::Queued.as_str())));
                expr.condition(format!("{status} = {queued}"));
                expr.condition(format!("attribute_not_exists({wait}) OR {wait} <> {code}"));
                expr.set(attr::WAIT_REASON, s(reason.code()));
            }
            None => {
                expr.condition(format!("attribute_exists({wait})"));
                expr.remove(attr::WAIT_REASON);
            }
        }
        expr.set(attr::UPDATED_AT, crate::item::ts_ms(at));
        timeline::room_for(&mut expr, 1);
        timeline::append(&mut expr, std::slice::from_ref(&entry));
        expr.increment_version();
        let Some(old) = update_or_old(store, OP_SET_WAIT_REASON, id, expr).await? else {
            return Ok(());
        };
        let Some(stored) = old else {
            return Ok(());
        };
        let Some(job) = &stored.job else {
            return Ok(());
        };
        let unchanged = job.wait_reason == reason || (reason.is_some() && job.status != JobStatus::Queued);
        if unchanged {
            return Ok(());
        }
        // The timeline is full: trim it, on the version read.
        let mut expr = Expr::default();
        expr.on_version(stored.version);
        expr.set_opt(attr::WAIT_REASON, reason.map(|r| s(r.code())));
        expr.set(attr::UPDATED_AT, crate::item::ts_ms(at));
        timeline::add(&mut expr, &stored.timeline, stored.dropped, std::slice::from_ref(&entry));
        expr.bump_version(stored.version);
        if update_or_old(store, OP_SET_WAIT_REASON, id, expr).await?.is_none() {
            return Ok(());
        }
        contention_backoff(attempt).await;
    }
    Err(contended(OP_SET_WAIT_REASON))
}

/// Run a conditional `UpdateItem` of a job: `Ok(None)` when it applied, `Ok(Some(old))` when its condition
/// failed, with the item as it was then (`None`: no item). Run again while a transaction holds the item.
async fn update_or_old(
    store: &DynamoStore,
    op: &'static str,
    id: JobId,
    expr: Expr,
) -> Result<Option<Option<Stored>>, StoreError> {
    let request = store
        .client
        .update_item()
        .table_name(&store.tables.jobs)
        .set_key(Some(job_item::key(id)))
        .update_expression(expr.update_expression())
        .set_condition_expression(expr.condition_expression())
        .set_expression_attribute_names(Some(expr.names))
        .set_expression_attribute_values((!expr.values.is_empty()).then_some(expr.values))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    // An observation's or intake's transaction on the same job rejects a single write meanwhile.
    let result = retry_transaction_conflicts(|| request.clone().send()).await;
    match result {
        Ok(_) => Ok(None),
        Err(SdkError::ServiceError(failure)) => match failure.err() {
            UpdateItemError::ConditionalCheckFailedException(failed) => {
                let old = failed.item().map(|item| Stored::from_item(op, id, item)).transpose()?;
                Ok(Some(old))
            }
            _ => Err(backend(op)(SdkError::ServiceError(failure))),
        },
        Err(error) => Err(backend(op)(error)),
    }
}

/// Many [`set_wait_reason`]s: each job's changes in the given order (a job listed twice takes its last reason),
/// different jobs [`WAIT_REASON_CONCURRENCY`] at a time. Each job's change is atomic on its own; on a failure
/// the first error is returned after the jobs under way finished, and the changes made stay.
pub(crate) async fn set_wait_reasons(
    store: &DynamoStore,
    reasons: Vec<(JobId, Option<Reason>)>,
    at: Timestamp,
) -> Result<(), StoreError> {
    let mut per_job: BTreeMap<JobId, Vec<Option<Reason>>> = BTreeMap::new();
    for (id, reason) in reasons {
        per_job.entry(id).or_default().push(reason);
    }
    let mut pending = per_job.into_iter();
    let mut running = tokio::task::JoinSet::new();
    let mut first_error = None;
    loop {
        while first_error.is_none() && running.len() < WAIT_REASON_CONCURRENCY {
            let Some((id, changes)) = pending.next() else { break };
            let store = store.clone();
            running.spawn(async move {
                for reason in changes {
                    set_wait_reason(&store, id, reason, at).await?;
                }
                Ok::<(), StoreError>(())
            });
        }
        let Some(done) = running.join_next().await else { break };
        let result = match done {
            Ok(result) => result,
            Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            Err(failed) => Err(StoreError::Backend { op: OP_SET_WAIT_REASON, source: Box::new(failed) }),
        };
        if let Err(error) = result {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Append an entry. A job with no item yet gets a timeline stub (as the SQL stores keep the row), which its
/// creation keeps; a stub expires by TTL like a completed job if the job never comes.
pub(crate) async fn event_append(store: &DynamoStore, event: JobEvent) -> Result<(), StoreError> {
    check_id(OP_APPEND, "job id", event.job_id.0)?;
    let id = event.job_id;
    for attempt in 1..=MAX_ATTEMPTS {
        let mut expr = Expr::default();
        let key = expr.name(names::JOB_ID);
        expr.condition(format!("attribute_exists({key})"));
        timeline::room_for(&mut expr, 1);
        timeline::append(&mut expr, std::slice::from_ref(&event));
        expr.increment_version();
        let Some(old) = update_or_old(store, OP_APPEND, id, expr).await? else {
            return Ok(());
        };
        let mut expr = Expr::default();
        match old {
            None => {
                let key = expr.name(names::JOB_ID);
                expr.condition(format!("attribute_not_exists({key})"));
                timeline::append(&mut expr, std::slice::from_ref(&event));
                expr.set(crate::tables::TTL_ATTRIBUTE, job_item::expires_at(store, event.at));
                expr.bump_version(0);
            }
            Some(stored) => {
                expr.on_version(stored.version);
                timeline::add(&mut expr, &stored.timeline, stored.dropped, std::slice::from_ref(&event));
                expr.bump_version(stored.version);
            }
        }
        if update_or_old(store, OP_APPEND, id, expr).await?.is_none() {
            return Ok(());
        }
        contention_backoff(attempt).await;
    }
    Err(contended(OP_APPEND))
}

/// A job's timeline in time order (insertion order among equal times).
pub(crate) async fn timeline(store: &DynamoStore, id: JobId) -> Result<Vec<JobEvent>, StoreError> {
    if !storable(id.0) {
        return Ok(Vec::new());
    }
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.jobs)
        .set_key(Some(job_item::key(id)))
        .projection_expression("#timeline")
        .expression_attribute_names("#timeline", names::TIMELINE)
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(OP_TIMELINE))?;
    let Some(item) = answer.item else {
        return Ok(Vec::new());
    };
    Ok(timeline::in_time_order(timeline::decode(OP_TIMELINE, id, &item)?))
}
