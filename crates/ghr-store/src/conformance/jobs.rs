//! Contracts of jobs: forward-only observations, timelines, wait reasons, the dispatcher's FIFO.

use super::fixtures::{Found, at, completed, in_progress, ok, queued};
use crate::WAIT_CLEARED_DETAIL;
use ghr_core::ids::{InstallationId, JobId, RunnerName, TierName};
use ghr_core::job::{Job, JobChange, JobEvent, JobStatus, event_kind};
use ghr_core::ports::{JobFilter, Store};
use ghr_core::reason::Reason;
use std::sync::Arc;

async fn job(store: &dyn Store, id: u64) -> Job {
    ok(store.job_get(JobId(id)).await, "job_get").found("job_get")
}

async fn kinds_and_details(store: &dyn Store, id: u64) -> Vec<(String, String)> {
    let timeline = ok(store.job_timeline(JobId(id)).await, "job_timeline");
    timeline.into_iter().map(|event| (event.kind, event.detail)).collect()
}

fn entry(kind: &str, detail: &str) -> (String, String) {
    (kind.to_owned(), detail.to_owned())
}

/// Status moves queued → in_progress → completed only; duplicates and regressions change nothing.
pub async fn job_observe_moves_forward_only(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let first = queued(100, 1, "acme/app", Some("small"), 10);
    assert_eq!(ok(store.job_observe(first.clone()).await, "job_observe"), JobChange::Created);
    let created = job(store, 100).await;
    assert_eq!(created.status, JobStatus::Queued);
    assert_eq!(created.installation_id, InstallationId(1));
    assert_eq!(created.repository, "acme/app");
    assert_eq!(created.labels, first.labels);
    assert_eq!(created.tier, Some(TierName::from("small")));
    assert_eq!((created.received_at, created.queued_at, created.updated_at), (at(10), Some(at(10)), at(10)));
    assert_eq!((created.runner_name.clone(), created.started_at, created.completed_at), (None, None, None));

    let duplicate = queued(100, 1, "acme/app", Some("small"), 11);
    assert_eq!(ok(store.job_observe(duplicate).await, ""), JobChange::Unchanged, "a duplicate queued is Unchanged");
    assert_eq!(job(store, 100).await, created, "an Unchanged observation writes nothing");

    let running = in_progress(&first, "ghr-runner-1", 20);
    assert_eq!(ok(store.job_observe(running).await, ""), JobChange::Advanced { from: JobStatus::Queued });
    let after = job(store, 100).await;
    assert_eq!(after.status, JobStatus::InProgress);
    assert_eq!(after.runner_name, Some(RunnerName::from("ghr-runner-1")));
    assert_eq!((after.started_at, after.updated_at, after.received_at), (Some(at(20)), at(20), at(10)));

    let late_queued = queued(100, 1, "acme/app", Some("small"), 25);
    assert_eq!(ok(store.job_observe(late_queued).await, ""), JobChange::Unchanged, "queued after in_progress");
    assert_eq!(job(store, 100).await.status, JobStatus::InProgress);

    let done = completed(&first, "success", 30);
    assert_eq!(ok(store.job_observe(done).await, ""), JobChange::Advanced { from: JobStatus::InProgress });
    let finished = job(store, 100).await;
    assert_eq!(finished.status, JobStatus::Completed);
    assert_eq!(finished.conclusion.as_deref(), Some("success"));
    assert_eq!(finished.completed_at, Some(at(30)));
    assert_eq!(finished.runner_name, Some(RunnerName::from("ghr-runner-1")), "runner name kept when not re-sent");
    assert_eq!(finished.started_at, Some(at(20)), "started_at kept when not re-sent");

    let replay = in_progress(&first, "ghr-runner-2", 40);
    assert_eq!(ok(store.job_observe(replay).await, ""), JobChange::Unchanged, "in_progress after completed");
    let twice = completed(&first, "failure", 41);
    assert_eq!(ok(store.job_observe(twice).await, ""), JobChange::Unchanged, "a second completed");
    assert_eq!(job(store, 100).await, finished, "nothing changes after completed");
}

/// `completed` delivered before `queued` (out of order): the job is created completed and stays so.
pub async fn job_observe_completed_before_queued(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let base = queued(200, 2, "acme/web", Some("large"), 5);
    let done = completed(&base, "cancelled", 50);
    assert_eq!(ok(store.job_observe(done).await, ""), JobChange::Created, "the first sight creates the job");
    let created = job(store, 200).await;
    assert_eq!(created.status, JobStatus::Completed);
    assert_eq!(created.conclusion.as_deref(), Some("cancelled"));
    assert_eq!(created.tier, Some(TierName::from("large")), "labels and tier come from the first sight");
    assert!(!created.wants_runner(), "a completed job wants no runner");

    assert_eq!(ok(store.job_observe(base.clone()).await, ""), JobChange::Unchanged, "late queued");
    assert_eq!(ok(store.job_observe(in_progress(&base, "r", 60)).await, ""), JobChange::Unchanged, "late in_progress");
    assert_eq!(job(store, 200).await, created, "late deliveries change nothing");
    assert!(ok(store.job_list_wanting_runner().await, "").is_empty(), "the job never wants a runner");
    let timeline = kinds_and_details(store, 200).await;
    assert_eq!(timeline, vec![entry(event_kind::COMPLETED, "cancelled")], "one entry for the creation");
}

/// Repository, labels and tier are set when the job is created; later observations do not change them.
pub async fn job_observe_keeps_creation_fields(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let first = queued(300, 3, "acme/api", None, 1);
    assert_eq!(ok(store.job_observe(first.clone()).await, ""), JobChange::Created);
    let mut later = in_progress(&first, "somebody-elses-runner", 2);
    later.tier = Some(TierName::from("small"));
    later.labels = vec!["changed".to_owned()];
    later.repository = "acme/other".to_owned();
    assert_eq!(ok(store.job_observe(later).await, ""), JobChange::Advanced { from: JobStatus::Queued });
    let stored = job(store, 300).await;
    assert_eq!(stored.tier, None, "the tier stays as first recorded");
    assert_eq!(stored.labels, first.labels, "the labels stay as first recorded");
    assert_eq!(stored.repository, "acme/api", "the repository stays as first recorded");
}

/// Timelines: one entry per creation and per advance, with runner name / conclusion as detail;
/// appended entries interleave in time order.
pub async fn job_timeline_records_changes(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let first = queued(400, 4, "acme/app", Some("small"), 10);
    ok(store.job_observe(first.clone()).await, "job_observe");
    ok(store.job_observe(first.clone()).await, "job_observe (duplicate)");
    let requested = JobEvent {
        job_id: JobId(400),
        at: at(12),
        kind: event_kind::RUNNER_REQUESTED.to_owned(),
        detail: "ghr-conformance-4-small-1".to_owned(),
    };
    ok(store.job_event_append(requested.clone()).await, "job_event_append");
    ok(store.job_observe(in_progress(&first, "ghr-conformance-4-small-1", 20)).await, "job_observe");
    ok(store.job_observe(completed(&first, "success", 30)).await, "job_observe");
    ok(store.job_observe(completed(&first, "success", 31)).await, "job_observe (duplicate)");

    let timeline = ok(store.job_timeline(JobId(400)).await, "job_timeline");
    assert!(timeline.iter().all(|event| event.job_id == JobId(400)));
    assert_eq!(timeline[1], requested, "appended entries come back as given");
    let times: Vec<_> = timeline.iter().map(|event| event.at).collect();
    assert_eq!(times, vec![at(10), at(12), at(20), at(30)], "timeline entries are in time order");
    assert_eq!(
        kinds_and_details(store, 400).await,
        vec![
            entry(event_kind::QUEUED, ""),
            entry(event_kind::RUNNER_REQUESTED, "ghr-conformance-4-small-1"),
            entry(event_kind::IN_PROGRESS, "ghr-conformance-4-small-1"),
            entry(event_kind::COMPLETED, "success"),
        ],
        "duplicates add no entries"
    );
    assert!(ok(store.job_timeline(JobId(401)).await, "").is_empty(), "an unknown job has an empty timeline");
}

/// The wait reason is written, and logged, only when it changes; leaving `queued` clears it.
pub async fn job_wait_reason_logged_only_on_change(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let first = queued(500, 5, "acme/app", Some("small"), 10);
    ok(store.job_observe(first.clone()).await, "job_observe");
    for secs in [11, 12, 13] {
        ok(store.job_set_wait_reason(JobId(500), Some(Reason::TenantAtLimit), at(secs)).await, "job_set_wait_reason");
    }
    assert_eq!(job(store, 500).await.wait_reason, Some(Reason::TenantAtLimit));
    ok(store.job_set_wait_reason(JobId(500), Some(Reason::GlobalCap), at(14)).await, "job_set_wait_reason");
    ok(store.job_set_wait_reason(JobId(500), Some(Reason::GlobalCap), at(15)).await, "job_set_wait_reason");
    ok(store.job_set_wait_reason(JobId(500), None, at(16)).await, "job_set_wait_reason");
    ok(store.job_set_wait_reason(JobId(500), None, at(17)).await, "job_set_wait_reason");
    assert_eq!(job(store, 500).await.wait_reason, None, "a cleared reason reads back as None");
    ok(store.job_set_wait_reason(JobId(500), Some(Reason::TenantSuspended), at(18)).await, "job_set_wait_reason");
    let waiting = JobFilter { wait_reason: Some(Reason::TenantSuspended), ..JobFilter::default() };
    assert_eq!(ok(store.job_list(waiting.clone()).await, "job_list").len(), 1, "job_list filters on wait reason");

    ok(store.job_observe(in_progress(&first, "runner-a", 20)).await, "job_observe");
    let running = job(store, 500).await;
    assert_eq!(running.wait_reason, None, "leaving queued clears the wait reason");
    assert!(ok(store.job_list(waiting).await, "job_list").is_empty());
    ok(store.job_set_wait_reason(JobId(500), Some(Reason::TenantAtLimit), at(21)).await, "job_set_wait_reason");
    assert_eq!(job(store, 500).await.wait_reason, None, "a job that left queued takes no wait reason");
    ok(store.job_set_wait_reason(JobId(599), Some(Reason::GlobalCap), at(22)).await, "unknown job is a no-op");
    assert_eq!(ok(store.job_get(JobId(599)).await, "job_get"), None, "setting a reason creates no job");

    let waiting = event_kind::WAITING;
    assert_eq!(
        kinds_and_details(store, 500).await,
        vec![
            entry(event_kind::QUEUED, ""),
            entry(waiting, Reason::TenantAtLimit.code()),
            entry(waiting, Reason::GlobalCap.code()),
            entry(waiting, WAIT_CLEARED_DETAIL),
            entry(waiting, Reason::TenantSuspended.code()),
            entry(event_kind::IN_PROGRESS, "runner-a"),
        ],
        "one waiting entry per change of reason"
    );
}

/// Jobs wanting a runner: queued and matched to a tier, oldest first (then by job id).
pub async fn job_list_wanting_runner_is_fifo(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let observations = [
        queued(604, 6, "acme/a", Some("small"), 30),
        queued(601, 6, "acme/a", Some("large"), 10),
        queued(603, 7, "acme/b", Some("small"), 20),
        queued(602, 6, "acme/a", Some("small"), 20),
        queued(605, 6, "acme/a", None, 5),
        queued(606, 6, "acme/a", Some("small"), 1),
    ];
    for observation in &observations {
        ok(store.job_observe(observation.clone()).await, "job_observe");
    }
    ok(store.job_observe(in_progress(&observations[5], "r", 40)).await, "job_observe");
    let wanting = ok(store.job_list_wanting_runner().await, "job_list_wanting_runner");
    let ids: Vec<u64> = wanting.iter().map(|job| job.job_id.0).collect();
    assert_eq!(ids, vec![601, 602, 603, 604], "queued jobs with a tier, by first sight then id");
    assert!(wanting.iter().all(Job::wants_runner));
}

/// Job lists filter on installation and status, newest first, limited.
pub async fn job_list_filters(store: Arc<dyn Store>) {
    let store = store.as_ref();
    for (job, installation, secs) in [(701, 70, 1), (702, 71, 2), (703, 70, 3), (704, 70, 4)] {
        ok(store.job_observe(queued(job, installation, "acme/a", Some("small"), secs)).await, "job_observe");
    }
    ok(store.job_observe(completed(&queued(703, 70, "acme/a", Some("small"), 3), "success", 9)).await, "");
    let ids = |jobs: Vec<Job>| jobs.iter().map(|job| job.job_id.0).collect::<Vec<_>>();
    assert_eq!(ids(ok(store.job_list(JobFilter::default()).await, "")), vec![704, 703, 702, 701], "newest first");
    let of_70 = JobFilter { installation_id: Some(InstallationId(70)), ..JobFilter::default() };
    assert_eq!(ids(ok(store.job_list(of_70.clone()).await, "")), vec![704, 703, 701]);
    let queued_70 = JobFilter { status: Some(JobStatus::Queued), ..of_70.clone() };
    assert_eq!(ids(ok(store.job_list(queued_70).await, "")), vec![704, 701]);
    let limited = JobFilter { limit: Some(2), ..of_70 };
    assert_eq!(ids(ok(store.job_list(limited).await, "")), vec![704, 703], "limit keeps the newest");
    assert_eq!(ok(store.job_get(JobId(799)).await, "job_get"), None);

    // Pages: three more jobs first seen at the same instant; the cursor (received_at, job_id) splits them.
    for job in [705, 706, 707] {
        ok(store.job_observe(queued(job, 70, "acme/a", Some("small"), 5)).await, "job_observe");
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = JobFilter { limit: Some(2), before: cursor, ..JobFilter::default() };
        let jobs = ok(store.job_list(page).await, "job_list");
        let Some(last) = jobs.last() else { break };
        cursor = Some((last.received_at, last.job_id));
        seen.extend(jobs.iter().map(|job| job.job_id.0));
        assert!(seen.len() <= 7, "paging must end: {seen:?}");
    }
    assert_eq!(seen, vec![707, 706, 705, 704, 703, 702, 701], "pages of 2 cover every job once, newest first");
    let tied = ok(store.job_list(JobFilter { limit: Some(1), ..JobFilter::default() }).await, "").remove(0);
    let before_tie = JobFilter {
        installation_id: Some(InstallationId(70)),
        status: Some(JobStatus::Queued),
        before: Some((tied.received_at, tied.job_id)),
        ..JobFilter::default()
    };
    assert_eq!(ids(ok(store.job_list(before_tie).await, "")), vec![706, 705, 704, 701], "a cursor keeps the filters");
    let counts = ok(store.job_counts().await, "job_counts");
    let expected = [(JobStatus::Queued, 6), (JobStatus::Completed, 1)].into_iter().collect();
    assert_eq!(counts, expected, "jobs per status; statuses with none are absent");
}

/// Retention: old deliveries and old completed jobs (with their timelines) go; queued, running and recent
/// jobs stay; pruning again removes nothing.
pub async fn prune_forgets_old_deliveries_and_completed_jobs(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let delivery = |id: &str, secs: i64| ghr_core::ports::DeliveryRecord {
        delivery_id: id.into(),
        event: "workflow_job".to_owned(),
        action: Some("queued".to_owned()),
        installation_id: Some(InstallationId(80)),
        received_at: at(secs),
    };
    ok(store.delivery_record(&delivery("old-delivery", 10)).await, "delivery_record");
    ok(store.delivery_record(&delivery("new-delivery", 100)).await, "delivery_record");
    let still_queued = queued(801, 80, "acme/a", Some("small"), 1);
    let old_done = queued(802, 80, "acme/a", Some("small"), 1);
    let recent_done = queued(803, 80, "acme/a", Some("small"), 1);
    for job in [&still_queued, &old_done, &recent_done] {
        ok(store.job_observe(job.clone()).await, "job_observe");
    }
    ok(store.job_observe(completed(&old_done, "success", 5)).await, "job_observe");
    ok(store.job_observe(completed(&recent_done, "success", 200)).await, "job_observe");

    let pruned = ok(store.prune(at(50)).await, "prune");
    assert_eq!((pruned.deliveries, pruned.jobs), (1, 1), "one old delivery and one old completed job: {pruned:?}");
    assert!(pruned.job_events >= 2, "the old job's timeline goes with it: {pruned:?}");
    assert!(!ok(store.delivery_seen(&"old-delivery".into()).await, "delivery_seen"), "the old delivery is forgotten");
    assert!(ok(store.delivery_seen(&"new-delivery".into()).await, "delivery_seen"), "a recent delivery is kept");
    assert!(ok(store.job_get(JobId(801)).await, "job_get").is_some(), "a queued job is never pruned");
    assert!(ok(store.job_get(JobId(802)).await, "job_get").is_none(), "the old completed job is pruned");
    assert!(ok(store.job_timeline(JobId(802)).await, "job_timeline").is_empty(), "with its timeline");
    assert!(ok(store.job_get(JobId(803)).await, "job_get").is_some(), "a recently completed job is kept");
    assert_eq!(ok(store.prune(at(50)).await, "prune"), ghr_core::ports::Pruned::default(), "pruning is idempotent");
}
