//! The emulated AWS account of the bench: the moto server (the one `GHR_TEST_MOTO_ENDPOINT` names, or one this
//! bench starts with `scripts/moto.sh`), the store's DynamoDB tables and the function's SQS queues.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;
use ghr_store_dynamodb::{Tables, init_tables};
use std::path::PathBuf;
use std::process::Command;

/// The variable naming a running emulator (as the other AWS tests read it).
pub const ENDPOINT_ENV: &str = "GHR_TEST_MOTO_ENDPOINT";
/// The region everything lives in on the emulator.
pub const REGION: &str = "us-east-1";
/// Throwaway credentials (moto accepts any).
pub const ACCESS_KEY: &str = "bench";
pub const SECRET_KEY: &str = "bench";

/// The emulator this bench talks to; stops it on drop if the bench started it.
pub struct Moto {
    pub endpoint: String,
    started_here: bool,
}

fn moto_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/moto.sh")
}

impl Moto {
    /// `GHR_TEST_MOTO_ENDPOINT` if set, else a moto started by `scripts/moto.sh start` (on `GHR_MOTO_PORT`, from the
    /// venv `GHR_MOTO_VENV`, as the script reads them).
    pub fn find_or_start() -> Result<Moto, String> {
        if let Some(endpoint) = std::env::var(ENDPOINT_ENV).ok().filter(|v| !v.is_empty()) {
            return Ok(Moto { endpoint, started_here: false });
        }
        let script = moto_script();
        let already_running = Command::new(&script).arg("status").output().is_ok_and(|out| out.status.success());
        let output =
            Command::new(&script).arg("start").output().map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{} start failed: {}",
                script.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        // The script prints one `export NAME=value ...` line; the endpoint is the first assignment.
        let line = String::from_utf8_lossy(&output.stdout);
        let endpoint = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix(&format!("{ENDPOINT_ENV}=")))
            .map(str::to_owned)
            .ok_or_else(|| format!("{} start printed no {ENDPOINT_ENV}: {line:?}", script.display()))?;
        Ok(Moto { endpoint, started_here: !already_running })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if self.started_here {
            let _ = Command::new(moto_script()).arg("stop").output();
        }
    }
}

/// The SDK configuration of the bench's own clients.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "ghr-bench"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// The store's tables under `prefix` (as `ghr store init` or the Terraform module creates them).
pub async fn create_tables(sdk: &SdkConfig, prefix: &str) -> Result<(), String> {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    init_tables(&client, &Tables::new(prefix)).await.map(|_| ()).map_err(|e| format!("creating the tables: {e}"))
}

/// The queue URLs the webhook function sends to.
pub struct Queues {
    /// `<prefix>-<tier>-builds`, per tier.
    pub tiers: Vec<(String, String)>,
    /// `<prefix>-teardown`.
    pub teardown: String,
    /// `<prefix>-tenant-events`.
    pub tenant_events: String,
}

/// The queues of `prefix` for `tiers` (names as the Terraform module gives them; the dead-letter queues are
/// left out: the webhook never reads a queue, so they change nothing it does).
pub async fn create_queues(sdk: &SdkConfig, prefix: &str, tiers: &[&str]) -> Result<Queues, String> {
    let client = aws_sdk_sqs::Client::new(sdk);
    let create = async |name: String| -> Result<String, String> {
        let answer = client
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| format!("CreateQueue {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        answer.queue_url.ok_or_else(|| format!("CreateQueue {name} answered no URL"))
    };
    let mut tier_urls = Vec::new();
    for tier in tiers {
        tier_urls.push(((*tier).to_owned(), create(format!("{prefix}-{tier}-builds")).await?));
    }
    Ok(Queues {
        tiers: tier_urls,
        teardown: create(format!("{prefix}-teardown")).await?,
        tenant_events: create(format!("{prefix}-tenant-events")).await?,
    })
}

/// Messages on the queue at `url`, visible or in flight (SQS's approximate counts; exact on moto).
pub async fn messages_on(sdk: &SdkConfig, url: &str) -> Result<u64, String> {
    let client = aws_sdk_sqs::Client::new(sdk);
    let answer = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    let attributes = answer.attributes.unwrap_or_default();
    let count = |name: QueueAttributeName| attributes.get(&name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(count(QueueAttributeName::ApproximateNumberOfMessages)
        + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

/// One message body from the queue at `url` (for checking what the function sent), if there is one.
pub async fn peek(sdk: &SdkConfig, url: &str) -> Result<Option<String>, String> {
    let client = aws_sdk_sqs::Client::new(sdk);
    let answer = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(1)
        .visibility_timeout(0)
        .send()
        .await
        .map_err(|e| format!("ReceiveMessage {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    Ok(answer.messages.unwrap_or_default().into_iter().next().and_then(|m| m.body))
}
