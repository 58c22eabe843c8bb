//! Warm-pool machines of the process provider: launched tenant-neutral with the bootstrap secret on the
//! agent's standard input only, bound once to one tenant's runner, and refused a second binding.

mod support;

use ghr_cloud::ProcessProvider;
use ghr_core::ids::{InstallationId, MachineId, OrgName, RunnerName, TierName};
use ghr_core::ports::{AgentBootstrap, BindRequest, InstanceState, PoolLaunchRequest, Provider};
use secrecy::SecretString;
use support::{Scene, eventually, files_under, read_when_written, request};

const SECRET: &str = "bootstrap-secret-of-the-pool-test-0123456789";
const MACHINE: &str = "pool-small-00000000000000ab";

/// An agent stand-in: records its standard input, environment and pid, then waits like an agent.
const RECORDING_AGENT: &str = r#"cat > "$OUT/stdin.tmp" && mv "$OUT/stdin.tmp" "$OUT/stdin"; env > "$OUT/env"; echo "$$" > "$OUT/pid.tmp" && mv "$OUT/pid.tmp" "$OUT/pid"; sleep 1000"#;

fn pool_request() -> PoolLaunchRequest {
    PoolLaunchRequest {
        tier: TierName::from("small"),
        instance_types: vec!["local".into()],
        runner_architecture: "x64".into(),
        agent: AgentBootstrap {
            server_url: "http://127.0.0.1:9".into(),
            machine: MachineId::new(MACHINE),
            secret: SecretString::from(SECRET),
        },
    }
}

fn bind_request(runner: &str, installation: u64) -> BindRequest {
    BindRequest {
        runner_name: RunnerName::from(runner),
        installation_id: InstallationId(installation),
        org_name: OrgName::from("acme"),
        tenant_tier: TierName::from("medium"),
    }
}

fn pooled_provider(scene: &Scene) -> ProcessProvider {
    let mut config = scene.config("sleep 1000");
    config.agent_command = vec!["/bin/sh".into(), "-c".into(), RECORDING_AGENT.into(), "agent".into()];
    ProcessProvider::new(config).unwrap()
}

#[tokio::test]
async fn a_pool_machine_starts_neutral_with_its_secret_on_stdin_only() {
    let scene = Scene::new();
    let provider = pooled_provider(&scene);
    assert!(provider.supports_pools());

    let instance = provider.launch_pool(pool_request()).await.unwrap();
    assert_eq!(instance.state, InstanceState::Running);
    assert_eq!((instance.runner_name.clone(), instance.installation_id), (None, None), "no tenant before binding");
    assert_eq!(instance.tier, Some(TierName::from("small")));

    assert_eq!(read_when_written(&scene.out().join("stdin")).await, format!("{SECRET}\n"));
    let pid: u32 = read_when_written(&scene.out().join("pid")).await.trim().parse().unwrap();
    let env = std::fs::read_to_string(scene.out().join("env")).unwrap();
    assert!(!env.contains(SECRET), "the secret is not in the agent's environment");
    for expected in [
        "GHR_AGENT_URL=http://127.0.0.1:9".to_owned(),
        format!("GHR_AGENT_MACHINE={MACHINE}"),
        "GHR_AGENT_SECRET_STDIN=true".to_owned(),
        "GHR_AGENT_JITCONFIG_TO=stdin".to_owned(),
        r#"GHR_AGENT_RUNNER_COMMAND=["/bin/sh","-c","sleep 1000","runner"]"#.to_owned(),
    ] {
        assert!(env.lines().any(|l| l == expected), "{expected} in {env}");
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(SECRET), "the secret on the command line");
    for file in files_under(&scene.state_dir()) {
        let content = std::fs::read(&file).unwrap();
        assert!(!String::from_utf8_lossy(&content).contains(SECRET), "the secret written to {}", file.display());
    }
    assert_eq!(provider.list().await.unwrap(), vec![instance.clone()]);
    provider.terminate(&instance.id).await.unwrap();
    eventually("the pool machine is gone", || scene.live_processes().is_empty()).await;
}

#[tokio::test]
async fn a_pool_machine_is_bound_once_to_one_tenant() {
    let scene = Scene::new();
    let provider = pooled_provider(&scene);
    let instance = provider.launch_pool(pool_request()).await.unwrap();
    read_when_written(&scene.out().join("pid")).await;

    provider.bind(&instance.id, &bind_request("ghr-acme-small-1", 42)).await.unwrap();
    let listed = provider.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].runner_name, Some(RunnerName::from("ghr-acme-small-1")), "carries its runner");
    assert_eq!(listed[0].installation_id, Some(InstallationId(42)), "carries its tenant");

    let again = provider.bind(&instance.id, &bind_request("ghr-globex-small-2", 43)).await.unwrap_err();
    assert!(again.to_string().contains("already bound to ghr-acme-small-1"), "{again}");
    let listed = provider.list().await.unwrap();
    assert_eq!(listed[0].installation_id, Some(InstallationId(42)), "a second tenant never replaces the first");
    provider.terminate(&instance.id).await.unwrap();
}

#[tokio::test]
async fn binding_refuses_what_is_not_a_live_neutral_pool_machine() {
    let scene = Scene::new();
    let provider = pooled_provider(&scene);

    let runner = provider.launch(request("ghr-test-42-small-1")).await.unwrap();
    let refused = provider.bind(&runner.id, &bind_request("ghr-x-1", 42)).await.unwrap_err();
    assert!(refused.to_string().contains("is a runner's instance"), "{refused}");

    let unknown = ghr_core::ids::InstanceId::new("proc-1-1");
    let refused = provider.bind(&unknown, &bind_request("ghr-x-1", 42)).await.unwrap_err();
    assert!(refused.to_string().contains("no pool machine"), "{refused}");
    let malformed = ghr_core::ids::InstanceId::new("i-0123");
    assert!(provider.bind(&malformed, &bind_request("ghr-x-1", 42)).await.is_err());

    let machine = provider.launch_pool(pool_request()).await.unwrap();
    read_when_written(&scene.out().join("pid")).await;
    provider.terminate(&machine.id).await.unwrap();
    let refused = provider.bind(&machine.id, &bind_request("ghr-x-1", 42)).await.unwrap_err();
    assert!(refused.to_string().contains("pool machine"), "a terminated machine is not bound: {refused}");
    provider.terminate(&runner.id).await.unwrap();
}
