//! Contracts of webhook intake (`Store::intake_jobs`): one transaction per batch, each delivery applied once,
//! duplicates inside a batch and across batches, forward-only status, and a failing item that fails alone.

use super::fixtures::{Found, active_tenant, at, completed, expect_reserved, in_progress, ok, queued, reserve_request};
use ghr_core::ids::{DeliveryId, InstallationId, JobId};
use ghr_core::intake::{JobIntake, JobIntakeChange, JobIntakeOutcome, RunnerBinding};
use ghr_core::job::{JobChange, JobObservation, JobStatus, event_kind};
use ghr_core::ports::{DeliveryRecord, Store};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use std::sync::Arc;

fn delivery(id: &str, action: &str, secs: i64) -> DeliveryRecord {
    DeliveryRecord {
        delivery_id: DeliveryId::from(id),
        event: "workflow_job".to_owned(),
        action: Some(action.to_owned()),
        installation_id: Some(InstallationId(70)),
        received_at: at(secs),
    }
}

/// A `workflow_job` delivery reporting `observation`, binding its runner (if it names one) like intake does.
fn job_delivery(id: &str, observation: JobObservation, reason: Option<Reason>) -> JobIntake {
    let runner = observation.runner_name.clone().and_then(|name| RunnerBinding::for_status(name, observation.status));
    JobIntake {
        delivery: delivery(id, observation.status.as_str(), 0),
        job: Some(JobIntakeChange { observation, initial_wait_reason: reason, runner }),
    }
}

fn change(outcome: &JobIntakeOutcome) -> Option<JobChange> {
    match outcome {
        JobIntakeOutcome::Recorded { change, .. } => *change,
        JobIntakeOutcome::Duplicate => None,
    }
}

async fn outcomes(store: &dyn Store, batch: Vec<JobIntake>) -> Vec<JobIntakeOutcome> {
    let results = store.intake_jobs(batch).await;
    results.into_iter().enumerate().map(|(i, result)| ok(result, &format!("intake_jobs item {i}"))).collect()
}

async fn seen(store: &dyn Store, id: &str) -> bool {
    ok(store.delivery_seen(&DeliveryId::from(id)).await, "delivery_seen")
}

/// One batch: new jobs are created (one with its initial wait reason and both timeline entries), a delivery
/// id repeated inside the batch is a duplicate, a second delivery of the same job changes nothing, and a
/// delivery without a job is recorded only.
pub async fn intake_batch_applies_each_delivery_once(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ping = JobIntake {
        delivery: DeliveryRecord {
            event: "ping".to_owned(),
            action: None,
            installation_id: None,
            ..delivery("p", "", 0)
        },
        job: None,
    };
    let batch = vec![
        job_delivery("d1", queued(700, 70, "acme/app", Some("small"), 1), None),
        job_delivery("d1", queued(799, 70, "acme/app", Some("small"), 1), None),
        job_delivery("d2", queued(701, 70, "acme/app", None, 2), Some(Reason::NoMatchingTier)),
        job_delivery("d3", queued(700, 70, "acme/app", Some("small"), 3), None),
        ping,
    ];
    let got = outcomes(store, batch).await;
    assert_eq!(got.len(), 5, "one outcome per item");
    assert_eq!(change(&got[0]), Some(JobChange::Created));
    assert_eq!(got[1], JobIntakeOutcome::Duplicate, "a delivery id repeated in one batch applies once");
    assert_eq!(ok(store.job_get(JobId(799)).await, "job_get"), None, "the duplicate's job is not recorded");
    assert_eq!(change(&got[2]), Some(JobChange::Created));
    assert_eq!(change(&got[3]), Some(JobChange::Unchanged), "another delivery of a known job changes nothing");
    assert_eq!(got[4], JobIntakeOutcome::Recorded { job: None, change: None, runner: None });
    for id in ["d1", "d2", "d3", "p"] {
        assert!(seen(store, id).await, "delivery {id} recorded");
    }
    let waiting = ok(store.job_get(JobId(701)).await, "job_get").found("job_get");
    assert_eq!(waiting.wait_reason, Some(Reason::NoMatchingTier), "the initial wait reason is set");
    let timeline = ok(store.job_timeline(JobId(701)).await, "job_timeline");
    let kinds: Vec<(&str, &str)> = timeline.iter().map(|e| (e.kind.as_str(), e.detail.as_str())).collect();
    assert_eq!(kinds, vec![(event_kind::QUEUED, ""), (event_kind::WAITING, Reason::NoMatchingTier.code())]);
    let matched = ok(store.job_get(JobId(700)).await, "job_get").found("job_get");
    assert_eq!((matched.wait_reason, matched.received_at), (None, at(1)), "the first sight is kept");
    assert_eq!(ok(store.job_timeline(JobId(700)).await, "job_timeline").len(), 1, "one entry for two deliveries");
}

/// Across batches: a redelivery is a duplicate; status moves forward only, binding the runner GitHub names
/// when the job moves and never when it does not.
pub async fn intake_across_batches_moves_forward_only(store: Arc<dyn Store>) {
    let store = store.as_ref();
    active_tenant(store, 70, 5).await;
    let base = queued(710, 70, "acme/app", Some("small"), 1);
    outcomes(store, vec![job_delivery("e1", base.clone(), None)]).await;
    let runner = expect_reserved(store, reserve_request(70, "small", 2)).await;
    let name = runner.name.as_str().to_owned();

    let got = outcomes(store, vec![job_delivery("e1", base.clone(), None)]).await;
    assert_eq!(got, vec![JobIntakeOutcome::Duplicate], "a redelivery in a later batch changes nothing");

    let running = job_delivery("e2", in_progress(&base, &name, 10), None);
    let got =
        outcomes(store, vec![running, job_delivery("e3", queued(710, 70, "acme/app", Some("small"), 11), None)]).await;
    assert_eq!(change(&got[0]), Some(JobChange::Advanced { from: JobStatus::Queued }));
    match &got[0] {
        JobIntakeOutcome::Recorded { runner: Some(bound), .. } => {
            assert_eq!((bound.state, bound.job_id), (RunnerState::Busy, Some(JobId(710))), "runner bound busy")
        }
        other => panic!("in_progress on our runner must bind it: {other:?}"),
    }
    assert_eq!(change(&got[1]), Some(JobChange::Unchanged), "queued after in_progress in the same batch");

    let done = job_delivery("e4", completed(&in_progress(&base, &name, 10), "success", 20), None);
    let late = job_delivery("e5", in_progress(&base, &name, 21), None);
    let got = outcomes(store, vec![done, late]).await;
    match &got[0] {
        JobIntakeOutcome::Recorded { runner: Some(bound), .. } => assert_eq!(bound.state, RunnerState::Finished),
        other => panic!("completed on our runner must finish it: {other:?}"),
    }
    assert_eq!(
        got[1],
        JobIntakeOutcome::Recorded { job: Some(JobId(710)), change: Some(JobChange::Unchanged), runner: None }
    );
    let job = ok(store.job_get(JobId(710)).await, "job_get").found("job_get");
    assert_eq!((job.status, job.conclusion.as_deref()), (JobStatus::Completed, Some("success")));
    let kept = ok(store.runner_get(&runner.name).await, "runner_get").found("runner_get");
    assert_eq!(kept.state, RunnerState::Finished, "an Unchanged delivery binds nothing");

    let foreign =
        job_delivery("e6", in_progress(&queued(711, 70, "acme/app", Some("small"), 30), "hosted-1", 31), None);
    let got = outcomes(store, vec![foreign]).await;
    assert_eq!(
        got[0],
        JobIntakeOutcome::Recorded { job: Some(JobId(711)), change: Some(JobChange::Created), runner: None }
    );
}

/// One item that cannot be applied fails alone: nothing of it is recorded (its delivery stays unseen, so a
/// redelivery can apply it), and the items before and after it are applied and recorded.
pub async fn intake_failing_item_fails_alone(store: Arc<dyn Store>) {
    let store = store.as_ref();
    // A job id no store can hold: refused after the item's delivery was written in the transaction.
    let impossible = queued(u64::MAX, 70, "acme/app", Some("small"), 2);
    let batch = vec![
        job_delivery("f1", queued(720, 70, "acme/app", Some("small"), 1), None),
        job_delivery("f2", impossible, None),
        job_delivery("f3", queued(721, 70, "acme/app", Some("small"), 3), None),
        job_delivery("f1", queued(720, 70, "acme/app", Some("small"), 4), None),
    ];
    let results = store.intake_jobs(batch).await;
    assert_eq!(results.len(), 4, "one outcome per item");
    assert!(results[1].is_err(), "the impossible item fails: {:?}", results[1]);
    let got: Vec<Option<JobChange>> =
        [0, 2].iter().map(|&i| change(&ok(results[i].as_ref().map(Clone::clone), "intake_jobs"))).collect();
    assert_eq!(got, vec![Some(JobChange::Created), Some(JobChange::Created)], "batch-mates are applied");
    assert!(matches!(results[3], Ok(JobIntakeOutcome::Duplicate)), "the retried batch still sees f1 once");
    assert!(seen(store, "f1").await && seen(store, "f3").await, "batch-mates are recorded");
    assert!(!seen(store, "f2").await, "the failed delivery stays unrecorded");
    for id in [720, 721] {
        assert_eq!(ok(store.job_timeline(JobId(id)).await, "job_timeline").len(), 1, "job {id} applied once");
    }
    // Its redelivery, once applicable, is applied.
    let redelivered = job_delivery("f2", queued(722, 70, "acme/app", Some("small"), 5), None);
    assert_eq!(change(&outcomes(store, vec![redelivered]).await[0]), Some(JobChange::Created));
}
