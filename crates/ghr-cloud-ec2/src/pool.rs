//! Warm-pool machines on EC2: launching a tenant-neutral instance that runs `ghr-agent`, and binding it to a
//! tenant's runner by tagging the instance, its volumes and its network interfaces.

use crate::Ec2Provider;
use crate::agent_user_data::{AgentUserDataError, render_agent_user_data};
use crate::provider::{Subject, api_error, launched_instance};
use crate::tags::{RunnerTags, TAG_ENVIRONMENT, bind_tags, pool_tags};
use crate::user_data::encode_user_data;
use ghr_core::ids::{InstanceId, MachineId};
use ghr_core::ports::{BindRequest, Instance, InstanceState, PoolLaunchRequest, ProviderError};

/// The DescribeInstances filter on one instance id.
const INSTANCE_ID_FILTER: &str = "instance-id";

impl Ec2Provider {
    /// [`ghr_core::ports::Provider::launch_pool`]: a cold launch's attempts, with tenant-neutral tags and user
    /// data that starts the agent (never a JIT config).
    pub(crate) async fn launch_pool_machine(&self, request: PoolLaunchRequest) -> Result<Instance, ProviderError> {
        let machine = &request.agent.machine;
        let subject = Subject::PoolMachine(machine);
        let image_id =
            self.image_to_launch(&subject, &request.instance_types, &request.tier, &request.runner_architecture)?;
        let script = render_agent_user_data(&self.config().agent, &request.agent)
            .map_err(|err| agent_user_data_error(machine, err))?;
        let tags = pool_tags(&self.config().environment, &request.tier, machine, &self.config().extra_tags);
        let (launched, attempt) =
            self.run_attempts(&subject, &request.instance_types, image_id, &tags, &encode_user_data(&script)).await?;
        Ok(launched_instance(launched, &request.tier, &attempt))
    }

    /// [`ghr_core::ports::Provider::bind`]: the tenant's tags on a live pool instance of this environment and on
    /// its volumes and network interfaces. Binding again to the same runner re-applies the same tags; binding a
    /// machine already bound to another runner is refused.
    pub(crate) async fn bind_machine(&self, id: &InstanceId, request: &BindRequest) -> Result<(), ProviderError> {
        let environment = &self.config().environment;
        let context = || format!("binding instance {id} to runner {}", request.runner_name);
        let filters = vec![
            (INSTANCE_ID_FILTER.to_owned(), vec![id.to_string()]),
            (format!("tag:{TAG_ENVIRONMENT}"), vec![environment.clone()]),
        ];
        let found = self.describe_all(filters).await.map_err(|err| api_error(context(), err))?;
        let instance = match found.as_slice() {
            [instance] => instance,
            [] => {
                return Err(ProviderError::failed(format!(
                    "{}: no instance {id} in environment {environment}",
                    context()
                )));
            }
            many => {
                return Err(ProviderError::failed(format!(
                    "{}: DescribeInstances answered {} instances for one id",
                    context(),
                    many.len()
                )));
            }
        };
        match instance.state {
            Some(InstanceState::Terminated) => {
                return Err(ProviderError::failed(format!("{}: the instance is terminated", context())));
            }
            Some(InstanceState::Stopping) => {
                return Err(ProviderError::failed(format!("{}: the instance is stopping or stopped", context())));
            }
            Some(InstanceState::Pending | InstanceState::Running) | None => {}
        }
        let tags = RunnerTags::parse(&instance.tags);
        if tags.pool_machine.is_none() {
            return Err(ProviderError::failed(format!("{}: the instance is not a warm-pool machine", context())));
        }
        if let Some(bound) = tags.runner_name.filter(|bound| *bound != request.runner_name) {
            return Err(ProviderError::failed(format!(
                "{}: the instance is already bound to runner {bound}",
                context()
            )));
        }
        let resources: Vec<String> = std::iter::once(instance.id.clone())
            .chain(instance.volume_ids.iter().cloned())
            .chain(instance.network_interface_ids.iter().cloned())
            .collect();
        self.api().create_tags(&resources, &bind_tags(request)).await.map_err(|err| api_error(context(), err))?;
        tracing::info!(
            instance_id = %id,
            runner = %request.runner_name,
            installation_id = %request.installation_id,
            resources = resources.len(),
            "bound pool machine to its runner"
        );
        Ok(())
    }
}

fn agent_user_data_error(machine: &MachineId, err: AgentUserDataError) -> ProviderError {
    let context = format!("building user data for pool machine {machine}");
    if err.is_config() { ProviderError::config(context) } else { ProviderError::failed(context) }.caused_by(err)
}
