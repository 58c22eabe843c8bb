//! [`ProcessProvider`]: launching runner commands, reaping them, listing and terminating them, and
//! adopting the ones a previous ghr process left running.

use super::config::{
    ENV_ENVIRONMENT, ENV_INSTALLATION_ID, ENV_RUNNER_LABELS, ENV_RUNNER_NAME, ENV_TIER, ProcessProviderConfig,
};
use super::error::{ProcessError, error_chain};
use super::group;
use super::procfs::{self, Liveness};
use super::state::{InstanceRecord, ProcessKey, StateDir, UnreadableState};
use async_trait::async_trait;
use ghr_core::ids::InstanceId;
use ghr_core::ports::{
    BindRequest, Instance, InstanceState, LaunchRequest, PoolLaunchRequest, Provider, ProviderError,
};
use nix::sys::signal::Signal;
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// The provider's name in logs and metrics.
pub const PROVIDER_NAME: &str = "process";
/// How long a runner command gets to read its JIT config from standard input.
pub const STDIN_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Runner logs not written to for this long are deleted.
pub const LOG_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Minimum time between two sweeps of old runner logs.
pub const LOG_PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs one local process group per runner. See the [module documentation](super).
///
/// Dropping the provider leaves its runners running (a restarted ghr adopts them); call
/// [`ProcessProvider::terminate_all`] to stop them.
pub struct ProcessProvider {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) config: ProcessProviderConfig,
    /// The resolved runner program.
    program: PathBuf,
    /// Environment shared by every runner (inherited allow-list plus configured extras).
    pub(super) base_environment: BTreeMap<String, String>,
    pub(super) dirs: StateDir,
    /// One task per child this provider started, waiting for it to exit.
    reapers: Mutex<Vec<JoinHandle<()>>>,
    last_log_prune: Mutex<Instant>,
}

impl std::fmt::Debug for ProcessProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessProvider")
            .field("program", &self.inner.program)
            .field("state_dir", &self.inner.config.state_dir)
            .field("environment", &self.inner.config.environment)
            .finish_non_exhaustive()
    }
}

impl ProcessProvider {
    /// Validate the configuration, prepare the state directory and adopt the runners a previous ghr
    /// process on the same state directory left running (state files of exited ones are removed).
    pub fn new(config: ProcessProviderConfig) -> Result<Self, ProviderError> {
        let program = config.validate()?;
        let dirs = StateDir::create(&config.state_dir).map_err(|error| {
            ProviderError::config(format!(
                "process provider: state_dir {:?} cannot be created: fix the path or its permissions",
                config.state_dir
            ))
            .caused_by(error)
        })?;
        let inner = Inner {
            base_environment: config.base_environment(),
            config,
            program,
            dirs,
            reapers: Mutex::new(Vec::new()),
            last_log_prune: Mutex::new(Instant::now()),
        };
        match inner.dirs.remove_temp_files() {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "removed interrupted instance state writes"),
            Err(error) => tracing::warn!(error = %error_chain(&error), "cannot remove interrupted state writes"),
        }
        inner.prune_logs();
        let adopted = inner.sweep()?;
        if !adopted.is_empty() {
            let ids: Vec<String> = adopted.keys().map(|key| key.instance_id().to_string()).collect();
            tracing::info!(count = adopted.len(), instances = ?ids, "adopted runner processes of a previous run");
        }
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Terminate every live instance of this deployment, concurrently; returns how many were stopped.
    pub async fn terminate_all(&self) -> Result<usize, ProviderError> {
        let survivors = self.inner.sweep_off_runtime().await?;
        let total = survivors.len();
        let mut tasks = tokio::task::JoinSet::new();
        for key in survivors.keys() {
            let inner = Arc::clone(&self.inner);
            tasks.spawn(async move { (key.instance_id(), inner.terminate(key).await) });
        }
        let mut failures = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((id, Err(error))) => failures.push(format!("{id}: {}", error_chain(&error))),
                Err(source) => failures.push(error_chain(&ProcessError::Join { source })),
            }
        }
        if failures.is_empty() {
            Ok(total)
        } else {
            let error = ProcessError::TerminateAll { failed: failures.len(), total, details: failures.join("; ") };
            Err(error.into())
        }
    }
}

impl Drop for ProcessProvider {
    /// Stop waiting for children; they keep running and a later provider adopts them.
    fn drop(&mut self) {
        for reaper in self.inner.reapers.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            reaper.abort();
        }
    }
}

#[async_trait]
impl Provider for ProcessProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Instance, ProviderError> {
        let record = self.inner.launch(&request).await?;
        Ok(record.to_instance())
    }

    async fn terminate(&self, id: &InstanceId) -> Result<(), ProviderError> {
        let Some(key) = ProcessKey::parse(id) else {
            tracing::debug!(instance = %id, "not an instance id of the process provider; nothing to terminate");
            return Ok(());
        };
        Ok(self.inner.terminate(key).await?)
    }

    fn supports_pools(&self) -> bool {
        true
    }

    async fn launch_pool(&self, request: PoolLaunchRequest) -> Result<Instance, ProviderError> {
        Ok(self.inner.launch_pool(&request).await?.to_instance())
    }

    async fn bind(&self, id: &InstanceId, request: &BindRequest) -> Result<(), ProviderError> {
        self.inner.bind(id, request).await
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        let survivors = self.inner.sweep_off_runtime().await?;
        if self.inner.log_prune_due() {
            let inner = Arc::clone(&self.inner);
            tokio::task::spawn_blocking(move || inner.prune_logs());
        }
        Ok(survivors.instances())
    }
}

/// The log file opened twice in append mode: a process's standard output and standard error.
pub(super) fn open_log_pair(path: &std::path::Path) -> Result<(std::fs::File, std::fs::File), ProcessError> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ProcessError::LogFile { path: path.to_path_buf(), source })
    };
    Ok((open()?, open()?))
}

impl Inner {
    async fn launch(&self, request: &LaunchRequest) -> Result<InstanceRecord, ProcessError> {
        let log_file = self.dirs.log_path(&request.runner_name);
        let (stdout, stderr) = open_log_pair(&log_file)?;

        let mut command = Command::new(&self.program);
        command
            .args(&self.config.command[1..])
            .env_clear()
            .envs(&self.base_environment)
            .env(ENV_RUNNER_NAME, request.runner_name.as_str())
            .env(ENV_RUNNER_LABELS, request.labels.join(","))
            .env(ENV_TIER, request.tier.as_str())
            .env(ENV_INSTALLATION_ID, request.installation_id.to_string())
            .env(ENV_ENVIRONMENT, &self.config.environment)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            // Its own group, so terminate reaches everything the runner starts, and a signal aimed
            // at ghr's group (Ctrl-C) does not reach the runners.
            .process_group(0)
            .kill_on_drop(false);
        let mut child =
            command.spawn().map_err(|source| ProcessError::Spawn { program: self.program.clone(), source })?;

        let key = match self.identify(&child) {
            Ok(key) => key,
            Err(error) => return Err(abort_launch(child, error, None, &self.dirs).await),
        };
        let record = InstanceRecord::new(
            key,
            &self.config.environment,
            request.runner_name.clone(),
            request.installation_id,
            request.tier.clone(),
            chrono::Utc::now(),
            log_file,
        );
        // Recorded before the runner gets its credential: if ghr dies from here on, the next start finds it.
        let dirs = self.dirs.clone();
        let to_write = record.clone();
        let written = match tokio::task::spawn_blocking(move || dirs.write(&to_write)).await {
            Ok(written) => written,
            Err(source) => Err(ProcessError::Join { source }),
        };
        if let Err(error) = written {
            return Err(abort_launch(child, error, Some(key), &self.dirs).await);
        }
        if let Err(error) = send_jit_config(&mut child, request).await {
            return Err(abort_launch(child, error, Some(key), &self.dirs).await);
        }

        tracing::info!(
            instance = %record.instance_id,
            runner = ?record.runner_name,
            installation = ?record.installation_id,
            tier = %record.tier,
            pid = record.pid,
            log = %record.log_file.display(),
            "runner process started"
        );
        self.watch(child, &record);
        Ok(record)
    }

    /// The pid and start time of a just-spawned child (not yet waited for, so its `/proc` entry exists).
    pub(super) fn identify(&self, child: &Child) -> Result<ProcessKey, ProcessError> {
        let pid = child.id().ok_or(ProcessError::NoPid)?;
        let stat = procfs::read_stat(pid)?.ok_or(ProcessError::Vanished { pid })?;
        Ok(ProcessKey { pid, start_ticks: stat.start_ticks })
    }

    /// Reap the child when it exits: stop what it left in its group and forget the instance.
    pub(super) fn watch(&self, mut child: Child, record: &InstanceRecord) {
        let dirs = self.dirs.clone();
        let key = record.key();
        let pgid = record.pgid;
        let instance = record.instance_id.clone();
        let grace = self.config.terminate_grace;
        let reaper = tokio::spawn(async move {
            match child.wait().await {
                Ok(status) => tracing::info!(%instance, %status, "runner process exited"),
                Err(error) => tracing::warn!(%instance, %error, "waiting for the runner process failed"),
            }
            // Background processes the job left behind go with the runner.
            if let Err(error) = group::stop_group(pgid, grace).await {
                tracing::warn!(%instance, error = %error_chain(&error), "cannot stop leftovers of an exited runner");
            }
            if let Err(error) = dirs.remove(key) {
                tracing::warn!(%instance, error = %error_chain(&error), "cannot remove the state of an exited runner");
            }
        });
        let mut reapers = self.reapers.lock().unwrap_or_else(PoisonError::into_inner);
        reapers.retain(|reaper| !reaper.is_finished());
        reapers.push(reaper);
    }

    async fn terminate(&self, key: ProcessKey) -> Result<(), ProcessError> {
        let instance = key.instance_id();
        match self.dirs.read(key) {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::debug!(%instance, "no such runner process (already gone); nothing to terminate");
                return Ok(());
            }
            // The id carries the pid and start time, which is all terminate needs.
            Err(unreadable) => {
                tracing::warn!(%instance, path = %unreadable.path.display(), problem = %unreadable.problem,
                    "instance state file is unreadable; terminating by its id");
            }
        }
        if group::group_is_ours(key)? {
            group::stop_group(key.pid, self.config.terminate_grace).await?;
        }
        self.dirs.remove(key)?;
        tracing::info!(%instance, "runner process terminated");
        Ok(())
    }

    /// [`Inner::sweep`] on a blocking thread.
    async fn sweep_off_runtime(self: &Arc<Self>) -> Result<Survivors, ProcessError> {
        let inner = Arc::clone(self);
        tokio::task::spawn_blocking(move || inner.sweep()).await.map_err(|source| ProcessError::Join { source })?
    }

    /// Read every state file of this deployment; forget instances whose process is gone (stopping
    /// what they left in their group) and return the running ones.
    fn sweep(&self) -> Result<Survivors, ProcessError> {
        let (records, unreadable) = self.dirs.read_all()?;
        let mut survivors = Survivors::default();
        for problem in unreadable {
            if let Some(key) = self.sweep_unreadable(problem) {
                survivors.unidentified.push(key);
            }
        }
        for record in records {
            if record.environment == self.config.environment && self.sweep_record(&record) {
                survivors.records.push(record);
            }
        }
        Ok(survivors)
    }

    /// Whether a recorded runner still runs; when it does not, stop its leftovers and forget it.
    fn sweep_record(&self, record: &InstanceRecord) -> bool {
        let instance = &record.instance_id;
        let liveness = match procfs::liveness(record.pid, record.start_ticks) {
            Ok(liveness) => liveness,
            Err(error) => {
                tracing::warn!(%instance, error = %error_chain(&error), "cannot check a runner process; keeping it");
                return true;
            }
        };
        if liveness == Liveness::Running {
            return true;
        }
        if liveness == Liveness::Exited {
            kill_leftovers(record.pgid, instance);
        }
        match self.dirs.remove(record.key()) {
            Ok(()) => tracing::info!(%instance, runner = ?record.runner_name, "runner process is gone; forgot it"),
            Err(error) => {
                tracing::warn!(%instance, error = %error_chain(&error), "cannot remove a gone runner's state")
            }
        }
        false
    }

    /// Deal with a state file that cannot be read. Returns the instance when its process still runs:
    /// it is listed without details, so that the engine sees an unknown instance and terminates it.
    fn sweep_unreadable(&self, problem: UnreadableState) -> Option<ProcessKey> {
        let path = problem.path.display().to_string();
        let Some(key) = problem.key else {
            match self.dirs.quarantine(&problem.path) {
                Ok(kept) => tracing::warn!(%path, problem = %problem.problem, kept = %kept.display(),
                    "unreadable file in the instance state directory moved aside"),
                Err(error) => tracing::warn!(%path, problem = %problem.problem, error = %error_chain(&error),
                    "unreadable file in the instance state directory cannot be moved aside"),
            }
            return None;
        };
        let instance = key.instance_id();
        match procfs::liveness(key.pid, key.start_ticks) {
            Ok(Liveness::Running) | Err(_) => {
                tracing::warn!(%instance, %path, problem = %problem.problem,
                    "instance state file is unreadable but its process runs; listing it without details");
                Some(key)
            }
            Ok(liveness) => {
                if liveness == Liveness::Exited {
                    kill_leftovers(key.pid, &instance);
                }
                if let Err(error) = self.dirs.remove(key) {
                    tracing::warn!(%instance, error = %error_chain(&error), "cannot remove a gone runner's state");
                }
                tracing::warn!(%instance, %path, problem = %problem.problem,
                    "removed the unreadable state file of a runner process that is gone");
                None
            }
        }
    }

    fn log_prune_due(&self) -> bool {
        let mut last = self.last_log_prune.lock().unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() < LOG_PRUNE_INTERVAL {
            return false;
        }
        *last = Instant::now();
        true
    }

    fn prune_logs(&self) {
        match self.dirs.prune_logs(LOG_RETENTION) {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, ?LOG_RETENTION, "removed old runner logs"),
            Err(error) => tracing::warn!(error = %error_chain(&error), "cannot prune old runner logs"),
        }
    }
}

/// Runner processes found alive by a sweep of the state directory.
#[derive(Debug, Default)]
struct Survivors {
    /// Running instances of this deployment.
    records: Vec<InstanceRecord>,
    /// Running processes named by a state file that cannot be read.
    unidentified: Vec<ProcessKey>,
}

impl Survivors {
    fn len(&self) -> usize {
        self.records.len() + self.unidentified.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn keys(&self) -> impl Iterator<Item = ProcessKey> + '_ {
        self.records.iter().map(InstanceRecord::key).chain(self.unidentified.iter().copied())
    }

    fn instances(&self) -> Vec<Instance> {
        let unidentified = self.unidentified.iter().map(|key| Instance {
            id: key.instance_id(),
            runner_name: None,
            installation_id: None,
            tier: None,
            state: InstanceState::Running,
            launched_at: None,
            instance_type: None,
        });
        self.records.iter().map(InstanceRecord::to_instance).chain(unidentified).collect()
    }
}

/// SIGKILL what is left in the group of a runner whose leader exited (see [`group::group_is_ours`]
/// for why the group id is still safe to use while the leader's pid is not reused).
fn kill_leftovers(pgid: u32, instance: &InstanceId) {
    let result = procfs::group_members(pgid)
        .and_then(|members| if members.is_empty() { Ok(()) } else { group::signal_group(pgid, Signal::SIGKILL) });
    if let Err(error) = result {
        tracing::warn!(%instance, error = %error_chain(&error), "cannot stop leftovers of a gone runner");
    }
}

/// Write the JIT config and a newline to the child's standard input, then close it.
async fn send_jit_config(child: &mut Child, request: &LaunchRequest) -> Result<(), ProcessError> {
    let Some(mut stdin) = child.stdin.take() else {
        return Err(ProcessError::Stdin { source: std::io::Error::other("standard input was not piped") });
    };
    let write = async {
        stdin.write_all(request.jit_config.expose_secret().as_bytes()).await?;
        stdin.write_all(b"\n").await?;
        stdin.shutdown().await
    };
    match tokio::time::timeout(STDIN_WRITE_TIMEOUT, write).await {
        Ok(result) => result.map_err(|source| ProcessError::Stdin { source }),
        Err(_) => Err(ProcessError::StdinTimeout(STDIN_WRITE_TIMEOUT)),
    }
    // `stdin` is dropped here, closing the pipe.
}

/// Undo a launch that failed after the spawn: kill the group, reap the child, forget its state.
/// Returns the original error (clean-up problems are logged).
pub(super) async fn abort_launch(
    mut child: Child,
    error: ProcessError,
    recorded: Option<ProcessKey>,
    dirs: &StateDir,
) -> ProcessError {
    tracing::warn!(error = %error_chain(&error), "runner launch failed; killing the started process");
    // The child is not reaped yet, so its pid (= its group id) cannot have been reused.
    if let Some(pgid) = child.id()
        && let Err(kill_error) = group::signal_group(pgid, Signal::SIGKILL)
    {
        tracing::warn!(error = %error_chain(&kill_error), "cannot kill a failed runner launch");
    }
    if tokio::time::timeout(group::KILL_CONFIRM_TIMEOUT, child.wait()).await.is_err() {
        tracing::warn!("a failed runner launch did not exit after SIGKILL");
    }
    if let Some(key) = recorded
        && let Err(remove_error) = dirs.remove(key)
    {
        tracing::warn!(error = %error_chain(&remove_error), "cannot remove the state of a failed runner launch");
    }
    error
}
