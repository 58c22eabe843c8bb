//! `[provider.ec2]` of ghr's configuration as an [`Ec2ProviderConfig`]: the one mapping `ghr serve` and the
//! serverless functions share.

use crate::config::{CapacityType, Ec2ProviderConfig, LaunchTemplateRef, LaunchTemplateSelector, PoolAgentConfig};

impl Ec2ProviderConfig {
    /// The provider settings `[provider.ec2]` describes, for the deployment `environment`.
    pub fn from_section(section: &ghr_config::Ec2Section, environment: &str) -> Ec2ProviderConfig {
        let mut ec2 = Ec2ProviderConfig::new(section.region.clone(), environment.to_owned());
        ec2.endpoint_url = section.endpoint_url.clone();
        ec2.launch_template = section.launch_template.as_ref().map(|t| LaunchTemplateRef {
            selector: if t.starts_with("lt-") {
                LaunchTemplateSelector::Id(t.clone())
            } else {
                LaunchTemplateSelector::Name(t.clone())
            },
            version: None,
        });
        ec2.ami_id = section.ami_id.clone();
        ec2.ami_ids = section.ami_ids.clone();
        ec2.subnet_ids = section.subnets.clone();
        ec2.security_group_ids = section.security_groups.clone();
        ec2.iam_instance_profile = section.iam_instance_profile.clone();
        ec2.capacity = match section.capacity {
            ghr_config::CapacityType::Spot => CapacityType::Spot,
            ghr_config::CapacityType::OnDemand => CapacityType::OnDemand,
        };
        ec2.fallback_to_on_demand = section.fallback_to_on_demand;
        ec2.agent =
            PoolAgentConfig { path: section.agent_path.clone(), runner_command: section.runner_command.clone() };
        ec2
    }
}
