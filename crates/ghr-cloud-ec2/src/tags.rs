//! The tags ghr puts on every runner instance (and its volumes and network interfaces), and reading them back.
//!
//! A cold runner is tagged with its tenant at launch ([`runner_tags`]). A warm-pool machine starts
//! tenant-neutral ([`pool_tags`]) and gets its tenant's tags when it is bound ([`bind_tags`]).

use ghr_core::ids::{InstallationId, MachineId, RunnerName, TierName};
use ghr_core::ports::{BindRequest, LaunchRequest};
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
/// The warm-pool machine id of a pool instance (absent on a cold runner's instance).
pub const TAG_POOL_MACHINE: &str = "ghr:pool_machine";
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
/// How many tags ghr sets on a cold runner's resources.
const RUNNER_TAG_COUNT: usize = 7;
/// How many tags ghr sets on a pool machine's resources at launch.
const POOL_TAG_COUNT: usize = 4;
/// How many tags binding adds to a pool machine's resources.
const BIND_TAG_COUNT: usize = 4;
/// The most tags ghr itself puts on one resource (a bound pool machine has the most).
const MAX_OWN_TAG_COUNT: usize =
    if RUNNER_TAG_COUNT > POOL_TAG_COUNT + BIND_TAG_COUNT { RUNNER_TAG_COUNT } else { POOL_TAG_COUNT + BIND_TAG_COUNT };
/// How many operator tags fit beside ghr's own.
pub const MAX_EXTRA_TAGS: usize = MAX_TAGS_PER_RESOURCE - MAX_OWN_TAG_COUNT;

/// Whether an operator may not set this key as an extra tag.
pub fn is_reserved_tag_key(key: &str) -> bool {
    key.starts_with(GHR_TAG_PREFIX) || key.starts_with(AWS_TAG_PREFIX) || key == TAG_NAME
}

/// The `Name` tag value: the runner name, prefixed with `ghr-` unless it already is.
pub fn instance_name(runner: &RunnerName) -> String {
    prefixed_name(runner.as_str())
}

/// The `Name` tag value of a pool machine: its machine id, prefixed with `ghr-` unless it already is.
pub fn pool_instance_name(machine: &MachineId) -> String {
    prefixed_name(machine.as_str())
}

fn prefixed_name(name: &str) -> String {
    if name.starts_with(NAME_PREFIX) { name.to_owned() } else { format!("{NAME_PREFIX}{name}") }
}

/// Every tag of a runner's resources, ghr's own first, then the operator's extra tags (which
/// configuration validation keeps away from ghr's keys).
pub fn runner_tags(
    environment: &str,
    request: &LaunchRequest,
    extra: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    // The array type makes the compiler check RUNNER_TAG_COUNT.
    let own: [(&str, String); RUNNER_TAG_COUNT] = [
        (TAG_NAME, instance_name(&request.runner_name)),
        (TAG_ENVIRONMENT, environment.to_owned()),
        (TAG_RUNNER_NAME, request.runner_name.to_string()),
        (TAG_TENANT_ID, request.installation_id.to_string()),
        (TAG_TENANT_TIER, request.tenant_tier.to_string()),
        (TAG_TIER, request.tier.to_string()),
        (TAG_ORG, request.org_name.to_string()),
    ];
    with_extra_tags(own, extra)
}

/// Every tag of a pool machine's resources at launch: no tenant, no runner (those come with [`bind_tags`]).
pub fn pool_tags(
    environment: &str,
    tier: &TierName,
    machine: &MachineId,
    extra: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let own: [(&str, String); POOL_TAG_COUNT] = [
        (TAG_NAME, pool_instance_name(machine)),
        (TAG_ENVIRONMENT, environment.to_owned()),
        (TAG_TIER, tier.to_string()),
        (TAG_POOL_MACHINE, machine.to_string()),
    ];
    with_extra_tags(own, extra)
}

/// The tenant's tags a pool machine's resources get when it is bound to a runner.
pub fn bind_tags(request: &BindRequest) -> Vec<(String, String)> {
    let own: [(&str, String); BIND_TAG_COUNT] = [
        (TAG_TENANT_ID, request.installation_id.to_string()),
        (TAG_TENANT_TIER, request.tenant_tier.to_string()),
        (TAG_RUNNER_NAME, request.runner_name.to_string()),
        (TAG_ORG, request.org_name.to_string()),
    ];
    own.into_iter().map(|(key, value)| (key.to_owned(), value)).collect()
}

fn with_extra_tags<const N: usize>(
    own: [(&str, String); N],
    extra: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
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
    /// Set on a warm-pool machine (bound or not).
    pub pool_machine: Option<MachineId>,
}

impl RunnerTags {
    pub fn parse(tags: &BTreeMap<String, String>) -> Self {
        let non_empty = |key: &str| tags.get(key).map(|value| value.trim()).filter(|value| !value.is_empty());
        Self {
            runner_name: non_empty(TAG_RUNNER_NAME).map(RunnerName::new),
            installation_id: non_empty(TAG_TENANT_ID).and_then(|value| value.parse().ok()),
            tier: non_empty(TAG_TIER).map(TierName::new),
            pool_machine: non_empty(TAG_POOL_MACHINE).map(MachineId::new),
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
        assert_eq!(tags.len(), RUNNER_TAG_COUNT);
        assert!(tags.iter().all(|(_, value)| value != "666" && value != "evil"));
        let pool = pool_tags("prod", &TierName::new("large"), &MachineId::new("pool-large-1"), &extra);
        assert_eq!(pool.len(), POOL_TAG_COUNT);
        assert!(pool.iter().all(|(_, value)| value != "666" && value != "evil"));
    }

    #[test]
    fn a_pool_machine_is_tenant_neutral_until_bound() {
        let extra = BTreeMap::from([("Project".to_owned(), "ci".to_owned())]);
        let machine = MachineId::new("pool-large-x7");
        let tags: BTreeMap<String, String> =
            pool_tags("prod", &TierName::new("large"), &machine, &extra).into_iter().collect();
        let expected = BTreeMap::from([
            ("Name".to_owned(), "ghr-pool-large-x7".to_owned()),
            ("ghr:environment".to_owned(), "prod".to_owned()),
            ("ghr:tier".to_owned(), "large".to_owned()),
            ("ghr:pool_machine".to_owned(), "pool-large-x7".to_owned()),
            ("Project".to_owned(), "ci".to_owned()),
        ]);
        assert_eq!(tags, expected);
        let parsed = RunnerTags::parse(&tags);
        assert_eq!((parsed.runner_name, parsed.installation_id), (None, None));
        assert_eq!(parsed.pool_machine, Some(machine.clone()));

        let bind = BindRequest {
            runner_name: RunnerName::new("ghr-prod-42-large-7"),
            installation_id: InstallationId(42),
            org_name: OrgName::new("acme"),
            tenant_tier: TierName::new("pro"),
        };
        let bound: BTreeMap<String, String> = tags.into_iter().chain(bind_tags(&bind)).collect();
        assert_eq!(bound.len(), POOL_TAG_COUNT + BIND_TAG_COUNT + extra.len());
        assert!(bound.len() - extra.len() <= MAX_TAGS_PER_RESOURCE - MAX_EXTRA_TAGS);
        assert_eq!(
            RunnerTags::parse(&bound),
            RunnerTags {
                runner_name: Some(RunnerName::new("ghr-prod-42-large-7")),
                installation_id: Some(InstallationId(42)),
                tier: Some(TierName::new("large")),
                pool_machine: Some(machine),
            }
        );
        assert_eq!(bound["ghr:tenant_tier"], "pro");
        assert_eq!(bound["ghr:org"], "acme");
    }

    #[test]
    fn names_instances_once_with_the_prefix() {
        let cases = [("ghr-prod-1-small-2", "ghr-prod-1-small-2"), ("custom-1", "ghr-custom-1")];
        for (runner, name) in cases {
            assert_eq!(instance_name(&RunnerName::new(runner)), name);
        }
        assert_eq!(pool_instance_name(&MachineId::new("pool-small-1")), "ghr-pool-small-1");
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
                pool_machine: None,
            }
        );
        let garbage = BTreeMap::from([
            (TAG_TENANT_ID.to_owned(), "not-a-number".to_owned()),
            (TAG_RUNNER_NAME.to_owned(), "  ".to_owned()),
        ]);
        assert_eq!(RunnerTags::parse(&garbage), RunnerTags::default());
    }
}
