//! Launching with the process provider: the JIT config reaches the runner on stdin only, the
//! environment is set and scrubbed, output goes to the log, exits are noticed, and bad settings or
//! failed launches leave nothing behind.

mod support;

use ghr_cloud::process::{INHERITED_ENV_VARS, RESERVED_ENV_VARS};
use ghr_cloud::{ProcessProvider, ProcessProviderConfig};
use ghr_core::error::error_chain;
use ghr_core::ids::{InstallationId, TierName};
use ghr_core::ports::{InstanceState, Provider, ProviderError};
use support::{JIT, Scene, eventually, files_under, read_when_written, request};

/// Reads the JIT config, dumps its environment, then waits like a runner.
const RECORDING_RUNNER: &str = r#"cat > "$OUT/jit.tmp" && mv "$OUT/jit.tmp" "$OUT/jit"; echo "$$" > "$OUT/pid.tmp" && mv "$OUT/pid.tmp" "$OUT/pid"; sleep 1000"#;

fn environ_of(pid: u32) -> Vec<(String, String)> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("environ of the runner");
    raw.split(|b| *b == 0)
        .filter(|var| !var.is_empty())
        .map(|var| {
            let var = String::from_utf8_lossy(var);
            let (name, value) = var.split_once('=').unwrap_or((&var, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn jit_config_arrives_on_stdin_and_nowhere_else() {
    let scene = Scene::new();
    let provider = ProcessProvider::new(scene.config(RECORDING_RUNNER)).unwrap();

    let instance = provider.launch(request("ghr-test-42-small-1")).await.unwrap();
    assert!(instance.id.as_str().starts_with("proc-"), "{:?}", instance.id);
    assert_eq!(instance.state, InstanceState::Running);
    assert_eq!(instance.runner_name.as_ref().map(|n| n.as_str()), Some("ghr-test-42-small-1"));
    assert_eq!(instance.installation_id, Some(InstallationId(42)));
    assert_eq!(instance.tier, Some(TierName::from("small")));
    assert!(instance.launched_at.is_some());

    assert_eq!(read_when_written(&scene.out().join("jit")).await, format!("{JIT}\n"));
    let pid: u32 = read_when_written(&scene.out().join("pid")).await.trim().parse().unwrap();
    assert_eq!(instance.id.as_str(), format!("proc-{pid}-{}", support::stat(pid).unwrap().1));

    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(JIT), "JIT config on the command line");
    let environ = environ_of(pid);
    assert!(environ.iter().all(|(_, value)| !value.contains(JIT)), "JIT config in the environment");
    for file in files_under(&scene.state_dir()) {
        let content = std::fs::read(&file).unwrap();
        assert!(!String::from_utf8_lossy(&content).contains(JIT), "JIT config written to {}", file.display());
    }

    assert_eq!(provider.list().await.unwrap(), vec![instance.clone()]);
    provider.terminate(&instance.id).await.unwrap();
}

#[tokio::test]
async fn runner_environment_is_set_and_scrubbed() {
    let scene = Scene::new();
    let provider = ProcessProvider::new(scene.config(RECORDING_RUNNER)).unwrap();
    let instance = provider.launch(request("ghr-test-42-small-2")).await.unwrap();
    let pid: u32 = read_when_written(&scene.out().join("pid")).await.trim().parse().unwrap();

    let environ = environ_of(pid);
    let get = |name: &str| environ.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(get("GHR_RUNNER_NAME"), Some("ghr-test-42-small-2"));
    assert_eq!(get("GHR_RUNNER_LABELS"), Some("self-hosted,linux,small"));
    assert_eq!(get("GHR_TIER"), Some("small"));
    assert_eq!(get("GHR_INSTALLATION_ID"), Some("42"));
    assert_eq!(get("GHR_ENVIRONMENT"), Some(scene.environment.as_str()));
    assert_eq!(get("EXTRA"), Some("extra value"));
    assert!(get("PATH").is_some(), "runners get a PATH");
    // Nothing of the test process's own environment beyond the allow-list leaks through.
    for (name, _) in &environ {
        let allowed = INHERITED_ENV_VARS.contains(&name.as_str())
            || RESERVED_ENV_VARS.contains(&name.as_str())
            || name == "OUT"
            || name == "EXTRA";
        assert!(allowed, "unexpected variable {name} in the runner's environment");
    }

    provider.terminate(&instance.id).await.unwrap();
}

#[tokio::test]
async fn runner_output_goes_to_its_log_file() {
    let scene = Scene::new();
    let script = r#"cat > /dev/null; echo "hello from stdout"; echo "hello from stderr" >&2; sleep 1000"#;
    let provider = ProcessProvider::new(scene.config(script)).unwrap();
    let instance = provider.launch(request("ghr-test-42-small-3")).await.unwrap();

    let log = scene.state_dir().join("logs").join("ghr-test-42-small-3.log");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually("both output lines in the log", || {
        let text = read_log();
        text.contains("hello from stdout") && text.contains("hello from stderr")
    })
    .await;
    assert!(!read_log().contains(JIT));

    provider.terminate(&instance.id).await.unwrap();
}

#[tokio::test]
async fn an_exited_runner_vanishes_from_the_list() {
    let scene = Scene::new();
    let script = r#"cat > /dev/null; exit 3"#;
    let provider = ProcessProvider::new(scene.config(script)).unwrap();
    let instance = provider.launch(request("ghr-test-42-small-4")).await.unwrap();

    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    while !provider.list().await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "exited runner still listed after {:?}", support::DEADLINE);
        tokio::time::sleep(support::POLL).await;
    }
    eventually("the state file to be removed", || scene.state_files().is_empty()).await;
    assert!(scene.live_processes().is_empty());
    // Terminating an instance that already exited is fine.
    provider.terminate(&instance.id).await.unwrap();
}

#[tokio::test]
async fn an_exited_runner_takes_its_leftover_background_processes_along() {
    let scene = Scene::new();
    let script = r#"cat > /dev/null; sleep 1000 & echo "$!" > "$OUT/bg.tmp"; mv "$OUT/bg.tmp" "$OUT/bg"; exit 0"#;
    let provider = ProcessProvider::new(scene.config(script)).unwrap();
    provider.launch(request("ghr-test-42-small-5")).await.unwrap();

    let background: u32 = read_when_written(&scene.out().join("bg")).await.trim().parse().unwrap();
    eventually("the leftover background process to be stopped", || !support::is_running(background)).await;
    eventually("no process of the runner to remain", || scene.live_processes().is_empty()).await;
    assert!(provider.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_configuration_is_refused_with_a_fix() {
    let scene = Scene::new();
    let not_executable = scene.root.path().join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let a_file = scene.root.path().join("a-file");
    std::fs::write(&a_file, "").unwrap();

    let with_command = |command: &[&str]| ProcessProviderConfig {
        command: command.iter().map(|part| (*part).to_owned()).collect(),
        ..scene.config("true")
    };
    let cases = [
        (with_command(&[]), "command is empty"),
        (with_command(&["/no/such/runner"]), "cannot be read"),
        (with_command(&["no-such-runner-program"]), "not found"),
        (with_command(&[not_executable.to_str().unwrap()]), "not executable"),
        (ProcessProviderConfig { state_dir: a_file.join("state"), ..scene.config("true") }, "state_dir"),
    ];
    for (config, fragment) in cases {
        match ProcessProvider::new(config) {
            Err(error @ ProviderError::Config { .. }) => {
                let chain = error_chain(&error);
                assert!(chain.contains(fragment), "{chain:?} should mention {fragment:?}")
            }
            other => panic!("expected a configuration error mentioning {fragment:?}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_program_removed_after_startup_is_a_config_error() {
    let scene = Scene::new();
    let program = scene.root.path().join("runner.sh");
    std::fs::write(&program, "#!/bin/sh\nsleep 1000\n").unwrap();
    std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = ProcessProviderConfig { command: vec![program.display().to_string()], ..scene.config("") };
    let provider = ProcessProvider::new(config).unwrap();
    std::fs::remove_file(&program).unwrap();

    let error = provider.launch(request("ghr-test-42-small-6")).await.unwrap_err();
    assert!(matches!(error, ProviderError::Config { .. }) && error_chain(&error).contains("runner.sh"), "{error:?}");
    assert!(provider.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_launch_that_fails_after_the_spawn_leaves_nothing_running() {
    let scene = Scene::new();
    let provider = ProcessProvider::new(scene.config(RECORDING_RUNNER)).unwrap();
    // Break the state directory under the provider: recording the instance fails after the spawn.
    let instances = scene.state_dir().join("instances");
    std::fs::remove_dir_all(&instances).unwrap();
    std::fs::write(&instances, "not a directory").unwrap();

    let error = provider.launch(request("ghr-test-42-small-7")).await.unwrap_err();
    assert!(matches!(error, ProviderError::Failed { .. }) && error_chain(&error).contains("state file"), "{error:?}");
    eventually("the started process to be killed", || scene.live_processes().is_empty()).await;
}
