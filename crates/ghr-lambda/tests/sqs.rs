//! The SQS work queue on the moto emulator (`GHR_TEST_MOTO_ENDPOINT`): every kind of work reaches its queue and
//! decodes back, delays reach SQS, sends are chunked, a failed send names exactly what it did not send, and a
//! message received `maxReceiveCount` times without a delete lands in its dead-letter queue.

use ghr_core::ids::{InstallationId, RunnerName, TierName};
use ghr_engine::queue::{Work, WorkQueue};
use ghr_engine::teardown::TeardownCause;
use ghr_lambda::message;
use ghr_lambda::sqs::SqsQueue;
use ghr_lambda::testing::{TestQueues, create_queues, moto_endpoint, sqs_client, unique_prefix};
use std::time::{Duration, Instant};

/// The queues' visibility timeout in these tests (the functions use their timeout + 30 s).
const VISIBILITY: Duration = Duration::from_secs(30);
/// How long a test waits for messages it expects before failing.
const PATIENCE: Duration = Duration::from_secs(10);
/// The pause between two short polls (the emulator serves one request at a time: no long polls).
const POLL_PAUSE: Duration = Duration::from_millis(100);

async fn setup(max_receive_count: u32) -> (aws_sdk_sqs::Client, TestQueues, SqsQueue) {
    let client = sqs_client(&moto_endpoint()).await;
    let queues = create_queues(&client, &unique_prefix(), &["small", "large"], max_receive_count, VISIBILITY).await;
    let queue = SqsQueue::new(client.clone(), queues.urls.clone());
    (client, queues, queue)
}

/// One short poll of `url`: the messages received (bodies and receipt handles), not deleted.
async fn poll(client: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, String)> {
    let output = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .send()
        .await
        .unwrap_or_else(|e| panic!("receiving from {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
    output
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.body.unwrap_or_default(), m.receipt_handle.unwrap_or_default()))
        .collect()
}

/// Receive and delete messages from `url` until `count` arrived (or fail after [`PATIENCE`]), decoded.
async fn drain(client: &aws_sdk_sqs::Client, url: &str, count: usize) -> Vec<Work> {
    let deadline = Instant::now() + PATIENCE;
    let mut work = Vec::new();
    while work.len() < count {
        assert!(Instant::now() < deadline, "{url}: {} of {count} messages arrived: {work:?}", work.len());
        for (body, receipt) in poll(client, url).await {
            work.push(message::decode(&body).unwrap_or_else(|e| panic!("{body}: {e}")));
            client.delete_message().queue_url(url).receipt_handle(receipt).send().await.unwrap();
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    assert!(poll(client, url).await.is_empty(), "{url}: more than the {count} messages expected");
    work
}

fn sorted(mut work: Vec<Work>) -> Vec<Work> {
    work.sort_by_key(|w| format!("{w:?}"));
    work
}

fn dispatch(tenant: u64, tier: Option<&str>) -> Work {
    Work::dispatch(InstallationId(tenant), tier.map(TierName::from))
}

#[tokio::test]
async fn every_kind_of_work_reaches_its_queue_and_decodes_back() {
    let (client, queues, queue) = setup(5).await;
    let full_pass = Work::Dispatch { tenant: None, tier: None, attempt: 0 };
    let retry = Work::Dispatch { tenant: Some(InstallationId(4)), tier: Some(TierName::from("large")), attempt: 3 };
    let runner =
        Work::TeardownRunner { runner: RunnerName::new("ghr-main-1-small-1"), cause: TeardownCause::JobCompleted };
    let tenant = Work::TeardownTenant { tenant: InstallationId(2), cause: TeardownCause::TenantDeleted };
    let work = vec![
        dispatch(1, Some("small")),
        dispatch(1, Some("large")),
        dispatch(3, None),
        full_pass.clone(),
        retry.clone(),
        runner.clone(),
        tenant.clone(),
    ];
    queue.send(work, Duration::ZERO).await.unwrap();
    let urls = &queues.urls;
    let small = &urls.tiers[&TierName::from("small")];
    let large = &urls.tiers[&TierName::from("large")];
    assert_eq!(
        sorted(drain(&client, small, 3).await),
        sorted(vec![dispatch(1, Some("small")), dispatch(3, None), full_pass])
    );
    assert_eq!(sorted(drain(&client, large, 2).await), sorted(vec![dispatch(1, Some("large")), retry]));
    assert_eq!(drain(&client, &urls.teardown, 1).await, vec![runner]);
    assert_eq!(drain(&client, &urls.tenant_events, 1).await, vec![tenant]);
    for dlq in queues.dlqs.values() {
        assert!(poll(&client, dlq).await.is_empty(), "nothing dead-lettered");
    }
}

#[tokio::test]
async fn a_delayed_message_is_not_received_before_its_delay() {
    let (client, queues, queue) = setup(5).await;
    let url = &queues.urls.tiers[&TierName::from("small")];
    let started = Instant::now();
    // 1.2 s is rounded up to 2 s.
    queue.send(vec![dispatch(5, Some("small"))], Duration::from_millis(1200)).await.unwrap();
    assert!(poll(&client, url).await.is_empty(), "received before its delay");
    let work = drain(&client, url, 1).await;
    let waited = started.elapsed();
    assert_eq!(work, vec![dispatch(5, Some("small"))]);
    assert!(waited >= Duration::from_millis(1900), "received after {waited:?}, before the 2 s delay");
}

#[tokio::test]
async fn more_than_ten_items_are_sent_in_several_batches() {
    let (client, queues, queue) = setup(5).await;
    // 10 batches: more than run at once.
    let work: Vec<Work> = (1..=95).map(|tenant| dispatch(tenant, Some("large"))).collect();
    queue.send(work.clone(), Duration::ZERO).await.unwrap();
    let received = drain(&client, &queues.urls.tiers[&TierName::from("large")], work.len()).await;
    assert_eq!(sorted(received), sorted(work));
}

#[tokio::test]
async fn a_send_to_a_missing_queue_names_the_items_not_sent_and_sends_the_rest() {
    let (client, queues, _) = setup(5).await;
    let mut urls = queues.urls.clone();
    let missing = format!("{}-gone", urls.teardown);
    urls.teardown = missing.clone();
    let queue = SqsQueue::new(client.clone(), urls);
    let runners: Vec<Work> = (1..=12)
        .map(|n| Work::TeardownRunner {
            runner: RunnerName::new(format!("ghr-main-1-small-{n}")),
            cause: TeardownCause::Orphan,
        })
        .collect();
    let tenant = Work::TeardownTenant { tenant: InstallationId(8), cause: TeardownCause::TenantSuspended };
    let mut work = vec![dispatch(1, Some("small"))];
    work.extend(runners[..6].iter().cloned());
    work.push(tenant.clone());
    work.extend(runners[6..].iter().cloned());
    let error = queue.send(work.clone(), Duration::ZERO).await.unwrap_err();
    assert_eq!(error.unsent, runners, "exactly the teardowns, in order");
    assert_eq!((error.failed, error.total), (12, 14));
    assert!(error.message.contains(&missing), "the message names the queue: {}", error.message);
    assert_eq!(drain(&client, &queues.urls.tiers[&TierName::from("small")], 1).await, vec![dispatch(1, Some("small"))]);
    assert_eq!(drain(&client, &queues.urls.tenant_events, 1).await, vec![tenant]);
}

#[tokio::test]
async fn a_message_received_max_receive_count_times_lands_in_its_dead_letter_queue() {
    const MAX_RECEIVES: u32 = 2;
    let (client, queues, _) = setup(MAX_RECEIVES).await;
    let url = &queues.urls.teardown;
    let poison = r#"{"v":1,"work":"launch_everything"}"#;
    client.send_message().queue_url(url).message_body(poison).send().await.unwrap();
    // A consumer that reports the message failed leaves it on the queue: it comes back after its visibility
    // timeout (made immediate here), each time counted.
    for receive in 1..=MAX_RECEIVES {
        let received = poll(&client, url).await;
        assert_eq!(received.len(), 1, "receive {receive}");
        let (body, receipt) = &received[0];
        assert_eq!(body, poison);
        client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    assert!(poll(&client, url).await.is_empty(), "after {MAX_RECEIVES} receives the message left the queue");
    let dlq = &queues.dlqs[&format!("{}-teardown", prefix_of(url))];
    let dead = poll(&client, dlq).await;
    assert_eq!(dead.iter().map(|(body, _)| body.as_str()).collect::<Vec<_>>(), vec![poison], "in {dlq}");
}

/// The prefix of a `<prefix>-teardown` queue URL.
fn prefix_of(teardown_url: &str) -> &str {
    let name = teardown_url.rsplit('/').next().unwrap();
    name.strip_suffix("-teardown").unwrap()
}

/// How a stand-in SQS endpoint answers every request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// Close the connection without answering (a dropped connection: passing).
    Hang,
    /// 503 (a server error: passing).
    Unavailable,
    /// 400 AccessDenied (our fault: not tried again).
    Denied,
}

/// A local endpoint answering every request with `answer`; counts the requests.
async fn stand_in(answer: Answer) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buffer = vec![0; 64 * 1024];
            let _ = stream.read(&mut buffer).await;
            let (status, body) = match answer {
                Answer::Hang => continue,
                Answer::Unavailable => ("503 Service Unavailable", r#"{"__type":"ServiceUnavailable"}"#),
                Answer::Denied => ("400 Bad Request", r#"{"__type":"AccessDenied","message":"no"}"#),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    (endpoint, requests)
}

#[tokio::test]
async fn passing_failures_are_tried_again_and_refusals_are_not() {
    use ghr_lambda::sqs::SEND_RETRIES;
    for (answer, calls) in
        [(Answer::Hang, 1 + SEND_RETRIES), (Answer::Unavailable, 1 + SEND_RETRIES), (Answer::Denied, 1)]
    {
        let (endpoint, requests) = stand_in(answer).await;
        // The SDK's own retries off, to count ours.
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "tests"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let teardown = format!("{endpoint}/123456789012/t-teardown");
        let urls = ghr_lambda::env::QueueUrls {
            tiers: [(TierName::from("small"), format!("{endpoint}/123456789012/t-small-builds"))].into(),
            default_tier: TierName::from("small"),
            teardown: teardown.clone(),
            tenant_events: format!("{endpoint}/123456789012/t-tenant-events"),
        };
        let queue = SqsQueue::new(ghr_lambda::sqs::client(&sdk), urls);
        let work = vec![Work::TeardownRunner { runner: RunnerName::new("r1"), cause: TeardownCause::Operator }];
        let error = queue.send(work.clone(), Duration::ZERO).await.unwrap_err();
        assert_eq!(error.unsent, work, "{answer:?}");
        assert!(error.message.contains(&teardown), "{answer:?}: {}", error.message);
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), calls, "{answer:?}: {}", error.message);
    }
}
