//! The `ghr-emulated-runner` binary: JIT config on stdin, one job, exit status, SIGTERM.

use crate::common::*;
use ghr_core::job::JobStatus;
use ghr_testkit::github::JobSpec;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_ghr-emulated-runner");
const WAIT: Duration = Duration::from_secs(10);

async fn spawn_with_stdin(config: &str, name: &str) -> Child {
    let mut child = Command::new(BINARY)
        .env("GHR_RUNNER_NAME", name)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(config.as_bytes()).await.unwrap();
    stdin.write_all(b"\n").await.unwrap();
    drop(stdin);
    child
}

async fn finish(child: Child) -> (ExitStatus, String) {
    let output = tokio::time::timeout(WAIT, child.wait_with_output()).await.expect("the runner exits").unwrap();
    (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn the_binary_reads_its_config_from_stdin_and_runs_one_job() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (_, config) = org_jit(&emulator, &token, "acme", "ghr-bin-1", &["self-hosted"]).await;
    let job = emulator.queue_job(JobSpec::new(installation, "app", &["self-hosted"])).await.unwrap();
    let child = spawn_with_stdin(&config, "ghr-bin-1").await;
    let (status, stderr) = finish(child).await;
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("ghr-bin-1: connected as runner"), "{stderr}");
    assert!(stderr.contains(&format!("job {job} of acme/app done (success)")), "{stderr}");
    assert!(!stderr.contains(config.trim()), "the credential is never logged");
    assert_eq!(emulator.job(job).unwrap().status, JobStatus::Completed);
}

#[test]
fn the_binary_can_be_located_from_a_test_executable() {
    let found = ghr_testkit::runner::process::emulated_runner_binary().expect("built alongside the tests");
    assert_eq!(found.canonicalize().unwrap(), std::path::Path::new(BINARY).canonicalize().unwrap());
}

#[tokio::test]
async fn the_binary_fails_with_a_message_on_a_bad_config() {
    let child = spawn_with_stdin("definitely not a jit config", "ghr-bad").await;
    let (status, stderr) = finish(child).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("reading the JIT config failed"), "{stderr}");
}

#[tokio::test]
async fn sigterm_ends_the_binary_promptly() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (_, config) = org_jit(&emulator, &token, "acme", "ghr-bin-2", &["self-hosted"]).await;
    let child = spawn_with_stdin(&config, "ghr-bin-2").await;
    emulator
        .wait_until(WAIT, |emulator| emulator.runner_by_name("ghr-bin-2").is_some_and(|runner| runner.online))
        .await
        .unwrap();
    let pid = child.id().unwrap();
    let started = std::time::Instant::now();
    let kill = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await.unwrap();
    assert!(kill.success());
    let (status, stderr) = finish(child).await;
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("terminated"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
