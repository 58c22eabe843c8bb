//! The tier catalog: runner sizes an operator sells, defined by configuration only.

use crate::ids::TierName;
use serde::{Deserialize, Serialize};

/// Default `priority` of a tier; lower values win ties between equally specific tiers.
pub const DEFAULT_TIER_PRIORITY: i32 = 100;
/// GitHub refuses JIT configs with more labels than this.
pub const MAX_TIER_LABELS: usize = 100;

/// One runner size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tier {
    pub name: TierName,
    /// Lower-cased, de-duplicated labels, in declaration order. These are the runner's labels.
    pub labels: Vec<String>,
    /// Instance types to try, in order (EC2); informational for other providers.
    pub instance_types: Vec<String>,
    /// Concurrent-runner limit of a tenant whose plan is this tier.
    pub max_runners: u32,
    pub runner_os: String,
    pub runner_architecture: String,
    /// Price per runner-hour charged to tenants, in `currency` units; used for cost reports.
    pub price_per_hour: f64,
    /// Tie-breaker between equally specific tiers: lower wins.
    pub priority: i32,
}

impl Tier {
    /// Whether a lower-cased label is one of this tier's labels.
    pub fn has_label(&self, label: &str) -> bool {
        self.labels.iter().any(|own| own == label)
    }
}

/// Lower-case, trim and de-duplicate labels, keeping the first occurrence's position.
pub fn normalize_labels<I, S>(labels: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for label in labels {
        let label = label.as_ref().trim().to_lowercase();
        if !label.is_empty() && !out.contains(&label) {
            out.push(label);
        }
    }
    out
}

/// A validated, ordered set of tiers. Catalog order is declaration order; it defines plan ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierCatalog {
    tiers: Vec<Tier>,
}

/// Why a tier catalog or a reference into it is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    #[error("the tier catalog is empty: configure at least one [[tiers]] entry")]
    Empty,
    #[error("tier name {0:?} is invalid: use 1-64 characters of a-z, 0-9, '-' and '_'")]
    BadName(String),
    #[error("tier {0:?} is defined twice")]
    Duplicate(String),
    #[error("tier {0:?} has no labels: give it at least one label")]
    NoLabels(String),
    #[error("tier {tier:?} has {count} labels; GitHub allows at most {MAX_TIER_LABELS}")]
    TooManyLabels { tier: String, count: usize },
    #[error("tier {0:?} has max_runners = 0: use a positive limit")]
    ZeroMaxRunners(String),
    #[error("tier {0:?} has no instance_types: list at least one")]
    NoInstanceTypes(String),
    #[error("tier {tier:?} has price_per_hour {price}: use a finite, non-negative number")]
    BadPrice { tier: String, price: f64 },
    #[error("tier {name:?} is not in the catalog (known tiers: {known})")]
    UnknownTier { name: String, known: String },
}

fn valid_tier_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl TierCatalog {
    /// Validate and build a catalog. Labels are normalised (lower-cased, de-duplicated).
    pub fn new(tiers: Vec<Tier>) -> Result<Self, CatalogError> {
        if tiers.is_empty() {
            return Err(CatalogError::Empty);
        }
        let mut out: Vec<Tier> = Vec::with_capacity(tiers.len());
        for mut tier in tiers {
            let name = tier.name.as_str().to_owned();
            if !valid_tier_name(&name) {
                return Err(CatalogError::BadName(name));
            }
            if out.iter().any(|t| t.name == tier.name) {
                return Err(CatalogError::Duplicate(name));
            }
            tier.labels = normalize_labels(&tier.labels);
            if tier.labels.is_empty() {
                return Err(CatalogError::NoLabels(name));
            }
            if tier.labels.len() > MAX_TIER_LABELS {
                return Err(CatalogError::TooManyLabels { tier: name, count: tier.labels.len() });
            }
            if tier.max_runners == 0 {
                return Err(CatalogError::ZeroMaxRunners(name));
            }
            if tier.instance_types.is_empty() {
                return Err(CatalogError::NoInstanceTypes(name));
            }
            if !tier.price_per_hour.is_finite() || tier.price_per_hour < 0.0 {
                return Err(CatalogError::BadPrice { tier: name, price: tier.price_per_hour });
            }
            out.push(tier);
        }
        Ok(Self { tiers: out })
    }

    /// The seed's three tiers: small (t3.medium, 2), medium (t3.large/m5.large, 5), large (t3.xlarge/m5.xlarge, 10).
    ///
    /// Prices default to the us-east-1 on-demand price of the first instance type; operators set their own.
    pub fn seed_default() -> Self {
        let tier = |name: &str, types: &[&str], max_runners: u32, price: f64| Tier {
            name: TierName::from(name),
            labels: normalize_labels(["self-hosted", "linux", "x64", name]),
            instance_types: types.iter().map(|t| (*t).to_owned()).collect(),
            max_runners,
            runner_os: "linux".into(),
            runner_architecture: "x64".into(),
            price_per_hour: price,
            priority: DEFAULT_TIER_PRIORITY,
        };
        Self::new(vec![
            tier("small", &["t3.medium"], 2, 0.0416),
            tier("medium", &["t3.large", "m5.large"], 5, 0.0832),
            tier("large", &["t3.xlarge", "m5.xlarge"], 10, 0.1664),
        ])
        .expect("the built-in default catalog is valid")
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    pub fn get(&self, name: &TierName) -> Option<&Tier> {
        self.tiers.iter().find(|t| &t.name == name)
    }

    /// Position of a tier in catalog order (its plan rank).
    pub fn rank(&self, name: &TierName) -> Option<usize> {
        self.tiers.iter().position(|t| &t.name == name)
    }

    /// Look a tier up, or explain which tiers exist.
    pub fn require(&self, name: &TierName) -> Result<&Tier, CatalogError> {
        self.get(name)
            .ok_or_else(|| CatalogError::UnknownTier { name: name.to_string(), known: self.names().join(", ") })
    }

    pub fn names(&self) -> Vec<String> {
        self.tiers.iter().map(|t| t.name.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(name: &str) -> Tier {
        Tier {
            name: name.into(),
            labels: vec!["self-hosted".into(), name.into()],
            instance_types: vec!["t3.small".into()],
            max_runners: 1,
            runner_os: "linux".into(),
            runner_architecture: "x64".into(),
            price_per_hour: 0.01,
            priority: DEFAULT_TIER_PRIORITY,
        }
    }

    #[test]
    fn seed_default_matches_the_reference() {
        let catalog = TierCatalog::seed_default();
        let rows: Vec<(String, u32, Vec<String>)> =
            catalog.tiers().iter().map(|t| (t.name.to_string(), t.max_runners, t.instance_types.clone())).collect();
        assert_eq!(
            rows,
            vec![
                ("small".into(), 2, vec!["t3.medium".into()]),
                ("medium".into(), 5, vec!["t3.large".into(), "m5.large".into()]),
                ("large".into(), 10, vec!["t3.xlarge".into(), "m5.xlarge".into()]),
            ]
        );
        assert_eq!(catalog.get(&"small".into()).unwrap().labels, ["self-hosted", "linux", "x64", "small"]);
    }

    #[test]
    fn validation_table() {
        let cases: Vec<(Vec<Tier>, Option<&str>)> = vec![
            (vec![], Some("empty")),
            (vec![tier("a"), tier("a")], Some("defined twice")),
            (vec![Tier { labels: vec![" ".into()], ..tier("a") }], Some("no labels")),
            (vec![Tier { max_runners: 0, ..tier("a") }], Some("max_runners = 0")),
            (vec![Tier { instance_types: vec![], ..tier("a") }], Some("no instance_types")),
            (vec![Tier { price_per_hour: -1.0, ..tier("a") }], Some("price_per_hour")),
            (vec![tier("Big Tier")], Some("invalid")),
            (vec![Tier { labels: (0..101).map(|i| format!("l{i}")).collect(), ..tier("a") }], Some("at most 100")),
            (vec![tier("starter"), tier("pro"), tier("enterprise"), tier("arm64-medium")], None),
        ];
        for (tiers, expected) in cases {
            match (TierCatalog::new(tiers), expected) {
                (Ok(_), None) => {}
                (Err(e), Some(fragment)) => assert!(e.to_string().contains(fragment), "{e} should mention {fragment}"),
                (other, expected) => panic!("got {other:?}, expected error containing {expected:?}"),
            }
        }
    }

    #[test]
    fn labels_are_normalised() {
        let catalog = TierCatalog::new(vec![Tier {
            labels: vec!["Self-Hosted".into(), "self-hosted".into(), "GPU".into()],
            ..tier("gpu")
        }])
        .unwrap();
        assert_eq!(catalog.tiers()[0].labels, ["self-hosted", "gpu"]);
    }

    #[test]
    fn unknown_tier_lists_known_ones() {
        let err = TierCatalog::seed_default().require(&"huge".into()).unwrap_err();
        assert_eq!(err.to_string(), "tier \"huge\" is not in the catalog (known tiers: small, medium, large)");
    }
}
