//! Wiring of the EC2 provider (built with `--features ec2`): `[provider.ec2]` → `Ec2ProviderConfig`.

use anyhow::Context;
use ghr_cloud_ec2::{Ec2Provider, Ec2ProviderConfig};
use ghr_config::Config;
use ghr_core::ports::Provider;
use std::sync::Arc;

pub async fn provider(config: &Config) -> anyhow::Result<Arc<dyn Provider>> {
    let ec2 = Ec2ProviderConfig::from_section(&config.raw.provider.ec2, &config.raw.environment);
    let provider =
        Ec2Provider::new(ec2).await.with_context(|| format!("{}: [provider.ec2] is unusable", config.source))?;
    Ok(Arc::new(provider))
}
