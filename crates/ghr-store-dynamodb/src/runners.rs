//! Runners: update (a release lowers the live counts in the same transaction), get, list, live counts and series.
//!
//! An update reads the runner (strongly consistent), merges the state as the lifecycle allows
//! ([`RunnerState::merge`]) and writes on the state read (`#state = :read`): a concurrent state change makes it
//! read and merge again. Fields are written only when given, and each timestamp with `if_not_exists`, so it is
//! stamped once whoever writes first. A change that leaves the live set (to `terminated` or `failed`) is one
//! `TransactWriteItems`: the runner (its `live-index` keys removed), the tenant's `live_runners - 1` and
//! `live_version + 1`, and `runners#live` `count - 1`, each dated with the release (`released_at`, which only
//! grows) so a later reservation is dated after it.

use crate::DynamoStore;
use crate::error::{MAX_ATTEMPTS, backend, cancellation_codes, contended, contention_backoff, is_contention};
use crate::item::{Item, n, s, ts_ms};
use crate::reserve::{GlobalLive, TenantLive, built, live_runners, only_read_again, read_global, read_tenant};
use crate::runner_item::{self as ri, query_live, runner_from_item, scan_live};
use crate::tables::{live, runner as attr, state, tenant as tenant_attr};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, RunnerName};
use ghr_core::ports::StoreError;
use ghr_core::ports::{RunnerFilter, RunnerSeries, RunnerUpdate};
use ghr_core::runner::{Runner, RunnerState};
use std::collections::{BTreeMap, HashMap};

const OP_UPDATE: &str = "runner_update";
const OP_GET: &str = "runner_get";
const OP_LIST: &str = "runner_list";
const OP_LIVE_COUNTS: &str = "runner_live_counts";
const OP_LIVE_SERIES: &str = "runner_live_series";

pub(crate) async fn update(
    store: &DynamoStore,
    name: &RunnerName,
    update: RunnerUpdate,
) -> Result<Option<Runner>, StoreError> {
    for attempt in 1..=MAX_ATTEMPTS {
        if attempt > 1 {
            contention_backoff(attempt - 1).await;
        }
        let Some(current) = get_op(store, name, OP_UPDATE).await? else { return Ok(None) };
        let asked = update.state.unwrap_or(current.state);
        let next = current.state.merge(asked);
        if next != asked {
            tracing::debug!(runner = %name, from = %current.state, to = %asked, "runner state change refused; state kept");
        }
        let write = runner_write(name, &current, next, &update);
        if current.state.is_live() && !next.is_live() {
            // A release: the runner and both counts in one transaction.
            let released = current.terminated_at.unwrap_or(update.at);
            let mut items = vec![write.transact(store)?];
            let tenant = read_tenant(store, OP_UPDATE, current.installation_id).await?;
            if let Some(tenant) = tenant {
                items.push(release_tenant_slot(store, current.installation_id, &tenant, released)?);
            }
            let global = read_global(store, OP_UPDATE).await?;
            if let Some(item) = release_global_slot(store, &global, released)? {
                items.push(item);
            }
            match store.client.transact_write_items().set_transact_items(Some(items)).send().await {
                Ok(_) => return get_op(store, name, OP_UPDATE).await,
                Err(error)
                    if is_contention(&error) || cancellation_codes(&error).is_some_and(|c| only_read_again(&c)) =>
                {
                    tracing::debug!(runner = %name, attempt, "release contended or changed since read; again");
                }
                Err(error) => return Err(backend(OP_UPDATE)(error)),
            }
        } else {
            match write.send(store).await {
                Ok(answer) => {
                    let item = answer.attributes.unwrap_or_default();
                    return runner_from_item(OP_UPDATE, &item).map(Some);
                }
                Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                    tracing::debug!(runner = %name, attempt, "runner changed since read; again");
                }
                Err(error) => return Err(backend(OP_UPDATE)(error)),
            }
        }
    }
    Err(contended(OP_UPDATE))
}

/// The runner's own write: the merged state, the fields given, the stamps of the state entered, conditioned on
/// the state read.
fn runner_write(name: &RunnerName, current: &Runner, next: RunnerState, update: &RunnerUpdate) -> RunnerWrite {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut values: HashMap<String, AttributeValue> = HashMap::new();
    let mut sets: Vec<String> = Vec::new();
    let mut set = |attribute: &'static str, value: AttributeValue, once: bool| {
        let (name, placeholder) = (format!("#a{}", sets.len()), format!(":a{}", sets.len()));
        sets.push(if once {
            format!("{name} = if_not_exists({name}, {placeholder})")
        } else {
            format!("{name} = {placeholder}")
        });
        names.insert(name, attribute.to_owned());
        values.insert(placeholder, value);
    };
    set(ri::STATE, s(next.as_str()), false);
    set(ri::UPDATED_AT, ts_ms(update.at), false);
    if let Some(instance) = &update.instance_id {
        set(ri::INSTANCE_ID, s(instance.as_str()), false);
    }
    if let Some(id) = update.github_runner_id {
        set(ri::GITHUB_RUNNER_ID, n(id.0), false);
    }
    if let Some(job) = update.job_id {
        set(ri::JOB_ID, n(job.0), false);
    }
    if let Some(error) = &update.last_error {
        set(ri::LAST_ERROR, s(error.clone()), false);
    }
    // Each timestamp is stamped once, when the runner is first seen in the matching state. Billing starts when
    // an instance is first recorded, whatever the state (GitHub's events may have moved it on).
    let at = ts_ms(update.at);
    if update.instance_id.is_some() || next == RunnerState::Launching {
        set(ri::LAUNCHED_AT, at.clone(), true);
    }
    let stamps = [
        (RunnerState::Idle, ri::REGISTERED_AT),
        (RunnerState::Busy, ri::JOB_STARTED_AT),
        (RunnerState::Finished, ri::FINISHED_AT),
        (RunnerState::Terminated, ri::TERMINATED_AT),
        (RunnerState::Failed, ri::TERMINATED_AT),
    ];
    for (state, attribute) in stamps {
        if next == state {
            set(attribute, at.clone(), true);
        }
    }
    let mut expression = format!("SET {}", sets.join(", "));
    if !next.is_live() && current.state.is_live() {
        expression.push_str(" REMOVE #lt, #lo");
        names.insert("#lt".into(), attr::LIVE_TENANT.into());
        names.insert("#lo".into(), attr::LIVE_ORDER.into());
    }
    names.insert("#state".into(), ri::STATE.into());
    values.insert(":read".into(), s(current.state.as_str()));
    RunnerWrite { key: s(name.as_str()), expression, names, values }
}

/// One runner update, conditioned on the state read: sent alone, or as an item of a release's transaction.
struct RunnerWrite {
    key: AttributeValue,
    expression: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

/// The condition of every runner write: the state is still the one the merge was computed from.
const STATE_READ: &str = "#state = :read";

impl RunnerWrite {
    fn transact(self, store: &DynamoStore) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&store.tables.runners)
            .key(attr::RUNNER_NAME, self.key)
            .update_expression(self.expression)
            .condition_expression(STATE_READ)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .build()
            .map_err(built(OP_UPDATE))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn send(
        self,
        store: &DynamoStore,
    ) -> Result<
        aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
        aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>,
    > {
        store
            .client
            .update_item()
            .table_name(&store.tables.runners)
            .key(attr::RUNNER_NAME, self.key)
            .update_expression(self.expression)
            .condition_expression(STATE_READ)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
    }
}

/// The tenant's side of a release: `live_runners - 1` (only while it counts something: a count a hand-made
/// `put-item` dropped stays for repair), `live_version + 1`, and `live_released_at` moved up to the release.
fn release_tenant_slot(
    store: &DynamoStore,
    id: InstallationId,
    tenant: &TenantLive,
    released: Timestamp,
) -> Result<TransactWriteItem, StoreError> {
    let mut sets = vec!["#lver = if_not_exists(#lver, :zero) + :one", "#changed = :at"];
    let mut conditions = vec!["attribute_exists(#id)"];
    if tenant.live() > 0 {
        sets.push("#live = #live - :one");
        conditions.push("#live > :zero");
    }
    if tenant.released_at.is_none_or(|at| at <= released) {
        sets.push("#rel = :at");
        conditions.push("(attribute_not_exists(#rel) OR #rel <= :at)");
    }
    let update = Update::builder()
        .table_name(&store.tables.tenants)
        .key(tenant_attr::INSTALLATION_ID, n(id.0))
        .update_expression(format!("SET {}", sets.join(", ")))
        .condition_expression(conditions.join(" AND "))
        .expression_attribute_names("#id", tenant_attr::INSTALLATION_ID)
        .expression_attribute_names("#lver", tenant_attr::LIVE_VERSION)
        .expression_attribute_names("#changed", live::TENANT_CHANGED_AT)
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":at", ts_ms(released));
    let update =
        if tenant.live() > 0 { update.expression_attribute_names("#live", tenant_attr::LIVE_RUNNERS) } else { update };
    let update = if tenant.released_at.is_none_or(|at| at <= released) {
        update.expression_attribute_names("#rel", live::TENANT_RELEASED_AT)
    } else {
        update
    };
    Ok(TransactWriteItem::builder().update(update.build().map_err(built(OP_UPDATE))?).build())
}

/// The deployment's side of a release: `count - 1` while it counts something, `released_at` moved up.
fn release_global_slot(
    store: &DynamoStore,
    global: &GlobalLive,
    released: Timestamp,
) -> Result<Option<TransactWriteItem>, StoreError> {
    let lower = global.count.unwrap_or(0) > 0;
    let later = global.released_at.is_none_or(|at| at <= released);
    if !lower && !later {
        return Ok(None);
    }
    let mut sets = vec!["#v = if_not_exists(#v, :zero) + :one", "#changed = :at"];
    let mut conditions = Vec::new();
    if lower {
        sets.push("#c = #c - :one");
        conditions.push("#c > :zero");
    }
    if later {
        sets.push("#rel = :at");
        conditions.push("(attribute_not_exists(#rel) OR #rel <= :at)");
    }
    let update = Update::builder()
        .table_name(&store.tables.state)
        .key(state::PK, s(state::LIVE_RUNNERS))
        .update_expression(format!("SET {}", sets.join(", ")))
        .condition_expression(conditions.join(" AND "))
        .expression_attribute_names("#v", state::VERSION)
        .expression_attribute_names("#changed", live::CHANGED_AT)
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":at", ts_ms(released));
    let update = if lower { update.expression_attribute_names("#c", state::COUNT) } else { update };
    let update = if later { update.expression_attribute_names("#rel", live::RELEASED_AT) } else { update };
    Ok(Some(TransactWriteItem::builder().update(update.build().map_err(built(OP_UPDATE))?).build()))
}

async fn get_op(store: &DynamoStore, name: &RunnerName, op: &'static str) -> Result<Option<Runner>, StoreError> {
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.runners)
        .key(attr::RUNNER_NAME, s(name.as_str()))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(op))?;
    answer.item.map(|item| runner_from_item(op, &item)).transpose()
}

pub(crate) async fn get(store: &DynamoStore, name: &RunnerName) -> Result<Option<Runner>, StoreError> {
    get_op(store, name, OP_GET).await
}

/// Matching runners in creation order. A list of live states only reads the sparse `live-index` (one read per
/// live runner; a GSI, so a runner reserved a moment ago may be missing); any other list scans the runner table,
/// which keeps every runner ever started: its cost grows with the deployment's history.
pub(crate) async fn list(store: &DynamoStore, filter: RunnerFilter) -> Result<Vec<Runner>, StoreError> {
    let live_only = !filter.states.is_empty() && filter.states.iter().all(|st| st.is_live());
    let candidates = if live_only {
        match filter.installation_id {
            // With the tenant's latest reservations read by key: a teardown right after a reservation sees it.
            Some(id) => match read_tenant(store, OP_LIST, id).await? {
                Some(tenant) => live_runners(store, OP_LIST, id, &tenant).await?,
                None => query_live(store, id).await?,
            },
            None => scan_live(store).await?,
        }
    } else {
        scan_all(store, &filter).await?
    };
    let mut runners: Vec<Runner> = candidates
        .into_iter()
        .filter(|r| filter.installation_id.is_none_or(|id| r.installation_id == id))
        .filter(|r| filter.tier.as_ref().is_none_or(|tier| &r.tier == tier))
        .filter(|r| filter.states.is_empty() || filter.states.contains(&r.state))
        .filter(|r| filter.after_seq.is_none_or(|after| r.seq > after))
        .collect();
    runners.sort_by_key(|r| r.seq);
    if let Some(limit) = filter.limit {
        runners.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(runners)
}

/// A strongly consistent Scan of the runner table, filtered by DynamoDB (the filter saves transfer, not reads).
async fn scan_all(store: &DynamoStore, filter: &RunnerFilter) -> Result<Vec<Runner>, StoreError> {
    let mut conditions = Vec::new();
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    if let Some(id) = filter.installation_id {
        conditions.push("#inst = :inst".to_owned());
        names.insert("#inst".to_owned(), ri::INSTALLATION_ID.to_owned());
        values.insert(":inst".to_owned(), n(id.0));
    }
    if let Some(tier) = &filter.tier {
        conditions.push("#tier = :tier".to_owned());
        names.insert("#tier".to_owned(), ri::TIER.to_owned());
        values.insert(":tier".to_owned(), s(tier.as_str()));
    }
    if !filter.states.is_empty() {
        let placeholders: Vec<String> = (0..filter.states.len()).map(|i| format!(":st{i}")).collect();
        conditions.push(format!("#state IN ({})", placeholders.join(", ")));
        names.insert("#state".to_owned(), ri::STATE.to_owned());
        for (placeholder, st) in placeholders.into_iter().zip(&filter.states) {
            values.insert(placeholder, s(st.as_str()));
        }
    }
    let mut scan = store.client.scan().table_name(&store.tables.runners).consistent_read(true);
    if !conditions.is_empty() {
        scan = scan
            .filter_expression(conditions.join(" AND "))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values));
    }
    let mut pages = scan.into_paginator().items().send();
    let mut runners = Vec::new();
    while let Some(item) = pages.next().await {
        let item: Item = item.map_err(backend(OP_LIST))?;
        runners.push(runner_from_item(OP_LIST, &item)?);
    }
    Ok(runners)
}

/// Live runners per installation, from the sparse `live-index` (one read per live runner).
pub(crate) async fn live_counts(store: &DynamoStore) -> Result<BTreeMap<InstallationId, u32>, StoreError> {
    let mut counts = BTreeMap::new();
    for runner in scan_live(store).await.map_err(|e| rename(e, OP_LIVE_COUNTS))? {
        *counts.entry(runner.installation_id).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Live runners per (tenant, tier, state), from the sparse `live-index`: costs in proportion to the live
/// runners, however many terminated runners the table keeps.
pub(crate) async fn live_series(store: &DynamoStore) -> Result<RunnerSeries, StoreError> {
    let mut series = RunnerSeries::new();
    for runner in scan_live(store).await.map_err(|e| rename(e, OP_LIVE_SERIES))? {
        *series.entry((runner.installation_id, runner.tier, runner.state)).or_insert(0) += 1;
    }
    Ok(series)
}

/// Report a failure of a shared read under the operation that asked for it.
fn rename(error: StoreError, op: &'static str) -> StoreError {
    match error {
        StoreError::Backend { source, .. } => StoreError::Backend { op, source },
        StoreError::Corrupt { detail, .. } => StoreError::Corrupt { op, detail },
        other => other,
    }
}
