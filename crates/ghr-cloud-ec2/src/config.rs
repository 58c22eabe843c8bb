//! The EC2 provider's configuration ([`Ec2ProviderConfig`]) and its validation.

use crate::agent_user_data::{DEFAULT_AGENT_PATH, DEFAULT_RUNNER_COMMAND};
use crate::tags::{MAX_EXTRA_TAGS, TAG_NAME, is_reserved_tag_key};
use crate::user_data::{DEFAULT_RUNNER_DIR, DEFAULT_RUNNER_USER, DEFAULT_USER_DATA_TEMPLATE, check_template};
use std::collections::BTreeMap;

/// Longest tag key EC2 accepts.
const MAX_TAG_KEY_LEN: usize = 128;
/// Longest tag value EC2 accepts.
const MAX_TAG_VALUE_LEN: usize = 256;

/// Which purchase option runners are launched with first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CapacityType {
    /// Spot instances (cheaper, interruptible); see [`Ec2ProviderConfig::fallback_to_on_demand`].
    #[default]
    Spot,
    /// On-demand instances only.
    OnDemand,
}

/// How the launch template is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchTemplateSelector {
    /// `lt-...`
    Id(String),
    Name(String),
}

/// A launch template to launch from; RunInstances parameters ghr sets override it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchTemplateRef {
    pub selector: LaunchTemplateSelector,
    /// A version number, `$Latest` or `$Default`; `None` uses the template's default version.
    pub version: Option<String>,
}

/// How the runner is started on the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDataConfig {
    /// Script template. Placeholders: `{{jit_config}}` (required), `{{runner_dir}}`, `{{runner_user}}`,
    /// `{{runner_name}}`. Defaults to [`DEFAULT_USER_DATA_TEMPLATE`].
    pub template: String,
    /// Directory of the installed Actions runner (holds `run.sh`).
    pub runner_dir: String,
    /// Unix user the runner runs as (`root` sets `RUNNER_ALLOW_RUNASROOT=1`).
    pub runner_user: String,
}

impl Default for UserDataConfig {
    fn default() -> Self {
        Self {
            template: DEFAULT_USER_DATA_TEMPLATE.to_owned(),
            runner_dir: DEFAULT_RUNNER_DIR.to_owned(),
            runner_user: DEFAULT_RUNNER_USER.to_owned(),
        }
    }
}

/// How a warm-pool machine starts `ghr-agent` (see [`crate::agent_user_data`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAgentConfig {
    /// Absolute path of `ghr-agent` on the image. Default [`DEFAULT_AGENT_PATH`].
    pub path: String,
    /// The runner program and its arguments; the agent appends the JIT config. Default
    /// `[`[`DEFAULT_RUNNER_COMMAND`]`]`.
    pub runner_command: Vec<String>,
}

impl Default for PoolAgentConfig {
    fn default() -> Self {
        Self { path: DEFAULT_AGENT_PATH.to_owned(), runner_command: vec![DEFAULT_RUNNER_COMMAND.to_owned()] }
    }
}

/// Everything the EC2 provider needs. The binary maps its configuration file onto this.
#[derive(Debug, Clone, PartialEq)]
pub struct Ec2ProviderConfig {
    /// AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// Endpoint override (moto, LocalStack); `None` for real AWS.
    pub endpoint_url: Option<String>,
    /// Deployment name: the value of the `ghr:environment` tag, and what [`crate::Ec2Provider`] lists by.
    pub environment: String,
    /// Launch template; at least one of this and [`Self::ami_id`] is needed.
    pub launch_template: Option<LaunchTemplateRef>,
    /// AMI; overrides the launch template's image when both are set.
    pub ami_id: Option<String>,
    /// AMIs by the tier's `runner_architecture` (`x64`, `arm64`), ahead of [`Self::ami_id`]: one deployment
    /// serves x64 and Graviton tiers.
    pub ami_ids: BTreeMap<String, String>,
    /// Subnets tried in order for each instance type; empty uses the launch template's or the default VPC's.
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    /// Instance profile name, or its ARN (`arn:...`).
    pub iam_instance_profile: Option<String>,
    pub capacity: CapacityType,
    /// With [`CapacityType::Spot`]: try on-demand once every spot attempt found no capacity.
    pub fallback_to_on_demand: bool,
    pub user_data: UserDataConfig,
    /// How warm-pool machines start their agent.
    pub agent: PoolAgentConfig,
    /// Extra tags on every instance, volume and network interface. Keys `ghr:*`, `aws:*` and `Name` are reserved.
    pub extra_tags: BTreeMap<String, String>,
}

impl Ec2ProviderConfig {
    /// A configuration with defaults: spot with on-demand fallback, the default runner script, no
    /// template, AMI, subnets or tags yet.
    pub fn new(region: impl Into<String>, environment: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            endpoint_url: None,
            environment: environment.into(),
            launch_template: None,
            ami_id: None,
            ami_ids: BTreeMap::new(),
            subnet_ids: Vec::new(),
            security_group_ids: Vec::new(),
            iam_instance_profile: None,
            capacity: CapacityType::Spot,
            fallback_to_on_demand: true,
            user_data: UserDataConfig::default(),
            agent: PoolAgentConfig::default(),
            extra_tags: BTreeMap::new(),
        }
    }

    /// The image a runner of `architecture` boots: its architecture's AMI, else `ami_id`; None leaves it to the
    /// launch template.
    pub fn image_for(&self, architecture: &str) -> Option<String> {
        self.ami_ids.get(architecture).or(self.ami_id.as_ref()).cloned()
    }

    /// Check what can be checked without calling AWS.
    pub fn validate(&self) -> Result<(), Ec2ConfigError> {
        if self.region.trim().is_empty() {
            return Err(Ec2ConfigError::Missing("region"));
        }
        if self.environment.trim().is_empty() {
            return Err(Ec2ConfigError::Missing("environment"));
        }
        if self.environment.len() > MAX_TAG_VALUE_LEN {
            return Err(Ec2ConfigError::Invalid { field: "environment", reason: "longer than 256 characters".into() });
        }
        if self.launch_template.is_none()
            && self.ami_id.as_deref().is_none_or(|ami| ami.trim().is_empty())
            && self.ami_ids.is_empty()
        {
            return Err(Ec2ConfigError::Missing("launch_template or ami_id"));
        }
        if let Some((architecture, _)) = self.ami_ids.iter().find(|(_, ami)| ami.trim().is_empty()) {
            return Err(Ec2ConfigError::Invalid {
                field: "ami_ids",
                reason: format!("the AMI of architecture {architecture:?} is empty"),
            });
        }
        if let Some(template) = &self.launch_template {
            let value = match &template.selector {
                LaunchTemplateSelector::Id(value) | LaunchTemplateSelector::Name(value) => value,
            };
            if value.trim().is_empty() {
                return Err(Ec2ConfigError::Invalid { field: "launch_template", reason: "empty id or name".into() });
            }
        }
        if self.subnet_ids.iter().any(|subnet| subnet.trim().is_empty()) {
            return Err(Ec2ConfigError::Invalid { field: "subnet_ids", reason: "contains an empty subnet id".into() });
        }
        self.validate_user_data()?;
        crate::agent_user_data::check_config(&self.agent)
            .map_err(|err| Ec2ConfigError::Invalid { field: "agent", reason: err.to_string() })?;
        self.validate_extra_tags()
    }

    fn validate_user_data(&self) -> Result<(), Ec2ConfigError> {
        let user_data = &self.user_data;
        check_template(&user_data.template)
            .map_err(|err| Ec2ConfigError::Invalid { field: "user_data.template", reason: err.to_string() })?;
        // Both values are pasted into a shell script: allow only what a path or user name needs.
        if !is_shell_safe(&user_data.runner_dir) || !user_data.runner_dir.starts_with('/') {
            return Err(Ec2ConfigError::Invalid {
                field: "user_data.runner_dir",
                reason: "must be an absolute path of letters, digits and . _ - /".into(),
            });
        }
        if !is_shell_safe(&user_data.runner_user) || user_data.runner_user.contains('/') {
            return Err(Ec2ConfigError::Invalid {
                field: "user_data.runner_user",
                reason: "must be a user name of letters, digits and . _ -".into(),
            });
        }
        Ok(())
    }

    fn validate_extra_tags(&self) -> Result<(), Ec2ConfigError> {
        if self.extra_tags.len() > MAX_EXTRA_TAGS {
            return Err(Ec2ConfigError::Invalid {
                field: "extra_tags",
                reason: format!("{} tags; at most {MAX_EXTRA_TAGS} fit beside ghr's own", self.extra_tags.len()),
            });
        }
        for (key, value) in &self.extra_tags {
            if key.is_empty() || key.len() > MAX_TAG_KEY_LEN || value.len() > MAX_TAG_VALUE_LEN {
                return Err(Ec2ConfigError::Invalid {
                    field: "extra_tags",
                    reason: format!("tag {key:?}: keys need 1 to 128 characters, values at most 256"),
                });
            }
            if is_reserved_tag_key(key) {
                return Err(Ec2ConfigError::Invalid {
                    field: "extra_tags",
                    reason: format!("tag key {key:?} is reserved (ghr:*, aws:* and {TAG_NAME} are set by ghr or AWS)"),
                });
            }
        }
        Ok(())
    }
}

fn is_shell_safe(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

/// Why an [`Ec2ProviderConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Ec2ConfigError {
    #[error("EC2 provider configuration is missing {0}")]
    Missing(&'static str),
    #[error("EC2 provider configuration field {field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Ec2ProviderConfig {
        let mut config = Ec2ProviderConfig::new("eu-west-1", "prod");
        config.ami_id = Some("ami-123".into());
        config
    }

    #[test]
    fn defaults_are_valid_once_an_image_is_set() {
        assert!(valid().validate().is_ok());
        let mut config = Ec2ProviderConfig::new("eu-west-1", "prod");
        assert!(matches!(config.validate(), Err(Ec2ConfigError::Missing("launch_template or ami_id"))));
        config.launch_template = Some(LaunchTemplateRef {
            selector: LaunchTemplateSelector::Name("ghr-runner".into()),
            version: Some("$Latest".into()),
        });
        assert!(config.validate().is_ok());
    }

    #[test]
    fn rejects_unusable_values() {
        type Mutation = fn(&mut Ec2ProviderConfig);
        let cases: &[(&str, Mutation)] = &[
            ("region", |c| c.region = " ".into()),
            ("environment", |c| c.environment = String::new()),
            ("environment", |c| c.environment = "e".repeat(257)),
            ("ami", |c| c.ami_id = Some(" ".into())),
            ("subnet", |c| c.subnet_ids = vec!["subnet-1".into(), String::new()]),
            ("template", |c| c.user_data.template = "#!/bin/sh\necho no config".into()),
            ("runner_dir", |c| c.user_data.runner_dir = "/opt/x; rm -rf /".into()),
            ("runner_dir", |c| c.user_data.runner_dir = "relative/dir".into()),
            ("runner_user", |c| c.user_data.runner_user = "$(id)".into()),
            ("agent path", |c| c.agent.path = "ghr-agent".into()),
            ("agent path", |c| c.agent.path = "/opt/ghr/ghr-agent\nreboot".into()),
            ("runner command", |c| c.agent.runner_command = Vec::new()),
            ("runner command", |c| c.agent.runner_command = vec![" ".into()]),
            ("tag ghr", |c| _ = c.extra_tags.insert("ghr:tenant_id".into(), "1".into())),
            ("tag Name", |c| _ = c.extra_tags.insert("Name".into(), "x".into())),
            ("tag aws", |c| _ = c.extra_tags.insert("aws:foo".into(), "x".into())),
            ("tag long", |c| _ = c.extra_tags.insert("k".into(), "v".repeat(257))),
            ("tag count", |c| c.extra_tags = (0..=MAX_EXTRA_TAGS).map(|i| (format!("k{i}"), "v".into())).collect()),
        ];
        for (what, mutate) in cases {
            let mut config = valid();
            mutate(&mut config);
            assert!(config.validate().is_err(), "{what} should be rejected");
        }
    }

    #[test]
    fn accepts_ordinary_extra_tags() {
        let mut config = valid();
        config.extra_tags.insert("Project".into(), "ci".into());
        config.extra_tags.insert("cost-center".into(), "42".into());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_runner_boots_its_architectures_ami_else_the_default_one() {
        let mut config = Ec2ProviderConfig::new("us-east-1", "prod");
        assert_eq!(config.image_for("x64"), None, "left to the launch template");
        config.ami_id = Some("ami-default".into());
        config.ami_ids.insert("arm64".into(), "ami-graviton".into());
        assert_eq!(config.image_for("arm64").as_deref(), Some("ami-graviton"));
        assert_eq!(config.image_for("x64").as_deref(), Some("ami-default"));
        config.ami_id = None;
        assert_eq!(config.image_for("x64"), None);
        assert!(config.validate().is_ok(), "per-architecture AMIs alone are enough to start");
        config.ami_ids.insert("x64".into(), " ".into());
        assert!(matches!(config.validate(), Err(Ec2ConfigError::Invalid { field: "ami_ids", .. })));
    }
}
