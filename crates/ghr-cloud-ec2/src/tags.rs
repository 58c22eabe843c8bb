//! The tags ghr puts on every runner instance (and its volumes and network interfaces), and reading them back.

use ghr_core::ids::{InstallationId, RunnerName, TierName};
use ghr_core::ports::LaunchRequest;
use std::collections::BTreeMap;

/// The tenant: the GitHub App installation id.
pub const TAG_TENANT_ID: &str = "ghr:tenant_id";
/// The tenant's plan (entitlement tier).
pub const TAG_TENANT_TIER: &str = "ghr:tenant_tier";
/// The runner's size (the tier the instance was launched for).
pub const TAG_TIER: &str = "ghr:tier";
/// The deployment; [`crate::Ec2Provider`] lists and owns only instances with its own value.
pub const TAG_ENVIRONMENT: &str = "ghr:environment";
/// The runner name shared by ghr, GitHub and the instance.
pub const TAG_RUNNER_NAME: &str = "ghr:runner_name";
/// The tenant's organisation or user login (for cost reports; ghr does not read it back).
pub const TAG_ORG: &str = "ghr:org";
/// The console name of the instance.
pub const TAG_NAME: &str = "Name";

/// The prefix of every tag key ghr owns.
pub const GHR_TAG_PREFIX: &str = "ghr:";
/// The prefix AWS reserves for its own tags.
const AWS_TAG_PREFIX: &str = "aws:";
/// The prefix of the `Name` tag value.
const NAME_PREFIX: &str = "ghr-";
/// EC2's limit of tags per resource.
const MAX_TAGS_PER_RESOURCE: usize = 50;
/// How many tags ghr sets itself.
const OWN_TAG_COUNT: usize = 7;
/// How many operator tags fit beside ghr's own.
pub const MAX_EXTRA_TAGS: usize = MAX_TAGS_PER_RESOURCE - OWN_TAG_COUNT;

/// Whether an operator may not set this key as an extra tag.
pub fn is_reserved_tag_key(key: &str) -> bool {
    key.starts_with(GHR_TAG_PREFIX) || key.starts_with(AWS_TAG_PREFIX) || key == TAG_NAME
}

/// The `Name` tag value: the runner name, prefixed with `ghr-` unless it already is.
pub fn instance_name(runner: &RunnerName) -> String {
    let name = runner.as_str();
    if name.starts_with(NAME_PREFIX) { name.to_owned() } else { format!("{NAME_PREFIX}{name}") }
}

/// Every tag of a runner's resources, ghr's own first, then the operator's extra tags (which
/// configuration validation keeps away from ghr's keys).
pub fn runner_tags(
    environment: &str,
    request: &LaunchRequest,
    extra: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    // The array type makes the compiler check OWN_TAG_COUNT.
    let own: [(&str, String); OWN_TAG_COUNT] = [
        (TAG_NAME, instance_name(&request.runner_name)),
        (TAG_ENVIRONMENT, environment.to_owned()),
        (TAG_RUNNER_NAME, request.runner_name.to_string()),
        (TAG_TENANT_ID, request.installation_id.to_string()),
        (TAG_TENANT_TIER, request.tenant_tier.to_string()),
        (TAG_TIER, request.tier.to_string()),
        (TAG_ORG, request.org_name.to_string()),
    ];
    own.into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .chain(extra.iter().filter(|(key, _)| !is_reserved_tag_key(key)).map(|(k, v)| (k.clone(), v.clone())))
        .collect()
}

/// What ghr reads back from an instance's tags. A missing or unreadable tag is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunnerTags {
    pub runner_name: Option<RunnerName>,
    pub installation_id: Option<InstallationId>,
    pub tier: Option<TierName>,
}

impl RunnerTags {
    pub fn parse(tags: &BTreeMap<String, String>) -> Self {
        let non_empty = |key: &str| tags.get(key).map(|value| value.trim()).filter(|value| !value.is_empty());
        Self {
            runner_name: non_empty(TAG_RUNNER_NAME).map(RunnerName::new),
            installation_id: non_empty(TAG_TENANT_ID).and_then(|value| value.parse().ok()),
            tier: non_empty(TAG_TIER).map(TierName::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghr_core::ids::OrgName;
    use secrecy::SecretString;

    fn request() -> LaunchRequest {
        LaunchRequest {
            runner_architecture: "x64".into(),
            runner_name: RunnerName::new("ghr-prod-42-large-7"),
            installation_id: InstallationId(42),
            org_name: OrgName::new("acme"),
            tenant_tier: TierName::new("pro"),
            tier: TierName::new("large"),
            instance_types: vec!["c7i.xlarge".into()],
            labels: vec!["ghr-large".into()],
            jit_config: SecretString::from("c2VjcmV0"),
        }
    }

    #[test]
    fn builds_ghr_tags_then_extra_tags() {
        let extra = BTreeMap::from([("Project".to_owned(), "ci".to_owned())]);
        let tags = runner_tags("prod", &request(), &extra);
        let expected: Vec<(String, String)> = [
            ("Name", "ghr-prod-42-large-7"),
            ("ghr:environment", "prod"),
            ("ghr:runner_name", "ghr-prod-42-large-7"),
            ("ghr:tenant_id", "42"),
            ("ghr:tenant_tier", "pro"),
            ("ghr:tier", "large"),
            ("ghr:org", "acme"),
            ("Project", "ci"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(tags, expected);
    }

    #[test]
    fn extra_tags_never_override_ghr_tags() {
        let extra = BTreeMap::from([
            (TAG_TENANT_ID.to_owned(), "666".to_owned()),
            (TAG_NAME.to_owned(), "evil".to_owned()),
            ("aws:cloudformation".to_owned(), "x".to_owned()),
        ]);
        let tags = runner_tags("prod", &request(), &extra);
        assert_eq!(tags.len(), OWN_TAG_COUNT);
        assert!(tags.iter().all(|(_, value)| value != "666" && value != "evil"));
    }

    #[test]
    fn names_instances_once_with_the_prefix() {
        let cases = [("ghr-prod-1-small-2", "ghr-prod-1-small-2"), ("custom-1", "ghr-custom-1")];
        for (runner, name) in cases {
            assert_eq!(instance_name(&RunnerName::new(runner)), name);
        }
    }

    #[test]
    fn reserved_keys() {
        for (key, reserved) in [("ghr:x", true), ("aws:x", true), ("Name", true), ("name", false), ("Team", false)] {
            assert_eq!(is_reserved_tag_key(key), reserved, "{key}");
        }
    }

    #[test]
    fn parses_tags_back_and_tolerates_garbage() {
        let own: BTreeMap<String, String> = runner_tags("prod", &request(), &BTreeMap::new()).into_iter().collect();
        assert_eq!(
            RunnerTags::parse(&own),
            RunnerTags {
                runner_name: Some(RunnerName::new("ghr-prod-42-large-7")),
                installation_id: Some(InstallationId(42)),
                tier: Some(TierName::new("large")),
            }
        );
        let garbage = BTreeMap::from([
            (TAG_TENANT_ID.to_owned(), "not-a-number".to_owned()),
            (TAG_RUNNER_NAME.to_owned(), "  ".to_owned()),
        ]);
        assert_eq!(RunnerTags::parse(&garbage), RunnerTags::default());
    }
}
