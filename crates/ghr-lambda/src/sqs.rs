//! The work queue over SQS: one queue per tier (`<prefix>-<tier>-builds`) for dispatch wake-ups, one for runner
//! teardowns (`<prefix>-teardown`) and one for tenant teardowns (`<prefix>-tenant-events`), each with a
//! dead-letter queue for poison messages.
//!
//! A send groups the items by queue and sends each group with `SendMessageBatch`, [`MAX_BATCH_ENTRIES`] at a
//! time. A call that fails for a passing reason (throttling, a 5xx, a timeout, a dropped connection) and the
//! entries SQS reports failed through no fault of ours are tried again a few times with a short backoff; what
//! still did not go is named in the [`QueueError`], and everything else was sent.

use crate::env::QueueUrls;
use crate::message;
use async_trait::async_trait;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use ghr_engine::queue::{QueueError, Work, WorkQueue};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The longest delay SQS allows on a message (`DelaySeconds`); longer backoffs are capped to it.
pub const MAX_DELAY_SECONDS: u64 = 900;
/// The most entries one `SendMessageBatch` call takes (SQS's limit).
pub const MAX_BATCH_ENTRIES: usize = 10;
/// How many `SendMessageBatch` calls of one send run at once.
pub const MAX_CONCURRENT_BATCHES: usize = 8;
/// Upper bound on one SQS call including the SDK's own retries (the webhook answers GitHub within seconds).
pub const SDK_OPERATION_TIMEOUT: Duration = Duration::from_secs(8);
/// Upper bound on one HTTP attempt of an SQS call.
pub const SDK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// How many more times a batch is tried after a passing failure.
pub const SEND_RETRIES: usize = 2;
/// The backoff before the first retry (it doubles, with jitter, up to [`RETRY_MAX_DELAY`]).
const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(1);
/// Error codes of SQS (and of AWS services in general) that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
    "KmsThrottled",
    "KMS.ThrottlingException",
];

/// An SQS client for the functions: the SDK configuration `sdk` (region, credentials, `AWS_ENDPOINT_URL`) with
/// bounded call times, so that a hung connection costs seconds, not the function's whole timeout.
pub fn client(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(SDK_OPERATION_TIMEOUT)
        .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
        .build();
    aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(sdk).timeout_config(timeouts).build())
}

/// [`WorkQueue`] over SQS.
#[derive(Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    urls: QueueUrls,
}

impl SqsQueue {
    /// The queue on `client` (build it with [`client`] for bounded call times).
    pub fn new(client: aws_sdk_sqs::Client, urls: QueueUrls) -> Self {
        Self { client, urls }
    }

    /// The queue URL an item goes to: a dispatch to its tier's queue (the default tier's when it names none or
    /// a tier without a queue), a runner teardown to the teardown queue, a tenant teardown to the tenant-events
    /// queue.
    pub fn route(&self, work: &Work) -> &str {
        route(&self.urls, work)
    }

    /// One `SendMessageBatch` of `batch` (at most [`MAX_BATCH_ENTRIES`]), tried again while what failed may
    /// pass. Returns the indexes of the items that were not sent, with why.
    async fn send_batch(&self, batch: &Batch, delay_seconds: i32) -> Vec<(usize, String)> {
        let url = batch.queue_url.as_str();
        if url.is_empty() {
            let why = "no queue URL for this work (GHR_TIER_QUEUES has no queue for the default tier)".to_owned();
            return batch.items.iter().map(|(index, _)| (*index, why.clone())).collect();
        }
        let mut backoff = retry_backoff().build();
        let mut pending: Vec<(usize, &Work)> = batch.items.iter().map(|(index, work)| (*index, work)).collect();
        let mut refused = Vec::new();
        loop {
            let Attempt { retry, refused: now_refused } = self.attempt(url, &pending, delay_seconds).await;
            refused.extend(now_refused);
            let Some((_, _, first_reason)) = retry.first() else {
                return refused;
            };
            match backoff.next() {
                Some(pause) => {
                    tracing::warn!(queue = url, items = retry.len(), reason = %first_reason, "SQS send failed; retrying");
                    tokio::time::sleep(pause).await;
                    pending = retry.into_iter().map(|(index, work, _)| (index, work)).collect();
                }
                None => {
                    refused.extend(retry.into_iter().map(|(index, _, why)| (index, why)));
                    return refused;
                }
            }
        }
    }

    /// One `SendMessageBatch` call of `pending` (indexes into the send's items, and the items).
    async fn attempt<'w>(&self, url: &str, pending: &[(usize, &'w Work)], delay_seconds: i32) -> Attempt<'w> {
        let entries = pending
            .iter()
            .map(|(index, work)| {
                SendMessageBatchRequestEntry::builder()
                    .id(entry_id(*index))
                    .message_body(message::encode(work))
                    .delay_seconds(delay_seconds)
                    .build()
                    .unwrap_or_else(|e| unreachable!("an entry with its id and body always builds: {e}"))
            })
            .collect::<Vec<_>>();
        let mut outcome = Attempt { retry: Vec::new(), refused: Vec::new() };
        match self.client.send_message_batch().queue_url(url).set_entries(Some(entries)).send().await {
            Ok(output) => {
                let sent: BTreeSet<&str> = output.successful.iter().map(|entry| entry.id.as_str()).collect();
                let failed: BTreeMap<&str, _> = output.failed.iter().map(|entry| (entry.id.as_str(), entry)).collect();
                for &(index, work) in pending {
                    let id = entry_id(index);
                    if sent.contains(id.as_str()) {
                        continue;
                    }
                    match failed.get(id.as_str()) {
                        Some(entry) => {
                            let why =
                                format!("{url}: {}: {}", entry.code, entry.message.as_deref().unwrap_or("no message"));
                            if entry.sender_fault {
                                outcome.refused.push((index, why));
                            } else {
                                outcome.retry.push((index, work, why));
                            }
                        }
                        None => outcome.retry.push((index, work, format!("{url}: SQS reported nothing for the entry"))),
                    }
                }
            }
            Err(error) => {
                let why = format!("{url}: {}", DisplayErrorContext(&error));
                if is_transient(&error) {
                    outcome.retry = pending.iter().map(|&(index, work)| (index, work, why.clone())).collect();
                } else {
                    outcome.refused = pending.iter().map(|&(index, _)| (index, why.clone())).collect();
                }
            }
        }
        outcome
    }
}

/// What one call left: items to try again (a passing failure) and items refused for good, each with why.
struct Attempt<'w> {
    retry: Vec<(usize, &'w Work, String)>,
    refused: Vec<(usize, String)>,
}

#[async_trait]
impl WorkQueue for SqsQueue {
    /// Send every item to its queue ([`SqsQueue::route`]), each to be received no sooner than `delay` from now.
    /// SQS delays a message by whole seconds up to [`MAX_DELAY_SECONDS`] (15 minutes): `delay` is rounded up
    /// to a whole second, and a longer backoff is **capped** to 15 minutes (the item then comes back sooner
    /// than asked, which only repeats a pass earlier).
    async fn send(&self, work: Vec<Work>, delay: Duration) -> Result<(), QueueError> {
        let total = work.len();
        let delay_seconds = delay_seconds(delay);
        let batches = plan(&self.urls, &work);
        // The futures are made first (a combinator's closure would make the future not `Send`).
        let sends: Vec<_> = batches.iter().map(|batch| self.send_batch(batch, delay_seconds)).collect();
        let mut unsent: Vec<(usize, String)> =
            futures::stream::iter(sends).buffer_unordered(MAX_CONCURRENT_BATCHES).concat().await;
        if unsent.is_empty() {
            return Ok(());
        }
        unsent.sort_by_key(|(index, _)| *index);
        let reasons: BTreeSet<&str> = unsent.iter().map(|(_, why)| why.as_str()).collect();
        let message = reasons.into_iter().collect::<Vec<_>>().join("; ");
        let unsent: Vec<Work> = unsent.iter().map(|(index, _)| work[*index].clone()).collect();
        Err(QueueError { failed: unsent.len(), total, message, unsent })
    }
}

/// The queue URL `work` goes to (see [`SqsQueue::route`]). Empty only when `urls` has no queue for its default
/// tier, which [`crate::env::LambdaEnv`] never builds; sending there fails the items.
pub fn route<'u>(urls: &'u QueueUrls, work: &Work) -> &'u str {
    match work {
        Work::Dispatch { tier, .. } => tier
            .as_ref()
            .and_then(|tier| urls.tiers.get(tier))
            .or_else(|| urls.tiers.get(&urls.default_tier))
            .map_or("", String::as_str),
        Work::TeardownRunner { .. } => &urls.teardown,
        Work::TeardownTenant { .. } => &urls.tenant_events,
    }
}

/// One `SendMessageBatch` call's worth of items: a queue and at most [`MAX_BATCH_ENTRIES`] items, each with its
/// index in the send (the entry's id, so that failures name the item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub queue_url: String,
    pub items: Vec<(usize, Work)>,
}

/// The batches `work` is sent in: grouped by queue (queues in URL order, items in their order within a queue),
/// [`MAX_BATCH_ENTRIES`] at a time.
pub fn plan(urls: &QueueUrls, work: &[Work]) -> Vec<Batch> {
    let mut by_queue: BTreeMap<&str, Vec<(usize, Work)>> = BTreeMap::new();
    for (index, item) in work.iter().enumerate() {
        by_queue.entry(route(urls, item)).or_default().push((index, item.clone()));
    }
    by_queue
        .into_iter()
        .flat_map(|(url, items)| {
            items
                .chunks(MAX_BATCH_ENTRIES)
                .map(|chunk| Batch { queue_url: url.to_owned(), items: chunk.to_vec() })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `DelaySeconds` for `delay`: rounded up to a whole second (a backoff is never shortened below what was
/// asked), capped at [`MAX_DELAY_SECONDS`].
pub fn delay_seconds(delay: Duration) -> i32 {
    let whole = delay.as_secs().saturating_add(u64::from(delay.subsec_nanos() > 0));
    let capped = whole.min(MAX_DELAY_SECONDS);
    i32::try_from(capped).unwrap_or_else(|_| unreachable!("{MAX_DELAY_SECONDS} fits an i32"))
}

/// The id of the entry of the send's item `index` (SQS wants ids unique within a call: letters, digits, `-`, `_`).
fn entry_id(index: usize) -> String {
    format!("w{index}")
}

fn retry_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN_DELAY)
        .with_max_delay(RETRY_MAX_DELAY)
        .with_max_times(SEND_RETRIES)
        .with_jitter()
}

/// Whether a failed SQS call may pass if tried again: a timeout, a connection that failed or a response that
/// could not be read, throttling, or a server error.
fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error() || transient_code(service.err().code())
        }
        _ => false,
    }
}

/// Whether an AWS error code means "try again later".
fn transient_code(code: Option<&str>) -> bool {
    code.is_some_and(|code| TRANSIENT_CODES.contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
    use ghr_core::ids::{InstallationId, RunnerName, TierName};
    use ghr_engine::teardown::TeardownCause;

    const SMALL: &str = "https://sqs/small";
    const LARGE: &str = "https://sqs/large";
    const TEARDOWN: &str = "https://sqs/teardown";
    const TENANT_EVENTS: &str = "https://sqs/tenant-events";

    fn urls() -> QueueUrls {
        QueueUrls {
            tiers: [(TierName::from("small"), SMALL.to_owned()), (TierName::from("large"), LARGE.to_owned())].into(),
            default_tier: TierName::from("small"),
            teardown: TEARDOWN.into(),
            tenant_events: TENANT_EVENTS.into(),
        }
    }

    fn dispatch(tenant: u64, tier: Option<&str>) -> Work {
        Work::dispatch(InstallationId(tenant), tier.map(TierName::from))
    }

    #[test]
    fn each_kind_of_work_goes_to_its_queue() {
        let urls = urls();
        let cases = [
            (dispatch(1, Some("large")), LARGE),
            (dispatch(1, Some("small")), SMALL),
            (dispatch(1, None), SMALL),
            (dispatch(1, Some("gone")), SMALL),
            (Work::Dispatch { tenant: None, tier: None, attempt: 0 }, SMALL),
            (Work::Dispatch { tenant: None, tier: Some(TierName::from("large")), attempt: 2 }, LARGE),
            (Work::TeardownRunner { runner: RunnerName::new("r1"), cause: TeardownCause::JobCompleted }, TEARDOWN),
            (Work::TeardownTenant { tenant: InstallationId(1), cause: TeardownCause::TenantDeleted }, TENANT_EVENTS),
        ];
        for (work, url) in cases {
            assert_eq!(route(&urls, &work), url, "{work:?}");
        }
        let no_default = QueueUrls { default_tier: TierName::from("medium"), ..urls };
        assert_eq!(route(&no_default, &dispatch(1, None)), "", "no queue for the default tier");
        assert_eq!(route(&no_default, &dispatch(1, Some("large"))), LARGE);
    }

    #[test]
    fn work_is_grouped_by_queue_in_batches_of_ten_keeping_each_items_index() {
        let mut work: Vec<Work> = (1..=23).map(|tenant| dispatch(tenant, Some("large"))).collect();
        work.insert(5, Work::TeardownTenant { tenant: InstallationId(9), cause: TeardownCause::TenantDeleted });
        work.push(dispatch(99, None));
        let batches = plan(&urls(), &work);
        let shape: Vec<(&str, Vec<usize>)> =
            batches.iter().map(|b| (b.queue_url.as_str(), b.items.iter().map(|(i, _)| *i).collect())).collect();
        let large: Vec<usize> = (0..24).filter(|i| *i != 5).collect();
        assert_eq!(
            shape,
            vec![
                (LARGE, large[..10].to_vec()),
                (LARGE, large[10..20].to_vec()),
                (LARGE, large[20..].to_vec()),
                (SMALL, vec![24]),
                (TENANT_EVENTS, vec![5]),
            ]
        );
        for batch in &batches {
            assert!(batch.items.len() <= MAX_BATCH_ENTRIES);
            for (index, item) in &batch.items {
                assert_eq!(item, &work[*index]);
            }
        }
        assert!(plan(&urls(), &[]).is_empty());
    }

    #[test]
    fn delays_are_whole_seconds_rounded_up_and_capped_at_fifteen_minutes() {
        let cases = [
            (Duration::ZERO, 0),
            (Duration::from_nanos(1), 1),
            (Duration::from_millis(999), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(899), 899),
            (Duration::from_secs(900), 900),
            (Duration::from_millis(900_001), 900),
            (Duration::from_secs(3600), 900),
            (Duration::MAX, 900),
        ];
        for (delay, seconds) in cases {
            assert_eq!(delay_seconds(delay), seconds, "{delay:?}");
        }
    }

    #[test]
    fn entry_ids_are_unique_and_valid_for_sqs() {
        let ids: BTreeSet<String> = (0..1000).map(entry_id).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() <= 80 && id.chars().all(|c| c.is_ascii_alphanumeric())));
    }

    #[test]
    fn timeouts_and_throttling_are_transient_other_errors_are_not() {
        let timeout: SdkError<SendMessageBatchError, HttpResponse> = SdkError::timeout_error("slow");
        assert!(is_transient(&timeout));
        let construction: SdkError<SendMessageBatchError, HttpResponse> = SdkError::construction_failure("bad");
        assert!(!is_transient(&construction));
        for code in TRANSIENT_CODES {
            assert!(transient_code(Some(code)), "{code}");
        }
        assert!(!transient_code(Some("AWS.SimpleQueueService.NonExistentQueue")));
        assert!(!transient_code(Some("AccessDenied")));
        assert!(!transient_code(None));
    }

    #[test]
    fn the_retry_backoff_is_short_and_bounded() {
        let pauses: Vec<Duration> = retry_backoff().build().collect();
        assert_eq!(pauses.len(), SEND_RETRIES);
        assert!(pauses.iter().all(|pause| *pause <= RETRY_MAX_DELAY * 2), "{pauses:?}");
    }
}
