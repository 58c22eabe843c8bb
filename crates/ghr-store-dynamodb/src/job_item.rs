//! The job item: encoding, decoding, and the sparse `open-index` keys.
//!
//! One item per job in `<p>-jobs`, keyed by `job_id` (N). Every [`Job`] field is an attribute of the same name
//! (`labels` a list of strings in GitHub's order, times epoch milliseconds as N, absent optionals absent), plus:
//!
//! - `version` (N): bumped by every write of the item; a read-decide-write conditions on the version it read.
//! - `timeline` (L of M `{at, kind, detail}`): the job's timeline in insertion order (see `jobs::timeline`).
//! - `open_tenant` (N) / `open_order` (S): the sparse `open-index` keys, present only while the job is open and
//!   matched to a tier: `q#<received ms>#<job id>` while queued, `r#<received ms>#<job id>` while in progress,
//!   both numbers zero-padded to [`ORDER_DIGITS`] so that the strings sort as the numbers do. A Query with
//!   `begins_with(open_order, "q#")` therefore returns a tenant's waiting jobs by first sight, then job id:
//!   exactly the SQLite store's `ORDER BY received_at, job_id`.
//! - `expires_at` (N, epoch seconds): the TTL, set once the job is completed (a backstop for pruning).
//!
//! An item without `status` is a timeline stub: `job_event_append` for a job ghr has not recorded yet keeps the
//! entry (as SQLite keeps the row) until the job is created; it is no job for `job_get` and listings.

use crate::DynamoStore;
use crate::error::{backend, corrupt};
use crate::item::{Item, Reader, n, s, strings, ts_ms};
use crate::tables::job as names;
use aws_sdk_dynamodb::types::AttributeValue;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, JobId, RunnerName, TierName};
use ghr_core::job::{Job, JobEvent, JobObservation, JobStatus};
use ghr_core::ports::StoreError;
use ghr_core::reason::Reason;
use std::collections::HashMap;

/// Attribute names of the job item (besides those of [`crate::tables::job`]).
pub(crate) mod attr {
    pub const INSTALLATION_ID: &str = "installation_id";
    pub const REPOSITORY: &str = "repository";
    pub const LABELS: &str = "labels";
    pub const TIER: &str = "tier";
    pub const STATUS: &str = "status";
    pub const CONCLUSION: &str = "conclusion";
    pub const RUNNER_NAME: &str = "runner_name";
    pub const WAIT_REASON: &str = "wait_reason";
    pub const RECEIVED_AT: &str = "received_at";
    pub const QUEUED_AT: &str = "queued_at";
    pub const STARTED_AT: &str = "started_at";
    pub const COMPLETED_AT: &str = "completed_at";
    pub const UPDATED_AT: &str = "updated_at";
    /// Bumped by every write; read-decide-writes condition on it.
    pub const VERSION: &str = "version";
    /// How many timeline entries were dropped past the cap (absent: none).
    pub const TIMELINE_DROPPED: &str = "timeline_dropped";
    /// Keys of one timeline entry.
    pub const EVENT_AT: &str = "at";
    pub const EVENT_KIND: &str = "kind";
    pub const EVENT_DETAIL: &str = "detail";
}

/// Digits of each zero-padded number in `open_order`: every `u64` fits, so the strings sort as the numbers.
pub(crate) const ORDER_DIGITS: usize = 20;
/// `open_order` prefix of a queued job.
pub(crate) const QUEUED_PREFIX: &str = "q#";
/// `open_order` prefix of a job in progress.
pub(crate) const IN_PROGRESS_PREFIX: &str = "r#";

/// The largest id a job or installation may have: SQL stores hold ids as signed 64-bit integers, and this store
/// refuses what they refuse, so that every backend holds the same jobs.
const MAX_ID: u64 = i64::MAX as u64;

/// An id this store refuses (beyond [`MAX_ID`]).
#[derive(Debug, thiserror::Error)]
#[error("{what} {value} is out of range (at most {MAX_ID})")]
pub(crate) struct OutOfRange {
    what: &'static str,
    value: u64,
}

/// Check that an id can be stored (see [`MAX_ID`]).
pub(crate) fn check_id(op: &'static str, what: &'static str, value: u64) -> Result<(), StoreError> {
    if value <= MAX_ID { Ok(()) } else { Err(StoreError::Backend { op, source: Box::new(OutOfRange { what, value }) }) }
}

/// Whether an id can be a stored job's (lookups of others find nothing).
pub(crate) fn storable(id: u64) -> bool {
    id <= MAX_ID
}

/// The key of a job's item.
pub(crate) fn key(id: JobId) -> HashMap<String, AttributeValue> {
    HashMap::from([(names::JOB_ID.to_owned(), n(id.0))])
}

/// Which open jobs a read of `open-index` wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenKind {
    /// Queued and matched to a tier (they want a runner).
    Queued,
    /// In progress and matched to a tier.
    InProgress,
}

impl OpenKind {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            OpenKind::Queued => QUEUED_PREFIX,
            OpenKind::InProgress => IN_PROGRESS_PREFIX,
        }
    }

    fn of(job: &Job) -> Option<OpenKind> {
        job.tier.as_ref()?;
        match job.status {
            JobStatus::Queued => Some(OpenKind::Queued),
            JobStatus::InProgress => Some(OpenKind::InProgress),
            JobStatus::Completed => None,
        }
    }
}

/// `open_order` of a job of `kind`: first sight (epoch ms; a time before 1970 sorts as 1970), then job id.
pub(crate) fn open_order(kind: OpenKind, received_at: Timestamp, job: JobId) -> String {
    let ms = u64::try_from(received_at.timestamp_millis()).unwrap_or(0);
    format!("{}{ms:0width$}#{:0width$}", kind.prefix(), job.0, width = ORDER_DIGITS)
}

/// A job item as read: the job (None for a timeline stub), the item's version and its timeline.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub job: Option<Job>,
    pub version: u64,
    /// In insertion order.
    pub timeline: Vec<JobEvent>,
    /// Entries dropped past the timeline's cap so far.
    pub dropped: u64,
}

impl Stored {
    pub(crate) fn from_item(op: &'static str, id: JobId, item: &Item) -> Result<Self, StoreError> {
        let reader = Reader::new(op, item);
        let version = reader.opt_u64(attr::VERSION)?.unwrap_or(0);
        let job = if item.contains_key(attr::STATUS) { Some(job_from_item(op, item)?) } else { None };
        let timeline = crate::jobs::timeline::decode(op, id, item)?;
        let dropped = crate::jobs::timeline::dropped(op, item)?;
        Ok(Self { job, version, timeline, dropped })
    }
}

/// The item of a job, strongly consistent (None: no item, not even a timeline stub).
pub(crate) async fn read(store: &DynamoStore, op: &'static str, id: JobId) -> Result<Option<Stored>, StoreError> {
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.jobs)
        .set_key(Some(key(id)))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(op))?;
    answer.item.map(|item| Stored::from_item(op, id, &item)).transpose()
}

pub(crate) fn job_from_item(op: &'static str, item: &Item) -> Result<Job, StoreError> {
    let r = Reader::new(op, item);
    let status = r.s(attr::STATUS)?;
    let status: JobStatus = status.parse().map_err(|e| corrupt(op, format!("attribute {}: {e}", attr::STATUS)))?;
    let wait_reason = match r.opt_s(attr::WAIT_REASON)? {
        None => None,
        Some(code) => Some(
            Reason::from_code(code)
                .ok_or_else(|| corrupt(op, format!("attribute {}: unknown reason {code:?}", attr::WAIT_REASON)))?,
        ),
    };
    Ok(Job {
        job_id: JobId(r.u64(names::JOB_ID)?),
        installation_id: InstallationId(r.u64(attr::INSTALLATION_ID)?),
        repository: r.s(attr::REPOSITORY)?.to_owned(),
        labels: r.strings(attr::LABELS)?,
        tier: r.opt_s(attr::TIER)?.map(TierName::from),
        status,
        conclusion: r.opt_s(attr::CONCLUSION)?.map(str::to_owned),
        runner_name: r.opt_s(attr::RUNNER_NAME)?.map(RunnerName::from),
        wait_reason,
        received_at: r.ts_ms(attr::RECEIVED_AT)?,
        queued_at: r.opt_ts_ms(attr::QUEUED_AT)?,
        started_at: r.opt_ts_ms(attr::STARTED_AT)?,
        completed_at: r.opt_ts_ms(attr::COMPLETED_AT)?,
        updated_at: r.ts_ms(attr::UPDATED_AT)?,
    })
}

/// The job a first observation creates (as SQLite's insert: first sight is the observation's time).
pub(crate) fn created(obs: &JobObservation, wait_reason: Option<Reason>) -> Job {
    Job {
        job_id: obs.job_id,
        installation_id: obs.installation_id,
        repository: obs.repository.clone(),
        labels: obs.labels.clone(),
        tier: obs.tier.clone(),
        status: obs.status,
        conclusion: obs.conclusion.clone(),
        runner_name: obs.runner_name.clone(),
        wait_reason,
        received_at: obs.observed_at,
        queued_at: obs.queued_at,
        started_at: obs.started_at,
        completed_at: obs.completed_at,
        updated_at: obs.observed_at,
    }
}

/// The job after an observation that moves it forward (as SQLite's `advance`): repository, labels, tier and
/// first sight stay; what the observation reports replaces what it does not; `queued_at` keeps its first
/// value; the wait reason is cleared (the job left `queued`).
pub(crate) fn advanced(current: &Job, obs: &JobObservation) -> Job {
    Job {
        status: obs.status,
        runner_name: obs.runner_name.clone().or_else(|| current.runner_name.clone()),
        started_at: obs.started_at.or(current.started_at),
        completed_at: obs.completed_at.or(current.completed_at),
        conclusion: obs.conclusion.clone().or_else(|| current.conclusion.clone()),
        queued_at: current.queued_at.or(obs.queued_at),
        wait_reason: None,
        updated_at: obs.observed_at,
        ..current.clone()
    }
}

/// The timeline detail of a status entry: who runs the job, or how it ended (as SQLite's).
pub(crate) fn status_detail(obs: &JobObservation) -> String {
    match obs.status {
        JobStatus::Queued => String::new(),
        JobStatus::InProgress => obs.runner_name.as_ref().map(|name| name.as_str().to_owned()).unwrap_or_default(),
        JobStatus::Completed => obs.conclusion.clone().unwrap_or_default(),
    }
}

/// An update expression under construction: `SET`/`REMOVE` clauses, a condition, and the names and values
/// they use (attribute names are always aliased, since several are DynamoDB reserved words).
#[derive(Debug, Default)]
pub(crate) struct Expr {
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
    sets: Vec<String>,
    removes: Vec<String>,
    conditions: Vec<String>,
}

impl Expr {
    /// The alias of an attribute name (`#name`).
    pub fn name(&mut self, attr: &str) -> String {
        let alias = format!("#{attr}");
        self.names.insert(alias.clone(), attr.to_owned());
        alias
    }

    /// A fresh placeholder for `value`.
    pub fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub fn set(&mut self, attr: &str, value: AttributeValue) {
        let (name, value) = (self.name(attr), self.value(value));
        self.sets.push(format!("{name} = {value}"));
    }

    /// Set `attr` to `value`, or remove it when None.
    pub fn set_opt(&mut self, attr: &str, value: Option<AttributeValue>) {
        match value {
            Some(value) => self.set(attr, value),
            None => self.remove(attr),
        }
    }

    /// A raw `SET` clause (names and values already registered).
    pub fn set_clause(&mut self, clause: String) {
        self.sets.push(clause);
    }

    pub fn remove(&mut self, attr: &str) {
        let name = self.name(attr);
        self.removes.push(name);
    }

    /// Add a condition (all must hold).
    pub fn condition(&mut self, condition: String) {
        self.conditions.push(format!("({condition})"));
    }

    /// `#version = :read`, or no version yet.
    pub fn on_version(&mut self, read: u64) {
        let name = self.name(attr::VERSION);
        if read == 0 {
            self.condition(format!("attribute_not_exists({name})"));
        } else {
            let value = self.value(n(read));
            self.condition(format!("{name} = {value}"));
        }
    }

    /// The version after this write: `version = read + 1`.
    pub fn bump_version(&mut self, read: u64) {
        self.set(attr::VERSION, n(read + 1));
    }

    /// `version = version + 1` without knowing it (absent: 0).
    pub fn increment_version(&mut self) {
        let name = self.name(attr::VERSION);
        let (zero, one) = (self.value(n(0)), self.value(n(1)));
        self.sets.push(format!("{name} = if_not_exists({name}, {zero}) + {one}"));
    }

    pub fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.sets.is_empty() {
            parts.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.removes.is_empty() {
            parts.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        parts.join(" ")
    }

    pub fn condition_expression(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| self.conditions.join(" AND "))
    }
}

/// Write every field of `job` (and its open-index keys and TTL) into `expr`: set what is present, remove what
/// is absent.
pub(crate) fn write_fields(store: &DynamoStore, expr: &mut Expr, job: &Job) {
    expr.set(attr::INSTALLATION_ID, n(job.installation_id.0));
    expr.set(attr::REPOSITORY, s(job.repository.clone()));
    expr.set(attr::LABELS, strings(&job.labels));
    expr.set_opt(attr::TIER, job.tier.as_ref().map(|t| s(t.as_str())));
    expr.set(attr::STATUS, s(job.status.as_str()));
    expr.set_opt(attr::CONCLUSION, job.conclusion.clone().map(s));
    expr.set_opt(attr::RUNNER_NAME, job.runner_name.as_ref().map(|r| s(r.as_str())));
    expr.set_opt(attr::WAIT_REASON, job.wait_reason.map(|r| s(r.code())));
    expr.set(attr::RECEIVED_AT, ts_ms(job.received_at));
    expr.set_opt(attr::QUEUED_AT, job.queued_at.map(ts_ms));
    expr.set_opt(attr::STARTED_AT, job.started_at.map(ts_ms));
    expr.set_opt(attr::COMPLETED_AT, job.completed_at.map(ts_ms));
    expr.set(attr::UPDATED_AT, ts_ms(job.updated_at));
    match OpenKind::of(job) {
        Some(kind) => {
            expr.set(names::OPEN_TENANT, n(job.installation_id.0));
            expr.set(names::OPEN_ORDER, s(open_order(kind, job.received_at, job.job_id)));
        }
        None => {
            expr.remove(names::OPEN_TENANT);
            expr.remove(names::OPEN_ORDER);
        }
    }
    let expires = (job.status == JobStatus::Completed).then(|| expires_at(store, job.updated_at));
    expr.set_opt(crate::tables::TTL_ATTRIBUTE, expires);
}

/// The TTL of a job item last changed at `changed` (epoch seconds): `ttl` after the later of `changed` and the
/// wall clock. DynamoDB expires items by its own clock, so the TTL never falls before the real time of the write
/// (a job stamped by a lagging or simulated clock is not deleted at once), nor before `changed + ttl` (pruning
/// goes by `updated_at`). The same rule as a delivery's.
pub(crate) fn expires_at(store: &DynamoStore, changed: Timestamp) -> AttributeValue {
    let from = changed.max(chrono::Utc::now());
    let at = chrono::Duration::from_std(store.options.ttl)
        .ok()
        .and_then(|ttl| from.checked_add_signed(ttl))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    crate::item::epoch_seconds(at)
}

/// Every attribute of a job except its timeline: listings never carry timelines.
pub(crate) fn projection(expr_names: &mut HashMap<String, String>) -> String {
    let attrs = [
        names::JOB_ID,
        attr::INSTALLATION_ID,
        attr::REPOSITORY,
        attr::LABELS,
        attr::TIER,
        attr::STATUS,
        attr::CONCLUSION,
        attr::RUNNER_NAME,
        attr::WAIT_REASON,
        attr::RECEIVED_AT,
        attr::QUEUED_AT,
        attr::STARTED_AT,
        attr::COMPLETED_AT,
        attr::UPDATED_AT,
        attr::VERSION,
    ];
    let aliases: Vec<String> = attrs
        .iter()
        .map(|a| {
            let alias = format!("#{a}");
            expr_names.insert(alias.clone(), (*a).to_owned());
            alias
        })
        .collect();
    aliases.join(", ")
}

/// One tenant's open jobs of `kind`, oldest first (a Query of the sparse `open-index`).
pub(crate) async fn query_open(
    store: &crate::DynamoStore,
    tenant: InstallationId,
    kind: OpenKind,
) -> Result<Vec<Job>, StoreError> {
    const OP: &str = "job_query_open";
    if !storable(tenant.0) {
        return Ok(Vec::new());
    }
    let mut expr_names = HashMap::new();
    let projection = projection(&mut expr_names);
    let pages = store
        .client
        .query()
        .table_name(&store.tables.jobs)
        .index_name(names::OPEN_INDEX)
        .key_condition_expression("#open_tenant = :tenant AND begins_with(#open_order, :prefix)")
        .set_expression_attribute_names(Some(merged(expr_names, &[names::OPEN_TENANT, names::OPEN_ORDER])))
        .expression_attribute_values(":tenant", n(tenant.0))
        .expression_attribute_values(":prefix", s(kind.prefix()))
        .projection_expression(projection)
        .scan_index_forward(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(backend(OP))?;
    decode_jobs(OP, &pages)
}

/// Every tenant's open jobs of `kind`, oldest first (a Scan of the sparse `open-index`: one read per open job,
/// never the whole table).
pub(crate) async fn scan_open(store: &crate::DynamoStore, kind: OpenKind) -> Result<Vec<Job>, StoreError> {
    const OP: &str = "job_scan_open";
    let mut expr_names = HashMap::new();
    let projection = format!("{}, #open_order", projection(&mut expr_names));
    let pages = store
        .client
        .scan()
        .table_name(&store.tables.jobs)
        .index_name(names::OPEN_INDEX)
        .filter_expression("begins_with(#open_order, :prefix)")
        .set_expression_attribute_names(Some(merged(expr_names, &[names::OPEN_ORDER])))
        .expression_attribute_values(":prefix", s(kind.prefix()))
        .projection_expression(projection)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(backend(OP))?;
    let mut jobs = decode_jobs(OP, &pages)?;
    jobs.sort_by_key(|job| (job.received_at, job.job_id));
    Ok(jobs)
}

/// `names` plus `#attr` aliases of `extra`.
pub(crate) fn merged(mut names: HashMap<String, String>, extra: &[&str]) -> HashMap<String, String> {
    for attr in extra {
        names.insert(format!("#{attr}"), (*attr).to_owned());
    }
    names
}

/// Decode the items of a Query or Scan.
pub(crate) fn decode_jobs(op: &'static str, items: &[Item]) -> Result<Vec<Job>, StoreError> {
    items.iter().map(|item| job_from_item(op, item)).collect()
}
