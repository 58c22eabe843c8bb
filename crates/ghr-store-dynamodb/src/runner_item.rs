//! The runner item: encoding, decoding, and the sparse `live-index` keys.
//!
//! One item per runner, keyed by `runner_name`, kept forever (it is the usage record). Every [`Runner`] field is
//! an attribute of the same name; timestamps are epoch milliseconds (N); optional fields are absent when None.
//! While the runner is live ([`RunnerState::is_live`]) it also carries `live_tenant` (its installation id) and
//! `live_order` (`<tier>#<created ms, zero-padded>#<name>`), the keys of the sparse `live-index`: a Query of one
//! tenant or a Scan of the index reads the live runners only, never the terminated ones.
//!
//! `live-index` is a GSI, so it is eventually consistent on DynamoDB (moto answers at once): a runner reserved or
//! released a moment ago may be missing from, or still in, what it returns. Its readers (the planner's
//! snapshots, the gauges, counter repair) plan from it; no limit is decided on it (admission is the tenant
//! item's conditional write, see `reserve`).

use crate::DynamoStore;
use crate::error::backend;
use crate::item::{Item, Reader, n, s, ts_ms};
use crate::tables::runner as attr;
use ghr_core::ids::{GithubRunnerId, InstallationId, InstanceId, JobId, RunnerName, RunnerSeq, TierName};
use ghr_core::ports::StoreError;
use ghr_core::runner::{Runner, RunnerState};

pub(crate) const SEQ: &str = "seq";
pub(crate) const INSTALLATION_ID: &str = "installation_id";
pub(crate) const TIER: &str = "tier";
pub(crate) const TENANT_TIER: &str = "tenant_tier";
pub(crate) const SCOPE_REPO: &str = "scope_repo";
pub(crate) const STATE: &str = "state";
pub(crate) const INSTANCE_ID: &str = "instance_id";
pub(crate) const GITHUB_RUNNER_ID: &str = "github_runner_id";
pub(crate) const INTENDED_JOB: &str = "intended_job";
pub(crate) const JOB_ID: &str = "job_id";
pub(crate) const CREATED_AT: &str = "created_at";
pub(crate) const LAUNCHED_AT: &str = "launched_at";
pub(crate) const REGISTERED_AT: &str = "registered_at";
pub(crate) const JOB_STARTED_AT: &str = "job_started_at";
pub(crate) const FINISHED_AT: &str = "finished_at";
pub(crate) const TERMINATED_AT: &str = "terminated_at";
pub(crate) const LAST_ERROR: &str = "last_error";
pub(crate) const UPDATED_AT: &str = "updated_at";

/// Width of the zero-padded creation time in `live_order`, so that strings sort as numbers (13 digits of epoch
/// milliseconds last until the year 2286).
const ORDER_MS_WIDTH: usize = 13;

const OP_QUERY_LIVE: &str = "runner_query_live";
const OP_SCAN_LIVE: &str = "runner_scan_live";

/// `<tier>#<created ms>#<name>`: a tenant's live runners grouped by tier, oldest first within a tier.
pub(crate) fn live_order(runner: &Runner) -> String {
    let ms = runner.created_at.timestamp_millis().max(0);
    format!("{}#{ms:0width$}#{}", runner.tier, runner.name, width = ORDER_MS_WIDTH)
}

/// The whole item of `runner`, its `live-index` keys included while it is live.
pub(crate) fn runner_item(runner: &Runner) -> Item {
    let mut item = Item::new();
    item.insert(attr::RUNNER_NAME.to_owned(), s(runner.name.as_str()));
    item.insert(SEQ.to_owned(), n(runner.seq.0));
    item.insert(INSTALLATION_ID.to_owned(), n(runner.installation_id.0));
    item.insert(TIER.to_owned(), s(runner.tier.as_str()));
    item.insert(TENANT_TIER.to_owned(), s(runner.tenant_tier.as_str()));
    item.insert(STATE.to_owned(), s(runner.state.as_str()));
    item.insert(CREATED_AT.to_owned(), ts_ms(runner.created_at));
    item.insert(UPDATED_AT.to_owned(), ts_ms(runner.updated_at));
    let optional = [
        (SCOPE_REPO, runner.scope_repo.clone().map(s)),
        (INSTANCE_ID, runner.instance_id.as_ref().map(|i| s(i.as_str()))),
        (GITHUB_RUNNER_ID, runner.github_runner_id.map(|i| n(i.0))),
        (INTENDED_JOB, runner.intended_job.map(|j| n(j.0))),
        (JOB_ID, runner.job_id.map(|j| n(j.0))),
        (LAUNCHED_AT, runner.launched_at.map(ts_ms)),
        (REGISTERED_AT, runner.registered_at.map(ts_ms)),
        (JOB_STARTED_AT, runner.job_started_at.map(ts_ms)),
        (FINISHED_AT, runner.finished_at.map(ts_ms)),
        (TERMINATED_AT, runner.terminated_at.map(ts_ms)),
        (LAST_ERROR, runner.last_error.clone().map(s)),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            item.insert(name.to_owned(), value);
        }
    }
    if runner.state.is_live() {
        item.insert(attr::LIVE_TENANT.to_owned(), n(runner.installation_id.0));
        item.insert(attr::LIVE_ORDER.to_owned(), s(live_order(runner)));
    }
    item
}

pub(crate) fn runner_from_item(op: &'static str, item: &Item) -> Result<Runner, StoreError> {
    let r = Reader::new(op, item);
    let state: RunnerState =
        r.s(STATE)?.parse().map_err(|e| crate::error::corrupt(op, format!("attribute {STATE}: {e}")))?;
    Ok(Runner {
        seq: RunnerSeq(r.u64(SEQ)?),
        name: RunnerName::from(r.s(attr::RUNNER_NAME)?),
        installation_id: InstallationId(r.u64(INSTALLATION_ID)?),
        tier: TierName::from(r.s(TIER)?),
        tenant_tier: TierName::from(r.s(TENANT_TIER)?),
        scope_repo: r.opt_s(SCOPE_REPO)?.map(str::to_owned),
        state,
        instance_id: r.opt_s(INSTANCE_ID)?.map(InstanceId::from),
        github_runner_id: r.opt_u64(GITHUB_RUNNER_ID)?.map(GithubRunnerId),
        intended_job: r.opt_u64(INTENDED_JOB)?.map(JobId),
        job_id: r.opt_u64(JOB_ID)?.map(JobId),
        created_at: r.ts_ms(CREATED_AT)?,
        launched_at: r.opt_ts_ms(LAUNCHED_AT)?,
        registered_at: r.opt_ts_ms(REGISTERED_AT)?,
        job_started_at: r.opt_ts_ms(JOB_STARTED_AT)?,
        finished_at: r.opt_ts_ms(FINISHED_AT)?,
        terminated_at: r.opt_ts_ms(TERMINATED_AT)?,
        last_error: r.opt_s(LAST_ERROR)?.map(str::to_owned),
        updated_at: r.ts_ms(UPDATED_AT)?,
    })
}

/// One tenant's live runners (all tiers), by tier then oldest first (a Query of the sparse `live-index`).
pub(crate) async fn query_live(store: &DynamoStore, tenant: InstallationId) -> Result<Vec<Runner>, StoreError> {
    let mut pages = store
        .client
        .query()
        .table_name(&store.tables.runners)
        .index_name(attr::LIVE_INDEX)
        .key_condition_expression("#t = :t")
        .expression_attribute_names("#t", attr::LIVE_TENANT)
        .expression_attribute_values(":t", n(tenant.0))
        .into_paginator()
        .items()
        .send();
    let mut runners = Vec::new();
    while let Some(item) = pages.next().await {
        keep_live(OP_QUERY_LIVE, &item.map_err(backend(OP_QUERY_LIVE))?, &mut runners)?;
    }
    Ok(runners)
}

/// Every live runner (a Scan of the sparse `live-index`: one read per live runner, none per terminated one).
pub(crate) async fn scan_live(store: &DynamoStore) -> Result<Vec<Runner>, StoreError> {
    let mut pages = store
        .client
        .scan()
        .table_name(&store.tables.runners)
        .index_name(attr::LIVE_INDEX)
        .into_paginator()
        .items()
        .send();
    let mut runners = Vec::new();
    while let Some(item) = pages.next().await {
        keep_live(OP_SCAN_LIVE, &item.map_err(backend(OP_SCAN_LIVE))?, &mut runners)?;
    }
    Ok(runners)
}

/// Decode one item of `live-index`; one whose state is no longer live (the index answered a moment behind the
/// table) is left out.
fn keep_live(op: &'static str, item: &Item, runners: &mut Vec<Runner>) -> Result<(), StoreError> {
    let runner = runner_from_item(op, item)?;
    if runner.state.is_live() {
        runners.push(runner);
    }
    Ok(())
}
