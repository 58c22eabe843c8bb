//! The serverless deployment of ghr, run locally: the real `ghr-lambda` binary as each function behind its own
//! Lambda runtime API stand-in, the event sources Lambda would run (SQS mappings, the schedule, API Gateway's
//! HTTP API), and AWS itself on moto (DynamoDB, SQS, EC2, SSM), with the GitHub emulator as GitHub.

pub mod apigw;
pub mod aws;
pub mod event_source;
pub mod function;
pub mod runtime_api;
pub mod stack;

use std::time::Duration;

/// The region of every test resource.
pub const REGION: &str = "us-east-1";
/// Set by `eval "$(scripts/moto.sh start)"`.
pub const ENDPOINT_VAR: &str = "GHR_TEST_MOTO_ENDPOINT";
/// How long a test waits for something the functions or the emulator do on their own.
pub const SOON: Duration = Duration::from_secs(20);
/// How often waiting re-checks its condition.
const POLL: Duration = Duration::from_millis(50);

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

/// Poll `check` until it holds; fail the test saying what did not happen.
pub async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {SOON:?} waiting until {what}");
        tokio::time::sleep(POLL).await;
    }
}
