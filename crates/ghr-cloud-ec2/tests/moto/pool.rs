//! Warm-pool machines on moto: a tenant-neutral launch whose user data starts the agent, then binding.

use super::{Fixture, tag_map, unique_environment};
use aws_sdk_ec2::types::Filter;
use base64::Engine as _;
use ghr_cloud_ec2::TAG_POOL_MACHINE;
use ghr_core::error::error_chain;
use ghr_core::ids::{InstallationId, InstanceId, MachineId, OrgName, RunnerName, TierName};
use ghr_core::ports::{AgentBootstrap, BindRequest, Instance, PoolLaunchRequest, Provider, ProviderError};
use secrecy::SecretString;
use std::collections::BTreeMap;

const SECRET: &str = "b00tstrap-s3cret-for-tests";
const SERVER_URL: &str = "https://ghr.example.com";

fn pool_request(machine: &str) -> PoolLaunchRequest {
    PoolLaunchRequest {
        tier: TierName::new("small"),
        instance_types: vec!["t3.small".into(), "t3.medium".into()],
        runner_architecture: "x64".into(),
        agent: AgentBootstrap {
            server_url: SERVER_URL.into(),
            machine: MachineId::new(machine),
            secret: SecretString::from(format!("{SECRET}-{machine}")),
        },
    }
}

fn bind_request(runner: &str, installation: u64, org: &str) -> BindRequest {
    BindRequest {
        runner_name: RunnerName::new(runner),
        installation_id: InstallationId(installation),
        org_name: OrgName::new(org),
        tenant_tier: TierName::new("pro"),
    }
}

/// Tags of the instance, of each of its volumes and of each of its network interfaces.
async fn resource_tags(fixture: &Fixture, id: &InstanceId) -> Vec<(String, BTreeMap<String, String>)> {
    let instance = fixture.describe(id).await;
    let mut tags = vec![(id.to_string(), tag_map(instance.tags()))];
    let volumes = fixture
        .client
        .describe_volumes()
        .filters(Filter::builder().name("attachment.instance-id").values(id.as_str()).build())
        .send()
        .await
        .expect("describe volumes");
    assert!(!volumes.volumes().is_empty(), "the instance has a root volume");
    for volume in volumes.volumes() {
        tags.push((volume.volume_id().unwrap_or_default().to_owned(), tag_map(volume.tags())));
    }
    let interfaces = fixture
        .client
        .describe_network_interfaces()
        .filters(Filter::builder().name("attachment.instance-id").values(id.as_str()).build())
        .send()
        .await
        .expect("describe network interfaces");
    assert!(!interfaces.network_interfaces().is_empty(), "the instance has a network interface");
    for interface in interfaces.network_interfaces() {
        tags.push((interface.network_interface_id().unwrap_or_default().to_owned(), tag_map(interface.tag_set())));
    }
    tags
}

async fn user_data(fixture: &Fixture, id: &InstanceId) -> String {
    let attribute = fixture
        .client
        .describe_instance_attribute()
        .instance_id(id.as_str())
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .expect("user data attribute");
    let encoded = attribute.user_data().and_then(|v| v.value()).expect("user data is set");
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).expect("base64")).expect("utf-8")
}

fn listed<'a>(instances: &'a [Instance], id: &InstanceId) -> &'a Instance {
    instances.iter().find(|instance| instance.id == *id).unwrap_or_else(|| panic!("{id} not listed: {instances:?}"))
}

#[tokio::test]
async fn a_pool_machine_is_tenant_neutral_and_starts_the_agent_with_its_own_secret() {
    let fixture = Fixture::new().await;
    let environment = unique_environment("pool-launch");
    let provider = fixture.provider(fixture.config(&environment));
    assert!(provider.supports_pools());
    let machine = format!("pool-small-{environment}");
    let launched = provider.launch_pool(pool_request(&machine)).await.expect("launch pool machine");

    assert!(launched.id.as_str().starts_with("i-"), "{launched:?}");
    assert_eq!((launched.runner_name.clone(), launched.installation_id), (None, None));
    assert_eq!(launched.tier, Some(TierName::new("small")));
    assert_eq!(launched.instance_type.as_deref(), Some("t3.small"));

    let neutral = BTreeMap::from([
        ("Name".to_owned(), format!("ghr-{machine}")),
        ("ghr:environment".to_owned(), environment.clone()),
        ("ghr:tier".to_owned(), "small".to_owned()),
        (TAG_POOL_MACHINE.to_owned(), machine.clone()),
        ("Project".to_owned(), "ghr-tests".to_owned()),
    ]);
    let instance = fixture.describe(&launched.id).await;
    assert_eq!(tag_map(instance.tags()), neutral, "instance tags");
    assert_eq!(instance.instance_lifecycle().map(|l| l.as_str()), Some("spot"), "the cold launch's attempts");
    for (resource, tags) in resource_tags(&fixture, &launched.id).await {
        assert!(tags.keys().all(|key| neutral.contains_key(key)), "{resource} carries a tenant's tag: {tags:?}");
    }

    let script = user_data(&fixture, &launched.id).await;
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    assert!(script.contains(&format!("export GHR_AGENT_SECRET='{SECRET}-{machine}'\n")), "{script}");
    assert!(script.contains(&format!("export GHR_AGENT_MACHINE='{machine}'\n")), "{script}");
    assert!(script.contains(&format!("export GHR_AGENT_URL='{SERVER_URL}'\n")), "{script}");
    assert!(script.contains("export GHR_AGENT_JITCONFIG_TO='arg'\n"), "{script}");
    assert!(script.contains(r#"exec '/opt/ghr/ghr-agent' --poweroff-command '["shutdown","-h","now"]'"#), "{script}");
    assert!(!script.contains("--jitconfig") && !script.contains("GHR_JIT_CONFIG"), "no JIT config: {script}");
    let shutdown = fixture
        .client
        .describe_instance_attribute()
        .instance_id(launched.id.as_str())
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .send()
        .await
        .expect("shutdown behaviour attribute");
    assert_eq!(shutdown.instance_initiated_shutdown_behavior().and_then(|v| v.value()), Some("terminate"));
}

#[tokio::test]
async fn binding_tags_every_resource_with_its_tenant_only_and_list_follows() {
    let fixture = Fixture::new().await;
    let environment = unique_environment("pool-bind");
    let provider = fixture.provider(fixture.config(&environment));
    let ours = provider.launch_pool(pool_request("pool-small-ours")).await.expect("launch ours");
    let theirs = provider.launch_pool(pool_request("pool-small-theirs")).await.expect("launch theirs");

    let before = provider.list().await.expect("list");
    assert_eq!(before.len(), 2, "{before:?}");
    for id in [&ours.id, &theirs.id] {
        let unbound = listed(&before, id);
        assert_eq!((unbound.runner_name.clone(), unbound.installation_id), (None, None), "{unbound:?}");
        assert_eq!(unbound.tier, Some(TierName::new("small")));
    }

    let runner = format!("ghr-{environment}-4242-small-1");
    provider.bind(&ours.id, &bind_request(&runner, 4242, "acme")).await.expect("bind ours");
    provider
        .bind(&theirs.id, &bind_request("ghr-other-7-small-1", 7, "globex"))
        .await
        .expect("bind theirs to another tenant");
    provider.bind(&ours.id, &bind_request(&runner, 4242, "acme")).await.expect("binding again is idempotent");

    let resources = resource_tags(&fixture, &ours.id).await;
    assert!(resources.len() >= 3, "instance, volume and network interface: {resources:?}");
    assert_eq!(resources[0].1.get("ghr:environment"), Some(&environment), "launch tags stay: {resources:?}");
    // (moto leaves a network interface untagged at launch, so only binding's tags are checked on every resource.)
    for (resource, tags) in resources {
        for (key, value) in [
            ("ghr:tenant_id", "4242"),
            ("ghr:tenant_tier", "pro"),
            ("ghr:runner_name", runner.as_str()),
            ("ghr:org", "acme"),
        ] {
            assert_eq!(tags.get(key).map(String::as_str), Some(value), "{resource}: {key} in {tags:?}");
        }
        assert!(
            !tags.values().any(|value| value == "7" || value == "globex" || value.contains("other")),
            "{resource} carries another tenant's tag: {tags:?}"
        );
    }

    let after = provider.list().await.expect("list");
    let bound = listed(&after, &ours.id);
    assert_eq!(bound.runner_name, Some(RunnerName::new(&runner)));
    assert_eq!(bound.installation_id, Some(InstallationId(4242)));
    assert_eq!(listed(&after, &theirs.id).installation_id, Some(InstallationId(7)));

    let err = provider.bind(&ours.id, &bind_request("ghr-other-7-small-2", 7, "globex")).await.unwrap_err();
    assert!(error_chain(&err).contains(&format!("already bound to runner {runner}")), "{err}");
    let tags = tag_map(fixture.describe(&ours.id).await.tags());
    assert_eq!(tags["ghr:tenant_id"], "4242", "a refused rebind changes nothing");
}

#[tokio::test]
async fn binding_an_unknown_terminated_foreign_or_cold_instance_is_an_error() {
    let fixture = Fixture::new().await;
    let environment = unique_environment("pool-bind-bad");
    let provider = fixture.provider(fixture.config(&environment));
    let bind = bind_request("ghr-bad-1-small-1", 1, "acme");

    let err = provider.bind(&InstanceId::new("i-0123456789abcdef0"), &bind).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Failed { message, .. } if message.contains("no instance i-0123456789abcdef0")),
        "{err:?}"
    );

    let gone = provider.launch_pool(pool_request("pool-small-gone")).await.expect("launch");
    provider.terminate(&gone.id).await.expect("terminate");
    let err = provider.bind(&gone.id, &bind).await.unwrap_err();
    assert!(error_chain(&err).contains("terminated"), "{err:?}");

    let foreign = fixture.provider(fixture.config(&unique_environment("pool-bind-foreign")));
    let theirs = foreign.launch_pool(pool_request("pool-small-foreign")).await.expect("launch in another environment");
    let err = provider.bind(&theirs.id, &bind).await.unwrap_err();
    assert!(error_chain(&err).contains(&format!("environment {environment}")), "{err:?}");
    assert!(!tag_map(fixture.describe(&theirs.id).await.tags()).contains_key("ghr:tenant_id"));

    let cold = provider.launch(super::request("ghr-bad-cold-1", &["t3.small"])).await.expect("cold launch");
    let err = provider.bind(&cold.id, &bind).await.unwrap_err();
    assert!(error_chain(&err).contains("not a warm-pool machine"), "{err:?}");
}
