//! The `process` provider: one local process (group) per runner, tracked in state files so that a
//! restarted ghr still finds and can stop the runners it started.
//!
//! A runner is the configured command, started in its own process group with `GHR_*` variables
//! describing it. Its single-use JIT config is written to its standard input followed by a newline,
//! then standard input is closed: the config never appears on a command line, in an environment, in a
//! log or on disk. Standard output and error go to `state_dir/logs/<runner-name>.log`.
//!
//! A warm-pool machine is the agent command (`ghr agent`) instead, started tenant-neutral with its bootstrap
//! secret on standard input; binding records the tenant in its state file ([`pool`]).

mod config;
mod error;
mod group;
mod pool;
mod procfs;
mod provider;
mod state;

pub use config::{
    DEFAULT_TERMINATE_GRACE, ENV_ENVIRONMENT, ENV_INSTALLATION_ID, ENV_RUNNER_LABELS, ENV_RUNNER_NAME, ENV_TIER,
    FALLBACK_PATH, INHERITED_ENV_VARS, MAX_TERMINATE_GRACE, ProcessProviderConfig, RESERVED_ENV_VARS,
    default_agent_command,
};
pub use group::{GROUP_POLL_INTERVAL, KILL_CONFIRM_TIMEOUT};
pub use provider::{LOG_PRUNE_INTERVAL, LOG_RETENTION, PROVIDER_NAME, ProcessProvider, STDIN_WRITE_TIMEOUT};
pub use state::{INSTANCE_ID_PREFIX, INSTANCES_DIR, LOGS_DIR};
