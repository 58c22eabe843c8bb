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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

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
