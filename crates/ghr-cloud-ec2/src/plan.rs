//! The launch attempt plan: which instance type, subnet and purchase option to try, in which order.

use crate::config::CapacityType;
use std::fmt;

/// How one attempt buys its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseOption {
    Spot,
    OnDemand,
}

impl fmt::Display for PurchaseOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PurchaseOption::Spot => "spot",
            PurchaseOption::OnDemand => "on-demand",
        })
    }
}

/// One RunInstances attempt. `None` leaves the choice to the launch template (or EC2's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchAttempt {
    pub instance_type: Option<String>,
    pub subnet_id: Option<String>,
    pub purchase: PurchaseOption,
}

impl fmt::Display for LaunchAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let instance_type = self.instance_type.as_deref().unwrap_or("template instance type");
        let subnet = self.subnet_id.as_deref().unwrap_or("default subnet");
        write!(f, "{instance_type} in {subnet} ({})", self.purchase)
    }
}

/// Every attempt, in order: for each purchase option (the configured one, then on-demand when spot
/// may fall back), each instance type in the tier's order, each subnet in the configured order.
///
/// Spot capacity is cheaper, so every spot combination is tried before paying on-demand prices.
/// Duplicate instance types and subnets are tried once.
pub fn attempt_plan(
    instance_types: &[String],
    subnet_ids: &[String],
    capacity: CapacityType,
    fallback_to_on_demand: bool,
) -> Vec<LaunchAttempt> {
    let purchases: &[PurchaseOption] = match (capacity, fallback_to_on_demand) {
        (CapacityType::Spot, true) => &[PurchaseOption::Spot, PurchaseOption::OnDemand],
        (CapacityType::Spot, false) => &[PurchaseOption::Spot],
        (CapacityType::OnDemand, _) => &[PurchaseOption::OnDemand],
    };
    let types = choices(instance_types);
    let subnets = choices(subnet_ids);
    let mut plan = Vec::with_capacity(purchases.len() * types.len() * subnets.len());
    for &purchase in purchases {
        for instance_type in &types {
            for subnet_id in &subnets {
                plan.push(LaunchAttempt {
                    instance_type: instance_type.clone(),
                    subnet_id: subnet_id.clone(),
                    purchase,
                });
            }
        }
    }
    plan
}

/// Distinct values in order, or a single `None` (use the default) when there are none.
fn choices(values: &[String]) -> Vec<Option<String>> {
    let mut distinct: Vec<Option<String>> = Vec::with_capacity(values.len());
    for value in values.iter().map(|value| value.trim()).filter(|value| !value.is_empty()) {
        if !distinct.iter().any(|seen| seen.as_deref() == Some(value)) {
            distinct.push(Some(value.to_owned()));
        }
    }
    if distinct.is_empty() {
        distinct.push(None);
    }
    distinct
}

#[cfg(test)]
mod tests {
    use super::*;
    use PurchaseOption::{OnDemand, Spot};

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| (*value).to_owned()).collect()
    }

    fn plan(types: &[&str], subnets: &[&str], capacity: CapacityType, fallback: bool) -> Vec<String> {
        attempt_plan(&strings(types), &strings(subnets), capacity, fallback).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn plans_attempts_in_order() {
        /// Instance types, subnets, capacity, fallback, expected attempts.
        type Case = (Vec<&'static str>, Vec<&'static str>, CapacityType, bool, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            (
                vec!["c7i.large", "m7i.large"],
                vec!["subnet-a", "subnet-b"],
                CapacityType::Spot,
                true,
                vec![
                    "c7i.large in subnet-a (spot)",
                    "c7i.large in subnet-b (spot)",
                    "m7i.large in subnet-a (spot)",
                    "m7i.large in subnet-b (spot)",
                    "c7i.large in subnet-a (on-demand)",
                    "c7i.large in subnet-b (on-demand)",
                    "m7i.large in subnet-a (on-demand)",
                    "m7i.large in subnet-b (on-demand)",
                ],
            ),
            (
                vec!["c7i.large", "m7i.large"],
                vec!["subnet-a"],
                CapacityType::Spot,
                false,
                vec!["c7i.large in subnet-a (spot)", "m7i.large in subnet-a (spot)"],
            ),
            (
                vec!["c7i.large"],
                vec!["subnet-a", "subnet-b"],
                CapacityType::OnDemand,
                true,
                vec!["c7i.large in subnet-a (on-demand)", "c7i.large in subnet-b (on-demand)"],
            ),
            (
                vec![],
                vec![],
                CapacityType::Spot,
                true,
                vec![
                    "template instance type in default subnet (spot)",
                    "template instance type in default subnet (on-demand)",
                ],
            ),
            (
                vec!["t3.small", " t3.small ", ""],
                vec!["subnet-a", "subnet-a"],
                CapacityType::OnDemand,
                false,
                vec!["t3.small in subnet-a (on-demand)"],
            ),
        ];
        for (types, subnets, capacity, fallback, expected) in cases {
            assert_eq!(plan(&types, &subnets, capacity, fallback), expected, "{types:?} {subnets:?} {capacity:?}");
        }
    }

    #[test]
    fn attempts_carry_their_fields() {
        let attempts = attempt_plan(&strings(&["c7i.large"]), &strings(&["subnet-a"]), CapacityType::Spot, true);
        assert_eq!(
            attempts,
            vec![
                LaunchAttempt {
                    instance_type: Some("c7i.large".into()),
                    subnet_id: Some("subnet-a".into()),
                    purchase: Spot
                },
                LaunchAttempt {
                    instance_type: Some("c7i.large".into()),
                    subnet_id: Some("subnet-a".into()),
                    purchase: OnDemand
                },
            ]
        );
    }
}
