//! Wiring of the EC2 provider (built with `--features ec2`): `[provider.ec2]` → `Ec2ProviderConfig`.

use anyhow::Context;
use ghr_cloud_ec2::{CapacityType, Ec2Provider, Ec2ProviderConfig, LaunchTemplateRef, LaunchTemplateSelector};
use ghr_config::Config;
use ghr_core::ports::Provider;
use std::sync::Arc;

pub async fn provider(config: &Config) -> anyhow::Result<Arc<dyn Provider>> {
    let section = &config.raw.provider.ec2;
    let mut ec2 = Ec2ProviderConfig::new(section.region.clone(), config.raw.environment.clone());
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
    ec2.subnet_ids = section.subnets.clone();
    ec2.security_group_ids = section.security_groups.clone();
    ec2.iam_instance_profile = section.iam_instance_profile.clone();
    ec2.capacity = match section.capacity {
        ghr_config::CapacityType::Spot => CapacityType::Spot,
        ghr_config::CapacityType::OnDemand => CapacityType::OnDemand,
    };
    ec2.fallback_to_on_demand = section.fallback_to_on_demand;
    let provider =
        Ec2Provider::new(ec2).await.with_context(|| format!("{}: [provider.ec2] is unusable", config.source))?;
    Ok(Arc::new(provider))
}
