//! An SQS batch as Lambda delivers it, and the partial batch response every consumer answers with.
//!
//! The rule all three consumers follow: a message is reported failed (left on its queue, and after
//! `maxReceiveCount` receives moved to the dead-letter queue) only when it is **poison** — no function can read
//! it — or when its retry could not be queued. Work that failed for a passing reason (the store or GitHub
//! unavailable, no EC2 capacity) is re-sent as a new, delayed message and the received one is acknowledged, so a
//! message that is merely unlucky never reaches the dead-letter queue, and a job never leaves the store.

use crate::message::{self, PoisonMessage};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ghr_engine::queue::{Work, WorkQueue};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a teardown that failed (the store or EC2 unavailable) waits before it is tried again.
pub const TEARDOWN_RETRY_DELAY: Duration = Duration::from_secs(30);

/// One received message.
#[derive(Debug)]
pub struct Received {
    pub message_id: String,
    pub work: Result<Work, PoisonMessage>,
}

/// The messages of a batch, decoded. A record without a message id cannot be reported on; it is logged and
/// treated as delivered.
pub fn read(event: &SqsEvent) -> Vec<Received> {
    event
        .records
        .iter()
        .filter_map(|record| {
            let Some(message_id) = record.message_id.clone() else {
                tracing::error!("an SQS record without a message id was skipped");
                return None;
            };
            let work = match &record.body {
                Some(body) => message::decode(body),
                None => Err(PoisonMessage("the message has no body".into())),
            };
            Some(Received { message_id, work })
        })
        .collect()
}

/// What became of each message of a batch.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    failed: Vec<String>,
    /// By delay: the message each retry stands for, and the work.
    retries: BTreeMap<Duration, Vec<(String, Work)>>,
}

impl BatchOutcome {
    /// A message no function can read: reported failed every time, so SQS moves it to the dead-letter queue.
    pub fn poison(&mut self, message_id: &str, why: &dyn std::fmt::Display) {
        tracing::error!(message_id, %why, "poison message: left for the dead-letter queue");
        self.failed.push(message_id.to_owned());
    }

    /// The message's work must run again after `delay`: `work` is queued anew and the message is acknowledged
    /// once it is.
    pub fn retry_after(&mut self, message_id: &str, work: Work, delay: Duration) {
        self.retries.entry(delay).or_default().push((message_id.to_owned(), work));
    }

    /// Queue the retries, then hand `also` (what the step asked of other functions) over, and answer. A retry
    /// that could not be queued leaves its message failed (SQS delivers it again after the visibility timeout);
    /// other work that could not be queued is logged: the scheduled pass covers it.
    pub async fn finish(self, queue: &dyn WorkQueue, also: Vec<Work>) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for id in &self.failed {
            response.add_failure(id.clone());
        }
        for (delay, retries) in &self.retries {
            let work = retries.iter().map(|(_, work)| work.clone()).collect();
            if let Err(error) = queue.send(work, *delay).await {
                tracing::error!(error = %error, "retries could not be queued: their messages stay on the queue");
                for (id, work) in retries {
                    if error.unsent.contains(work) && !self.failed.contains(id) {
                        response.add_failure(id.clone());
                    }
                }
            }
        }
        if !also.is_empty()
            && let Err(error) = queue.send(also, Duration::ZERO).await
        {
            tracing::error!(error = %error, "work for other functions could not be queued; the scheduled pass covers it");
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use ghr_core::ids::{InstallationId, RunnerName};
    use ghr_engine::queue::QueueError;
    use ghr_engine::teardown::TeardownCause;
    use std::sync::Mutex;

    /// A queue that records what it was given and refuses the items `refuse` matches.
    #[derive(Default)]
    struct Recording {
        sent: Mutex<Vec<(Work, Duration)>>,
        refuse: Option<fn(&Work) -> bool>,
    }

    #[async_trait]
    impl WorkQueue for Recording {
        async fn send(&self, work: Vec<Work>, delay: Duration) -> Result<(), QueueError> {
            let refuse = self.refuse.unwrap_or(|_| false);
            let (unsent, sent): (Vec<Work>, Vec<Work>) = work.into_iter().partition(refuse);
            self.sent.lock().unwrap().extend(sent.into_iter().map(|w| (w, delay)));
            if unsent.is_empty() {
                return Ok(());
            }
            Err(QueueError { failed: unsent.len(), total: unsent.len(), message: "refused".into(), unsent })
        }
    }

    fn teardown(name: &str) -> Work {
        Work::TeardownRunner { runner: RunnerName::new(name), cause: TeardownCause::JobCompleted }
    }

    #[tokio::test]
    async fn only_poison_and_retries_that_could_not_be_queued_fail_their_message() {
        let queue = Recording { refuse: Some(|w| *w == teardown("refused")), ..Default::default() };
        let mut outcome = BatchOutcome::default();
        outcome.poison("m-poison", &"garbage");
        outcome.retry_after("m-retried", teardown("ok"), Duration::from_secs(30));
        outcome.retry_after("m-stuck", teardown("refused"), Duration::from_secs(30));
        let also = vec![Work::dispatch(InstallationId(5), None)];
        let response = outcome.finish(&queue, also).await;
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, vec!["m-poison", "m-stuck"]);
        let sent = queue.sent.lock().unwrap().clone();
        assert_eq!(
            sent,
            vec![(teardown("ok"), Duration::from_secs(30)), (Work::dispatch(InstallationId(5), None), Duration::ZERO)]
        );
    }

    #[tokio::test]
    async fn an_outbox_that_cannot_be_sent_fails_no_message() {
        let queue = Recording { refuse: Some(|_| true), ..Default::default() };
        let response = BatchOutcome::default().finish(&queue, vec![Work::dispatch(InstallationId(1), None)]).await;
        assert!(response.batch_item_failures.is_empty(), "the scheduled pass covers a lost wake-up");
    }

    #[test]
    fn a_batch_is_read_message_by_message() {
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "a", "body": "{\"v\":1,\"work\":\"dispatch\",\"tenant\":7,\"tier\":\"small\",\"attempt\":0}"},
            {"messageId": "b", "body": "not json"},
            {"messageId": "c"},
            {"body": "{}"}
        ]}))
        .unwrap();
        let read = read(&event);
        assert_eq!(read.iter().map(|r| r.message_id.as_str()).collect::<Vec<_>>(), vec!["a", "b", "c"]);
        assert!(read[1].work.is_err() && read[2].work.is_err(), "garbage and an empty body are poison");
    }
}
