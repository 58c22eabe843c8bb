//! The provider port: where runners run (EC2 instances, local processes) and its errors.

use crate::Timestamp;
use crate::ids::{InstallationId, InstanceId, MachineId, OrgName, RunnerName, TierName};
use async_trait::async_trait;
use secrecy::SecretString;

/// Everything a provider needs to start one runner.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub runner_name: RunnerName,
    pub installation_id: InstallationId,
    pub org_name: OrgName,
    /// The tenant's plan (tag `ghr:tenant_tier`).
    pub tenant_tier: TierName,
    /// The runner's size (tag `ghr:tier`).
    pub tier: TierName,
    pub instance_types: Vec<String>,
    /// The tier's CPU architecture (`x64`, `arm64`): which machine image the runner needs.
    pub runner_architecture: String,
    pub labels: Vec<String>,
    /// The single-use runner credential. Never logged, never persisted by ghr.
    pub jit_config: SecretString,
}

/// How a pool machine's agent reaches ghr: the server's base URL, its machine id and a one-time bootstrap
/// secret (ghr keeps only its hash).
#[derive(Debug, Clone)]
pub struct AgentBootstrap {
    pub server_url: String,
    pub machine: MachineId,
    pub secret: SecretString,
}

/// Everything a provider needs to start one tenant-neutral pool machine: no tenant, no registration.
#[derive(Debug, Clone)]
pub struct PoolLaunchRequest {
    /// The runner's size (tag `ghr:tier`); tag `ghr:pool_machine` carries the machine id.
    pub tier: TierName,
    pub instance_types: Vec<String>,
    pub runner_architecture: String,
    pub agent: AgentBootstrap,
}

/// Binding a pool machine to one runner of one tenant: the tenant's tags, applied at binding.
#[derive(Debug, Clone)]
pub struct BindRequest {
    pub runner_name: RunnerName,
    pub installation_id: InstallationId,
    pub org_name: OrgName,
    /// The tenant's plan (tag `ghr:tenant_tier`).
    pub tenant_tier: TierName,
}

/// Lifecycle state of an instance as the provider sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    /// Stopping or stopped: not serving but still costing or holding resources.
    Stopping,
    /// Gone (exited process, terminated instance).
    Terminated,
}

/// An instance ghr launched, as the provider lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: InstanceId,
    pub runner_name: Option<RunnerName>,
    pub installation_id: Option<InstallationId>,
    pub tier: Option<TierName>,
    pub state: InstanceState,
    pub launched_at: Option<Timestamp>,
    /// For EC2: the instance type that was actually launched.
    pub instance_type: Option<String>,
}

/// The cause of a [`ProviderError`], kept so that logs show the whole chain.
pub type ProviderCause = Box<dyn std::error::Error + Send + Sync>;

/// A provider failure: what the provider was doing, and the cause when there is one. The message
/// never repeats the cause (render the chain with [`crate::error::ErrorChain`]).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No capacity for any configured instance type / purchase option.
    #[error("no capacity: {message}")]
    Capacity {
        message: String,
        #[source]
        source: Option<ProviderCause>,
    },
    /// Account limit or throttling; retry later.
    #[error("provider throttled or over quota: {message}")]
    Throttled {
        message: String,
        #[source]
        source: Option<ProviderCause>,
    },
    /// The configuration cannot work (bad AMI, missing command, ...): retried, but an operator must act.
    #[error("provider configuration error: {message}")]
    Config {
        message: String,
        #[source]
        source: Option<ProviderCause>,
    },
    #[error("provider call failed: {message}")]
    Failed {
        message: String,
        #[source]
        source: Option<ProviderCause>,
    },
}

impl ProviderError {
    /// [`ProviderError::Capacity`] without a cause (add one with [`ProviderError::caused_by`]).
    pub fn capacity(message: impl Into<String>) -> Self {
        ProviderError::Capacity { message: message.into(), source: None }
    }

    /// [`ProviderError::Throttled`] without a cause.
    pub fn throttled(message: impl Into<String>) -> Self {
        ProviderError::Throttled { message: message.into(), source: None }
    }

    /// [`ProviderError::Config`] without a cause.
    pub fn config(message: impl Into<String>) -> Self {
        ProviderError::Config { message: message.into(), source: None }
    }

    /// [`ProviderError::Failed`] without a cause.
    pub fn failed(message: impl Into<String>) -> Self {
        ProviderError::Failed { message: message.into(), source: None }
    }

    /// The same error with `cause` as its source.
    pub fn caused_by(self, cause: impl Into<ProviderCause>) -> Self {
        let cause = Some(cause.into());
        match self {
            ProviderError::Capacity { message, .. } => ProviderError::Capacity { message, source: cause },
            ProviderError::Throttled { message, .. } => ProviderError::Throttled { message, source: cause },
            ProviderError::Config { message, .. } => ProviderError::Config { message, source: cause },
            ProviderError::Failed { message, .. } => ProviderError::Failed { message, source: cause },
        }
    }

    /// What the provider was doing, without the cause.
    pub fn message(&self) -> &str {
        match self {
            ProviderError::Capacity { message, .. }
            | ProviderError::Throttled { message, .. }
            | ProviderError::Config { message, .. }
            | ProviderError::Failed { message, .. } => message,
        }
    }
}

/// A place that runs runners: local processes, EC2, ...
#[async_trait]
pub trait Provider: Send + Sync {
    /// Short name for logs and metrics (`process`, `ec2`).
    fn name(&self) -> &'static str;
    /// Start one runner. On error nothing is left running.
    async fn launch(&self, request: LaunchRequest) -> Result<Instance, ProviderError>;
    /// Terminate an instance. Idempotent: an unknown or already-gone instance is not an error.
    async fn terminate(&self, id: &InstanceId) -> Result<(), ProviderError>;
    /// Every non-terminated instance of this deployment.
    async fn list(&self) -> Result<Vec<Instance>, ProviderError>;

    /// Whether [`Provider::launch_pool`] and [`Provider::bind`] work; wiring refuses `warm_pool` otherwise.
    fn supports_pools(&self) -> bool {
        false
    }
    /// Start one tenant-neutral machine running the agent. On error nothing is left running.
    async fn launch_pool(&self, request: PoolLaunchRequest) -> Result<Instance, ProviderError> {
        let _ = request;
        Err(ProviderError::config(format!("the {} provider does not keep warm pools", self.name())))
    }
    /// Tag a pool machine with its tenant and runner (every resource of it), at binding.
    async fn bind(&self, id: &InstanceId, request: &BindRequest) -> Result<(), ProviderError> {
        let _ = (id, request);
        Err(ProviderError::config(format!("the {} provider does not keep warm pools", self.name())))
    }
}
