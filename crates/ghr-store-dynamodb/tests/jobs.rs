//! Jobs, timelines, counters and intake on DynamoDB (the moto emulator; `GHR_TEST_MOTO_ENDPOINT`): the
//! conformance contracts of that area one by one, and what only a store with several replicas can show.

use ghr_core::ports::Store;
use ghr_store::conformance as contract;
use ghr_store_dynamodb::testing::fresh_store;
use std::sync::Arc;

async fn store() -> Arc<dyn Store> {
    Arc::new(fresh_store().await)
}

macro_rules! contracts {
    ($($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                contract::$name(store().await).await;
            }
        )+
    };
}

contracts!(
    job_observe_moves_forward_only,
    job_observe_completed_before_queued,
    job_observe_keeps_creation_fields,
    job_timeline_records_changes,
    job_wait_reason_logged_only_on_change,
    job_list_wanting_runner_is_fifo,
    job_list_filters,
    job_set_wait_reasons_applies_each_change_once,
    intake_batch_applies_each_delivery_once,
    intake_across_batches_moves_forward_only,
    intake_failing_item_fails_alone,
    counts_match_a_recount_after_mixed_changes,
);

use ghr_core::ids::{DeliveryId, InstallationId, JobId, RunnerName};
use ghr_core::intake::{JobIntake, JobIntakeChange, JobIntakeOutcome};
use ghr_core::job::{JobChange, JobEvent, JobObservation, JobStatus};
use ghr_core::ports::{DeliveryRecord, JobFilter};
use ghr_core::reason::Reason;
use ghr_store_dynamodb::tables::job::{TIMELINE_CAP, TIMELINE_TRIMMED_KIND};
use ghr_store_dynamodb::testing::{store_on, unique_prefix};
use std::collections::{BTreeMap, BTreeSet};

/// Jobs in the concurrent intake test, and the statuses delivered for each.
const JOBS: u64 = 46;
/// Distinct deliveries: every job's `queued`, then `in_progress` and `completed` for some, 100 in all.
const DELIVERIES: usize = 100;
/// Deliveries per `intake_jobs` call.
const BATCH: usize = 7;
/// How many times a replica delivers a delivery whose intake failed.
const REDELIVERIES: usize = 5;

/// The observation of `job` at `status` (a runner no store knows, so nothing is bound).
fn observation(job: u64, status: JobStatus, secs: i64) -> JobObservation {
    let mut obs = contract::queued(job, 10 + job % 3, "acme/app", Some("small"), secs);
    obs.status = status;
    if status >= JobStatus::InProgress {
        obs.runner_name = Some(RunnerName::from("hosted-runner"));
        obs.started_at = Some(contract::at(secs));
    }
    if status == JobStatus::Completed {
        obs.conclusion = Some("success".to_owned());
        obs.completed_at = Some(contract::at(secs));
    }
    obs
}

fn intake(id: &str, obs: JobObservation) -> JobIntake {
    JobIntake {
        delivery: DeliveryRecord {
            delivery_id: DeliveryId::from(id),
            event: "workflow_job".to_owned(),
            action: Some(obs.status.as_str().to_owned()),
            installation_id: Some(obs.installation_id),
            received_at: obs.observed_at,
        },
        job: Some(JobIntakeChange { observation: obs, initial_wait_reason: None, runner: None }),
    }
}

/// The 100 distinct deliveries: job `j` queued, in progress for `j % 3 != 0`, completed for `j % 2 == 0`.
fn deliveries() -> Vec<JobIntake> {
    let mut all = Vec::new();
    for job in 1..=JOBS {
        all.push(intake(&format!("q-{job}"), observation(job, JobStatus::Queued, job as i64)));
        if job % 3 != 0 {
            all.push(intake(&format!("r-{job}"), observation(job, JobStatus::InProgress, 100 + job as i64)));
        }
        if job % 2 == 0 {
            all.push(intake(&format!("c-{job}"), observation(job, JobStatus::Completed, 200 + job as i64)));
        }
    }
    assert_eq!(all.len(), DELIVERIES, "the fixture makes {DELIVERIES} deliveries");
    all
}

/// A deterministic shuffle (a linear congruential generator: no randomness needed, only disorder).
fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut items = items.to_vec();
    let mut state = seed;
    for i in (1..items.len()).rev() {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
    items
}

/// Two replicas intake the same deliveries (each twice, in different orders) at the same time: each delivery
/// is applied exactly once, each job is created once and moves forward only, and the counts match a recount.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_apply_each_delivery_exactly_once() {
    let prefix = unique_prefix();
    let (a, b) = (store_on(&prefix).await, store_on(&prefix).await);
    let all = deliveries();
    let mut with_duplicates = all.clone();
    with_duplicates.extend(all.iter().step_by(3).cloned());
    // A delivery whose intake failed (the emulator answers 500 now and then under concurrent transactions) is
    // delivered again, as GitHub redelivers a webhook answered with an error: a failed item must leave nothing
    // behind, which the counts below check.
    let run = |store: ghr_store_dynamodb::DynamoStore, seed: u64| {
        let mut pending = shuffled(&with_duplicates, seed);
        tokio::spawn(async move {
            let (mut outcomes, mut failures) = (Vec::new(), Vec::new());
            for _ in 0..REDELIVERIES {
                let mut failed = Vec::new();
                for batch in pending.chunks(BATCH) {
                    let results = store.intake_jobs(batch.to_vec()).await;
                    for (item, result) in batch.iter().zip(results) {
                        match result {
                            Ok(outcome) => outcomes.push((item.clone(), outcome)),
                            Err(error) => {
                                failures.push(format!("{}: {error:?}", item.delivery.delivery_id));
                                failed.push(item.clone());
                            }
                        }
                    }
                }
                pending = failed;
                if pending.is_empty() {
                    break;
                }
            }
            assert!(pending.is_empty(), "deliveries still failing after {REDELIVERIES} tries: {failures:#?}");
            if !failures.is_empty() {
                eprintln!("{} intake attempts failed and were delivered again: {failures:#?}", failures.len());
            }
            outcomes
        })
    };
    let (left, right) = (run(a.clone(), 7), run(b.clone(), 11));
    let outcomes: Vec<(JobIntake, JobIntakeOutcome)> =
        left.await.expect("replica a").into_iter().chain(right.await.expect("replica b")).collect();

    let mut recorded: BTreeMap<String, u32> = BTreeMap::new();
    let mut applied: BTreeMap<JobId, u32> = BTreeMap::new();
    let mut created: BTreeMap<JobId, u32> = BTreeMap::new();
    for (item, outcome) in &outcomes {
        let JobIntakeOutcome::Recorded { job: Some(job), change: Some(change), .. } = outcome else {
            assert_eq!(outcome, &JobIntakeOutcome::Duplicate, "a job delivery is recorded or a duplicate");
            continue;
        };
        *recorded.entry(item.delivery.delivery_id.as_str().to_owned()).or_default() += 1;
        if *change != JobChange::Unchanged {
            *applied.entry(*job).or_default() += 1;
        }
        if *change == JobChange::Created {
            *created.entry(*job).or_default() += 1;
        }
    }
    assert_eq!(recorded.len(), DELIVERIES, "every delivery recorded");
    assert!(recorded.values().all(|n| *n == 1), "each recorded once: {recorded:?}");
    assert_eq!(created.len() as u64, JOBS, "every job created");
    assert!(created.values().all(|n| *n == 1), "each job created once: {created:?}");

    for job in 1..=JOBS {
        let stored = b.job_get(JobId(job)).await.expect("job_get").expect("a recorded job");
        let last = if job % 2 == 0 {
            JobStatus::Completed
        } else if job % 3 != 0 {
            JobStatus::InProgress
        } else {
            JobStatus::Queued
        };
        assert_eq!(stored.status, last, "job {job} ends at the furthest status delivered");
        let timeline = a.job_timeline(JobId(job)).await.expect("job_timeline");
        assert_eq!(timeline.len() as u32, applied[&JobId(job)], "job {job}: one entry per change applied");
    }
    let jobs = a.job_list(JobFilter::default()).await.expect("job_list");
    let mut recount: BTreeMap<JobStatus, u64> = BTreeMap::new();
    for job in &jobs {
        *recount.entry(job.status).or_default() += 1;
    }
    assert_eq!(a.job_counts().await.expect("job_counts"), recount, "counters match a recount");
    let wanting = b.job_list_wanting_runner().await.expect("job_list_wanting_runner");
    let waiting: u64 = a.job_waiting_counts(None).await.expect("job_waiting_counts").values().sum();
    assert_eq!(waiting, wanting.len() as u64, "waiting counts match the queue");
    assert_eq!(wanting.len() as u64, recount.get(&JobStatus::Queued).copied().unwrap_or(0));
}

/// Past the cap a timeline keeps its first entry and the newest ones, with one entry counting what went; wait
/// reasons and status changes still apply to a job whose timeline is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_past_the_cap_keeps_the_first_and_the_newest_entries() {
    let store = fresh_store().await;
    let first = contract::queued(900, 9, "acme/app", Some("small"), 1);
    store.job_observe(first.clone()).await.expect("job_observe");
    let appended = TIMELINE_CAP + 50;
    for i in 0..appended {
        let event = JobEvent {
            job_id: JobId(900),
            at: contract::at(10 + i as i64),
            kind: "launch_failed".to_owned(),
            detail: format!("attempt {i}: {}", "x".repeat(2_000)),
        };
        store.job_event_append(event).await.expect("job_event_append");
    }
    let timeline = store.job_timeline(JobId(900)).await.expect("job_timeline");
    assert_eq!(timeline.len(), TIMELINE_CAP, "a timeline keeps at most {TIMELINE_CAP} entries");
    assert_eq!(timeline[0].kind, "queued", "the creation is kept");
    let dropped = 1 + appended - (TIMELINE_CAP - 1);
    let marker: Vec<&JobEvent> = timeline.iter().filter(|e| e.kind == TIMELINE_TRIMMED_KIND).collect();
    assert_eq!(marker.len(), 1, "one entry stands for the dropped ones");
    assert!(marker[0].detail.starts_with(&format!("{dropped} ")), "{}", marker[0].detail);
    let last = timeline.last().expect("entries");
    assert!(last.detail.starts_with(&format!("attempt {}:", appended - 1)), "the newest entry is kept");
    assert!(last.detail.len() <= 1024, "a long detail is cut: {}", last.detail.len());

    store.job_set_wait_reason(JobId(900), Some(Reason::ProviderError), contract::at(500)).await.expect("reason");
    assert_eq!(
        store.job_get(JobId(900)).await.expect("job_get").expect("job").wait_reason,
        Some(Reason::ProviderError)
    );
    let mut running = first.clone();
    running.status = JobStatus::InProgress;
    running.runner_name = Some(RunnerName::from("r-1"));
    running.observed_at = contract::at(600);
    assert_eq!(store.job_observe(running).await.expect("job_observe"), JobChange::Advanced { from: JobStatus::Queued });
    let timeline = store.job_timeline(JobId(900)).await.expect("job_timeline");
    assert_eq!(timeline.len(), TIMELINE_CAP);
    let kinds: Vec<&str> = timeline.iter().rev().take(2).map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["in_progress", "waiting"], "changes at the cap are still logged, newest last");
    let counts = store.job_counts().await.expect("job_counts");
    assert_eq!(counts, BTreeMap::from([(JobStatus::InProgress, 1)]));
}

/// A timeline entry for a job not recorded yet is kept (as the SQL stores keep it) and joins the job's
/// timeline when it is created; until then there is no job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_before_the_job_joins_its_timeline() {
    let store = fresh_store().await;
    let early =
        JobEvent { job_id: JobId(950), at: contract::at(1), kind: "found_by_poll".to_owned(), detail: String::new() };
    store.job_event_append(early.clone()).await.expect("job_event_append");
    assert_eq!(store.job_get(JobId(950)).await.expect("job_get"), None, "an entry makes no job");
    assert!(store.job_list(JobFilter::default()).await.expect("job_list").is_empty());
    assert_eq!(store.job_timeline(JobId(950)).await.expect("job_timeline"), vec![early.clone()]);
    let obs = contract::queued(950, 9, "acme/app", Some("small"), 2);
    assert_eq!(store.job_observe(obs).await.expect("job_observe"), JobChange::Created);
    let kinds: Vec<String> =
        store.job_timeline(JobId(950)).await.expect("timeline").into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec!["found_by_poll", "queued"]);
    assert_eq!(store.job_counts().await.expect("job_counts"), BTreeMap::from([(JobStatus::Queued, 1)]));
    let tenants: BTreeSet<InstallationId> =
        store.job_list_wanting_runner().await.expect("wanting").iter().map(|j| j.installation_id).collect();
    assert_eq!(tenants, BTreeSet::from([InstallationId(9)]));
}
