//! A warm-pool machine's user data: a script that starts `ghr-agent` with the machine's bootstrap credential.
//!
//! It never carries a JIT config: the agent fetches its runner's config from ghr once the machine is bound.
//! It does carry the bootstrap secret, which is good for one assignment and spent before any job runs on the
//! machine, so a job that reads the user data back (IMDS) finds a used credential. The secret only lives in
//! [`SecretString`]s here and leaves this module base64-encoded inside the user data, for RunInstances.

use crate::config::PoolAgentConfig;
use crate::user_data::USER_DATA_MAX_BYTES;
pub use ghr_api::agent::{ENV_AGENT_JITCONFIG_TO, ENV_AGENT_RUNNER_COMMAND};
use ghr_api::agent::{ENV_AGENT_MACHINE, ENV_AGENT_SECRET, ENV_AGENT_URL};
use ghr_core::ports::AgentBootstrap;
use secrecy::{ExposeSecret, SecretString};

/// Where the image has `ghr-agent`, by default.
pub const DEFAULT_AGENT_PATH: &str = "/opt/ghr/ghr-agent";
/// The runner program the agent starts once bound, by default (the JIT config is its last argument).
pub const DEFAULT_RUNNER_COMMAND: &str = "/opt/actions-runner/run.sh";
/// [`ENV_AGENT_JITCONFIG_TO`]: as the runner command's last argument (`run.sh <jitconfig>` → `--jitconfig`).
pub const JITCONFIG_TO_ARG: &str = "arg";
/// The agent's flag naming the command that powers the machine off once its runner is done.
pub const POWEROFF_FLAG: &str = "--poweroff-command";
/// Powering off terminates the instance (it is launched with `InstanceInitiatedShutdownBehavior=terminate`).
pub const POWEROFF_COMMAND: &[&str] = &["shutdown", "-h", "now"];

/// Why a pool machine's user data could not be built. Never carries the secret.
#[derive(Debug, thiserror::Error)]
pub enum AgentUserDataError {
    /// A value the script needs is empty or holds a character no script can carry.
    #[error("the agent's {field} {reason}")]
    Invalid { field: &'static str, reason: &'static str },
    #[error("pool machine user data is {size} bytes; EC2 accepts at most {USER_DATA_MAX_BYTES}")]
    TooLarge { size: usize },
}

impl AgentUserDataError {
    /// Whether an operator must act (the server URL, the agent settings) rather than ghr being at fault.
    pub fn is_config(&self) -> bool {
        match self {
            AgentUserDataError::Invalid { field, .. } => !matches!(*field, FIELD_MACHINE | FIELD_SECRET),
            AgentUserDataError::TooLarge { .. } => true,
        }
    }
}

const FIELD_URL: &str = "server URL";
const FIELD_MACHINE: &str = "machine id";
const FIELD_SECRET: &str = "bootstrap secret";
const FIELD_PATH: &str = "path (provider.ec2.agent_path)";
const FIELD_COMMAND: &str = "runner command (provider.ec2.runner_command)";

/// The user data of one pool machine: export the agent's settings, then exec the agent. Should the agent
/// not start, the machine powers off (and so terminates) instead of idling until ghr replaces it.
pub fn render_agent_user_data(
    config: &PoolAgentConfig,
    agent: &AgentBootstrap,
) -> Result<SecretString, AgentUserDataError> {
    check_config(config)?;
    let url = checked(FIELD_URL, &agent.server_url)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(AgentUserDataError::Invalid { field: FIELD_URL, reason: "is not an http:// or https:// URL" });
    }
    let machine = checked(FIELD_MACHINE, agent.machine.as_str())?;
    let secret = checked(FIELD_SECRET, agent.secret.expose_secret())?;
    let runner_command = json_array(&config.runner_command);
    let poweroff = json_array(POWEROFF_COMMAND);

    let mut script = String::from(
        "#!/bin/bash\n\
         # ghr: a tenant-neutral warm-pool machine. ghr-agent waits until ghr binds the machine to a runner,\n\
         # then fetches that runner's JIT config from ghr, runs it and powers the machine off.\n\
         # The instance was launched with InstanceInitiatedShutdownBehavior=terminate: powering off terminates it.\n\
         # The bootstrap secret is good for one assignment and spent before any job runs here.\n\
         set -u\n",
    );
    for (name, value) in [
        (ENV_AGENT_URL, url),
        (ENV_AGENT_MACHINE, machine),
        (ENV_AGENT_SECRET, secret),
        (ENV_AGENT_RUNNER_COMMAND, runner_command.as_str()),
        (ENV_AGENT_JITCONFIG_TO, JITCONFIG_TO_ARG),
    ] {
        script.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    // With execfail, a failed exec returns instead of ending the shell: the machine then powers off.
    script.push_str("shopt -s execfail\n");
    script.push_str(&format!("exec {} {POWEROFF_FLAG} {}\n", shell_quote(&config.path), shell_quote(&poweroff)));
    script.push_str("echo \"ghr: could not start the agent; powering off\" >&2\n");
    script.push_str(&format!("{}\n", POWEROFF_COMMAND.join(" ")));
    if script.len() > USER_DATA_MAX_BYTES {
        return Err(AgentUserDataError::TooLarge { size: script.len() });
    }
    Ok(SecretString::from(script))
}

/// Check the operator's agent settings without a machine: what [`crate::Ec2ProviderConfig::validate`] runs.
pub fn check_config(config: &PoolAgentConfig) -> Result<(), AgentUserDataError> {
    let path = checked(FIELD_PATH, &config.path)?;
    if !path.starts_with('/') {
        return Err(AgentUserDataError::Invalid { field: FIELD_PATH, reason: "is not an absolute path" });
    }
    match config.runner_command.first() {
        None => return Err(AgentUserDataError::Invalid { field: FIELD_COMMAND, reason: "is empty" }),
        Some(program) => _ = checked(FIELD_COMMAND, program)?,
    }
    if config.runner_command.iter().any(|arg| arg.contains('\0')) {
        return Err(AgentUserDataError::Invalid { field: FIELD_COMMAND, reason: "holds a NUL character" });
    }
    Ok(())
}

/// Non-empty, and free of NUL (which no shell word can carry) and line breaks (which a value of one
/// line never needs); everything else is quoted.
fn checked<'a>(field: &'static str, value: &'a str) -> Result<&'a str, AgentUserDataError> {
    if value.trim().is_empty() {
        return Err(AgentUserDataError::Invalid { field, reason: "is empty" });
    }
    if value.chars().any(|c| matches!(c, '\0' | '\n' | '\r')) {
        return Err(AgentUserDataError::Invalid { field, reason: "holds a NUL or line break character" });
    }
    Ok(value)
}

/// One shell word, whatever the value: single quotes, each `'` as `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn json_array<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&items).expect("a list of strings serializes")
}

#[cfg(test)]
#[path = "agent_user_data_tests.rs"]
mod tests;
