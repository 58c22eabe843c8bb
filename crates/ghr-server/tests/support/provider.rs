//! A provider that "launches" instantly: it records instances in memory so the engine's launch and teardown
//! paths run for real without starting anything.

use async_trait::async_trait;
use chrono::Utc;
use ghr_core::ids::InstanceId;
use ghr_core::ports::{Instance, InstanceState, LaunchRequest, Provider, ProviderError};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// Prefix of the instance ids it hands out.
pub const INSTANCE_PREFIX: &str = "rec-";

#[derive(Debug, Default)]
pub struct RecordingProvider {
    running: Mutex<BTreeMap<InstanceId, Instance>>,
}

impl RecordingProvider {
    /// The instances currently running.
    pub fn running(&self) -> Vec<Instance> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }
}

#[async_trait]
impl Provider for RecordingProvider {
    fn name(&self) -> &'static str {
        "recording"
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Instance, ProviderError> {
        let instance = Instance {
            id: InstanceId::new(format!("{INSTANCE_PREFIX}{}", request.runner_name)),
            runner_name: Some(request.runner_name),
            installation_id: Some(request.installation_id),
            tier: Some(request.tier),
            state: InstanceState::Running,
            launched_at: Some(Utc::now()),
            instance_type: request.instance_types.first().cloned(),
        };
        self.running.lock().unwrap_or_else(PoisonError::into_inner).insert(instance.id.clone(), instance.clone());
        Ok(instance)
    }

    async fn terminate(&self, id: &InstanceId) -> Result<(), ProviderError> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        Ok(self.running())
    }
}
