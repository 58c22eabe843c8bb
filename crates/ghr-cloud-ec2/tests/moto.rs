//! The EC2 provider against moto, the AWS emulator: start it with `eval "$(scripts/moto.sh start)"`.
//!
//! Every test uses its own `ghr:environment` value, so the tests run in parallel on one moto server
//! and never see each other's instances. moto cannot produce capacity errors, so [`Injector`] wraps the
//! real moto-backed client and fails chosen RunInstances attempts.

mod common;
#[path = "moto/pool.rs"]
mod pool;

use async_trait::async_trait;
use aws_sdk_ec2::types::Filter;
use base64::Engine as _;
use common::{default_network, moto_client, provider_config};
use ghr_cloud_ec2::api::{DescribePage, DescribeRequest, Ec2Instance, RunInstanceInput};
use ghr_cloud_ec2::plan::PurchaseOption;
use ghr_cloud_ec2::{CapacityType, Ec2Api, Ec2ApiError, Ec2Provider, Ec2ProviderConfig, SdkEc2Api};
use ghr_core::error::error_chain;
use ghr_core::ids::{InstallationId, InstanceId, OrgName, RunnerName, TierName};
use ghr_core::ports::{Instance, InstanceState, LaunchRequest, Provider, ProviderError};
use secrecy::SecretString;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Stands in for GitHub's `encoded_jit_config` (base64 of a JSON document).
const JIT_CONFIG: &str = "eyJydW5uZXIiOiJzM2NyM3QtdDBrM24tZm9yLXRlc3RzIn0=";

/// A distinct environment per test and per run (moto keeps state between runs).
fn unique_environment(test: &str) -> String {
    format!("test-{test}-{:08x}", rand::random::<u32>())
}

struct Fixture {
    client: aws_sdk_ec2::Client,
    subnets: Vec<String>,
    ami: String,
}

impl Fixture {
    async fn new() -> Self {
        let client = moto_client().await;
        let (subnets, ami) = default_network(&client).await;
        Self { client, subnets, ami }
    }

    fn config(&self, environment: &str) -> Ec2ProviderConfig {
        let mut config = provider_config(environment, &self.ami, &self.subnets[..2]);
        config.extra_tags.insert("Project".into(), "ghr-tests".into());
        config
    }

    fn provider(&self, config: Ec2ProviderConfig) -> Ec2Provider {
        Ec2Provider::from_client(self.client.clone(), config).expect("valid config")
    }

    fn injected(&self, config: Ec2ProviderConfig, injection: Injection) -> (Ec2Provider, Arc<Injector>) {
        let injector = Arc::new(Injector::new(SdkEc2Api::new(self.client.clone()), injection));
        let provider = Ec2Provider::with_api(injector.clone(), config).expect("valid config");
        (provider, injector)
    }

    async fn describe(&self, id: &InstanceId) -> aws_sdk_ec2::types::Instance {
        let output = self.client.describe_instances().instance_ids(id.as_str()).send().await.expect("describe");
        output.reservations().iter().flat_map(|r| r.instances()).next().cloned().expect("instance exists in moto")
    }
}

fn request(runner: &str, instance_types: &[&str]) -> LaunchRequest {
    LaunchRequest {
        runner_architecture: "x64".into(),
        runner_name: RunnerName::new(runner),
        installation_id: InstallationId(4242),
        org_name: OrgName::new("acme"),
        tenant_tier: TierName::new("pro"),
        tier: TierName::new("small"),
        instance_types: instance_types.iter().map(|t| (*t).to_owned()).collect(),
        labels: vec!["ghr-small".into()],
        jit_config: SecretString::from(JIT_CONFIG),
    }
}

fn tag_map(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect()
}

// ---------------------------------------------------------------------------------------------
// The injector: the real moto-backed API, with chosen RunInstances failures.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Injection {
    /// Pass every call through.
    Nothing,
    /// Fail the first N RunInstances attempts with this EC2 error code (without calling moto).
    FailFirst(usize, &'static str),
    /// Launch for real, then lose EC2's answer (as a timeout would).
    LoseAnswer,
    /// Pass through, but page DescribeInstances by this many instances.
    PageSize(i32),
}

struct Injector {
    inner: SdkEc2Api,
    injection: Injection,
    attempts: Mutex<Vec<RunInstanceInput>>,
    describe_calls: AtomicUsize,
}

impl Injector {
    fn new(inner: SdkEc2Api, injection: Injection) -> Self {
        Self { inner, injection, attempts: Mutex::new(Vec::new()), describe_calls: AtomicUsize::new(0) }
    }

    fn attempts(&self) -> Vec<RunInstanceInput> {
        self.attempts.lock().unwrap().clone()
    }

    fn attempted(&self) -> Vec<(Option<String>, Option<String>, PurchaseOption)> {
        self.attempts()
            .into_iter()
            .map(|input| (input.attempt.instance_type, input.attempt.subnet_id, input.attempt.purchase))
            .collect()
    }
}

#[async_trait]
impl Ec2Api for Injector {
    async fn run_instance(&self, input: &RunInstanceInput) -> Result<Ec2Instance, Ec2ApiError> {
        let number = {
            let mut attempts = self.attempts.lock().unwrap();
            attempts.push(input.clone());
            attempts.len()
        };
        match self.injection {
            Injection::FailFirst(n, code) if number <= n => {
                Err(Ec2ApiError::service("RunInstances", code, "injected by the test"))
            }
            Injection::LoseAnswer => {
                self.inner.run_instance(input).await?;
                let lost = std::io::Error::new(std::io::ErrorKind::TimedOut, "answer lost by the test");
                Err(Ec2ApiError::from_sdk("RunInstances", None, None, lost))
            }
            _ => self.inner.run_instance(input).await,
        }
    }

    async fn terminate(&self, instance_id: &str) -> Result<(), Ec2ApiError> {
        self.inner.terminate(instance_id).await
    }

    async fn describe(&self, request: &DescribeRequest) -> Result<DescribePage, Ec2ApiError> {
        self.describe_calls.fetch_add(1, Ordering::SeqCst);
        let mut request = request.clone();
        if let Injection::PageSize(size) = self.injection {
            request.max_results = Some(size);
        }
        self.inner.describe(&request).await
    }

    async fn create_tags(&self, resource_ids: &[String], tags: &[(String, String)]) -> Result<(), Ec2ApiError> {
        self.inner.create_tags(resource_ids, tags).await
    }
}

// ---------------------------------------------------------------------------------------------
// Log capture
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn launch_tags_instance_and_volume_and_starts_the_runner_from_user_data() {
    let fixture = Fixture::new().await;
    let environment = unique_environment("launch");
    let provider = fixture.provider(fixture.config(&environment));
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);

    let runner = format!("ghr-{environment}-4242-small-1");
    let launched = provider.launch(request(&runner, &["t3.small", "t3.medium"])).await.expect("launch");
    drop(guard);

    assert!(launched.id.as_str().starts_with("i-"), "{launched:?}");
    assert_eq!(launched.runner_name, Some(RunnerName::new(&runner)));
    assert_eq!(launched.installation_id, Some(InstallationId(4242)));
    assert_eq!(launched.tier, Some(TierName::new("small")));
    assert_eq!(launched.instance_type.as_deref(), Some("t3.small"));
    assert!(launched.launched_at.is_some());

    let instance = fixture.describe(&launched.id).await;
    let expected_tags = BTreeMap::from([
        ("Name".to_owned(), runner.clone()),
        ("ghr:environment".to_owned(), environment.clone()),
        ("ghr:runner_name".to_owned(), runner.clone()),
        ("ghr:tenant_id".to_owned(), "4242".to_owned()),
        ("ghr:tenant_tier".to_owned(), "pro".to_owned()),
        ("ghr:tier".to_owned(), "small".to_owned()),
        ("ghr:org".to_owned(), "acme".to_owned()),
        ("Project".to_owned(), "ghr-tests".to_owned()),
    ]);
    assert_eq!(tag_map(instance.tags()), expected_tags, "instance tags");
    assert_eq!(instance.subnet_id(), Some(fixture.subnets[0].as_str()));
    assert_eq!(instance.image_id(), Some(fixture.ami.as_str()));
    assert_eq!(instance.instance_lifecycle().map(|l| l.as_str()), Some("spot"), "spot is tried first");

    let volumes = fixture
        .client
        .describe_volumes()
        .filters(Filter::builder().name("attachment.instance-id").values(launched.id.as_str()).build())
        .send()
        .await
        .expect("describe volumes");
    assert!(!volumes.volumes().is_empty(), "the instance has a root volume");
    for volume in volumes.volumes() {
        assert_eq!(tag_map(volume.tags()), expected_tags, "volume tags");
    }

    let attribute = |name: &'static str| {
        fixture
            .client
            .describe_instance_attribute()
            .instance_id(launched.id.as_str())
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::from(name))
            .send()
    };
    let user_data = attribute("userData").await.expect("user data attribute");
    let encoded = user_data.user_data().and_then(|v| v.value()).expect("user data is set").to_owned();
    let script = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(&encoded).expect("base64"))
        .expect("utf-8 script");
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    assert!(script.contains(JIT_CONFIG), "the script carries the JIT config");
    assert!(script.contains(r#"./run.sh --jitconfig "$(cat "$jit_file")""#), "{script}");
    assert!(script.contains("cd /opt/actions-runner"), "{script}");
    assert!(script.contains("shutdown -h now"), "{script}");
    let shutdown = attribute("instanceInitiatedShutdownBehavior").await.expect("shutdown behaviour attribute");
    assert_eq!(shutdown.instance_initiated_shutdown_behavior().and_then(|v| v.value()), Some("terminate"));

    let logs = logs.text();
    assert!(logs.contains("launched runner instance"), "the log capture works: {logs}");
    assert!(logs.contains("EC2.RunInstances"), "the SDK's own TRACE output is captured too: {logs}");
    assert!(!logs.contains(JIT_CONFIG), "the JIT config was logged");
    assert!(!logs.contains(&encoded), "the user data was logged");
}

#[tokio::test]
async fn list_reports_only_this_environment() {
    let fixture = Fixture::new().await;
    let ours = fixture.provider(fixture.config(&unique_environment("list-ours")));
    let theirs_environment = unique_environment("list-theirs");
    let theirs = fixture.provider(fixture.config(&theirs_environment));

    let mine = ours.launch(request("ghr-ours-1", &["t3.small"])).await.expect("launch ours");
    let other = theirs.launch(request("ghr-theirs-1", &["t3.small"])).await.expect("launch theirs");

    let listed = ours.list().await.expect("list ours");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let listed: &Instance = &listed[0];
    assert_eq!(listed.id, mine.id);
    assert_eq!(listed.runner_name, Some(RunnerName::new("ghr-ours-1")));
    assert_eq!(listed.installation_id, Some(InstallationId(4242)));
    assert_eq!(listed.tier, Some(TierName::new("small")));
    assert_eq!(listed.instance_type.as_deref(), Some("t3.small"));
    assert!(matches!(listed.state, InstanceState::Pending | InstanceState::Running), "{listed:?}");
    assert!(listed.launched_at.is_some());

    let their_list = theirs.list().await.expect("list theirs");
    assert_eq!(their_list.iter().map(|i| &i.id).collect::<Vec<_>>(), vec![&other.id]);
}

#[tokio::test]
async fn list_follows_every_page() {
    let fixture = Fixture::new().await;
    let environment = unique_environment("pages");
    let (provider, injector) = fixture.injected(fixture.config(&environment), Injection::PageSize(5));
    let mut launched = HashSet::new();
    for n in 0..7 {
        let instance = provider.launch(request(&format!("ghr-pages-{n}"), &["t3.micro"])).await.expect("launch");
        launched.insert(instance.id);
    }
    let listed: HashSet<InstanceId> = provider.list().await.expect("list").into_iter().map(|i| i.id).collect();
    assert_eq!(listed, launched);
    assert!(injector.describe_calls.load(Ordering::SeqCst) >= 2, "7 instances by 5 take two pages");
}

#[tokio::test]
async fn terminate_is_idempotent() {
    let fixture = Fixture::new().await;
    let provider = fixture.provider(fixture.config(&unique_environment("terminate")));
    let instance = provider.launch(request("ghr-terminate-1", &["t3.small"])).await.expect("launch");
    assert_eq!(provider.list().await.expect("list").len(), 1);

    provider.terminate(&instance.id).await.expect("terminate");
    assert!(provider.list().await.expect("list").is_empty(), "a terminated instance is not listed");
    let state = fixture.describe(&instance.id).await.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned());
    assert!(matches!(state.as_deref(), Some("shutting-down" | "terminated")), "{state:?}");

    provider.terminate(&instance.id).await.expect("terminating again is fine");
    provider.terminate(&InstanceId::new("i-0123456789abcdef0")).await.expect("an unknown instance is fine");
}

#[tokio::test]
async fn capacity_errors_move_to_the_next_type_then_to_on_demand() {
    let fixture = Fixture::new().await;
    let mut config = fixture.config(&unique_environment("fallback"));
    config.subnet_ids.truncate(1);
    let subnet = config.subnet_ids[0].clone();
    let (provider, injector) = fixture.injected(config, Injection::FailFirst(2, "InsufficientInstanceCapacity"));

    let instance = provider.launch(request("ghr-fallback-1", &["t3.small", "t3.medium"])).await.expect("launch");

    let expected = vec![
        (Some("t3.small".to_owned()), Some(subnet.clone()), PurchaseOption::Spot),
        (Some("t3.medium".to_owned()), Some(subnet.clone()), PurchaseOption::Spot),
        (Some("t3.small".to_owned()), Some(subnet), PurchaseOption::OnDemand),
    ];
    assert_eq!(injector.attempted(), expected);
    let tokens: HashSet<String> = injector.attempts().into_iter().map(|input| input.client_token).collect();
    assert_eq!(tokens.len(), 3, "every attempt has its own client token: {tokens:?}");

    assert_eq!(instance.instance_type.as_deref(), Some("t3.small"));
    let described = fixture.describe(&instance.id).await;
    assert_eq!(described.instance_lifecycle(), None, "the fallback instance is on-demand");
    assert_eq!(provider.list().await.expect("list").len(), 1, "only the successful attempt left an instance");
}

#[tokio::test]
async fn non_capacity_errors_stop_at_the_first_attempt() {
    let fixture = Fixture::new().await;

    // A real moto error: the subnet does not exist.
    let mut config = fixture.config(&unique_environment("bad-subnet"));
    config.subnet_ids = vec!["subnet-00000000000000000".into(), fixture.subnets[0].clone()];
    let (provider, injector) = fixture.injected(config, Injection::Nothing);
    let err = provider.launch(request("ghr-bad-subnet-1", &["t3.small", "t3.medium"])).await.expect_err("bad subnet");
    assert!(
        matches!(&err, ProviderError::Config { .. }) && error_chain(&err).contains("InvalidSubnetID.NotFound"),
        "{err:?}"
    );
    assert_eq!(injector.attempts().len(), 1, "a configuration error is not retried with other options");
    assert!(provider.list().await.expect("list").is_empty());

    // Throttling: retry later, not with the next option.
    let (provider, injector) = fixture
        .injected(fixture.config(&unique_environment("throttled")), Injection::FailFirst(1, "RequestLimitExceeded"));
    let err = provider.launch(request("ghr-throttled-1", &["t3.small", "t3.medium"])).await.expect_err("throttled");
    assert!(matches!(err, ProviderError::Throttled { .. }), "{err:?}");
    assert_eq!(injector.attempts().len(), 1);
    assert!(provider.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn exhausted_attempts_report_no_capacity() {
    let fixture = Fixture::new().await;
    let (provider, injector) = fixture.injected(
        fixture.config(&unique_environment("exhausted")),
        Injection::FailFirst(usize::MAX, "InsufficientInstanceCapacity"),
    );
    let err = provider.launch(request("ghr-exhausted-1", &["t3.small", "t3.medium"])).await.expect_err("no capacity");
    // 2 types × 2 subnets × (spot, on-demand).
    assert_eq!(injector.attempts().len(), 8);
    let ProviderError::Capacity { message: text, .. } = err else { panic!("expected a capacity error, got {err:?}") };
    assert!(text.contains("after 8 attempts"), "{text}");
    for tried in ["t3.small", "t3.medium", "(spot)", "(on-demand)", "InsufficientInstanceCapacity"] {
        assert!(text.contains(tried), "the error lists {tried}: {text}");
    }
    assert!(provider.list().await.expect("list").is_empty(), "nothing was left running");
}

#[tokio::test]
async fn a_launch_whose_answer_is_lost_leaves_nothing_running() {
    let fixture = Fixture::new().await;
    let (provider, injector) = fixture.injected(fixture.config(&unique_environment("lost")), Injection::LoseAnswer);
    let err = provider.launch(request("ghr-lost-1", &["t3.small"])).await.expect_err("answer lost");
    assert!(matches!(&err, ProviderError::Failed { .. }) && error_chain(&err).contains("answer lost"), "{err:?}");
    assert_eq!(injector.attempts().len(), 1, "an unknown outcome is not retried with other options");
    assert!(provider.list().await.expect("list").is_empty(), "the instance that did start was terminated");
}

#[tokio::test]
async fn on_demand_capacity_never_asks_for_spot() {
    let fixture = Fixture::new().await;
    let mut config = fixture.config(&unique_environment("on-demand"));
    config.capacity = CapacityType::OnDemand;
    let (provider, injector) = fixture.injected(config, Injection::Nothing);
    assert_eq!(provider.name(), "ec2");
    let instance = provider.launch(request("ghr-on-demand-1", &["t3.small"])).await.expect("launch");
    assert_eq!(fixture.describe(&instance.id).await.instance_lifecycle(), None, "on-demand");
    assert_eq!(injector.attempted().iter().map(|a| a.2).collect::<Vec<_>>(), vec![PurchaseOption::OnDemand]);
}
