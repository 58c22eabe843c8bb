//! Cost model: runner-seconds per tenant and tier, priced per runner-hour by the tier catalog.

use crate::ids::{InstallationId, TierName};
use crate::tier::TierCatalog;
use serde::{Deserialize, Serialize};

const SECONDS_PER_HOUR: f64 = 3600.0;

/// Runner-seconds used by one tenant on one tier over a period (millisecond precision: a runner that
/// lived 0.4 s is billed 0.4 s, not rounded away).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    pub installation_id: InstallationId,
    pub tier: TierName,
    pub runner_seconds: f64,
    pub runners: u64,
}

/// A usage row with its estimated cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRow {
    pub installation_id: InstallationId,
    pub tier: TierName,
    pub runner_seconds: f64,
    pub runners: u64,
    /// Price per runner-hour used; None when the tier is no longer in the catalog.
    pub price_per_hour: Option<f64>,
    /// Estimated cost in currency units, to 1e-6 (round to cents when invoicing); None when the tier is unknown.
    pub cost: Option<f64>,
}

/// Price usage rows with the catalog. Rows of tiers no longer configured keep their seconds but no price.
pub fn price(catalog: &TierCatalog, usage: &[UsageRow]) -> Vec<CostRow> {
    usage
        .iter()
        .map(|row| {
            let price = catalog.get(&row.tier).map(|t| t.price_per_hour);
            CostRow {
                installation_id: row.installation_id,
                tier: row.tier.clone(),
                runner_seconds: row.runner_seconds,
                runners: row.runners,
                price_per_hour: price,
                cost: price.map(|p| round_micros(row.runner_seconds / SECONDS_PER_HOUR * p)),
            }
        })
        .collect()
}

/// Sub-cent precision is kept: a fleet of short runners adds up, and rounding per line would lose it.
fn round_micros(value: f64) -> f64 {
    (value * 1_000_000.0).round() / 1_000_000.0
}

/// Milliseconds of the interval `[start, end)` that fall inside `[from, to)`.
pub fn overlap_millis(
    start: crate::Timestamp,
    end: crate::Timestamp,
    from: crate::Timestamp,
    to: crate::Timestamp,
) -> i64 {
    let lo = start.max(from);
    let hi = end.min(to);
    (hi - lo).num_milliseconds().max(0)
}

/// Runner-seconds from summed milliseconds (exact to the millisecond).
pub fn seconds_from_millis(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

/// One runner's life as the usage report reads it: launched at `launched`, ended at `ended` (None: still live).
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerInterval {
    pub installation_id: InstallationId,
    pub tier: TierName,
    pub launched: crate::Timestamp,
    pub ended: Option<crate::Timestamp>,
}

/// Runner-seconds per (tenant, tier) of the runners overlapping `[from, to)`, each clipped to it; a live runner
/// counts up to `now`; runners with no overlap are not counted. Ordered by tenant, then tier. Every store bills
/// through this one rule.
pub fn usage_rows(
    intervals: impl IntoIterator<Item = RunnerInterval>,
    from: crate::Timestamp,
    to: crate::Timestamp,
    now: crate::Timestamp,
) -> Vec<UsageRow> {
    let mut totals: std::collections::BTreeMap<(InstallationId, TierName), (i64, u64)> = Default::default();
    for interval in intervals {
        let millis = overlap_millis(interval.launched, interval.ended.unwrap_or(now), from, to);
        if millis <= 0 {
            continue;
        }
        let entry = totals.entry((interval.installation_id, interval.tier)).or_insert((0, 0));
        entry.0 += millis;
        entry.1 += 1;
    }
    totals
        .into_iter()
        .map(|((installation_id, tier), (millis, runners))| UsageRow {
            installation_id,
            tier,
            runner_seconds: seconds_from_millis(millis),
            runners,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn usage_sums_clipped_intervals_per_tenant_and_tier() {
        let t = |secs: i64| Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap();
        let interval = |tenant: u64, tier: &str, launched: i64, ended: Option<i64>| RunnerInterval {
            installation_id: InstallationId(tenant),
            tier: tier.into(),
            launched: t(launched),
            ended: ended.map(t),
        };
        let rows = usage_rows(
            [
                interval(1, "small", -50, Some(30)), // clipped at the start: 30 s
                interval(1, "small", 90, None),      // live, counted up to now (100): 10 s
                interval(1, "large", 10, Some(20)),  // inside: 10 s
                interval(2, "small", 200, None),     // launched after the period: not counted
                interval(2, "small", -20, Some(0)),  // ended as the period began: not counted
            ],
            t(0),
            t(1_000),
            t(100),
        );
        let summary: Vec<_> = rows
            .iter()
            .map(|r| (r.installation_id.0, r.tier.as_str().to_owned(), r.runner_seconds, r.runners))
            .collect();
        assert_eq!(summary, vec![(1, "large".to_owned(), 10.0, 1), (1, "small".to_owned(), 40.0, 2)]);
    }

    #[test]
    fn prices_per_tier() {
        let catalog = TierCatalog::seed_default();
        let usage = vec![
            UsageRow { installation_id: InstallationId(1), tier: "small".into(), runner_seconds: 3600.0, runners: 2 },
            UsageRow { installation_id: InstallationId(1), tier: "large".into(), runner_seconds: 1800.0, runners: 1 },
            UsageRow { installation_id: InstallationId(2), tier: "retired".into(), runner_seconds: 60.0, runners: 1 },
        ];
        let rows = price(&catalog, &usage);
        assert_eq!(rows[0].cost, Some(0.0416));
        assert_eq!(rows[1].cost, Some(0.0832));
        assert_eq!(rows[2].cost, None);
        assert_eq!(rows[2].runner_seconds, 60.0);
    }

    #[test]
    fn sub_second_runners_are_billed() {
        let catalog = TierCatalog::seed_default();
        let usage = [UsageRow {
            installation_id: InstallationId(1),
            tier: "large".into(),
            runner_seconds: seconds_from_millis(400),
            runners: 1,
        }];
        assert_eq!(price(&catalog, &usage)[0].runner_seconds, 0.4);
    }

    #[test]
    fn overlap() {
        let t = |h: u32| Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap();
        assert_eq!(overlap_millis(t(1), t(3), t(2), t(5)), 3_600_000);
        assert_eq!(overlap_millis(t(1), t(2), t(3), t(5)), 0);
        assert_eq!(overlap_millis(t(1), t(5), t(2), t(3)), 3_600_000);
    }
}
