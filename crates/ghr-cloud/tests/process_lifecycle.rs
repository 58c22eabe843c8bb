//! Terminating with the process provider: whole process groups, SIGKILL after the grace period,
//! idempotence, terminate_all, and surviving a ghr restart (adoption, stale and reused pids).

mod support;

use ghr_cloud::ProcessProvider;
use ghr_core::ids::InstanceId;
use ghr_core::ports::Provider;
use std::time::Instant;
use support::{Scene, TEST_GRACE, eventually, is_running, read_when_written, request};

/// Reads its config, starts a grandchild in its group, records both pids, then waits.
const FAMILY_RUNNER: &str =
    r#"cat > /dev/null; sleep 1000 & echo "$$ $!" > "$OUT/pids.tmp"; mv "$OUT/pids.tmp" "$OUT/pids"; sleep 1000"#;

async fn family_pids(scene: &Scene) -> (u32, u32) {
    let text = read_when_written(&scene.out().join("pids")).await;
    let mut parts = text.split_whitespace().map(|pid| pid.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

#[tokio::test]
async fn terminate_stops_the_whole_group_and_is_idempotent() {
    let scene = Scene::new();
    let provider = ProcessProvider::new(scene.config(FAMILY_RUNNER)).unwrap();
    let instance = provider.launch(request("ghr-test-42-small-10")).await.unwrap();
    let (runner, grandchild) = family_pids(&scene).await;
    assert!(is_running(runner) && is_running(grandchild));

    provider.terminate(&instance.id).await.unwrap();
    assert!(!is_running(runner), "runner {runner} survived terminate");
    assert!(!is_running(grandchild), "grandchild {grandchild} survived terminate");
    assert!(scene.live_processes().is_empty());
    assert!(scene.state_files().is_empty());
    assert!(provider.list().await.unwrap().is_empty());

    provider.terminate(&instance.id).await.unwrap();
    provider.terminate(&InstanceId::from("proc-1-1")).await.unwrap();
    provider.terminate(&InstanceId::from("i-0123456789abcdef0")).await.unwrap();
    provider.terminate(&InstanceId::from("proc-../../x-1")).await.unwrap();
}

#[tokio::test]
async fn a_runner_ignoring_sigterm_is_killed_after_the_grace_period() {
    let scene = Scene::new();
    let script = r#"trap '' TERM; cat > /dev/null; echo ready > "$OUT/ready"; while :; do sleep 1; done"#;
    let provider = ProcessProvider::new(scene.config(script)).unwrap();
    let instance = provider.launch(request("ghr-test-42-small-11")).await.unwrap();
    read_when_written(&scene.out().join("ready")).await;

    let started = Instant::now();
    provider.terminate(&instance.id).await.unwrap();
    assert!(started.elapsed() >= TEST_GRACE, "SIGKILL came before the grace period ({:?})", started.elapsed());
    assert!(scene.live_processes().is_empty());
    assert!(provider.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn terminate_all_stops_every_runner() {
    let scene = Scene::new();
    let provider = ProcessProvider::new(scene.config("cat > /dev/null; sleep 1000")).unwrap();
    for seq in 0..3 {
        provider.launch(request(&format!("ghr-test-42-small-2{seq}"))).await.unwrap();
    }
    assert_eq!(provider.list().await.unwrap().len(), 3);
    eventually("three runner processes", || scene.live_processes().len() >= 3).await;

    assert_eq!(provider.terminate_all().await.unwrap(), 3);
    assert!(scene.live_processes().is_empty());
    assert!(provider.list().await.unwrap().is_empty());
    assert_eq!(provider.terminate_all().await.unwrap(), 0);
}

#[tokio::test]
async fn a_restarted_provider_adopts_and_terminates_survivors() {
    let scene = Scene::new();
    let first = ProcessProvider::new(scene.config(FAMILY_RUNNER)).unwrap();
    let instance = first.launch(request("ghr-test-42-small-30")).await.unwrap();
    let (runner, grandchild) = family_pids(&scene).await;
    drop(first);
    assert!(is_running(runner), "dropping the provider must leave its runners running");

    let second = ProcessProvider::new(scene.config(FAMILY_RUNNER)).unwrap();
    assert_eq!(second.list().await.unwrap(), vec![instance.clone()]);

    second.terminate(&instance.id).await.unwrap();
    assert!(!is_running(runner) && !is_running(grandchild));
    assert!(second.list().await.unwrap().is_empty());
    assert!(scene.state_files().is_empty());
}

#[tokio::test]
async fn another_deployment_on_the_same_state_dir_is_left_alone() {
    let scene = Scene::new();
    let ours = ProcessProvider::new(scene.config("cat > /dev/null; sleep 1000")).unwrap();
    let instance = ours.launch(request("ghr-test-42-small-31")).await.unwrap();

    let mut theirs_config = scene.config("cat > /dev/null; sleep 1000");
    theirs_config.environment = format!("{}-other", scene.environment);
    let theirs = ProcessProvider::new(theirs_config).unwrap();
    assert!(theirs.list().await.unwrap().is_empty());
    assert_eq!(theirs.terminate_all().await.unwrap(), 0);
    assert_eq!(ours.list().await.unwrap(), vec![instance.clone()]);

    ours.terminate(&instance.id).await.unwrap();
}

#[tokio::test]
async fn state_of_a_runner_that_died_while_ghr_was_down_is_cleaned_up() {
    let scene = Scene::new();
    let first = ProcessProvider::new(scene.config(FAMILY_RUNNER)).unwrap();
    let instance = first.launch(request("ghr-test-42-small-40")).await.unwrap();
    let (runner, grandchild) = family_pids(&scene).await;
    drop(first);
    // The runner dies while no provider watches it; its grandchild lingers in the group.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(runner as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    eventually("the runner to die", || !is_running(runner)).await;
    assert!(is_running(grandchild));

    let second = ProcessProvider::new(scene.config(FAMILY_RUNNER)).unwrap();
    assert!(second.list().await.unwrap().is_empty());
    assert!(scene.state_files().is_empty(), "stale state file kept: {:?}", scene.state_files());
    eventually("the leftover grandchild to be killed", || !is_running(grandchild)).await;
    second.terminate(&instance.id).await.unwrap();
}

#[tokio::test]
async fn a_reused_pid_is_never_signalled() {
    let scene = Scene::new();
    let provider = ProcessProvider::new(scene.config("cat > /dev/null; sleep 1000")).unwrap();
    let instance = provider.launch(request("ghr-test-42-small-50")).await.unwrap();

    // A bystander in its own group takes the place of a recorded runner whose pid was reused.
    let mut bystander = scene.bystander();
    let pid = bystander.id();
    let real_ticks = support::stat(pid).unwrap().1;
    let forged_id = format!("proc-{pid}-{}", real_ticks + 1);
    let template = std::fs::read_to_string(&scene.state_files()[0]).unwrap();
    let mut forged: serde_json::Value = serde_json::from_str(&template).unwrap();
    forged["instance_id"] = forged_id.clone().into();
    forged["pid"] = pid.into();
    forged["pgid"] = pid.into();
    forged["start_ticks"] = (real_ticks + 1).into();
    let forged_path = scene.state_dir().join("instances").join(format!("{forged_id}.json"));
    std::fs::write(&forged_path, serde_json::to_vec(&forged).unwrap()).unwrap();

    provider.terminate(&InstanceId(forged_id)).await.unwrap();
    assert!(is_running(pid), "terminate signalled a process that merely reuses a recorded pid");
    assert!(!forged_path.exists());

    std::fs::write(&forged_path, serde_json::to_vec(&forged).unwrap()).unwrap();
    assert_eq!(provider.list().await.unwrap(), vec![instance.clone()]);
    assert!(is_running(pid), "list signalled a process that merely reuses a recorded pid");
    assert!(!forged_path.exists(), "state file of a reused pid kept");

    bystander.kill().unwrap();
    bystander.wait().unwrap();
    provider.terminate(&instance.id).await.unwrap();
}

#[tokio::test]
async fn unreadable_state_files_are_listed_while_their_process_runs_and_cleaned_up() {
    let scene = Scene::new();
    let instances = scene.state_dir().join("instances");
    std::fs::create_dir_all(&instances).unwrap();
    // A live process whose state file got corrupted, a gone one, and a file that names nothing.
    let mut survivor = scene.bystander();
    let survivor_id = format!("proc-{}-{}", survivor.id(), support::stat(survivor.id()).unwrap().1);
    std::fs::write(instances.join(format!("{survivor_id}.json")), "{ truncated").unwrap();
    std::fs::write(instances.join("proc-999999999-1.json"), "{ truncated").unwrap();
    std::fs::write(instances.join("notes.json"), "{ not json").unwrap();
    std::fs::write(instances.join("proc-3-4.json.tmp"), "{ half").unwrap();

    let provider = ProcessProvider::new(scene.config("true")).unwrap();
    let listed = provider.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id.as_str(), survivor_id);
    assert_eq!((listed[0].runner_name.clone(), listed[0].installation_id), (None, None));
    assert_eq!(
        scene.state_files(),
        vec![instances.join("notes.json.corrupt"), instances.join(format!("{survivor_id}.json"))]
    );

    provider.terminate(&InstanceId(survivor_id)).await.unwrap();
    assert!(survivor.wait().unwrap().code().is_none(), "the survivor was stopped by a signal");
    assert!(provider.list().await.unwrap().is_empty());
    assert_eq!(scene.state_files(), vec![instances.join("notes.json.corrupt")]);
}
