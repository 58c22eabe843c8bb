//! The four EC2 calls the provider makes ([`Ec2Api`]), and their implementation with aws-sdk-ec2 ([`SdkEc2Api`]).
//!
//! The seam exists so tests can wrap the real (moto-backed) client and inject failures that an emulator
//! cannot produce, such as capacity errors.

use crate::config::{LaunchTemplateRef, LaunchTemplateSelector};
use crate::error::Ec2ApiError;
use crate::plan::{LaunchAttempt, PurchaseOption};
use async_trait::async_trait;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    Filter, HttpTokensState, IamInstanceProfileSpecification, InstanceInterruptionBehavior,
    InstanceMarketOptionsRequest, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceType,
    LaunchTemplateSpecification, MarketType, ResourceType, ShutdownBehavior, SpotInstanceType, SpotMarketOptions, Tag,
    TagSpecification,
};
use ghr_core::Timestamp;
use ghr_core::ports::InstanceState;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;

const RUN_INSTANCES: &str = "RunInstances";
const TERMINATE_INSTANCES: &str = "TerminateInstances";
const DESCRIBE_INSTANCES: &str = "DescribeInstances";
const CREATE_TAGS: &str = "CreateTags";
/// An instance profile given as an ARN rather than a name.
const ARN_PREFIX: &str = "arn:";

/// One RunInstances call for exactly one instance.
#[derive(Debug, Clone)]
pub struct RunInstanceInput {
    /// Idempotency token: fresh for every attempt, reused only by the SDK's own retries of that attempt.
    pub client_token: String,
    pub attempt: LaunchAttempt,
    pub image_id: Option<String>,
    pub launch_template: Option<LaunchTemplateRef>,
    pub security_group_ids: Vec<String>,
    /// Name, or ARN when it starts with `arn:`.
    pub iam_instance_profile: Option<String>,
    /// Put on the instance, its volumes and network interfaces (and the spot request).
    pub tags: Vec<(String, String)>,
    /// Base64 user data. Holds the runner's JIT config.
    pub user_data: SecretString,
    /// Set IMDSv2-only metadata options (left to the launch template when there is one).
    pub require_imdsv2: bool,
}

/// An instance as EC2 describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ec2Instance {
    pub id: String,
    pub instance_type: Option<String>,
    /// `None` for a state name this crate does not know.
    pub state: Option<InstanceState>,
    pub launch_time: Option<Timestamp>,
    pub tags: BTreeMap<String, String>,
    /// The EBS volumes attached to it.
    pub volume_ids: Vec<String>,
    /// Its network interfaces.
    pub network_interface_ids: Vec<String>,
}

/// One DescribeInstances page request.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeRequest {
    /// Filter name (`tag:ghr:environment`, `instance-state-name`, ...) and accepted values.
    pub filters: Vec<(String, Vec<String>)>,
    pub max_results: Option<i32>,
    pub next_token: Option<String>,
}

/// One DescribeInstances page.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribePage {
    pub instances: Vec<Ec2Instance>,
    pub next_token: Option<String>,
}

/// The EC2 calls the provider needs.
#[async_trait]
pub trait Ec2Api: Send + Sync {
    /// Launch exactly one instance.
    async fn run_instance(&self, input: &RunInstanceInput) -> Result<Ec2Instance, Ec2ApiError>;
    /// Terminate one instance.
    async fn terminate(&self, instance_id: &str) -> Result<(), Ec2ApiError>;
    /// One page of matching instances.
    async fn describe(&self, request: &DescribeRequest) -> Result<DescribePage, Ec2ApiError>;
    /// Add (or overwrite) these tags on these resources (instances, volumes, network interfaces).
    async fn create_tags(&self, resource_ids: &[String], tags: &[(String, String)]) -> Result<(), Ec2ApiError>;
}

/// [`Ec2Api`] on aws-sdk-ec2.
#[derive(Debug, Clone)]
pub struct SdkEc2Api {
    client: aws_sdk_ec2::Client,
}

impl SdkEc2Api {
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Ec2Api for SdkEc2Api {
    async fn run_instance(&self, input: &RunInstanceInput) -> Result<Ec2Instance, Ec2ApiError> {
        let mut call = self
            .client
            .run_instances()
            .min_count(1)
            .max_count(1)
            .client_token(&input.client_token)
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .user_data(input.user_data.expose_secret())
            .set_instance_type(input.attempt.instance_type.as_deref().map(InstanceType::from))
            .set_subnet_id(input.attempt.subnet_id.clone())
            .set_image_id(input.image_id.clone())
            .set_launch_template(input.launch_template.as_ref().map(launch_template_spec))
            .set_iam_instance_profile(input.iam_instance_profile.as_deref().map(instance_profile_spec))
            .set_tag_specifications(Some(tag_specifications(&input.tags, input.attempt.purchase)));
        if !input.security_group_ids.is_empty() {
            call = call.set_security_group_ids(Some(input.security_group_ids.clone()));
        }
        if input.attempt.purchase == PurchaseOption::Spot {
            call = call.instance_market_options(spot_market_options());
        }
        if input.require_imdsv2 {
            call = call.metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .build(),
            );
        }
        let output = call.send().await.map_err(|err| sdk_error(RUN_INSTANCES, err))?;
        match output.instances() {
            [instance] if instance.instance_id().is_some_and(|id| !id.is_empty()) => Ok(ec2_instance(instance)),
            [_] => Err(Ec2ApiError::unexpected(RUN_INSTANCES, "the answer lists an instance without an id")),
            [] => Err(Ec2ApiError::unexpected(RUN_INSTANCES, "the answer lists no instance")),
            many => Err(Ec2ApiError::unexpected(RUN_INSTANCES, format!("asked for one instance, got {}", many.len()))),
        }
    }

    async fn terminate(&self, instance_id: &str) -> Result<(), Ec2ApiError> {
        self.client
            .terminate_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| sdk_error(TERMINATE_INSTANCES, err))
    }

    async fn describe(&self, request: &DescribeRequest) -> Result<DescribePage, Ec2ApiError> {
        let filters = request
            .filters
            .iter()
            .map(|(name, values)| Filter::builder().name(name).set_values(Some(values.clone())).build())
            .collect();
        let output = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .set_max_results(request.max_results)
            .set_next_token(request.next_token.clone())
            .send()
            .await
            .map_err(|err| sdk_error(DESCRIBE_INSTANCES, err))?;
        let instances =
            output.reservations().iter().flat_map(|reservation| reservation.instances()).map(ec2_instance).collect();
        let next_token = output.next_token().filter(|token| !token.is_empty()).map(str::to_owned);
        Ok(DescribePage { instances, next_token })
    }

    async fn create_tags(&self, resource_ids: &[String], tags: &[(String, String)]) -> Result<(), Ec2ApiError> {
        self.client
            .create_tags()
            .set_resources(Some(resource_ids.to_vec()))
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| sdk_error(CREATE_TAGS, err))
    }
}

/// EC2's instance state name as ghr sees it.
pub fn instance_state(name: &str) -> Option<InstanceState> {
    match name {
        "pending" => Some(InstanceState::Pending),
        "running" => Some(InstanceState::Running),
        "stopping" | "stopped" => Some(InstanceState::Stopping),
        "shutting-down" | "terminated" => Some(InstanceState::Terminated),
        _ => None,
    }
}

fn sdk_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> Ec2ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = err.message().map(str::to_owned);
    Ec2ApiError::from_sdk(operation, code.as_deref(), message.as_deref(), err)
}

fn ec2_instance(instance: &aws_sdk_ec2::types::Instance) -> Ec2Instance {
    Ec2Instance {
        id: instance.instance_id().unwrap_or_default().to_owned(),
        instance_type: instance.instance_type().map(|t| t.as_str().to_owned()),
        state: instance.state().and_then(|state| state.name()).and_then(|name| instance_state(name.as_str())),
        launch_time: instance
            .launch_time()
            .and_then(|time| chrono::DateTime::from_timestamp(time.secs(), time.subsec_nanos())),
        tags: instance
            .tags()
            .iter()
            .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value().unwrap_or_default().to_owned())))
            .collect(),
        volume_ids: instance
            .block_device_mappings()
            .iter()
            .filter_map(|mapping| mapping.ebs()?.volume_id())
            .map(str::to_owned)
            .collect(),
        network_interface_ids: instance
            .network_interfaces()
            .iter()
            .filter_map(|interface| interface.network_interface_id())
            .map(str::to_owned)
            .collect(),
    }
}

fn launch_template_spec(template: &LaunchTemplateRef) -> LaunchTemplateSpecification {
    let builder = match &template.selector {
        LaunchTemplateSelector::Id(id) => LaunchTemplateSpecification::builder().launch_template_id(id),
        LaunchTemplateSelector::Name(name) => LaunchTemplateSpecification::builder().launch_template_name(name),
    };
    builder.set_version(template.version.clone()).build()
}

fn instance_profile_spec(profile: &str) -> IamInstanceProfileSpecification {
    let builder = IamInstanceProfileSpecification::builder();
    if profile.starts_with(ARN_PREFIX) { builder.arn(profile) } else { builder.name(profile) }.build()
}

fn spot_market_options() -> InstanceMarketOptionsRequest {
    InstanceMarketOptionsRequest::builder()
        .market_type(MarketType::Spot)
        .spot_options(
            SpotMarketOptions::builder()
                .spot_instance_type(SpotInstanceType::OneTime)
                .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                .build(),
        )
        .build()
}

fn sdk_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter().map(|(key, value)| Tag::builder().key(key).value(value).build()).collect()
}

fn tag_specifications(tags: &[(String, String)], purchase: PurchaseOption) -> Vec<TagSpecification> {
    let mut resources = vec![ResourceType::Instance, ResourceType::Volume, ResourceType::NetworkInterface];
    if purchase == PurchaseOption::Spot {
        resources.push(ResourceType::SpotInstancesRequest);
    }
    let tags = sdk_tags(tags);
    resources
        .into_iter()
        .map(|resource| TagSpecification::builder().resource_type(resource).set_tags(Some(tags.clone())).build())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_state_names() {
        let cases = [
            ("pending", Some(InstanceState::Pending)),
            ("running", Some(InstanceState::Running)),
            ("stopping", Some(InstanceState::Stopping)),
            ("stopped", Some(InstanceState::Stopping)),
            ("shutting-down", Some(InstanceState::Terminated)),
            ("terminated", Some(InstanceState::Terminated)),
            ("hibernating", None),
        ];
        for (name, state) in cases {
            assert_eq!(instance_state(name), state, "{name}");
        }
    }

    #[test]
    fn tags_every_resource_and_the_spot_request() {
        let tags = vec![("ghr:tier".to_owned(), "small".to_owned())];
        let on_demand = tag_specifications(&tags, PurchaseOption::OnDemand);
        let types: Vec<_> = on_demand.iter().filter_map(|spec| spec.resource_type().cloned()).collect();
        assert_eq!(types, vec![ResourceType::Instance, ResourceType::Volume, ResourceType::NetworkInterface]);
        assert!(on_demand.iter().all(|spec| spec.tags().len() == 1));
        let spot = tag_specifications(&tags, PurchaseOption::Spot);
        assert_eq!(spot.last().and_then(|spec| spec.resource_type()), Some(&ResourceType::SpotInstancesRequest));
    }

    #[test]
    fn names_instance_profiles_by_name_or_arn() {
        assert_eq!(instance_profile_spec("ghr-runner").name(), Some("ghr-runner"));
        let arn = "arn:aws:iam::123456789012:instance-profile/ghr-runner";
        assert_eq!(instance_profile_spec(arn).arn(), Some(arn));
    }

    #[test]
    fn input_debug_output_hides_the_user_data() {
        let input = RunInstanceInput {
            client_token: "ghr-1".into(),
            attempt: LaunchAttempt { instance_type: None, subnet_id: None, purchase: PurchaseOption::Spot },
            image_id: None,
            launch_template: None,
            security_group_ids: Vec::new(),
            iam_instance_profile: None,
            tags: Vec::new(),
            user_data: SecretString::from("c2VjcmV0LWppdC1jb25maWc="),
            require_imdsv2: true,
        };
        assert!(!format!("{input:?}").contains("c2VjcmV0LWppdC1jb25maWc="));
    }
}
