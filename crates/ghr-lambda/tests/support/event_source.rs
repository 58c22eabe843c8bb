//! The event sources of the functions, as Lambda runs them: the SQS event source mapping (receive a batch,
//! build the SQS event, invoke, delete what the partial batch response does not name) and the EventBridge
//! schedule of scale-down.

use super::REGION;
use super::function::Function;
use super::runtime_api::{ACCOUNT_ID, InvokeError};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// The batch size of the mappings (the seed's `batch_size`, and SQS's largest receive).
pub const BATCH_SIZE: i32 = 10;
/// How long a received message stays invisible in the tests: short, so a failed message comes back soon.
pub const TEST_VISIBILITY: Duration = Duration::from_secs(1);
/// How long one invocation may take before the test gives up on it.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(40);
/// How many rounds [`drain`] runs before it calls the queues stuck.
const MAX_DRAIN_ROUNDS: usize = 30;

/// What one poll did.
#[derive(Debug, Default)]
pub struct Poll {
    /// The bodies of the messages received, in order.
    pub bodies: Vec<String>,
    /// The message ids received.
    pub received: Vec<String>,
    /// The message ids the function named in `batchItemFailures` (all of them when the invocation failed).
    pub failed: Vec<String>,
    /// The function's answer (None when nothing was received).
    pub answer: Option<Result<Value, InvokeError>>,
}

/// The ARN of the queue at `url` (the event's `eventSourceARN`): a queue URL ends in `/<account>/<name>`, on
/// AWS as on moto.
pub fn queue_arn(url: &str) -> String {
    let mut segments = url.trim_end_matches('/').rsplit('/');
    let name = segments.next().unwrap_or_default();
    let account = segments.next().unwrap_or_default();
    assert!(!name.is_empty() && !account.is_empty(), "{url} is not a queue URL");
    format!("arn:aws:sqs:{REGION}:{account}:{name}")
}

/// One round of the mapping: receive up to [`BATCH_SIZE`] messages of `url`, invoke `function` with them as
/// Lambda's SQS event, then delete every message the answer does not name in `batchItemFailures`. A function
/// error, or an answer naming a message that was not in the batch, deletes nothing (as Lambda does).
pub async fn poll_once(sqs: &aws_sdk_sqs::Client, url: &str, function: &Function) -> Poll {
    let received = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(BATCH_SIZE)
        .visibility_timeout(TEST_VISIBILITY.as_secs() as i32)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap_or_else(|e| panic!("ReceiveMessage {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
    let messages = received.messages();
    if messages.is_empty() {
        return Poll::default();
    }
    let arn = queue_arn(url);
    let records: Vec<Value> = messages.iter().map(|message| record(message, &arn)).collect();
    let mut poll = Poll {
        bodies: messages.iter().map(|m| m.body().unwrap_or_default().to_owned()).collect(),
        received: messages.iter().map(|m| m.message_id().unwrap_or_default().to_owned()).collect(),
        ..Poll::default()
    };
    let answer = function.invoke(json!({ "Records": records }), INVOKE_TIMEOUT).await;
    poll.failed = match &answer {
        Ok(value) => match failures(value) {
            Some(named) if named.iter().all(|id| poll.received.contains(id)) => named,
            _ => poll.received.clone(),
        },
        Err(_) => poll.received.clone(),
    };
    for message in messages {
        let id = message.message_id().unwrap_or_default();
        if poll.failed.iter().any(|failed| failed == id) {
            continue;
        }
        let handle = message.receipt_handle().expect("a received message has a receipt handle");
        sqs.delete_message()
            .queue_url(url)
            .receipt_handle(handle)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteMessage {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
    }
    poll.answer = Some(answer);
    poll
}

/// The message ids of a partial batch response; None when the answer is not one (an empty or null answer
/// names nothing: every message succeeded).
fn failures(answer: &Value) -> Option<Vec<String>> {
    let items = match answer.get("batchItemFailures") {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return None,
    };
    items.iter().map(|item| item.get("itemIdentifier").and_then(Value::as_str).map(str::to_owned)).collect()
}

/// One SQS record as Lambda builds it from a received message.
fn record(message: &aws_sdk_sqs::types::Message, arn: &str) -> Value {
    let attributes: Map<String, Value> = message
        .attributes()
        .map(|attributes| attributes.iter().map(|(k, v)| (k.as_str().to_owned(), Value::from(v.as_str()))).collect())
        .unwrap_or_default();
    let message_attributes: Map<String, Value> = message
        .message_attributes()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| {
                    let attribute = json!({
                        "stringValue": value.string_value(),
                        "binaryValue": value.binary_value().map(|b| base64_of(b.as_ref())),
                        "stringListValues": value.string_list_values(),
                        "binaryListValues": value.binary_list_values().iter().map(|b| base64_of(b.as_ref())).collect::<Vec<_>>(),
                        "dataType": value.data_type(),
                    });
                    (name.clone(), attribute)
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": REGION,
    })
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Run every mapping (`queue URL → function`) until a whole round receives nothing; the polls that received
/// something, in order. Messages delayed or in flight are not waited for.
pub async fn drain(sqs: &aws_sdk_sqs::Client, mappings: &[(&str, &Function)]) -> Vec<(String, Poll)> {
    let mut polls = Vec::new();
    for _ in 0..MAX_DRAIN_ROUNDS {
        let mut any = false;
        for (url, function) in mappings {
            let poll = poll_once(sqs, url, function).await;
            if !poll.received.is_empty() {
                any = true;
                polls.push(((*url).to_owned(), poll));
            }
        }
        if !any {
            return polls;
        }
    }
    panic!("the queues did not empty in {MAX_DRAIN_ROUNDS} rounds: {polls:?}");
}

/// The message ids of every poll that the function reported failed.
pub fn failed_ids(polls: &[(String, Poll)]) -> BTreeSet<String> {
    polls.iter().flat_map(|(_, poll)| poll.failed.iter().cloned()).collect()
}

/// The EventBridge "Scheduled Event" of the rule `rule` (scale-down's every-minute schedule).
pub fn scheduled_event(rule: &str) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    json!({
        "version": "0",
        "id": format!("{:08x}-0000-4000-8000-{:012x}", now, std::process::id()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": rfc3339(now),
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule}")],
        "detail": {},
    })
}

/// `seconds` since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
pub fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// A wait between polls of a queue whose failed message must become visible again.
pub async fn past_visibility() {
    tokio::time::sleep(TEST_VISIBILITY + Duration::from_millis(200)).await;
}
