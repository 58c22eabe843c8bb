//! Counter repair: recount live runners per tenant and for the deployment from the runner records.
//!
//! ghr changes `live_runners` (tenant item) and `runners#live` only in the transaction that creates or releases
//! the runner, so on their own they never drift. They drift when something outside ghr's transactions touches
//! the items:
//! - a tenant item replaced by a hand-made `put-item` (the seed's README shows one): the item loses ghr's
//!   attributes, so the tenant counts 0 live runners while some still run, and could exceed its limit;
//! - one table restored from a backup or point-in-time recovery without the others: the counts of the restored
//!   table no longer match the runner items (too high blocks a tenant, too low lets it exceed its limit);
//! - an operator deleting or editing runner items (or counts) by hand;
//! - counts written by an older ghr, or a ghr stopped half-way through a manual migration.
//!
//! Only what is real is counted: the runner items in a live state (`live-index`). A tenant's count is fixed by
//! an `UpdateItem` conditioned on the `live_version` read *before* its runners were counted, so a reservation or
//! release that commits meanwhile makes the repair skip that tenant (it is retried a few times, then left for
//! the next pass): a concurrent reservation is never undone and a count never falls below the live runners.
//!
//! GSI lag: `live-index` may lag the table on real DynamoDB (moto never does), so a runner reserved or released
//! a moment ago may be missing or still shown. A count is therefore left alone while it changed less than
//! [`COUNT_SETTLE`] before `now` (the writers' clocks, which ghr keeps within a minute of the store's), by when
//! the index has long caught up. The deployment's count changes with every reservation anywhere, so it is
//! repaired only at a quiet moment; in a deployment that is never quiet for that long it is not repaired.
//!
//! Which tenants are checked per pass: every tenant with live runners in `live-index`, plus a walk of
//! [`WALK_PAGE`] tenants of the tenant table from a cursor kept in `<p>-state` (so a count too high on a tenant
//! with no live runner at all is found within a few passes without scanning every tenant every pass).

use crate::DynamoStore;
use crate::error::backend;
use crate::item::{Item, Reader, n, s};
use crate::reserve::{GlobalLive, TenantLive, read_global, read_tenant};
use crate::runner_item::{query_live, scan_live};
use crate::tables::{live, state, tenant as tenant_attr};
use ghr_core::Timestamp;
use ghr_core::ids::InstallationId;
use ghr_core::ports::StoreError;
use std::collections::{BTreeMap, BTreeSet};

const OP: &str = "repair_counts";

/// How long a count must have stood still before repair trusts `live-index` against it.
pub const COUNT_SETTLE: chrono::Duration = chrono::Duration::minutes(3);

/// Tenants of the tenant table checked per pass beside those with live runners.
pub const WALK_PAGE: i32 = 100;

/// How many times one count is re-read when a reservation or release races its repair, before it is left for
/// the next pass.
const REPAIR_ATTEMPTS: u32 = 3;

pub(crate) async fn repair_counts(store: &DynamoStore, now: Timestamp) -> Result<u64, StoreError> {
    let live = scan_live(store).await?;
    let mut with_runners: BTreeMap<InstallationId, u32> = BTreeMap::new();
    for runner in &live {
        *with_runners.entry(runner.installation_id).or_insert(0) += 1;
    }
    let mut tenants: BTreeSet<InstallationId> = with_runners.keys().copied().collect();
    tenants.extend(walk_tenants(store).await?);

    let mut fixed = 0;
    for id in tenants {
        match repair_tenant(store, id, with_runners.contains_key(&id), now).await {
            Ok(true) => fixed += 1,
            Ok(false) => {}
            // One tenant item edited into something unreadable must not stop the others' repair.
            Err(error @ StoreError::Corrupt { .. }) => {
                tracing::warn!(installation = %id, error = %error, "tenant item unreadable; its count is not repaired");
            }
            Err(error) => return Err(error),
        }
    }
    if repair_global(store, now).await? {
        fixed += 1;
    }
    Ok(fixed)
}

/// Whether a count changed at `changed` is too recent for `live-index` to be trusted against it.
fn settling(changed: Option<Timestamp>, now: Timestamp) -> bool {
    changed.is_some_and(|at| at + COUNT_SETTLE > now)
}

/// Recount one tenant and fix its count; true when it was wrong and is now fixed.
async fn repair_tenant(
    store: &DynamoStore,
    id: InstallationId,
    seen_live: bool,
    now: Timestamp,
) -> Result<bool, StoreError> {
    for _ in 0..REPAIR_ATTEMPTS {
        // The tenant first, its runners second: anything that commits after the read moves `live_version`.
        let Some(tenant) = read_tenant(store, OP, id).await? else { return Ok(false) };
        if settling(tenant.changed_at, now) {
            return Ok(false);
        }
        if tenant.live() == 0 && !seen_live {
            // No count and no live runner seen: nothing to fix (an absent count is 0).
            return Ok(false);
        }
        let real = u32::try_from(query_live(store, id).await?.len()).unwrap_or(u32::MAX);
        if tenant.live_runners.unwrap_or(0) == real {
            return Ok(false);
        }
        match set_tenant_count(store, id, &tenant, real).await {
            Ok(()) => {
                tracing::warn!(
                    installation = %id,
                    stored = ?tenant.live_runners,
                    live = real,
                    "tenant live-runner count drifted from its runner records; repaired"
                );
                return Ok(true);
            }
            Err(Raced) => tracing::debug!(installation = %id, "count changed while repairing; re-reading"),
        }
    }
    Ok(false)
}

/// A conditional write that lost to a concurrent change (re-read and try again).
pub(crate) struct Raced;

/// Set a tenant's live count to `real`, only if its `live_version` is still the one read (`tenant`).
pub(crate) async fn set_tenant_count(
    store: &DynamoStore,
    id: InstallationId,
    tenant: &TenantLive,
    real: u32,
) -> Result<(), Raced> {
    let (version_condition, version) = tenant.version_condition();
    let update = store
        .client
        .update_item()
        .table_name(&store.tables.tenants)
        .key(tenant_attr::INSTALLATION_ID, n(id.0))
        .update_expression("SET #live = :real, #lver = if_not_exists(#lver, :zero) + :one")
        .condition_expression(format!("attribute_exists(#id) AND {version_condition}"))
        .expression_attribute_names("#id", tenant_attr::INSTALLATION_ID)
        .expression_attribute_names("#live", tenant_attr::LIVE_RUNNERS)
        .expression_attribute_names("#lver", tenant_attr::LIVE_VERSION)
        .expression_attribute_values(":real", n(real))
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":one", n(1));
    let update =
        if tenant.live_version.is_some() { update.expression_attribute_values(":lver", n(version)) } else { update };
    match update.send().await {
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::debug!(installation = %id, error = %crate::error::dynamo_error(&error), "count repair not applied");
            Err(Raced)
        }
    }
}

/// Recount the deployment's live runners and fix `runners#live`; true when it was wrong and is now fixed.
async fn repair_global(store: &DynamoStore, now: Timestamp) -> Result<bool, StoreError> {
    for _ in 0..REPAIR_ATTEMPTS {
        let global = read_global(store, OP).await?;
        if settling(global.changed_at, now) {
            return Ok(false);
        }
        let real = u32::try_from(scan_live(store).await?.len()).unwrap_or(u32::MAX);
        if global.count.unwrap_or(0) == real {
            return Ok(false);
        }
        if set_global_count(store, &global, real).await.is_ok() {
            tracing::warn!(stored = ?global.count, live = real, "deployment live-runner count drifted; repaired");
            return Ok(true);
        }
    }
    Ok(false)
}

async fn set_global_count(store: &DynamoStore, global: &GlobalLive, real: u32) -> Result<(), Raced> {
    let update = store
        .client
        .update_item()
        .table_name(&store.tables.state)
        .key(state::PK, s(state::LIVE_RUNNERS))
        .update_expression("SET #c = :real, #v = if_not_exists(#v, :zero) + :one")
        .expression_attribute_names("#c", state::COUNT)
        .expression_attribute_names("#v", state::VERSION)
        .expression_attribute_values(":real", n(real))
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":one", n(1));
    let update = match global.version {
        None => update.condition_expression("attribute_not_exists(#v)"),
        Some(version) => update.condition_expression("#v = :read").expression_attribute_values(":read", n(version)),
    };
    update.send().await.map(|_| ()).map_err(|error| {
        tracing::debug!(error = %crate::error::dynamo_error(&error), "deployment count repair not applied");
        Raced
    })
}

/// The next page of the walk over the tenant table, moving the cursor on (back to the start after the last).
async fn walk_tenants(store: &DynamoStore) -> Result<Vec<InstallationId>, StoreError> {
    let cursor = store
        .client
        .get_item()
        .table_name(&store.tables.state)
        .key(state::PK, s(live::REPAIR_CURSOR_KEY))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(OP))?;
    let after = match cursor.item {
        Some(item) => Reader::new(OP, &item).opt_u64(live::REPAIR_AFTER)?,
        None => None,
    };
    let mut scan = store
        .client
        .scan()
        .table_name(&store.tables.tenants)
        .consistent_read(true)
        .limit(WALK_PAGE)
        .projection_expression("#id")
        .expression_attribute_names("#id", tenant_attr::INSTALLATION_ID);
    if let Some(after) = after {
        scan = scan.exclusive_start_key(tenant_attr::INSTALLATION_ID, n(after));
    }
    let page = scan.send().await.map_err(backend(OP))?;
    let ids = page
        .items()
        .iter()
        .map(|item: &Item| Reader::new(OP, item).u64(tenant_attr::INSTALLATION_ID).map(InstallationId))
        .collect::<Result<Vec<_>, _>>()?;
    let next = match page.last_evaluated_key() {
        Some(key) => Reader::new(OP, key).opt_u64(tenant_attr::INSTALLATION_ID)?,
        None => None,
    };
    let mut write = store.client.put_item().table_name(&store.tables.state).item(state::PK, s(live::REPAIR_CURSOR_KEY));
    if let Some(next) = next {
        write = write.item(live::REPAIR_AFTER, n(next));
    }
    write.send().await.map_err(backend(OP))?;
    Ok(ids)
}
