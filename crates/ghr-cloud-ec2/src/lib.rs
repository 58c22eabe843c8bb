//! EC2 runner provider (aws-sdk-ec2), kept in its own crate so the default build stays fast.
//!
//! [`Ec2Provider`] implements [`ghr_core::ports::Provider`]: one RunInstances call per runner, trying
//! the tier's instance types × the configured subnets, spot first and on-demand as a fallback when
//! configured; every instance, volume and network interface carries the `ghr:*` tags in [`tags`]; the
//! user data runs the Actions runner with its JIT config and powers the instance off afterwards
//! (`InstanceInitiatedShutdownBehavior=terminate`), so an instance ends with its job even when ghr is down.
//!
//! Warm pools: [`ghr_core::ports::Provider::launch_pool`] launches the same way a tenant-neutral machine that
//! runs `ghr-agent` ([`agent_user_data`]), tagged without any tenant; [`ghr_core::ports::Provider::bind`] tags
//! it (instance, volumes, network interfaces) with its tenant and runner when a job claims it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ghr_cloud_ec2::{Ec2Provider, Ec2ProviderConfig};
//! let mut config = Ec2ProviderConfig::new("eu-west-1", "prod");
//! config.ami_id = Some("ami-0123456789abcdef0".into());
//! config.subnet_ids = vec!["subnet-a".into(), "subnet-b".into()];
//! let provider = Ec2Provider::new(config).await?;
//! # Ok(()) }
//! ```

pub mod agent_user_data;
pub mod api;
pub mod config;
pub mod error;
mod from_config;
pub mod plan;
mod pool;
mod provider;
pub mod tags;
pub mod user_data;

pub use api::{Ec2Api, SdkEc2Api};
pub use config::{
    CapacityType, Ec2ConfigError, Ec2ProviderConfig, LaunchTemplateRef, LaunchTemplateSelector, PoolAgentConfig,
    UserDataConfig,
};
pub use error::{Ec2ApiError, ErrorClass};
pub use provider::{DESCRIBE_PAGE_SIZE, Ec2Provider, LISTED_STATES, PROVIDER_NAME};
pub use tags::{
    TAG_ENVIRONMENT, TAG_NAME, TAG_ORG, TAG_POOL_MACHINE, TAG_RUNNER_NAME, TAG_TENANT_ID, TAG_TENANT_TIER, TAG_TIER,
};
