//! Usage: runner-seconds per tenant and tier from the runner records.
//!
//! Cost: runners are kept forever (they are the billing record) and the runner table has no index by time, so a
//! usage query is one strongly consistent Scan of the whole table: one read unit per 4 KB of runner items
//! (about ten runners per unit), whatever the period. DynamoDB filters the items that cannot overlap the period
//! (`launched_at < to` and not terminated before `from`) before answering, which bounds what crosses the network
//! and what is held in memory (the runners of the period, not the history); it does not bound the read units.
//! It is an operator's report (`ghr usage`), not a loop's read. The clipping and summing is
//! `ghr_core::cost::usage_rows`, so every backend bills the same way.

use crate::DynamoStore;
use crate::error::backend;
use crate::item::{Item, Reader, ts_ms};
use crate::runner_item::{INSTALLATION_ID, LAUNCHED_AT, TERMINATED_AT, TIER};
use ghr_core::Timestamp;
use ghr_core::cost::{RunnerInterval, UsageRow, usage_rows};
use ghr_core::ids::{InstallationId, TierName};
use ghr_core::ports::StoreError;

const OP: &str = "usage";

pub(crate) async fn usage(
    store: &DynamoStore,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> Result<Vec<UsageRow>, StoreError> {
    let mut pages = store
        .client
        .scan()
        .table_name(&store.tables.runners)
        .consistent_read(true)
        .filter_expression("#launched < :to AND (attribute_not_exists(#ended) OR #ended > :from)")
        .projection_expression("#inst, #tier, #launched, #ended")
        .expression_attribute_names("#inst", INSTALLATION_ID)
        .expression_attribute_names("#tier", TIER)
        .expression_attribute_names("#launched", LAUNCHED_AT)
        .expression_attribute_names("#ended", TERMINATED_AT)
        .expression_attribute_values(":to", ts_ms(to))
        .expression_attribute_values(":from", ts_ms(from))
        .into_paginator()
        .items()
        .send();
    let mut intervals = Vec::new();
    while let Some(item) = pages.next().await {
        let item: Item = item.map_err(backend(OP))?;
        let r = Reader::new(OP, &item);
        intervals.push(RunnerInterval {
            installation_id: InstallationId(r.u64(INSTALLATION_ID)?),
            tier: TierName::from(r.s(TIER)?),
            launched: r.ts_ms(LAUNCHED_AT)?,
            ended: r.opt_ts_ms(TERMINATED_AT)?,
        });
    }
    Ok(usage_rows(intervals, from, to, now))
}
