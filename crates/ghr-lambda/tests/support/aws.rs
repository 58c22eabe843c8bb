//! AWS on moto as the tests look at it: SDK clients with throwaway credentials, moto's default network and an
//! AMI, the SSM parameters of the secrets, queue depths, instances and their user data.

use super::{REGION, moto_endpoint};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ec2::types::{ArchitectureValues, Filter, InstanceAttributeName};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_ssm::types::ParameterType;
use base64::Engine as _;
use std::collections::{BTreeMap, HashMap};

/// The throwaway credentials moto accepts.
pub const ACCESS_KEY: &str = "test";
pub const SECRET_KEY: &str = "test";
/// The default user data template writes the JIT config between these two markers.
const JIT_START_MARKER: &str = "<<'GHR_JIT_CONFIG_END'\n";
const JIT_END_MARKER: &str = "\nGHR_JIT_CONFIG_END";
/// EC2 states of an instance that still runs (or is about to).
pub const ACTIVE_STATES: [&str; 2] = ["pending", "running"];
/// EC2 states of an instance that was terminated (moto may still show `shutting-down` for a moment).
pub const GONE_STATES: [&str; 2] = ["shutting-down", "terminated"];

/// An instance as moto describes it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub state: String,
    pub tags: BTreeMap<String, String>,
    pub image_id: String,
    pub instance_type: String,
}

/// The SDK clients on moto, and what a provider configuration needs from its EC2.
#[derive(Clone)]
pub struct Moto {
    pub endpoint: String,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub subnets: Vec<String>,
    /// An x64 image and an ARM64 image moto ships.
    pub ami: String,
    pub arm64_ami: String,
}

impl Moto {
    pub async fn connect() -> Moto {
        let endpoint = moto_endpoint();
        let credentials = aws_sdk_sqs::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "moto");
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(credentials)
            .endpoint_url(&endpoint)
            .load()
            .await;
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let subnets = ec2.describe_subnets().send().await.unwrap_or_else(|e| {
            panic!(
                "moto at {endpoint} does not answer DescribeSubnets ({}); is it running? `scripts/moto.sh start`",
                aws_sdk_ec2::error::DisplayErrorContext(e)
            )
        });
        let mut subnets: Vec<(String, String)> = subnets
            .subnets()
            .iter()
            .filter_map(|s| Some((s.availability_zone()?.to_owned(), s.subnet_id()?.to_owned())))
            .collect();
        subnets.sort();
        let images = ec2.describe_images().owners("amazon").send().await.expect("moto answers DescribeImages");
        let image_of = |architecture: ArchitectureValues| {
            images
                .images()
                .iter()
                .find(|image| image.architecture() == Some(&architecture))
                .and_then(|image| image.image_id())
                .unwrap_or_else(|| panic!("moto ships no {architecture:?} image"))
                .to_owned()
        };
        let (ami, arm64_ami) = (image_of(ArchitectureValues::X8664), image_of(ArchitectureValues::Arm64));
        Moto {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            ssm: aws_sdk_ssm::Client::new(&sdk),
            ec2,
            subnets: subnets.into_iter().take(2).map(|(_, id)| id).collect(),
            ami,
            arm64_ami,
            endpoint,
        }
    }

    /// Put a SecureString parameter (as the Terraform module does for the secrets).
    pub async fn put_secure_parameter(&self, name: &str, value: &str) {
        self.ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutParameter {name}: {}", aws_sdk_ssm::error::DisplayErrorContext(e)));
    }

    /// The tenant item of `installation` in the table `table`, as the seed's `aws dynamodb get-item` shows it.
    pub async fn tenant_item(&self, table: &str, installation: u64) -> Option<HashMap<String, AttributeValue>> {
        let output = self
            .dynamodb
            .get_item()
            .table_name(table)
            .key("installation_id", AttributeValue::N(installation.to_string()))
            .consistent_read(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetItem {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)));
        output.item().cloned()
    }

    /// The seed's "Upgrade Tenant Tier" command: `update-item ... SET tier, max_runners, updated_at`.
    pub async fn set_tenant_limit(&self, table: &str, installation: u64, tier: &str, max_runners: u32) {
        self.dynamodb
            .update_item()
            .table_name(table)
            .key("installation_id", AttributeValue::N(installation.to_string()))
            .update_expression("SET tier = :tier, max_runners = :max, updated_at = :now")
            .expression_attribute_values(":tier", AttributeValue::S(tier.to_owned()))
            .expression_attribute_values(":max", AttributeValue::N(max_runners.to_string()))
            .expression_attribute_values(":now", AttributeValue::S(super::event_source::rfc3339(now_seconds())))
            .send()
            .await
            .unwrap_or_else(|e| panic!("UpdateItem {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)));
    }

    /// Every message of the queue: visible, in flight and delayed.
    pub async fn queue_depth(&self, url: &str) -> u64 {
        let names = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ];
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetQueueAttributes {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
        let attributes = output.attributes().cloned().unwrap_or_default();
        names.iter().filter_map(|name| attributes.get(name)?.parse::<u64>().ok()).sum()
    }

    /// Put `body` on the queue as any sender would.
    pub async fn send_raw(&self, url: &str, body: &str) {
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("SendMessage {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
    }

    /// Drop every message of the queue (a lost wake-up).
    pub async fn purge(&self, url: &str) {
        self.sqs
            .purge_queue()
            .queue_url(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PurgeQueue {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
    }

    /// The bodies of the messages on a queue, read without consuming them (received with a zero visibility
    /// timeout, so they are at once visible again).
    pub async fn peek(&self, url: &str) -> Vec<String> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ReceiveMessage {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
        output.messages().iter().filter_map(|m| m.body().map(str::to_owned)).collect()
    }

    /// The instances tagged with `ghr:environment = environment`, whatever their state.
    pub async fn instances(&self, environment: &str) -> Vec<Instance> {
        let filter =
            Filter::builder().name(format!("tag:{}", ghr_cloud_ec2::TAG_ENVIRONMENT)).values(environment).build();
        let mut instances = Vec::new();
        let mut next_token = None;
        loop {
            let page = self
                .ec2
                .describe_instances()
                .filters(filter.clone())
                .set_next_token(next_token)
                .send()
                .await
                .expect("moto answers DescribeInstances");
            instances.extend(page.reservations().iter().flat_map(|r| r.instances()).map(instance_of));
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(token) => next_token = Some(token.to_owned()),
                None => return instances,
            }
        }
    }

    /// The instances of `environment` that are pending or running.
    pub async fn active_instances(&self, environment: &str) -> Vec<Instance> {
        let mut all = self.instances(environment).await;
        all.retain(|i| ACTIVE_STATES.contains(&i.state.as_str()));
        all
    }

    /// One instance, whatever its state.
    pub async fn instance(&self, id: &str) -> Instance {
        let output = self.ec2.describe_instances().instance_ids(id).send().await.expect("DescribeInstances");
        output.reservations().iter().flat_map(|r| r.instances()).next().map(instance_of).expect("moto has it")
    }

    /// The instance's user data, decoded.
    pub async fn user_data(&self, id: &str) -> String {
        let attribute = self
            .ec2
            .describe_instance_attribute()
            .instance_id(id)
            .attribute(InstanceAttributeName::UserData)
            .send()
            .await
            .expect("moto answers DescribeInstanceAttribute");
        let encoded = attribute.user_data().and_then(|v| v.value()).expect("the instance has user data");
        let script = base64::engine::general_purpose::STANDARD.decode(encoded).expect("user data is base64");
        String::from_utf8(script).expect("the user data is a script")
    }

    /// The JIT config the instance's user data hands to the runner.
    pub async fn jit_config_of(&self, id: &str) -> String {
        let script = self.user_data(id).await;
        let start = script.find(JIT_START_MARKER).expect("the script writes the JIT config") + JIT_START_MARKER.len();
        let length = script[start..].find(JIT_END_MARKER).expect("the JIT config heredoc ends");
        script[start..start + length].to_owned()
    }
}

fn instance_of(instance: &aws_sdk_ec2::types::Instance) -> Instance {
    Instance {
        id: instance.instance_id().unwrap_or_default().to_owned(),
        state: instance.state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()).unwrap_or_default(),
        tags: instance.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect(),
        image_id: instance.image_id().unwrap_or_default().to_owned(),
        instance_type: instance.instance_type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
    }
}

pub fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A string attribute of an item.
pub fn s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::S(value)) => value,
        other => panic!("attribute {name} is not a string: {other:?} in {item:?}"),
    }
}

/// A number attribute of an item, as its text.
pub fn n<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value,
        other => panic!("attribute {name} is not a number: {other:?} in {item:?}"),
    }
}
