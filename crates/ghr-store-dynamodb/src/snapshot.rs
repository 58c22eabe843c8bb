//! Planner snapshots: demand for dispatch and the fleet for the reconciler, read from the sparse indexes.
//!
//! **What "read at one instant" becomes.** DynamoDB has no multi-item snapshot read: `TransactGetItems` takes
//! at most 100 keys and no Query or Scan, and a Query of a global secondary index is eventually consistent on
//! real DynamoDB (moto answers at once). A snapshot is therefore a short sequence of reads, each as fresh as
//! DynamoDB allows:
//! - tenants with a strongly consistent `BatchGetItem` (100 keys a call), which also returns ghr's
//!   `live_runners` counter: the very number admission's conditional write checks, so a tenant's `live` is
//!   never staler than the limit it is compared with; with a global cap, the deployment's `runners#live` count
//!   (a consistent GetItem), the number the cap is checked against;
//! - open jobs from the sparse `open-index` and live runners from the sparse `live-index`, eventually
//!   consistent (a write of the last second or so may be missing, or a runner that just left may still show).
//!
//! **Why the planner stays safe.** The snapshot only proposes; admission is enforced by `runner_reserve`'s
//! `TransactWriteItems`, whose condition reads the tenant item (and the global count item) at write time. An
//! index lag can make a plan try a reservation that the transaction refuses (one wasted request, the refusal
//! becomes the job's reason), or leave a just-queued job for the next dispatch pass (webhooks and the
//! reconciler trigger passes again); it can never admit a runner over a limit. A job whose wait reason changed a
//! moment ago may be read or skipped by the headroom split once too often, which only costs a re-read.
//!
//! **Costs.** A full demand snapshot scans `open-index` for queued jobs (one index item per queued job, never the
//! whole jobs table) and `live-index` once (one item per live runner); a scoped snapshot queries both indexes
//! per tenant asked for. Tenants cost one consistent read each (batched), the global count one. Unlike SQL, the jobs of a tenant without headroom
//! that keep their reason are read (an index has no "reason is not X" key condition) and left out after the
//! read: they cost read units, not planner work. A fleet read scans both indexes once per pass and pages the
//! stale walks in memory: its cost follows the open jobs and live runners, never the retained history.

use crate::DynamoStore;
use crate::error::{DynamoError, MAX_ATTEMPTS, backend, contention_backoff};
use crate::item::{Item, Reader, n};
use crate::job_item::{OpenKind, query_open, scan_open};
use crate::reserve::read_global;
use crate::runner_item::{query_live, scan_live};
use crate::tables::tenant;
use crate::tenants::tenant_from_item;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, OrgName, TierName};
use ghr_core::job::{Job, JobStatus};
use ghr_core::planner::DemandKey;
use ghr_core::planner::dispatch::{DemandQuery, DemandSnapshot};
use ghr_core::planner::fleet::{FleetRecords, JobCursor, StaleQuery};
use ghr_core::planner::reserve::{Headroom, split_by_headroom, tenant_loads};
use ghr_core::ports::StoreError;
use ghr_core::reason::Reason;
use ghr_core::runner::Runner;
use ghr_core::tenant::{OrgType, Tenant, TenantMetadata, TenantStatus};
use std::collections::{BTreeMap, BTreeSet};

const OP_DEMAND: &str = "demand_snapshot";
const OP_FLEET: &str = "fleet_records";

/// Keys per `BatchGetItem` call (DynamoDB's limit).
pub(crate) const BATCH_GET_KEYS: usize = 100;

/// Demand and supply of some tenants (see `Store::demand_snapshot`).
pub(crate) async fn demand_snapshot(store: &DynamoStore, query: DemandQuery) -> Result<DemandSnapshot, StoreError> {
    let full = query.tenants.is_none();
    let (ids, queued): (BTreeSet<InstallationId>, Vec<Job>) = match &query.tenants {
        None => {
            let jobs = scan_open(store, OpenKind::Queued).await?;
            (jobs.iter().map(|j| j.installation_id).collect(), jobs)
        }
        Some(asked) => {
            let ids: BTreeSet<InstallationId> = asked.iter().copied().collect();
            let mut jobs = Vec::new();
            for id in &ids {
                jobs.extend(query_open(store, *id, OpenKind::Queued).await?);
            }
            (ids, jobs)
        }
    };
    if ids.is_empty() {
        return Ok(DemandSnapshot::default());
    }
    let (records, unreadable) = tenants_with_live(store, OP_DEMAND, &ids).await?;
    // A tenant whose item does not decode is left out with its jobs: they keep waiting as they are.
    let ids: BTreeSet<InstallationId> = ids.into_iter().filter(|id| !unreadable.contains_key(id)).collect();
    let queued: Vec<Job> = queued.into_iter().filter(|job| !unreadable.contains_key(&job.installation_id)).collect();
    let live: BTreeMap<InstallationId, u32> = records.iter().map(|(t, live)| (t.installation_id, *live)).collect();
    let loads = tenant_loads(records.into_iter().map(|(t, _)| t).collect(), &live);
    // The deployment's count admission checks the cap against (one consistent GetItem), read only for a cap.
    let global_live = match query.global_cap {
        None => 0,
        Some(_) => read_global(store, OP_DEMAND).await?.count.unwrap_or(0),
    };
    // One scan of the live runners for a full pass (the tenants are many); a query per tenant when a few are
    // asked for.
    let runners = if full {
        scan_live(store).await?
    } else {
        let mut runners = Vec::new();
        for id in &ids {
            runners.extend(query_live(store, *id).await?);
        }
        runners
    };
    let split = split_by_headroom(&ids, &loads, query.global_cap, global_live);
    let (jobs, kept_reasons) = select_jobs(queued, &split, full);
    let unbound = unbound_of(&runners, &ids);
    Ok(DemandSnapshot { tenants: loads, jobs, unbound, global_live, kept_reasons })
}

/// The fleet for a reconciler plan (see `Store::fleet_records`).
pub(crate) async fn fleet_records(store: &DynamoStore, stale: StaleQuery) -> Result<FleetRecords, StoreError> {
    let mut live: Vec<Runner> = scan_live(store).await?.into_iter().filter(|r| r.state.is_live()).collect();
    live.sort_by_key(|r| r.seq);
    let queued = scan_open(store, OpenKind::Queued).await?;
    let in_progress = scan_open(store, OpenKind::InProgress).await?;
    let mut stale_jobs = stale_page(&queued, JobStatus::Queued, stale.before, stale.queued_after, stale.limit);
    stale_jobs.extend(stale_page(
        &in_progress,
        JobStatus::InProgress,
        stale.before,
        stale.in_progress_after,
        stale.limit,
    ));
    let ids: BTreeSet<InstallationId> =
        live.iter().map(|r| r.installation_id).chain(stale_jobs.iter().map(|j| j.installation_id)).collect();
    let (readable, unreadable) = tenants_with_live(store, OP_FLEET, &ids).await?;
    let tenants: BTreeMap<InstallationId, Tenant> = readable
        .into_iter()
        .map(|(t, _)| (t.installation_id, t))
        .chain(unreadable.iter().map(|(id, item)| (*id, unreadable_tenant(*id, item))))
        .collect();
    let demand = demand_of_unbound_tenants(&queued, &live, &tenants);
    Ok(FleetRecords { live, tenants, demand, stale_jobs })
}

/// The tenants of `ids` that have a record, by installation, each with ghr's live-runner counter (absent on a
/// tenant made by hand: 0), and the ids whose item does not decode (edited by hand into something ghr cannot
/// read: each is logged with what is wrong; one such tenant must not stop every other tenant's dispatch).
/// Strongly consistent `BatchGetItem`s of [`BATCH_GET_KEYS`] keys; the keys DynamoDB leaves unprocessed
/// (throttling, the 16 MB answer limit) are asked again after a backoff.
pub(crate) async fn tenants_with_live(
    store: &DynamoStore,
    op: &'static str,
    ids: &BTreeSet<InstallationId>,
) -> Result<(Vec<(Tenant, u32)>, BTreeMap<InstallationId, Item>), StoreError> {
    let items = tenant_items(store, op, ids).await?;
    let mut tenants = Vec::with_capacity(items.len());
    let mut unreadable = BTreeMap::new();
    for item in items {
        let decoded = tenant_from_item(op, &item)
            .and_then(|tenant| Ok((tenant, Reader::new(op, &item).opt_u32(tenant::LIVE_RUNNERS)?.unwrap_or(0))));
        match decoded {
            Ok(pair) => tenants.push(pair),
            Err(error) => {
                let id = Reader::new(op, &item).u64(tenant::INSTALLATION_ID).map(InstallationId);
                tracing::error!(
                    installation = ?id.as_ref().ok(),
                    error = %ghr_core::error::ErrorChain(&error),
                    "a tenant item does not decode (edited by hand?): its jobs wait, its runners are left running, \
                     every other tenant is served; fix the item"
                );
                match id {
                    Ok(id) => {
                        unreadable.insert(id, item);
                    }
                    Err(_) => return Err(error),
                }
            }
        }
    }
    tenants.sort_by_key(|(t, _)| t.installation_id);
    Ok((tenants, unreadable))
}

/// A tenant whose item does not decode, read as far as it can be for the reconciler's plan: a status ghr
/// cannot read counts as active, so that a record broken by hand never tears down the tenant's running jobs.
fn unreadable_tenant(id: InstallationId, item: &Item) -> Tenant {
    let r = Reader::new(OP_FLEET, item);
    let text = |name: &str| r.opt_s(name).ok().flatten().map(str::to_owned);
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    Tenant {
        installation_id: id,
        org_name: OrgName::from(text(tenant::ORG_NAME).unwrap_or_default().as_str()),
        org_type: text(tenant::ORG_TYPE).and_then(|t| t.parse().ok()).unwrap_or(OrgType::Organization),
        status: text(tenant::STATUS).and_then(|t| t.parse().ok()).unwrap_or(TenantStatus::Active),
        tier: TierName::from(text(tenant::TIER).unwrap_or_default().as_str()),
        max_runners: r.opt_u32(tenant::MAX_RUNNERS).ok().flatten().unwrap_or(0),
        created_at: r.opt_iso(tenant::CREATED_AT).ok().flatten().unwrap_or(epoch),
        updated_at: r.opt_iso(tenant::UPDATED_AT).ok().flatten().unwrap_or(epoch),
        metadata: TenantMetadata::default(),
    }
}

/// The tenant items of `ids` that exist, in [`BATCH_GET_KEYS`]-key `BatchGetItem`s.
async fn tenant_items(
    store: &DynamoStore,
    op: &'static str,
    ids: &BTreeSet<InstallationId>,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::with_capacity(ids.len());
    let ids: Vec<InstallationId> = ids.iter().copied().collect();
    for chunk in ids.chunks(BATCH_GET_KEYS) {
        let keys = chunk.iter().map(|id| tenant_key(*id)).collect();
        items.extend(batch_get(store, op, &store.tables.tenants, keys).await?);
    }
    Ok(items)
}

fn tenant_key(id: InstallationId) -> Item {
    Item::from([(tenant::INSTALLATION_ID.to_owned(), n(id.0))])
}

/// Every item of `table` among `keys` (at most [`BATCH_GET_KEYS`], no duplicates), strongly consistent.
async fn batch_get(
    store: &DynamoStore,
    op: &'static str,
    table: &str,
    keys: Vec<Item>,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::with_capacity(keys.len());
    let mut pending = keys;
    for attempt in 1..=MAX_ATTEMPTS {
        if pending.is_empty() {
            return Ok(found);
        }
        if attempt > 1 {
            contention_backoff(attempt).await;
        }
        let request = KeysAndAttributes::builder()
            .set_keys(Some(std::mem::take(&mut pending)))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Backend { op, source: Box::new(e) })?;
        let answer = store.client.batch_get_item().request_items(table, request).send().await.map_err(backend(op))?;
        if let Some(mut responses) = answer.responses {
            found.extend(responses.remove(table).unwrap_or_default());
        }
        pending = answer.unprocessed_keys.and_then(|mut left| left.remove(table)).map(|k| k.keys).unwrap_or_default();
    }
    if pending.is_empty() {
        return Ok(found);
    }
    Err(StoreError::Backend {
        op,
        source: Box::new(DynamoError {
            code: Some("UnprocessedKeys".into()),
            message: format!(
                "BatchGetItem on {table} left {} keys unprocessed after {MAX_ATTEMPTS} attempts (throttled); \
                 the caller retries later",
                pending.len()
            ),
        }),
    })
}

/// The queued jobs a demand snapshot returns, oldest first, and the ones it leaves out by reason (counted only
/// for a full snapshot): of a tenant without headroom, the jobs already waiting with the tenant's refusal.
fn select_jobs(queued: Vec<Job>, split: &Headroom, full: bool) -> (Vec<Job>, BTreeMap<Reason, u32>) {
    let refusal: BTreeMap<InstallationId, Reason> =
        split.closed.iter().flat_map(|(reason, ids)| ids.iter().map(move |id| (*id, *reason))).collect();
    let mut jobs = Vec::with_capacity(queued.len());
    let mut kept: BTreeMap<Reason, u32> = BTreeMap::new();
    for job in queued.into_iter().filter(Job::wants_runner) {
        match refusal.get(&job.installation_id) {
            Some(reason) if job.wait_reason == Some(*reason) => {
                if full {
                    *kept.entry(*reason).or_default() += 1;
                }
            }
            _ => jobs.push(job),
        }
    }
    jobs.sort_by_key(|j| (j.received_at, j.job_id));
    (jobs, kept)
}

/// Unbound runners per key of the tenants `ids`.
fn unbound_of(runners: &[Runner], ids: &BTreeSet<InstallationId>) -> BTreeMap<DemandKey, u32> {
    let mut unbound = BTreeMap::new();
    for runner in runners.iter().filter(|r| r.state.is_unbound() && ids.contains(&r.installation_id)) {
        *unbound.entry(DemandKey::of_runner(runner)).or_default() += 1;
    }
    unbound
}

/// The next page of one stale walk: jobs of `status` matched to a tier, stale at `before` (queued at or before
/// it; in progress since it, by `started_at` or else `updated_at`), after `cursor` in `(received_at, job_id)`
/// order, at most `limit`.
fn stale_page(jobs: &[Job], status: JobStatus, before: Timestamp, cursor: Option<JobCursor>, limit: u32) -> Vec<Job> {
    let after = cursor.map(|c| (c.received_at, c.job_id));
    let mut page: Vec<Job> = jobs
        .iter()
        .filter(|j| j.status == status && j.tier.is_some())
        .filter(|j| match status {
            JobStatus::Queued => j.received_at <= before,
            _ => j.started_at.unwrap_or(j.updated_at) <= before,
        })
        .filter(|j| after.is_none_or(|after| (j.received_at, j.job_id) > after))
        .cloned()
        .collect();
    page.sort_by_key(|j| (j.received_at, j.job_id));
    page.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    page
}

/// Queued jobs matched to a tier per key, for the tenants that have unbound runners (the surplus rule); a
/// personal account's key is per repository (a job without a tenant record is keyed as an organisation's).
fn demand_of_unbound_tenants(
    queued: &[Job],
    live: &[Runner],
    tenants: &BTreeMap<InstallationId, Tenant>,
) -> BTreeMap<DemandKey, u32> {
    let with_unbound: BTreeSet<InstallationId> =
        live.iter().filter(|r| r.state.is_unbound()).map(|r| r.installation_id).collect();
    let mut demand = BTreeMap::new();
    for job in queued.iter().filter(|j| j.wants_runner() && with_unbound.contains(&j.installation_id)) {
        let Some(tier) = job.tier.clone() else { continue };
        let org_type = tenants.get(&job.installation_id).map(|t| t.org_type);
        *demand.entry(DemandKey::of_job(job.installation_id, tier, org_type, &job.repository)).or_default() += 1;
    }
    demand
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
