//! Tenants on the seed's table: create (with the org-name claim), get, find by org, list, counts, update.
//!
//! The tenant item is the seed's (`codec`); ghr only ever writes it whole when it creates it. Every later
//! write is an `UpdateItem` of the attributes it changes, so the seed's hand-run `update-item` and ghr's
//! admission counters (`live_runners`, `live_version`, `live_recent`) never overwrite each other. Logins are
//! unique among live tenants through the org-name claims of `<p>-state` (`claims`), written in the same
//! `TransactWriteItems` as the tenant; a refused write fails with [`OrgNameTaken`] as its error's source and
//! writes nothing. Reads of single tenants are strongly consistent; lists by status come from `status-index`
//! (eventually consistent on DynamoDB: a status changed a moment ago may show late in a list or a count).

mod claims;
mod codec;

pub(crate) use codec::{key, org_key, tenant_from_item};

use crate::DynamoStore;
use crate::error::{
    MAX_ATTEMPTS, backend, cancellation_codes, contended, contention_backoff, is_contention,
    retry_transaction_conflicts,
};
use crate::item::{Item, Reader, iso, n, s};
use crate::tables::tenant::{INSTALLATION_ID, MAX_RUNNERS, ORG_NAME, STATUS, STATUS_INDEX, TIER, UPDATED_AT};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{Put, ReturnValue, Select, TransactWriteItem, Update};
use claims::Letting;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, OrgName};
use ghr_core::ports::StoreError;
use ghr_core::tenant::{NewTenant, OrgNameTaken, Tenant, TenantStatus, TenantUpdate};
use std::collections::{BTreeMap, HashMap};

const OP_CREATE: &str = "tenant_create";
const OP_GET: &str = "tenant_get";
const OP_FIND: &str = "tenant_find_by_org";
const OP_LIST: &str = "tenant_list";
const OP_IDS_AFTER: &str = "tenant_ids_after";
const OP_COUNTS: &str = "tenant_counts";
const OP_UPDATE: &str = "tenant_update";

/// The cancellation code of an item whose condition failed in a `TransactWriteItems`.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// A write refused because another live tenant holds the login.
fn taken_error(op: &'static str, taken: OrgNameTaken) -> StoreError {
    StoreError::Backend { op, source: Box::new(taken) }
}

/// Tenant `id`, read strongly consistent.
pub(crate) async fn read_tenant(
    store: &DynamoStore,
    id: InstallationId,
    op: &'static str,
) -> Result<Option<Tenant>, StoreError> {
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.tenants)
        .set_key(Some(key(id)))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(op))?;
    answer.item.map(|item| tenant_from_item(op, &item)).transpose()
}

/// How a tenant transaction ended, when it did not fail outright.
enum Written {
    Done,
    /// The tenant item's condition (its first item) failed.
    TenantCondition,
    /// Another writer got in between (a claim changed since it was read, or a transaction conflict): run again
    /// from fresh reads.
    Contended,
}

async fn transact(store: &DynamoStore, op: &'static str, items: Vec<TransactWriteItem>) -> Result<Written, StoreError> {
    let Err(error) = store.client.transact_write_items().set_transact_items(Some(items)).send().await else {
        return Ok(Written::Done);
    };
    if let Some(codes) = cancellation_codes(&error) {
        if codes.first().and_then(Option::as_deref) == Some(CONDITION_FAILED) {
            return Ok(Written::TenantCondition);
        }
        if codes.iter().flatten().any(|code| code == CONDITION_FAILED) {
            return Ok(Written::Contended);
        }
    }
    if is_contention(&error) {
        return Ok(Written::Contended);
    }
    Err(backend(op)(error))
}

/// A live tenant is one `TransactWriteItems`: the whole item, put only when the installation has none
/// (`attribute_not_exists`), and its login's claim; when the installation exists, it is returned unchanged
/// (whatever login the request names). Replicas racing on one installation or one login are decided by the
/// transaction's conditions: one inserts, the others read what it wrote or are refused the login.
pub(crate) async fn create(
    store: &DynamoStore,
    tenant: NewTenant,
    now: Timestamp,
) -> Result<(Tenant, bool), StoreError> {
    let id = tenant.installation_id;
    let item = codec::new_tenant_item(&tenant, now);
    let condition = format!("attribute_not_exists({INSTALLATION_ID})");
    if tenant.status == TenantStatus::Deleted {
        // A deleted tenant holds no login: one conditional put.
        let put = retry_transaction_conflicts(|| {
            store
                .client
                .put_item()
                .table_name(&store.tables.tenants)
                .set_item(Some(item.clone()))
                .condition_expression(&condition)
                .send()
        })
        .await;
        return match put {
            Ok(_) => Ok((tenant_from_item(OP_CREATE, &item)?, true)),
            Err(e) if matches!(e.as_service_error(), Some(PutItemError::ConditionalCheckFailedException(_))) => {
                existing(store, id).await.map(|t| (t, false))
            }
            Err(e) => Err(backend(OP_CREATE)(e)),
        };
    }
    for attempt in 1..=MAX_ATTEMPTS {
        if attempt > 1 {
            contention_backoff(attempt).await;
        }
        let claim = match claims::take(store, OP_CREATE, id, &tenant.org_name).await? {
            Ok(claim) => claim,
            // An existing installation is returned unchanged whatever login the request names.
            Err(taken) => {
                return match read_tenant(store, id, OP_CREATE).await? {
                    Some(existing) => Ok((existing, false)),
                    None => Err(taken_error(OP_CREATE, taken)),
                };
            }
        };
        let put = Put::builder()
            .table_name(&store.tables.tenants)
            .set_item(Some(item.clone()))
            .condition_expression(&condition)
            .build()
            .expect("the table name and the item are set");
        match transact(store, OP_CREATE, vec![TransactWriteItem::builder().put(put).build(), claim]).await? {
            Written::Done => return Ok((tenant_from_item(OP_CREATE, &item)?, true)),
            Written::TenantCondition => return existing(store, id).await.map(|t| (t, false)),
            Written::Contended => {}
        }
    }
    Err(contended(OP_CREATE))
}

/// The tenant whose create found it there already (tenants are never deleted by ghr, so it is still there).
async fn existing(store: &DynamoStore, id: InstallationId) -> Result<Tenant, StoreError> {
    read_tenant(store, id, OP_CREATE)
        .await?
        .ok_or_else(|| crate::error::corrupt(OP_CREATE, format!("tenant {id} conflicts on create but cannot be read")))
}

pub(crate) async fn get(store: &DynamoStore, id: InstallationId) -> Result<Option<Tenant>, StoreError> {
    read_tenant(store, id, OP_GET).await
}

/// The claim wins when it names a live tenant with this login. Otherwise (no claim, a released one, or a stale
/// one) the tenants `org-name-index` finds under the login join the claim's deleted holder, and the best is
/// returned as on SQLite: a live tenant over a deleted one, then the highest installation id. This fallback is
/// how tenants made by hand (which hold no claim) are found; the index is keyed on the login as written, so
/// for them the lookup matches the login as given or in lower case, not every mix of cases.
pub(crate) async fn find_by_org(store: &DynamoStore, org: &OrgName) -> Result<Option<Tenant>, StoreError> {
    let mut found = Vec::new();
    if let Some(claim) = claims::read(store, OP_FIND, org).await?
        && let Some(holder) = read_tenant(store, claim.holder, OP_FIND).await?
        && org_key(&holder.org_name) == org_key(org)
    {
        if holder.status != TenantStatus::Deleted {
            return Ok(Some(holder));
        }
        found.push(holder);
    }
    found.extend(claims::by_login(store, OP_FIND, org).await?);
    Ok(found.into_iter().max_by_key(|t| (t.status != TenantStatus::Deleted, t.installation_id)))
}

/// By status: a `status-index` query (only that status's items are read). All: a strongly consistent Scan.
pub(crate) async fn list(store: &DynamoStore, status: Option<TenantStatus>) -> Result<Vec<Tenant>, StoreError> {
    let items: Vec<Item> = match status {
        None => store
            .client
            .scan()
            .table_name(&store.tables.tenants)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(backend(OP_LIST))?,
        Some(status) => {
            by_status(store, status).into_paginator().items().send().try_collect().await.map_err(backend(OP_LIST))?
        }
    };
    let mut tenants = items.iter().map(|item| tenant_from_item(OP_LIST, item)).collect::<Result<Vec<_>, _>>()?;
    tenants.sort_by_key(|t| t.installation_id);
    Ok(tenants)
}

/// A page of ids in installation order. `status-index` has no sort key, so DynamoDB cannot return a status's
/// tenants in order nor stop after `limit`: the query reads every tenant with the status (read units for all
/// of them, about 0.5 per 4 KB on the index), and the filter on the cursor and the projection to the id only
/// shrink what is sent back; the page is sorted and cut here. A page costs the same whatever its size.
pub(crate) async fn ids_after(
    store: &DynamoStore,
    status: TenantStatus,
    after: Option<InstallationId>,
    limit: u32,
) -> Result<Vec<InstallationId>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut query =
        by_status(store, status).expression_attribute_names("#id", INSTALLATION_ID).projection_expression("#id");
    if let Some(after) = after {
        query = query.filter_expression("#id > :after").expression_attribute_values(":after", n(after.0));
    }
    let items: Vec<Item> = query.into_paginator().items().send().try_collect().await.map_err(backend(OP_IDS_AFTER))?;
    let mut ids = items
        .iter()
        .map(|item| Reader::new(OP_IDS_AFTER, item).u64(INSTALLATION_ID).map(InstallationId))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    ids.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(ids)
}

/// One `Select::Count` query of `status-index` per status (read units as for reading those items, nothing sent
/// back but the counts).
pub(crate) async fn counts(store: &DynamoStore) -> Result<BTreeMap<TenantStatus, u64>, StoreError> {
    let mut counts = BTreeMap::new();
    for status in TenantStatus::ALL {
        let mut pages = by_status(store, status).select(Select::Count).into_paginator().send();
        let mut count = 0u64;
        while let Some(page) = pages.next().await {
            count += u64::try_from(page.map_err(backend(OP_COUNTS))?.count()).unwrap_or(0);
        }
        if count > 0 {
            counts.insert(status, count);
        }
    }
    Ok(counts)
}

/// An `UpdateItem` of the tenant: the given attributes and `updated_at`, on an existing item, and (when the
/// update moves claims) only while its status and login are still those read.
struct Change {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: Item,
}

fn change(update: &TenantUpdate, now: Timestamp, read: Option<&Tenant>) -> Change {
    let mut names: HashMap<String, String> =
        [("#id", INSTALLATION_ID), ("#updated_at", UPDATED_AT)].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
    let mut values: Item = [(":updated_at".to_owned(), s(iso(now)))].into();
    let mut sets = vec!["#updated_at = :updated_at".to_owned()];
    let mut set = |name: &str, attribute: &str, value| {
        names.insert(format!("#{name}"), attribute.to_owned());
        values.insert(format!(":{name}"), value);
        sets.push(format!("#{name} = :{name}"));
    };
    if let Some(status) = update.status {
        set("status", STATUS, s(status.as_str()));
    }
    if let Some(tier) = &update.tier {
        set("tier", TIER, s(tier.as_str()));
    }
    if let Some(max_runners) = update.max_runners {
        set("max_runners", MAX_RUNNERS, n(max_runners));
    }
    if let Some(org) = &update.org_name {
        set("org_name", ORG_NAME, s(org.as_str()));
    }
    let mut condition = "attribute_exists(#id)".to_owned();
    if let Some(read) = read {
        names.insert("#status".to_owned(), STATUS.to_owned());
        names.insert("#org_name".to_owned(), ORG_NAME.to_owned());
        values.insert(":was_status".to_owned(), s(read.status.as_str()));
        values.insert(":was_org_name".to_owned(), s(read.org_name.as_str()));
        condition.push_str(" AND #status = :was_status AND #org_name = :was_org_name");
    }
    Change { update: format!("SET {}", sets.join(", ")), condition, names, values }
}

/// Run `change` as one `UpdateItem` (again while an admission transaction is writing the tenant); `None` when
/// its condition failed.
async fn update_item(store: &DynamoStore, id: InstallationId, change: Change) -> Result<Option<Tenant>, StoreError> {
    let answer = retry_transaction_conflicts(|| {
        store
            .client
            .update_item()
            .table_name(&store.tables.tenants)
            .set_key(Some(key(id)))
            .update_expression(&change.update)
            .condition_expression(&change.condition)
            .set_expression_attribute_names(Some(change.names.clone()))
            .set_expression_attribute_values(Some(change.values.clone()))
            .return_values(ReturnValue::AllNew)
            .send()
    })
    .await;
    match answer {
        Ok(answer) => answer.attributes.map(|item| tenant_from_item(OP_UPDATE, &item)).transpose(),
        Err(e) if matches!(e.as_service_error(), Some(UpdateItemError::ConditionalCheckFailedException(_))) => Ok(None),
        Err(e) => Err(backend(OP_UPDATE)(e)),
    }
}

/// The claim writes an update of `read` needs: take the login it ends live under, let go of one it leaves.
async fn claim_writes(
    store: &DynamoStore,
    read: &Tenant,
    update: &TenantUpdate,
) -> Result<Result<Vec<TransactWriteItem>, OrgNameTaken>, StoreError> {
    let id = read.installation_id;
    let was_live = read.status != TenantStatus::Deleted;
    let live = update.status.unwrap_or(read.status) != TenantStatus::Deleted;
    let login = update.org_name.as_ref().unwrap_or(&read.org_name);
    let same_login = org_key(login) == org_key(&read.org_name);
    let mut writes = Vec::new();
    if live && (!was_live || !same_login) {
        match claims::take(store, OP_UPDATE, id, login).await? {
            Ok(write) => writes.push(write),
            Err(taken) => return Ok(Err(taken)),
        }
    }
    let letting = if !same_login {
        Some(Letting::Drop)
    } else if was_live && !live {
        Some(Letting::Release)
    } else {
        None
    };
    if let Some(how) = letting {
        writes.extend(claims::let_go(store, OP_UPDATE, id, &read.org_name, how).await?);
    }
    Ok(Ok(writes))
}

/// A change of tier or limit alone is one `UpdateItem` (`ReturnValues ALL_NEW`). A change of status or login
/// reads the tenant first, then writes it (conditioned on the status and login read) together with the claims
/// it moves; a claim write makes it a `TransactWriteItems`, after which the tenant is read back.
pub(crate) async fn update(
    store: &DynamoStore,
    id: InstallationId,
    update: TenantUpdate,
    now: Timestamp,
) -> Result<Option<Tenant>, StoreError> {
    if update.status.is_none() && update.org_name.is_none() {
        return update_item(store, id, change(&update, now, None)).await;
    }
    for attempt in 1..=MAX_ATTEMPTS {
        if attempt > 1 {
            contention_backoff(attempt).await;
        }
        let Some(read) = read_tenant(store, id, OP_UPDATE).await? else { return Ok(None) };
        let writes = claim_writes(store, &read, &update).await?.map_err(|taken| taken_error(OP_UPDATE, taken))?;
        let change = change(&update, now, Some(&read));
        if writes.is_empty() {
            match update_item(store, id, change).await? {
                Some(tenant) => return Ok(Some(tenant)),
                // Changed (or gone) since the read: read again.
                None => continue,
            }
        }
        let tenant_update = Update::builder()
            .table_name(&store.tables.tenants)
            .set_key(Some(key(id)))
            .update_expression(change.update)
            .condition_expression(change.condition)
            .set_expression_attribute_names(Some(change.names))
            .set_expression_attribute_values(Some(change.values))
            .build()
            .expect("the table name, key and update expression are set");
        let items = std::iter::once(TransactWriteItem::builder().update(tenant_update).build()).chain(writes).collect();
        match transact(store, OP_UPDATE, items).await? {
            Written::Done => return read_tenant(store, id, OP_UPDATE).await,
            Written::TenantCondition | Written::Contended => {}
        }
    }
    Err(contended(OP_UPDATE))
}

/// A Query of `status-index` for the tenants with `status` (the callers add projection, select and paging).
fn by_status(store: &DynamoStore, status: TenantStatus) -> QueryFluentBuilder {
    store
        .client
        .query()
        .table_name(&store.tables.tenants)
        .index_name(STATUS_INDEX)
        .key_condition_expression("#status = :status")
        .expression_attribute_names("#status", STATUS)
        .expression_attribute_values(":status", s(status.as_str()))
}
