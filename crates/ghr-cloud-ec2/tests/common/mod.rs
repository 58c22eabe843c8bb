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
