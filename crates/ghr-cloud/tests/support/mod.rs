//! Shared helpers of the process provider tests: configurations, launch requests, `/proc` probes
//! independent of the code under test, polling with deadlines, and a guard that kills leftovers.

#![allow(dead_code)]

use ghr_cloud::ProcessProviderConfig;
use ghr_core::ids::{InstallationId, OrgName, RunnerName, TierName};
use ghr_core::ports::LaunchRequest;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tempfile::TempDir;

/// How long a polled condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(20);
/// Grace period of the test configurations.
pub const TEST_GRACE: Duration = Duration::from_millis(500);
/// A recognisable fake JIT config.
pub const JIT: &str = "eyJqaXQiOiJzZWNyZXQtcnVubmVyLWNyZWRlbnRpYWwtNzc3In0=";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A test's state directory, output directory and unique deployment name. Dropping it kills every
/// process that carries the deployment name in its environment, whatever the provider did.
pub struct Scene {
    pub root: TempDir,
    pub environment: String,
}

impl Scene {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir_all(root.path().join("out")).expect("output directory");
        let environment = format!("t{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        Self { root, environment }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.path().join("state")
    }

    /// Where the test scripts write (`$OUT`).
    pub fn out(&self) -> PathBuf {
        self.root.path().join("out")
    }

    /// A configuration running `script` under `/bin/sh -c`, with `OUT` and `EXTRA` set.
    pub fn config(&self, script: &str) -> ProcessProviderConfig {
        let mut config = ProcessProviderConfig::new(
            vec!["/bin/sh".into(), "-c".into(), script.into(), "runner".into()],
            self.state_dir(),
            self.environment.clone(),
        );
        config.env = BTreeMap::from([
            ("OUT".to_owned(), self.out().display().to_string()),
            ("EXTRA".to_owned(), "extra value".to_owned()),
        ]);
        config.terminate_grace = TEST_GRACE;
        config
    }

    /// Running processes started for this scene (found by `GHR_ENVIRONMENT` in their environment).
    pub fn live_processes(&self) -> Vec<u32> {
        processes_with_env(&format!("GHR_ENVIRONMENT={}", self.environment))
    }

    /// A `sleep` in its own process group that is not a runner; killed with the scene.
    pub fn bystander(&self) -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("1000")
            .env("GHR_ENVIRONMENT", &self.environment)
            .process_group(0)
            .spawn()
            .expect("bystander process")
    }

    pub fn state_files(&self) -> Vec<PathBuf> {
        files_under(&self.state_dir().join("instances"))
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        for pid in self.live_processes() {
            if let Ok(raw) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
    }
}

pub fn request(name: &str) -> LaunchRequest {
    LaunchRequest {
        runner_architecture: "x64".into(),
        runner_name: RunnerName::from(name),
        installation_id: InstallationId(42),
        org_name: OrgName::from("acme"),
        tenant_tier: TierName::from("medium"),
        tier: TierName::from("small"),
        instance_types: vec!["local".into()],
        labels: vec!["self-hosted".into(), "linux".into(), "small".into()],
        jit_config: SecretString::from(JIT),
    }
}

/// Fields of `/proc/<pid>/stat` after the command name: (state, start ticks); None when gone.
pub fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

/// Whether `pid` is a running (not zombie) process.
pub fn is_running(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X'))
}

/// Running processes whose initial environment contains `entry` (`NAME=value`).
pub fn processes_with_env(entry: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| environ.split(|b| *b == 0).any(|var| var == entry.as_bytes()))
        })
        .filter(|pid| is_running(*pid))
        .collect()
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return files };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Poll `condition` until it holds; fail the test with `what` after [`DEADLINE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {DEADLINE:?} waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Wait for a file the runner script writes, and return its content.
pub async fn read_when_written(path: &Path) -> String {
    eventually(&format!("{} to be written", path.display()), || path.exists()).await;
    std::fs::read_to_string(path).expect("readable output file")
}
