//! Cost model: runner-seconds per tenant and tier, priced per runner-hour by the tier catalog.

use crate::ids::{InstallationId, TierName};
use crate::tier::TierCatalog;
use serde::{Deserialize, Serialize};

const SECONDS_PER_HOUR: f64 = 3600.0;

/// Runner-seconds used by one tenant on one tier over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub installation_id: InstallationId,
    pub tier: TierName,
    pub runner_seconds: i64,
    pub runners: u64,
}

/// A usage row with its estimated cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRow {
    pub installation_id: InstallationId,
    pub tier: TierName,
    pub runner_seconds: i64,
    pub runners: u64,
    /// Price per runner-hour used; None when the tier is no longer in the catalog.
    pub price_per_hour: Option<f64>,
    /// Estimated cost, rounded to 1/100 of the currency unit; None when the tier is unknown.
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
                cost: price.map(|p| round_cents(row.runner_seconds as f64 / SECONDS_PER_HOUR * p)),
            }
        })
        .collect()
}

fn round_cents(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Seconds of the interval `[start, end)` that fall inside `[from, to)`.
pub fn overlap_seconds(
    start: crate::Timestamp,
    end: crate::Timestamp,
    from: crate::Timestamp,
    to: crate::Timestamp,
) -> i64 {
    let lo = start.max(from);
    let hi = end.min(to);
    (hi - lo).num_seconds().max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn prices_per_tier() {
        let catalog = TierCatalog::seed_default();
        let usage = vec![
            UsageRow { installation_id: InstallationId(1), tier: "small".into(), runner_seconds: 3600, runners: 2 },
            UsageRow { installation_id: InstallationId(1), tier: "large".into(), runner_seconds: 1800, runners: 1 },
            UsageRow { installation_id: InstallationId(2), tier: "retired".into(), runner_seconds: 60, runners: 1 },
        ];
        let rows = price(&catalog, &usage);
        assert_eq!(rows[0].cost, Some(0.04));
        assert_eq!(rows[1].cost, Some(0.08));
        assert_eq!(rows[2].cost, None);
        assert_eq!(rows[2].runner_seconds, 60);
    }

    #[test]
    fn overlap() {
        let t = |h: u32| Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap();
        assert_eq!(overlap_seconds(t(1), t(3), t(2), t(5)), 3600);
        assert_eq!(overlap_seconds(t(1), t(2), t(3), t(5)), 0);
        assert_eq!(overlap_seconds(t(1), t(5), t(2), t(3)), 3600);
    }
}
