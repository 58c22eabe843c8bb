//! Warm-pool machines of the process provider: one `ghr agent` process group per machine, started
//! tenant-neutral (its state file names no runner and no tenant) with the bootstrap secret on its standard
//! input, and bound by recording the tenant in its state file (the process provider's tags). The agent runs
//! the provider's runner command once ghr assigns it, with the JIT config on the runner's standard input.

use super::config::{ENV_ENVIRONMENT, ENV_TIER, resolve_program};
use super::error::{ProcessError, error_chain};
use super::provider::Inner;
use super::state::{InstanceRecord, ProcessKey};
use ghr_api::agent::{
    ENV_AGENT_JITCONFIG_TO, ENV_AGENT_MACHINE, ENV_AGENT_RUNNER_COMMAND, ENV_AGENT_SECRET_STDIN, ENV_AGENT_URL,
};
use ghr_core::ids::{InstanceId, RunnerName};
use ghr_core::ports::{BindRequest, PoolLaunchRequest, ProviderError};
use secrecy::ExposeSecret;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

impl Inner {
    pub(super) async fn launch_pool(&self, request: &PoolLaunchRequest) -> Result<InstanceRecord, ProviderError> {
        let config = |message: String| ProviderError::config(format!("process provider: {message}"));
        let Some((program, args)) = self.config.agent_command.split_first() else {
            return Err(config(
                "agent_command is empty: set it to the agent program (e.g. [\"ghr\", \"agent\"])".into(),
            ));
        };
        let path = self.base_environment.get("PATH").cloned().unwrap_or_default();
        let program = resolve_program(program, &path).map_err(config)?;
        let runner_command = serde_json::to_string(&self.config.command)
            .map_err(|e| config(format!("runner command cannot be encoded: {e}")))?;
        let machine = &request.agent.machine;
        let log_file = self.dirs.log_path(&RunnerName::new(machine.as_str()));
        let (stdout, stderr) = super::provider::open_log_pair(&log_file)?;
        let mut command = Command::new(&program);
        command
            .args(args)
            .env_clear()
            .envs(&self.base_environment)
            .env(ENV_AGENT_URL, &request.agent.server_url)
            .env(ENV_AGENT_MACHINE, machine.as_str())
            .env(ENV_AGENT_RUNNER_COMMAND, runner_command)
            .env(ENV_AGENT_JITCONFIG_TO, "stdin")
            .env(ENV_AGENT_SECRET_STDIN, "true")
            .env(ENV_TIER, request.tier.as_str())
            .env(ENV_ENVIRONMENT, &self.config.environment)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(false);
        let mut child = command.spawn().map_err(|source| ProcessError::Spawn { program: program.clone(), source })?;
        let key = match self.identify(&child) {
            Ok(key) => key,
            Err(error) => return Err(super::provider::abort_launch(child, error, None, &self.dirs).await.into()),
        };
        let mut record = InstanceRecord::new(
            key,
            &self.config.environment,
            RunnerName::new(""),
            ghr_core::ids::InstallationId(0),
            request.tier.clone(),
            chrono::Utc::now(),
            log_file,
        );
        record.runner_name = None;
        record.installation_id = None;
        record.pool_machine = Some(machine.clone());
        let dirs = self.dirs.clone();
        let to_write = record.clone();
        let written = match tokio::task::spawn_blocking(move || dirs.write(&to_write)).await {
            Ok(written) => written,
            Err(source) => Err(ProcessError::Join { source }),
        };
        if let Err(error) = written {
            return Err(super::provider::abort_launch(child, error, Some(key), &self.dirs).await.into());
        }
        if let Some(mut stdin) = child.stdin.take() {
            let write = async {
                stdin.write_all(request.agent.secret.expose_secret().as_bytes()).await?;
                stdin.write_all(b"\n").await?;
                stdin.shutdown().await
            };
            let written = tokio::time::timeout(super::provider::STDIN_WRITE_TIMEOUT, write).await;
            let error = match written {
                Ok(Ok(())) => None,
                Ok(Err(source)) => Some(ProcessError::Stdin { source }),
                Err(_) => Some(ProcessError::StdinTimeout(super::provider::STDIN_WRITE_TIMEOUT)),
            };
            if let Some(error) = error {
                return Err(super::provider::abort_launch(child, error, Some(key), &self.dirs).await.into());
            }
        }
        tracing::info!(instance = %record.instance_id, %machine, tier = %record.tier, pid = record.pid, "pool machine process started");
        self.watch(child, &record);
        Ok(record)
    }

    /// Record the tenant of a pool machine: refused for an unknown or exited instance, a runner's
    /// instance, and a machine already bound.
    pub(super) async fn bind(&self, id: &InstanceId, request: &BindRequest) -> Result<(), ProviderError> {
        let failed = |message: String| ProviderError::failed(format!("process provider: {message}"));
        let key = ProcessKey::parse(id).ok_or_else(|| failed(format!("{id} is not a process instance id")))?;
        let record = match self.dirs.read(key) {
            Ok(Some(record)) => record,
            Ok(None) => return Err(failed(format!("no pool machine {id} (exited or never started)"))),
            Err(unreadable) => return Err(failed(format!("the state of {id} is unreadable: {}", unreadable.problem))),
        };
        if record.pool_machine.is_none() {
            return Err(failed(format!("{id} is a runner's instance, not a pool machine")));
        }
        if let Some(bound) = &record.runner_name {
            return Err(failed(format!("pool machine {id} is already bound to {bound}: a machine serves one runner")));
        }
        if !matches!(super::procfs::liveness(key.pid, key.start_ticks), Ok(super::procfs::Liveness::Running)) {
            return Err(failed(format!("pool machine {id} is not running any more")));
        }
        let mut bound = record;
        bound.runner_name = Some(request.runner_name.clone());
        bound.installation_id = Some(request.installation_id);
        bound.org = Some(request.org_name.to_string());
        bound.tenant_tier = Some(request.tenant_tier.clone());
        let dirs = self.dirs.clone();
        let written = tokio::task::spawn_blocking(move || dirs.write(&bound)).await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(failed(format!("cannot record the binding of {id}: {}", error_chain(&error)))),
            Err(source) => Err(failed(format!("cannot record the binding of {id}: {source}"))),
        }
    }
}
