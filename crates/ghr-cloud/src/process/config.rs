//! Configuration of the process provider, its validation, and the environment a runner command gets.

use ghr_core::ports::ProviderError;
use nix::unistd::{AccessFlags, access};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Variable with the runner's name (also its GitHub registration name).
pub const ENV_RUNNER_NAME: &str = "GHR_RUNNER_NAME";
/// Variable with the runner's labels, comma-joined.
pub const ENV_RUNNER_LABELS: &str = "GHR_RUNNER_LABELS";
/// Variable with the runner's tier (size).
pub const ENV_TIER: &str = "GHR_TIER";
/// Variable with the tenant's GitHub App installation id.
pub const ENV_INSTALLATION_ID: &str = "GHR_INSTALLATION_ID";
/// Variable with the deployment name.
pub const ENV_ENVIRONMENT: &str = "GHR_ENVIRONMENT";
/// Variables the provider sets itself; the configured extras may not override them.
pub const RESERVED_ENV_VARS: [&str; 5] =
    [ENV_RUNNER_NAME, ENV_RUNNER_LABELS, ENV_TIER, ENV_INSTALLATION_ID, ENV_ENVIRONMENT];

/// The only variables of ghr's own environment a runner inherits.
///
/// Runners execute customer workflows, so ghr's environment (database URLs, App keys, cloud
/// credentials) must not leak into them: everything else is cleared. Add more with the `env` setting.
pub const INHERITED_ENV_VARS: [&str; 7] = ["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"];
/// `PATH` given to runners when ghr itself has none.
pub const FALLBACK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Default time between SIGTERM and SIGKILL when terminating a runner.
pub const DEFAULT_TERMINATE_GRACE: Duration = Duration::from_secs(10);
/// Longest accepted `terminate_grace`: a terminate call must not hang the reconciler for long.
pub const MAX_TERMINATE_GRACE: Duration = Duration::from_secs(300);

/// How the process provider runs runners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessProviderConfig {
    /// Program and arguments, run once per runner. The program receives the JIT config on stdin.
    pub command: Vec<String>,
    /// Directory for instance state files (`instances/`) and runner logs (`logs/`); created if missing.
    pub state_dir: PathBuf,
    /// Deployment name, given to runners as `GHR_ENVIRONMENT`; `list` reports only this deployment's instances.
    pub environment: String,
    /// Extra environment variables for the runner command.
    pub env: BTreeMap<String, String>,
    /// Time between SIGTERM and SIGKILL when terminating (default [`DEFAULT_TERMINATE_GRACE`]).
    pub terminate_grace: Duration,
    /// Program and arguments of a warm-pool machine: the agent, which runs `command` once assigned. Default:
    /// this executable with `agent` (`ghr agent`).
    pub agent_command: Vec<String>,
}

impl ProcessProviderConfig {
    /// A configuration with no extra variables and the default grace period.
    pub fn new(command: Vec<String>, state_dir: impl Into<PathBuf>, environment: impl Into<String>) -> Self {
        Self {
            command,
            state_dir: state_dir.into(),
            environment: environment.into(),
            env: BTreeMap::new(),
            terminate_grace: DEFAULT_TERMINATE_GRACE,
            agent_command: default_agent_command(),
        }
    }

    /// Check everything that can be checked before launching, and find the program to run.
    ///
    /// Returns the program's path (searched on the runner's `PATH` when it has no `/`).
    pub fn validate(&self) -> Result<PathBuf, ProviderError> {
        let config = |message: String| ProviderError::config(format!("process provider: {message}"));
        let Some(program) = self.command.first() else {
            return Err(config("command is empty: set it to the runner program followed by its arguments".into()));
        };
        if program.trim().is_empty() {
            return Err(config("command starts with an empty program name: name the runner program first".into()));
        }
        if self.environment.trim().is_empty() {
            return Err(config("environment is empty: set the deployment name".into()));
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err(config("state_dir is empty: set a directory for instance state and runner logs".into()));
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(config(format!("env variable name {name:?} is invalid: use a name without '=' or NUL")));
            }
            if value.contains('\0') {
                return Err(config(format!("env variable {name} contains a NUL byte: remove it")));
            }
            if RESERVED_ENV_VARS.contains(&name.as_str()) {
                return Err(config(format!("env variable {name} is set by the provider itself: remove it from env")));
            }
        }
        if self.terminate_grace > MAX_TERMINATE_GRACE {
            return Err(config(format!(
                "terminate_grace {:?} is longer than the maximum {MAX_TERMINATE_GRACE:?}: lower it",
                self.terminate_grace
            )));
        }
        resolve_program(program, &self.runner_path()).map_err(config)
    }

    /// The `PATH` runners get: the configured one, else ghr's own, else [`FALLBACK_PATH`].
    pub fn runner_path(&self) -> String {
        self.env.get("PATH").cloned().or_else(|| std::env::var("PATH").ok()).unwrap_or_else(|| FALLBACK_PATH.to_owned())
    }

    /// The base environment of every runner: the inherited allow-list, then the configured extras.
    pub(crate) fn base_environment(&self) -> BTreeMap<String, String> {
        let mut environment: BTreeMap<String, String> = INHERITED_ENV_VARS
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|value| ((*name).to_owned(), value)))
            .collect();
        environment.insert("PATH".to_owned(), self.runner_path());
        environment.extend(self.env.iter().map(|(name, value)| (name.clone(), value.clone())));
        environment
    }
}

/// `[<this executable>, "agent"]`, or nothing when the executable cannot be found (pools then refuse to launch).
pub fn default_agent_command() -> Vec<String> {
    std::env::current_exe().map(|exe| vec![exe.to_string_lossy().into_owned(), "agent".to_owned()]).unwrap_or_default()
}

/// Find `program`: a path when it contains `/`, else the first executable match on `search_path`.
pub(crate) fn resolve_program(program: &str, search_path: &str) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = Path::new(program);
        return match check_executable(path) {
            Ok(()) => Ok(path.to_path_buf()),
            Err(problem) => Err(format!("runner program {program:?} {problem}")),
        };
    }
    std::env::split_paths(search_path)
        .map(|dir| dir.join(program))
        .find(|candidate| check_executable(candidate).is_ok())
        .ok_or_else(|| {
            format!(
                "runner program {program:?} was not found as an executable on PATH {search_path:?}: \
                 install it, give an absolute path, or set PATH in env"
            )
        })
}

/// `Ok` when `path` is an executable regular file for this process; otherwise what is wrong and how to fix it.
fn check_executable(path: &Path) -> Result<(), String> {
    let metadata = std::fs::metadata(path).map_err(|error| format!("cannot be read ({error}): fix the path"))?;
    if !metadata.is_file() {
        return Err("is not a regular file: point the command at the program itself".into());
    }
    access(path, AccessFlags::X_OK)
        .map_err(|error| format!("is not executable ({error}): make it executable (chmod +x) or fix the path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(command: &[&str]) -> ProcessProviderConfig {
        ProcessProviderConfig::new(command.iter().map(|s| (*s).to_owned()).collect(), "state", "test")
    }

    #[test]
    fn finds_programs_on_path_and_by_absolute_path() {
        assert_eq!(config(&["/bin/sh", "-c", "true"]).validate().unwrap(), PathBuf::from("/bin/sh"));
        let found = config(&["sh"]).validate().unwrap();
        assert!(found.is_absolute() && found.ends_with("sh"), "{found:?}");
    }

    #[test]
    fn configured_path_is_used_for_the_search() {
        let mut with_path = config(&["sh"]);
        with_path.env.insert("PATH".into(), "/nonexistent-dir".into());
        let error = with_path.validate().unwrap_err().to_string();
        assert!(error.contains("not found") && error.contains("/nonexistent-dir"), "{error}");
        assert_eq!(with_path.base_environment().get("PATH").map(String::as_str), Some("/nonexistent-dir"));
    }

    #[test]
    fn validation_errors_say_what_to_fix() {
        let reserved = ProcessProviderConfig {
            env: BTreeMap::from([(ENV_TIER.to_owned(), "x".to_owned())]),
            ..config(&["/bin/sh"])
        };
        let bad_name =
            ProcessProviderConfig { env: BTreeMap::from([("A=B".to_owned(), "x".to_owned())]), ..config(&["/bin/sh"]) };
        let long_grace = ProcessProviderConfig { terminate_grace: Duration::from_secs(3600), ..config(&["/bin/sh"]) };
        let no_environment = ProcessProviderConfig { environment: " ".into(), ..config(&["/bin/sh"]) };
        let plain_file = tempfile::NamedTempFile::new().unwrap();
        let plain_file_path = plain_file.path().to_str().unwrap();
        let cases: Vec<(ProcessProviderConfig, &str)> = vec![
            (config(&[]), "command is empty"),
            (config(&[""]), "empty program name"),
            (config(&["/definitely/not/here"]), "cannot be read"),
            (config(&["/"]), "not a regular file"),
            (config(&[plain_file_path]), "not executable"),
            (config(&["no-such-program-ghr"]), "not found"),
            (reserved, "set by the provider"),
            (bad_name, "is invalid"),
            (long_grace, "terminate_grace"),
            (no_environment, "environment is empty"),
        ];
        for (config, fragment) in cases {
            match config.validate() {
                Err(ProviderError::Config { message, .. }) => {
                    assert!(message.contains(fragment), "{message:?} should mention {fragment:?}")
                }
                other => panic!("{:?}: expected a config error mentioning {fragment:?}, got {other:?}", config.command),
            }
        }
    }
}
