//! [`Ec2Provider`]: ghr's [`Provider`] on EC2 — launch with fallbacks, terminate, list by environment (warm-pool
//! launches and binding are in `pool.rs`).

use crate::api::{DescribeRequest, Ec2Api, Ec2Instance, RunInstanceInput, SdkEc2Api};
use crate::config::{Ec2ConfigError, Ec2ProviderConfig};
use crate::error::{Ec2ApiError, ErrorClass};
use crate::plan::{LaunchAttempt, attempt_plan};
use crate::tags::{RunnerTags, TAG_ENVIRONMENT, TAG_POOL_MACHINE, TAG_RUNNER_NAME, runner_tags};
use crate::user_data::{UserDataError, encode_user_data, render_user_data};
use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use ghr_core::ids::{InstanceId, MachineId, RunnerName, TierName};
use ghr_core::ports::{
    BindRequest, Instance, InstanceState, LaunchRequest, PoolLaunchRequest, Provider, ProviderError,
};
use std::sync::Arc;
use std::time::Duration;

/// The provider's name in logs and metrics.
pub const PROVIDER_NAME: &str = "ec2";
/// Instance states [`Provider::list`] reports (everything not on its way out).
pub const LISTED_STATES: &[&str] = &["pending", "running", "stopping", "stopped"];
/// DescribeInstances page size (EC2 accepts 5 to 1000 with filters).
pub const DESCRIBE_PAGE_SIZE: i32 = 500;
/// A listing stops with an error after this many pages rather than loop on a broken token.
const MAX_DESCRIBE_PAGES: usize = 1_000;
/// Upper bound on one EC2 call including the SDK's retries.
const SDK_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound on one HTTP attempt of an EC2 call.
const SDK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Prefix of every RunInstances client token.
const CLIENT_TOKEN_PREFIX: &str = "ghr-";

/// Runs each runner on its own EC2 instance.
pub struct Ec2Provider {
    api: Arc<dyn Ec2Api>,
    config: Ec2ProviderConfig,
}

impl std::fmt::Debug for Ec2Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Provider").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Ec2Provider {
    /// A provider with the SDK's default credential chain, for `config.region` (and `config.endpoint_url`).
    pub async fn new(config: Ec2ProviderConfig) -> Result<Self, Ec2ConfigError> {
        config.validate()?;
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(SDK_OPERATION_TIMEOUT)
            .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()))
            .timeout_config(timeouts);
        if let Some(endpoint) = &config.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let client = aws_sdk_ec2::Client::new(&loader.load().await);
        Self::from_client(client, config)
    }

    /// A provider on a client built by the caller (its region and endpoint win over the config's).
    pub fn from_client(client: aws_sdk_ec2::Client, config: Ec2ProviderConfig) -> Result<Self, Ec2ConfigError> {
        Self::with_api(Arc::new(SdkEc2Api::new(client)), config)
    }

    /// A provider on any [`Ec2Api`] (tests wrap the real client to inject failures).
    pub fn with_api(api: Arc<dyn Ec2Api>, config: Ec2ProviderConfig) -> Result<Self, Ec2ConfigError> {
        config.validate()?;
        Ok(Self { api, config })
    }

    pub fn config(&self) -> &Ec2ProviderConfig {
        &self.config
    }

    pub(crate) fn api(&self) -> &dyn Ec2Api {
        self.api.as_ref()
    }

    fn run_input(
        &self,
        attempt: &LaunchAttempt,
        image_id: Option<String>,
        tags: &[(String, String)],
        user_data: &secrecy::SecretString,
    ) -> RunInstanceInput {
        RunInstanceInput {
            client_token: new_client_token(),
            attempt: attempt.clone(),
            image_id,
            launch_template: self.config.launch_template.clone(),
            security_group_ids: self.config.security_group_ids.clone(),
            iam_instance_profile: self.config.iam_instance_profile.clone(),
            tags: tags.to_vec(),
            user_data: user_data.clone(),
            require_imdsv2: self.config.launch_template.is_none(),
        }
    }

    /// After a launch whose outcome is unknown (EC2 did not answer), terminate whatever instance of
    /// `subject` may have started anyway, so that a failed launch leaves nothing running. Best
    /// effort: DescribeInstances is eventually consistent, so the reconciler stays the backstop.
    async fn clean_up_unknown_launch(&self, subject: &Subject<'_>) {
        let filters = vec![
            (format!("tag:{TAG_ENVIRONMENT}"), vec![self.config.environment.clone()]),
            subject.tag_filter(),
            ("instance-state-name".to_owned(), LISTED_STATES.iter().map(|s| (*s).to_owned()).collect()),
        ];
        let instances = match self.describe_all(filters).await {
            Ok(instances) => instances,
            Err(err) => {
                tracing::warn!(subject = %subject, error = %err.chain(), "could not look for an instance of a failed launch; the reconciler will find it");
                return;
            }
        };
        for instance in instances {
            match self.api.terminate(&instance.id).await {
                Ok(()) => {
                    tracing::info!(subject = %subject, instance_id = %instance.id, "terminated instance of a failed launch")
                }
                Err(err) => {
                    tracing::warn!(subject = %subject, instance_id = %instance.id, error = %err.chain(), "could not terminate instance of a failed launch")
                }
            }
        }
    }

    /// The image a launch of `subject` boots (None: the launch template's), once the launch can work at all.
    pub(crate) fn image_to_launch(
        &self,
        subject: &Subject<'_>,
        instance_types: &[String],
        tier: &TierName,
        architecture: &str,
    ) -> Result<Option<String>, ProviderError> {
        if self.config.launch_template.is_none() && instance_types.iter().all(|t| t.trim().is_empty()) {
            return Err(ProviderError::config(format!(
                "cannot launch {subject}: tier {tier} lists no instance types and no launch template is configured"
            )));
        }
        let image_id = self.config.image_for(architecture);
        if image_id.is_none() && self.config.launch_template.is_none() {
            return Err(ProviderError::config(format!(
                "cannot launch {subject}: no AMI for architecture {architecture:?} (tier {tier}): set \
                 provider.ec2.ami_ids.{architecture} or provider.ec2.ami_id"
            )));
        }
        Ok(image_id)
    }

    /// RunInstances over the attempt plan (instance types × subnets × purchase options, a fresh client token
    /// each) until one launches: capacity errors move on, any other error stops at once.
    pub(crate) async fn run_attempts(
        &self,
        subject: &Subject<'_>,
        instance_types: &[String],
        image_id: Option<String>,
        tags: &[(String, String)],
        user_data: &secrecy::SecretString,
    ) -> Result<(Ec2Instance, LaunchAttempt), ProviderError> {
        let plan = attempt_plan(
            instance_types,
            &self.config.subnet_ids,
            self.config.capacity,
            self.config.fallback_to_on_demand,
        );
        let mut no_capacity = Vec::with_capacity(plan.len());
        for attempt in plan {
            let input = self.run_input(&attempt, image_id.clone(), tags, user_data);
            let err = match self.api.run_instance(&input).await {
                Ok(launched) => {
                    subject.log_launched(&launched.id, &attempt);
                    return Ok((launched, attempt));
                }
                Err(err) => err,
            };
            let context = format!("launching {subject} as {attempt}");
            match err.class() {
                ErrorClass::Capacity => {
                    tracing::warn!(subject = %subject, attempt = %attempt, error = %err, "no capacity; trying the next option");
                    no_capacity.push(format!("{attempt}: {}", err.code.as_deref().unwrap_or("no capacity")));
                }
                ErrorClass::Throttled => return Err(ProviderError::throttled(context).caused_by(err)),
                ErrorClass::Config => return Err(ProviderError::config(context).caused_by(err)),
                ErrorClass::NotFound | ErrorClass::Failed => {
                    if err.code.is_none() {
                        self.clean_up_unknown_launch(subject).await;
                    }
                    return Err(ProviderError::failed(context).caused_by(err));
                }
            }
        }
        // Every attempt's answer is in the message: no single one is "the" cause.
        Err(ProviderError::capacity(format!(
            "no EC2 capacity for {subject} after {} attempts: {}",
            no_capacity.len(),
            no_capacity.join("; ")
        )))
    }

    pub(crate) async fn describe_all(
        &self,
        filters: Vec<(String, Vec<String>)>,
    ) -> Result<Vec<Ec2Instance>, Ec2ApiError> {
        let mut request = DescribeRequest { filters, max_results: Some(DESCRIBE_PAGE_SIZE), next_token: None };
        let mut instances = Vec::new();
        for _ in 0..MAX_DESCRIBE_PAGES {
            let page = self.api.describe(&request).await?;
            instances.extend(page.instances);
            match page.next_token {
                Some(token) => request.next_token = Some(token),
                None => return Ok(instances),
            }
        }
        Err(Ec2ApiError::unexpected("DescribeInstances", format!("still more pages after {MAX_DESCRIBE_PAGES}")))
    }
}

#[async_trait]
impl Provider for Ec2Provider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Instance, ProviderError> {
        let runner = &request.runner_name;
        let subject = Subject::Runner(runner);
        let image_id =
            self.image_to_launch(&subject, &request.instance_types, &request.tier, &request.runner_architecture)?;
        let script = render_user_data(&self.config.user_data, runner, &request.jit_config)
            .map_err(|err| user_data_error(runner, err))?;
        let tags = runner_tags(&self.config.environment, &request, &self.config.extra_tags);
        let (launched, attempt) =
            self.run_attempts(&subject, &request.instance_types, image_id, &tags, &encode_user_data(&script)).await?;
        Ok(Instance {
            runner_name: Some(request.runner_name.clone()),
            installation_id: Some(request.installation_id),
            ..launched_instance(launched, &request.tier, &attempt)
        })
    }

    async fn terminate(&self, id: &InstanceId) -> Result<(), ProviderError> {
        match self.api.terminate(id.as_str()).await {
            Ok(()) => {
                tracing::info!(instance_id = %id, "terminated instance");
                Ok(())
            }
            Err(err) => {
                let context = format!("terminating instance {id}");
                match err.class() {
                    ErrorClass::NotFound => {
                        tracing::debug!(instance_id = %id, error = %err, "instance already gone");
                        Ok(())
                    }
                    ErrorClass::Throttled => Err(ProviderError::throttled(context).caused_by(err)),
                    ErrorClass::Config => Err(ProviderError::config(context).caused_by(err)),
                    ErrorClass::Capacity | ErrorClass::Failed => Err(ProviderError::failed(context).caused_by(err)),
                }
            }
        }
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        let filters = vec![
            (format!("tag:{TAG_ENVIRONMENT}"), vec![self.config.environment.clone()]),
            ("instance-state-name".to_owned(), LISTED_STATES.iter().map(|s| (*s).to_owned()).collect()),
        ];
        let instances = self
            .describe_all(filters)
            .await
            .map_err(|err| api_error(format!("listing instances of environment {}", self.config.environment), err))?;
        Ok(instances.into_iter().map(listed_instance).collect())
    }

    fn supports_pools(&self) -> bool {
        true
    }

    async fn launch_pool(&self, request: PoolLaunchRequest) -> Result<Instance, ProviderError> {
        self.launch_pool_machine(request).await
    }

    async fn bind(&self, id: &InstanceId, request: &BindRequest) -> Result<(), ProviderError> {
        self.bind_machine(id, request).await
    }
}

/// Whose instance a launch starts: what errors and logs name, and the tag that finds the instance again.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    Runner(&'a RunnerName),
    PoolMachine(&'a MachineId),
}

impl Subject<'_> {
    /// The DescribeInstances filter on this subject's own tag.
    fn tag_filter(&self) -> (String, Vec<String>) {
        match self {
            Subject::Runner(runner) => (format!("tag:{TAG_RUNNER_NAME}"), vec![runner.to_string()]),
            Subject::PoolMachine(machine) => (format!("tag:{TAG_POOL_MACHINE}"), vec![machine.to_string()]),
        }
    }

    fn log_launched(&self, instance_id: &str, attempt: &LaunchAttempt) {
        match self {
            Subject::Runner(runner) => {
                tracing::info!(runner = %runner, instance_id, attempt = %attempt, "launched runner instance")
            }
            Subject::PoolMachine(machine) => {
                tracing::info!(machine = %machine, instance_id, attempt = %attempt, "launched pool machine instance")
            }
        }
    }
}

impl std::fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Runner(runner) => write!(f, "runner {runner}"),
            Subject::PoolMachine(machine) => write!(f, "pool machine {machine}"),
        }
    }
}

/// A failed describe or tag call as a [`ProviderError`] (throttled, configuration, or failed).
pub(crate) fn api_error(context: String, err: Ec2ApiError) -> ProviderError {
    match err.class() {
        ErrorClass::Throttled => ProviderError::throttled(context).caused_by(err),
        ErrorClass::Config => ProviderError::config(context).caused_by(err),
        ErrorClass::Capacity | ErrorClass::NotFound | ErrorClass::Failed => {
            ProviderError::failed(context).caused_by(err)
        }
    }
}

/// A fresh RunInstances idempotency token (EC2 allows up to 64 ASCII characters).
fn new_client_token() -> String {
    format!("{CLIENT_TOKEN_PREFIX}{:032x}", rand::random::<u128>())
}

fn user_data_error(runner: &RunnerName, err: UserDataError) -> ProviderError {
    let context = format!("building user data for runner {runner}");
    let kind = match err {
        UserDataError::InvalidJitConfig | UserDataError::InvalidRunnerName(_) => ProviderError::failed,
        UserDataError::UnknownPlaceholder(_)
        | UserDataError::Unclosed
        | UserDataError::NoJitConfig
        | UserDataError::TooLarge { .. } => ProviderError::config,
    };
    kind(context).caused_by(err)
}

/// A just-launched instance as [`Provider::launch`] reports it, before its tenant (if any) is filled in.
pub(crate) fn launched_instance(launched: Ec2Instance, tier: &TierName, attempt: &LaunchAttempt) -> Instance {
    Instance {
        id: InstanceId::new(launched.id),
        runner_name: None,
        installation_id: None,
        tier: Some(tier.clone()),
        state: launched.state.unwrap_or(InstanceState::Pending),
        launched_at: launched.launch_time,
        instance_type: launched.instance_type.or_else(|| attempt.instance_type.clone()),
    }
}

fn listed_instance(instance: Ec2Instance) -> Instance {
    let tags = RunnerTags::parse(&instance.tags);
    let state = instance.state.unwrap_or_else(|| {
        tracing::warn!(instance_id = %instance.id, "instance in a state ghr does not know; reporting it as running");
        InstanceState::Running
    });
    Instance {
        id: InstanceId::new(instance.id),
        runner_name: tags.runner_name,
        installation_id: tags.installation_id,
        tier: tags.tier,
        state,
        launched_at: instance.launch_time,
        instance_type: instance.instance_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::{DescribePage, Ec2Instance};
    use ghr_core::error::error_chain;
    use ghr_core::ids::{InstallationId, OrgName, TierName};
    use secrecy::SecretString;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts calls and fails them all: for paths that must not reach EC2.
    #[derive(Default)]
    struct CountingApi(AtomicUsize);

    #[async_trait]
    impl Ec2Api for CountingApi {
        async fn run_instance(&self, _: &RunInstanceInput) -> Result<Ec2Instance, Ec2ApiError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(Ec2ApiError::service("RunInstances", "InternalError", "stub"))
        }
        async fn terminate(&self, _: &str) -> Result<(), Ec2ApiError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(Ec2ApiError::service("TerminateInstances", "InternalError", "stub"))
        }
        async fn describe(&self, _: &DescribeRequest) -> Result<DescribePage, Ec2ApiError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(Ec2ApiError::service("DescribeInstances", "RequestLimitExceeded", "stub"))
        }
        async fn create_tags(&self, _: &[String], _: &[(String, String)]) -> Result<(), Ec2ApiError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(Ec2ApiError::service("CreateTags", "InternalError", "stub"))
        }
    }

    fn config() -> Ec2ProviderConfig {
        let mut config = Ec2ProviderConfig::new("eu-west-1", "prod");
        config.ami_id = Some("ami-1".into());
        config
    }

    fn request(instance_types: &[&str], jit: &str) -> LaunchRequest {
        LaunchRequest {
            runner_architecture: "x64".into(),
            runner_name: RunnerName::new("ghr-prod-1-small-1"),
            installation_id: InstallationId(1),
            org_name: OrgName::new("acme"),
            tenant_tier: TierName::new("free"),
            tier: TierName::new("small"),
            instance_types: instance_types.iter().map(|t| (*t).to_owned()).collect(),
            labels: Vec::new(),
            jit_config: SecretString::from(jit),
        }
    }

    #[tokio::test]
    async fn new_validates_the_config_first() {
        let err = Ec2Provider::new(Ec2ProviderConfig::new("eu-west-1", "prod")).await.unwrap_err();
        assert!(matches!(err, Ec2ConfigError::Missing(_)), "{err}");
        let mut valid = config();
        valid.endpoint_url = Some("http://127.0.0.1:9".into());
        let provider = Ec2Provider::new(valid).await.unwrap();
        assert_eq!(provider.name(), PROVIDER_NAME);
        assert_eq!(provider.config().environment, "prod");
    }

    #[tokio::test]
    async fn refuses_launches_that_cannot_work_without_calling_ec2() {
        let api = Arc::new(CountingApi::default());
        let provider = Ec2Provider::with_api(api.clone(), config()).unwrap();
        let err = provider.launch(request(&[], "c2VjcmV0")).await.unwrap_err();
        assert!(
            matches!(&err, ProviderError::Config { message, .. } if message.contains("no instance types")),
            "{err}"
        );
        let err = provider.launch(request(&["t3.small"], "not base64 at all!")).await.unwrap_err();
        let chain = error_chain(&err);
        assert!(matches!(&err, ProviderError::Failed { .. }) && !chain.contains("not base64 at all"), "{chain}");
        assert_eq!(api.0.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn classifies_failures_of_terminate_and_list() {
        let provider = Ec2Provider::with_api(Arc::new(CountingApi::default()), config()).unwrap();
        let err = provider.terminate(&InstanceId::new("i-1")).await.unwrap_err();
        assert!(
            matches!(&err, ProviderError::Failed { message, source: Some(_) } if message.contains("terminating instance i-1")),
            "{err}"
        );
        let err = provider.list().await.unwrap_err();
        assert!(
            matches!(&err, ProviderError::Throttled { message, source: Some(_) } if message.contains("environment prod")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_failed_attempt_with_an_unknown_code_stops_the_launch() {
        let api = Arc::new(CountingApi::default());
        let provider = Ec2Provider::with_api(api.clone(), config()).unwrap();
        let err = provider.launch(request(&["t3.small", "t3.medium"], "c2VjcmV0")).await.unwrap_err();
        assert!(matches!(&err, ProviderError::Failed { .. }) && error_chain(&err).contains("InternalError"), "{err}");
        assert_eq!(api.0.load(Ordering::SeqCst), 1, "EC2 answered with a code: no clean-up lookup");
    }

    #[test]
    fn client_tokens_are_fresh_and_short_enough() {
        let a = new_client_token();
        let b = new_client_token();
        assert_ne!(a, b);
        assert!(a.starts_with(CLIENT_TOKEN_PREFIX));
        assert!(a.len() <= 64 && a.is_ascii());
    }

    #[test]
    fn user_data_errors_blame_the_right_party() {
        let runner = RunnerName::new("ghr-1");
        assert!(matches!(user_data_error(&runner, UserDataError::InvalidJitConfig), ProviderError::Failed { .. }));
        assert!(matches!(user_data_error(&runner, UserDataError::TooLarge { size: 1 }), ProviderError::Config { .. }));
    }
}
