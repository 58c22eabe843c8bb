//! Reaching the moto AWS emulator from the EC2 tests: its endpoint (from the test script) and an SDK client.

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::Credentials;

/// Set by `eval "$(scripts/moto.sh start)"`.
pub const ENDPOINT_VAR: &str = "GHR_TEST_MOTO_ENDPOINT";
pub const REGION: &str = "us-east-1";

/// moto's endpoint; the tests fail (never skip) when it is not set.
pub fn moto_endpoint() -> String {
    match std::env::var(ENDPOINT_VAR) {
        Ok(endpoint) if !endpoint.trim().is_empty() => endpoint,
        _ => panic!(
            "{ENDPOINT_VAR} is not set: these tests need the moto AWS emulator. Run \
             `eval \"$(scripts/moto.sh start)\"` from the repository root, then run the tests again."
        ),
    }
}

/// An EC2 client on moto (any credentials are accepted).
pub async fn moto_client() -> aws_sdk_ec2::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .endpoint_url(moto_endpoint())
        .load()
        .await;
    aws_sdk_ec2::Client::new(&config)
}

/// Two or more subnet ids of moto's default VPC (one per availability zone, in zone order) and an AMI it
/// ships: what a provider configuration needs.
pub async fn default_network(client: &aws_sdk_ec2::Client) -> (Vec<String>, String) {
    let subnets = client.describe_subnets().send().await.unwrap_or_else(|err| {
        panic!(
            "moto at {} does not answer DescribeSubnets ({}); is it running? `scripts/moto.sh start`",
            moto_endpoint(),
            aws_sdk_ec2::error::DisplayErrorContext(err)
        )
    });
    let mut subnets: Vec<(String, String)> = subnets
        .subnets()
        .iter()
        .filter_map(|s| Some((s.availability_zone()?.to_owned(), s.subnet_id()?.to_owned())))
        .collect();
    subnets.sort();
    assert!(subnets.len() >= 2, "moto's default VPC has a subnet per availability zone");
    let images = client.describe_images().owners("amazon").send().await.expect("moto answers DescribeImages");
    let ami = images.images().first().and_then(|image| image.image_id()).expect("moto ships AMIs").to_owned();
    (subnets.into_iter().map(|(_, id)| id).collect(), ami)
}

/// A provider configuration of `environment` on moto with `ami` and `subnets`.
pub fn provider_config(environment: &str, ami: &str, subnets: &[String]) -> ghr_cloud_ec2::Ec2ProviderConfig {
    let mut config = ghr_cloud_ec2::Ec2ProviderConfig::new(REGION, environment);
    config.endpoint_url = Some(moto_endpoint());
    config.ami_id = Some(ami.to_owned());
    config.subnet_ids = subnets.to_vec();
    config
}
