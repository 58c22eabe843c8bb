//! Label matching: which tier serves a job's `runs-on` labels.
//!
//! Rule (GitHub's own for runners): a job fits a tier when every job label, compared
//! case-insensitively, is one of the tier's labels. When several tiers fit, ghr picks
//! 1. the most specific tier: the fewest tier labels beyond the job's;
//! 2. then the lowest `priority`;
//! 3. then catalog (declaration) order.
//!
//! So a bare `runs-on: self-hosted` goes to the first-declared, least specific tier (small in the
//! default catalog), never to the alphabetically first one as in the reference.

use crate::tier::{Tier, TierCatalog, normalize_labels};

/// The tier that serves `job_labels`, or `None` when no tier fits (the job is not ours).
pub fn match_tier<'c, S: AsRef<str>>(catalog: &'c TierCatalog, job_labels: &[S]) -> Option<&'c Tier> {
    let wanted = normalize_labels(job_labels);
    if wanted.is_empty() {
        return None;
    }
    catalog
        .tiers()
        .iter()
        .enumerate()
        .filter(|(_, tier)| wanted.iter().all(|label| tier.has_label(label)))
        .min_by_key(|(position, tier)| (tier.labels.len() - wanted.len(), tier.priority, *position))
        .map(|(_, tier)| tier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::{DEFAULT_TIER_PRIORITY, normalize_labels};

    fn with_arm64() -> TierCatalog {
        let mut tiers = TierCatalog::seed_default().tiers().to_vec();
        tiers.push(Tier {
            name: "arm64-medium".into(),
            labels: normalize_labels(["self-hosted", "linux", "arm64", "medium"]),
            instance_types: vec!["t4g.large".into(), "m6g.large".into()],
            max_runners: 5,
            runner_os: "linux".into(),
            runner_architecture: "arm64".into(),
            price_per_hour: 0.0672,
            priority: DEFAULT_TIER_PRIORITY,
        });
        TierCatalog::new(tiers).unwrap()
    }

    #[test]
    fn seed_examples() {
        let catalog = with_arm64();
        let table: &[(&[&str], Option<&str>)] = &[
            (&["self-hosted", "linux", "x64", "small"], Some("small")),
            (&["self-hosted", "linux", "x64", "medium"], Some("medium")),
            (&["self-hosted", "linux", "x64", "large"], Some("large")),
            (&["SELF-HOSTED", "Linux", "X64", "Large"], Some("large")),
            (&["self-hosted", "linux", "arm64", "medium"], Some("arm64-medium")),
            (&["arm64"], Some("arm64-medium")),
            // Bare self-hosted fits every tier: the least specific, first-declared wins, not "large".
            (&["self-hosted"], Some("small")),
            (&["self-hosted", "linux", "x64"], Some("small")),
            // Fits medium and arm64-medium equally: declaration order.
            (&["self-hosted", "linux", "medium"], Some("medium")),
            (&["medium"], Some("medium")),
            (&["ubuntu-latest"], None),
            (&["self-hosted", "linux", "x64", "small", "gpu"], None),
            (&["self-hosted", "windows"], None),
            (&[], None),
            (&["  "], None),
        ];
        for (labels, expected) in table {
            let got = match_tier(&catalog, labels).map(|t| t.name.as_str());
            assert_eq!(got, *expected, "labels {labels:?}");
        }
    }

    #[test]
    fn specificity_beats_priority_and_priority_beats_order() {
        let tier = |name: &str, labels: &[&str], priority: i32| Tier {
            name: name.into(),
            labels: normalize_labels(labels),
            instance_types: vec!["x".into()],
            max_runners: 1,
            runner_os: "linux".into(),
            runner_architecture: "x64".into(),
            price_per_hour: 0.0,
            priority,
        };
        let catalog = TierCatalog::new(vec![
            tier("wide", &["self-hosted", "linux", "x64", "wide"], 1),
            tier("narrow", &["self-hosted", "gpu"], 100),
            tier("cheap", &["self-hosted", "gpu", "spot"], 50),
            tier("fast", &["self-hosted", "gpu", "nvme"], 10),
        ])
        .unwrap();
        // narrow has 1 extra label; wide has 3: specificity wins over wide's priority 1.
        assert_eq!(match_tier(&catalog, &["self-hosted"]).unwrap().name.as_str(), "narrow");
        // cheap and fast both have one extra label beyond [self-hosted, gpu]? No: narrow has none.
        assert_eq!(match_tier(&catalog, &["self-hosted", "gpu"]).unwrap().name.as_str(), "narrow");
        // [gpu] fits narrow (1 extra), cheap (2), fast (2): narrow.
        assert_eq!(match_tier(&catalog, &["gpu"]).unwrap().name.as_str(), "narrow");
        let without_narrow =
            TierCatalog::new(catalog.tiers().iter().filter(|t| t.name.as_str() != "narrow").cloned().collect())
                .unwrap();
        // cheap and fast tie on specificity: fast has the lower priority value.
        assert_eq!(match_tier(&without_narrow, &["gpu"]).unwrap().name.as_str(), "fast");
    }
}
