//! Admission: one `TransactWriteItems` creates the runner and takes the tenant's slot (and the global one),
//! conditioned on the tenant's status, `live_runners < max_runners` and the live version read.
//!
//! A reservation reads (strongly consistent) the tenant item, the key's queued jobs (`open-index`) and unbound
//! runners (`live-index`), and with a global cap the `runners#live` item; decides with the planner's rule
//! ([`decide_reservation`], as SQLite and PostgreSQL do); then writes, in one transaction:
//! 1. Put the runner (`attribute_not_exists(runner_name)`);
//! 2. Update the tenant: `live_runners + 1`, `live_version + 1`, conditioned on `status = active`,
//!    `live_runners < max_runners` (both read by DynamoDB at write time: a tier upgraded by the seed's
//!    `update-item` a moment ago is obeyed) and `live_version` = the version read (no release or reservation of
//!    the tenant slipped in between);
//! 3. Update `runners#live` `count + 1` (always, so the count is right whenever a cap is configured), with
//!    `count < cap` and no release dated after this runner when a cap is given.
//!
//! A transaction cancelled by a failed condition or by contention is run again from a fresh read (up to
//! `MAX_ATTEMPTS`): when the tenant changed (suspended, limit lowered, another reservation took the last slot)
//! the fresh read decides the refusal with the same rule and reason SQLite gives; when it was contention, the
//! fresh read admits. Any other cancellation is reported.
//!
//! The runner's sequence number comes from the `runners#seq` counter (an `ADD`, taken once per call when the rule
//! first admits; a refusal after it leaves a gap, as PostgreSQL's sequence does), so names are unique per store
//! and `runner_list` is in creation order across tenants (a per-tenant number would repeat across tenants, and
//! the contract orders runners store-wide).
//!
//! Capacity per admitted reservation: one strongly consistent GetItem of the tenant, a Query of each GSI, a
//! BatchGetItem of the tenant's reservations of the last minutes (usually none or one), with a cap a GetItem of
//! `runners#live`; one `ADD` (1 WCU) and a three-item transaction (2 WCU per item of up to 1 KB). Every
//! reservation and release writes `runners#live`, and DynamoDB cancels transactions that touch one item at the
//! same moment (`TransactionConflict`, retried here): admissions and releases of the whole deployment pass
//! through that one item, one at a time.
//!
//! GSI lag (real DynamoDB only): demand is counted from two GSIs. A runner reserved a moment ago may be missing
//! from `live-index`, and a reservation right behind it for the same key would start a second runner for the
//! same job where SQLite answers `NoDemand`. So the tenant item keeps its latest reservations (`live_recent`,
//! written by the same conditional transaction, at most [`RECENT_KEEP`] from the last [`RECENT_WINDOW`]); they
//! are read strongly consistent by key and override what the index says of them. What remains: a runner that
//! took a job or was released a moment ago may still show as unbound (the job waits for the next pass: no
//! extra runner), and a job that started a moment ago may still show as queued in `open-index` (one extra
//! runner, reaped as surplus idle). Limits never depend on a GSI: they are the tenant item's and
//! `runners#live`'s conditions.

use crate::DynamoStore;
use crate::error::{
    DynamoError, MAX_ATTEMPTS, backend, cancellation_codes, contended, contention_backoff, is_contention,
};
use crate::item::{Item, Reader, n, s, ts_ms};
use crate::job_item::{OpenKind, query_open};
use crate::runner_item::{query_live, runner_from_item, runner_item};
use crate::tables::{live, runner as runner_attr, state, tenant as tenant_attr};
use aws_sdk_dynamodb::types::{KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update};
use ghr_core::Timestamp;
use ghr_core::admission::AdmissionInput;
use ghr_core::ids::{InstallationId, RunnerName, RunnerSeq, TierName};
use ghr_core::planner::reserve::{ReserveCounts, ReserveDecision, decide_reservation};
use ghr_core::ports::{Reservation, ReserveRequest, StoreError};
use ghr_core::reason::Reason;
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::TenantStatus;

const OP: &str = "runner_reserve";
const OP_SEQ: &str = "runner_reserve (sequence)";

/// What admission and the counters read from a tenant item (the seed's attributes plus ghr's counters, absent
/// ones as 0 / None: a tenant made by hand with the seed's `put-item` has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TenantLive {
    pub status: TenantStatus,
    pub plan: TierName,
    pub max_runners: u32,
    /// `live_runners` as stored; None when absent.
    pub live_runners: Option<u32>,
    /// `live_version` as stored; None when absent.
    pub live_version: Option<u64>,
    pub released_at: Option<Timestamp>,
    pub changed_at: Option<Timestamp>,
    /// `live_recent`: the latest reservations, oldest first.
    pub recent: Vec<(i64, RunnerName)>,
}

/// How many of a tenant's latest reservations its item keeps (`live_recent`).
pub const RECENT_KEEP: usize = 16;
/// How far back `live_recent` reaches: far longer than `live-index` takes to show a new runner.
pub const RECENT_WINDOW: chrono::Duration = chrono::Duration::minutes(2);

impl TenantLive {
    pub fn live(&self) -> u32 {
        self.live_runners.unwrap_or(0)
    }

    /// The condition that `live_version` is still the one read, with its placeholder's value.
    pub fn version_condition(&self) -> (&'static str, u64) {
        match self.live_version {
            None => ("attribute_not_exists(#lver)", 0),
            Some(version) => ("#lver = :lver", version),
        }
    }
}

/// Read a tenant's admission attributes (strongly consistent); None when there is no tenant item.
pub(crate) async fn read_tenant(
    store: &DynamoStore,
    op: &'static str,
    id: InstallationId,
) -> Result<Option<TenantLive>, StoreError> {
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.tenants)
        .key(tenant_attr::INSTALLATION_ID, n(id.0))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(op))?;
    let Some(item) = answer.item else { return Ok(None) };
    let r = Reader::new(op, &item);
    let status = r.s(tenant_attr::STATUS)?;
    let status = status.parse().map_err(|e| crate::error::corrupt(op, format!("attribute status: {e}")))?;
    Ok(Some(TenantLive {
        status,
        plan: TierName::from(r.s(tenant_attr::TIER)?),
        max_runners: r.u32(tenant_attr::MAX_RUNNERS)?,
        live_runners: r.opt_u32(tenant_attr::LIVE_RUNNERS)?,
        live_version: r.opt_u64(tenant_attr::LIVE_VERSION)?,
        released_at: r.opt_ts_ms(live::TENANT_RELEASED_AT)?,
        changed_at: r.opt_ts_ms(live::TENANT_CHANGED_AT)?,
        recent: r
            .strings(live::TENANT_RECENT)?
            .iter()
            .map(|entry| recent_entry(op, entry))
            .collect::<Result<_, _>>()?,
    }))
}

fn recent_entry(op: &'static str, entry: &str) -> Result<(i64, RunnerName), StoreError> {
    let parsed = entry.split_once('#').and_then(|(ms, name)| Some((ms.parse().ok()?, RunnerName::from(name))));
    parsed.ok_or_else(|| crate::error::corrupt(op, format!("attribute {}: entry {entry:?}", live::TENANT_RECENT)))
}

/// `live_recent` after reserving `name` at `at`: the entries of the window, the newest [`RECENT_KEEP`].
fn recent_after(tenant: &TenantLive, name: &RunnerName, at: Timestamp) -> Vec<String> {
    let oldest = (at - RECENT_WINDOW).timestamp_millis();
    let mut entries: Vec<String> = tenant
        .recent
        .iter()
        .filter(|(ms, _)| *ms >= oldest)
        .map(|(ms, name)| format!("{ms}#{name}"))
        .chain(std::iter::once(format!("{}#{name}", at.timestamp_millis())))
        .collect();
    let excess = entries.len().saturating_sub(RECENT_KEEP);
    entries.drain(..excess);
    entries
}

/// The tenant's live runners: `live-index`, with its latest reservations read by key (strongly consistent)
/// in place of what the index says of them.
pub(crate) async fn live_runners(
    store: &DynamoStore,
    op: &'static str,
    id: InstallationId,
    tenant: &TenantLive,
) -> Result<Vec<Runner>, StoreError> {
    let mut runners: std::collections::BTreeMap<RunnerName, Runner> =
        query_live(store, id).await?.into_iter().map(|r| (r.name.clone(), r)).collect();
    if tenant.recent.is_empty() {
        return Ok(runners.into_values().collect());
    }
    let mut keys: Vec<Item> = tenant
        .recent
        .iter()
        .map(|(_, name)| Item::from([(runner_attr::RUNNER_NAME.to_owned(), s(name.as_str()))]))
        .collect();
    keys.dedup();
    let mut pending = Some(keys);
    let mut round = 0;
    while let Some(keys) = pending.take().filter(|k| !k.is_empty()) {
        // Keys DynamoDB left unprocessed (throttled) are asked again after a pause.
        if round > 0 {
            contention_backoff(round).await;
        }
        round += 1;
        let request =
            KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build().map_err(built(op))?;
        let answer = store
            .client
            .batch_get_item()
            .request_items(&store.tables.runners, request)
            .send()
            .await
            .map_err(backend(op))?;
        for item in answer.responses.unwrap_or_default().remove(&store.tables.runners).unwrap_or_default() {
            let runner = runner_from_item(op, &item)?;
            if runner.state.is_live() {
                runners.insert(runner.name.clone(), runner);
            } else {
                runners.remove(&runner.name);
            }
        }
        pending = answer.unprocessed_keys.and_then(|mut left| left.remove(&store.tables.runners)).map(|k| k.keys);
    }
    Ok(runners.into_values().collect())
}

/// The deployment's live count as `runners#live` holds it (absent: 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GlobalLive {
    pub count: Option<u32>,
    pub version: Option<u64>,
    pub released_at: Option<Timestamp>,
    pub changed_at: Option<Timestamp>,
}

pub(crate) async fn read_global(store: &DynamoStore, op: &'static str) -> Result<GlobalLive, StoreError> {
    let answer = store
        .client
        .get_item()
        .table_name(&store.tables.state)
        .key(state::PK, s(state::LIVE_RUNNERS))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend(op))?;
    let Some(item) = answer.item else { return Ok(GlobalLive::default()) };
    global_from_item(op, &item)
}

fn global_from_item(op: &'static str, item: &Item) -> Result<GlobalLive, StoreError> {
    let r = Reader::new(op, item);
    Ok(GlobalLive {
        count: r.opt_u32(state::COUNT)?,
        version: r.opt_u64(state::VERSION)?,
        released_at: r.opt_ts_ms(live::RELEASED_AT)?,
        changed_at: r.opt_ts_ms(live::CHANGED_AT)?,
    })
}

pub(crate) async fn reserve(store: &DynamoStore, request: ReserveRequest) -> Result<Reservation, StoreError> {
    let mut allocated: Option<RunnerSeq> = None;
    for attempt in 1..=MAX_ATTEMPTS {
        if attempt > 1 {
            contention_backoff(attempt - 1).await;
        }
        // 1. The tenant, then demand and supply of the key, then (capped) the deployment's count.
        let Some(tenant) = read_tenant(store, OP, request.installation_id).await? else {
            return Ok(Reservation::Refused(Reason::UnknownTenant));
        };
        if tenant.live_runners.is_none() {
            // No count on the item: a tenant made, or made again over its old item, with the reference's
            // `put-item`, which drops ghr's counters while the tenant's runners may still run. Counting it as 0
            // would admit past the limit until the repair caught up: count the live runners from their records
            // first (written only if nothing changed the item since it was read), then decide on a fresh read.
            let real = saturate(live_runners(store, OP, request.installation_id, &tenant).await?.len());
            if crate::repair::set_tenant_count(store, request.installation_id, &tenant, real).await.is_ok() {
                tracing::warn!(
                    installation = %request.installation_id,
                    live = real,
                    "tenant item had no live-runner count (re-made by hand?); counted its live runners before \
                     admitting"
                );
            }
            continue;
        }
        let queued = query_open(store, request.installation_id, OpenKind::Queued)
            .await?
            .iter()
            .filter(|job| job.tier.as_ref() == Some(&request.tier))
            .filter(|job| request.scope_repo.as_ref().is_none_or(|repo| &job.repository == repo))
            .count();
        let unbound = live_runners(store, OP, request.installation_id, &tenant)
            .await?
            .iter()
            .filter(|r| r.state.is_unbound() && r.tier == request.tier && r.scope_repo == request.scope_repo)
            .count();
        let global = match request.global_cap {
            None => GlobalLive::default(),
            Some(_) => read_global(store, OP).await?,
        };
        let counts = ReserveCounts {
            queued: saturate(queued),
            unbound: saturate(unbound),
            admission: AdmissionInput {
                tenant_status: tenant.status,
                max_runners: tenant.max_runners,
                tenant_live: tenant.live(),
                global_cap: request.global_cap,
                global_live: global.count.unwrap_or(0),
            },
        };
        match decide_reservation(counts) {
            ReserveDecision::Reserve => {}
            ReserveDecision::NoDemand => return Ok(Reservation::NoDemand),
            ReserveDecision::Refused(reason) => return Ok(Reservation::Refused(reason)),
        }

        // 2. The runner, dated no earlier than the releases already committed (the tenant's; with a cap, every
        //    tenant's, as the cap counts them all), named after a fresh sequence number.
        let seq = match allocated {
            Some(seq) => seq,
            None => *allocated.insert(next_seq(store).await?),
        };
        let created_at = [Some(request.now), tenant.released_at, global.released_at].into_iter().flatten().max();
        let created_at = created_at.unwrap_or(request.now);
        let runner = Runner {
            seq,
            name: RunnerName::derive(&request.environment, request.installation_id, &request.tier, seq),
            installation_id: request.installation_id,
            tier: request.tier.clone(),
            tenant_tier: tenant.plan.clone(),
            scope_repo: request.scope_repo.clone(),
            state: RunnerState::Requested,
            instance_id: None,
            github_runner_id: None,
            intended_job: request.intended_job,
            job_id: None,
            created_at,
            launched_at: None,
            registered_at: None,
            job_started_at: None,
            finished_at: None,
            terminated_at: None,
            last_error: None,
            updated_at: created_at,
        };

        // 3. One transaction: the runner, the tenant's slot, the deployment's count.
        let items = vec![
            put_runner(store, &runner)?,
            take_tenant_slot(store, &tenant, request.installation_id, &runner.name, created_at)?,
            take_global_slot(store, request.global_cap, created_at)?,
        ];
        match store.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => return Ok(Reservation::Reserved(Box::new(runner))),
            Err(error) if is_contention(&error) => {
                tracing::debug!(installation = %request.installation_id, attempt, "reservation contended; again");
            }
            Err(error) => match cancellation_codes(&error).filter(|codes| only_read_again(codes)) {
                Some(codes) => {
                    // A condition failed: the tenant or the deployment changed since the read; decide again. A
                    // taken name only a reset sequence could cause: take a new number.
                    if codes.first().is_some_and(|c| c.as_deref() == Some(CONDITION_FAILED)) {
                        tracing::warn!(runner = %runner.name, "runner name already taken; was runners#seq reset?");
                        allocated = None;
                    }
                    tracing::debug!(installation = %request.installation_id, attempt, ?codes, "reservation re-read");
                }
                None => return Err(backend(OP)(error)),
            },
        }
    }
    Err(contended(OP))
}

/// The cancellation code of an item whose condition failed.
pub(crate) const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// Whether a cancelled transaction failed only on conditions or contention, so that a fresh read decides again
/// (any other reason, such as a validation error, is reported, not retried).
pub(crate) fn only_read_again(codes: &[Option<String>]) -> bool {
    codes.iter().flatten().all(|code| {
        matches!(
            code.as_str(),
            CONDITION_FAILED | "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    })
}

/// The next runner sequence number (`ADD` on `runners#seq`: never contended by a condition).
async fn next_seq(store: &DynamoStore) -> Result<RunnerSeq, StoreError> {
    let answer = store
        .client
        .update_item()
        .table_name(&store.tables.state)
        .key(state::PK, s(live::SEQ_KEY))
        .update_expression("ADD #c :one")
        .expression_attribute_names("#c", state::COUNT)
        .expression_attribute_values(":one", n(1))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .map_err(backend(OP_SEQ))?;
    let item = answer.attributes.unwrap_or_default();
    Ok(RunnerSeq(Reader::new(OP_SEQ, &item).u64(state::COUNT)?))
}

fn put_runner(store: &DynamoStore, runner: &Runner) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(&store.tables.runners)
        .set_item(Some(runner_item(runner)))
        .condition_expression("attribute_not_exists(#name)")
        .expression_attribute_names("#name", runner_attr::RUNNER_NAME)
        .build()
        .map_err(built(OP))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// The tenant's slot: `live_runners + 1` on the version read, while active and under its limit.
fn take_tenant_slot(
    store: &DynamoStore,
    tenant: &TenantLive,
    id: InstallationId,
    name: &RunnerName,
    at: Timestamp,
) -> Result<TransactWriteItem, StoreError> {
    let (version_condition, version) = tenant.version_condition();
    // Absent counters (a tenant made by the seed's `put-item`) count as 0.
    let under_limit = match tenant.live_runners {
        Some(_) => "#live < #max",
        None => "attribute_not_exists(#live) AND #max > :zero",
    };
    let update = Update::builder()
        .table_name(&store.tables.tenants)
        .key(tenant_attr::INSTALLATION_ID, n(id.0))
        .update_expression(
            "SET #live = if_not_exists(#live, :zero) + :one, #lver = if_not_exists(#lver, :zero) + :one, \
             #changed = :at, #recent = :recent",
        )
        .condition_expression(format!("#status = :active AND {version_condition} AND {under_limit}"))
        .expression_attribute_names("#recent", live::TENANT_RECENT)
        .expression_attribute_values(":recent", crate::item::strings(&recent_after(tenant, name, at)))
        .expression_attribute_names("#live", tenant_attr::LIVE_RUNNERS)
        .expression_attribute_names("#lver", tenant_attr::LIVE_VERSION)
        .expression_attribute_names("#max", tenant_attr::MAX_RUNNERS)
        .expression_attribute_names("#status", tenant_attr::STATUS)
        .expression_attribute_names("#changed", live::TENANT_CHANGED_AT)
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":active", s(TenantStatus::Active.as_str()))
        .expression_attribute_values(":at", ts_ms(at));
    let update =
        if tenant.live_version.is_some() { update.expression_attribute_values(":lver", n(version)) } else { update };
    Ok(TransactWriteItem::builder().update(update.build().map_err(built(OP))?).build())
}

/// The deployment's count `+ 1`; with a cap, only below it and when no release is dated after this runner.
fn take_global_slot(store: &DynamoStore, cap: Option<u32>, at: Timestamp) -> Result<TransactWriteItem, StoreError> {
    let update = Update::builder()
        .table_name(&store.tables.state)
        .key(state::PK, s(state::LIVE_RUNNERS))
        .update_expression(
            "SET #c = if_not_exists(#c, :zero) + :one, #v = if_not_exists(#v, :zero) + :one, #changed = :at",
        )
        .expression_attribute_names("#c", state::COUNT)
        .expression_attribute_names("#v", state::VERSION)
        .expression_attribute_names("#changed", live::CHANGED_AT)
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":at", ts_ms(at));
    let update = match cap {
        None => update,
        Some(cap) => update
            .condition_expression(
                "(attribute_not_exists(#c) OR #c < :cap) AND (attribute_not_exists(#rel) OR #rel <= :at)",
            )
            .expression_attribute_names("#rel", live::RELEASED_AT)
            .expression_attribute_values(":cap", n(cap)),
    };
    Ok(TransactWriteItem::builder().update(update.build().map_err(built(OP))?).build())
}

/// A request the SDK refused to build (a missing required field: a bug here, reported, never a panic).
pub(crate) fn built(op: &'static str) -> impl FnOnce(aws_sdk_dynamodb::error::BuildError) -> StoreError {
    move |error| StoreError::Backend {
        op,
        source: Box::new(DynamoError { code: None, message: format!("building a DynamoDB request: {error}") }),
    }
}

fn saturate(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn tenant_with(recent: Vec<(i64, RunnerName)>) -> TenantLive {
        TenantLive {
            status: TenantStatus::Active,
            plan: TierName::from("small"),
            max_runners: 3,
            live_runners: None,
            live_version: None,
            released_at: None,
            changed_at: None,
            recent,
        }
    }

    #[test]
    fn recent_reservations_keep_the_window_and_the_newest_few() {
        let at = Utc.timestamp_millis_opt(1_000_000_000).unwrap();
        let ms = at.timestamp_millis();
        let old = (ms - RECENT_WINDOW.num_milliseconds() - 1, RunnerName::from("old"));
        let kept = (ms - 1_000, RunnerName::from("kept"));
        let recent = recent_after(&tenant_with(vec![old, kept]), &RunnerName::from("new"), at);
        assert_eq!(recent, vec![format!("{}#kept", ms - 1_000), format!("{ms}#new")]);

        let many = (0..40).map(|i| (ms - 40 + i, RunnerName::new(format!("r{i}")))).collect();
        let recent = recent_after(&tenant_with(many), &RunnerName::from("new"), at);
        assert_eq!(recent.len(), RECENT_KEEP);
        assert_eq!(recent.last(), Some(&format!("{ms}#new")), "the newest is kept");
        assert_eq!(recent[0], format!("{}#r25", ms - 15), "the oldest go first");
        assert_eq!(recent_entry("t", &recent[0]).unwrap(), (ms - 15, RunnerName::from("r25")));
        assert!(recent_entry("t", "no-separator").is_err());
    }
}
