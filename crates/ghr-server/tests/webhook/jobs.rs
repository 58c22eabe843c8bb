//! `workflow_job` deliveries: status only moves forward whatever the delivery order, a job binds the runner
//! ghr launched for it, completion tears that runner down and frees its slot, and jobs no tier matches are
//! recorded but never served.

use crate::support::fleet::runner_where;
use crate::support::webhooks::{
    JobSource, assert_applied, assert_duplicate, assert_ignored, assert_no_launch, deliver, job, timeline_kinds,
};
use crate::support::{FOREIGN, Harness, SMALL, eventually};
use ghr_api::JobDetail;
use ghr_core::ids::JobId;
use ghr_core::job::JobStatus;
use ghr_core::runner::RunnerState;

/// A runner name GitHub would report for a runner that is not ghr's.
const HOSTED_RUNNER: &str = "GitHub Actions 3";

async fn acme(h: &Harness) -> JobSource {
    let acme = h.install("acme").await;
    JobSource::from_emulator(h, acme, "app")
}

async fn status_of(h: &Harness, id: JobId) -> JobStatus {
    job(h, id).await.unwrap_or_else(|| panic!("job {id} is not recorded")).status
}

#[tokio::test]
async fn completed_before_queued_stays_completed_and_gets_no_runner() {
    let h = Harness::start().await;
    let source = acme(&h).await;
    let id = JobId(8001);
    assert_applied(&deliver(&h, &source.delivery("completed", id, SMALL, None)).await, "completed");
    let recorded = job(&h, id).await.expect("the job");
    assert_eq!((recorded.status, recorded.conclusion.as_deref()), (JobStatus::Completed, Some("success")));
    assert_eq!(recorded.repository, source.full_name());

    assert_ignored(&deliver(&h, &source.delivery("queued", id, SMALL, None)).await, "job state already recorded");
    assert_ignored(&deliver(&h, &source.delivery("in_progress", id, SMALL, None)).await, "job state already recorded");
    assert_eq!(status_of(&h, id).await, JobStatus::Completed, "a late queued does not reopen the job");
    assert_no_launch(&h).await;
}

#[tokio::test]
async fn in_progress_is_not_undone_by_a_late_queued_and_duplicates_are_harmless() {
    let h = Harness::start().await;
    let source = acme(&h).await;
    let id = JobId(8002);
    let started = source.delivery("in_progress", id, SMALL, Some(HOSTED_RUNNER));
    assert_applied(&deliver(&h, &started).await, "in_progress");
    assert_duplicate(&deliver(&h, &started).await);
    let again = source.delivery("in_progress", id, SMALL, Some(HOSTED_RUNNER));
    assert_ignored(&deliver(&h, &again).await, "job state already recorded");
    assert_ignored(&deliver(&h, &source.delivery("queued", id, SMALL, None)).await, "job state already recorded");

    let recorded = job(&h, id).await.expect("the job");
    assert_eq!(recorded.status, JobStatus::InProgress);
    assert_eq!(recorded.runner_name.as_ref().map(|n| n.as_str()), Some(HOSTED_RUNNER));
    let kinds = timeline_kinds(&h, id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "in_progress").count(), 1, "{kinds:?}");
    assert!(!kinds.iter().any(|k| k == "queued"), "{kinds:?}");
    assert_no_launch(&h).await;
}

#[tokio::test]
async fn a_job_binds_the_runner_ghr_launched_and_its_completion_frees_the_slot() {
    let h = Harness::start().await;
    let source = acme(&h).await;
    let tenant = source.installation;
    let id = JobId(8003);
    assert_applied(&deliver(&h, &source.delivery("queued", id, SMALL, None)).await, "queued");
    let runner = runner_where(&h, tenant, "a runner launched for the job", |r| {
        r.state == RunnerState::Launching && r.intended_job == Some(id) && r.instance_id.is_some()
    })
    .await;
    let instance = runner.instance_id.clone().expect("an instance");
    assert!(h.provider.running().iter().any(|i| i.id == instance), "the provider runs {instance}");
    assert_eq!(h.get(&format!("/api/v1/tenants/{tenant}")).await.expect(200)["live_runners"], 1);

    let started = source.delivery("in_progress", id, SMALL, Some(runner.name.as_str()));
    assert_applied(&deliver(&h, &started).await, "in_progress");
    let busy = h.store.runner_get(&runner.name).await.expect("reading a runner").expect("the runner");
    assert_eq!((busy.state, busy.job_id), (RunnerState::Busy, Some(id)));
    assert_eq!(job(&h, id).await.expect("the job").runner_name, Some(runner.name.clone()));
    assert_duplicate(&deliver(&h, &started).await);

    let completed = source.delivery("completed", id, SMALL, Some(runner.name.as_str()));
    assert_applied(&deliver(&h, &completed).await, "completed");
    let gone = runner_where(&h, tenant, "the runner torn down", |r| {
        r.name == runner.name && r.state == RunnerState::Terminated
    })
    .await;
    assert_eq!(gone.job_id, Some(id));
    eventually("the instance terminated", async || {
        (!h.provider.running().iter().any(|i| i.id == instance)).then_some(())
    })
    .await;
    let live = h.store.runner_live_counts().await.expect("live counts");
    assert_eq!(live.get(&tenant).copied().unwrap_or(0), 0, "the slot is free: {live:?}");
    assert_eq!(h.get(&format!("/api/v1/tenants/{tenant}")).await.expect(200)["live_runners"], 0);
    let report = h.server.dispatcher.pass().await.expect("a dispatcher pass");
    assert_eq!(report.reserved, 0, "a completed job wants no runner: {report:?}");

    let detail: JobDetail =
        serde_json::from_value(h.get(&format!("/api/v1/jobs/{id}")).await.expect(200)).expect("a job detail");
    assert_eq!(detail.explanation, "completed (success)");
    assert!(detail.timeline.iter().any(|e| e.kind == "runner_launched"), "{:?}", detail.timeline);
}

#[tokio::test]
async fn a_job_no_tier_matches_is_recorded_and_never_launched() {
    let h = Harness::start().await;
    let source = acme(&h).await;
    let id = JobId(8004);
    assert_applied(&deliver(&h, &source.delivery("queued", id, FOREIGN, None)).await, "queued");
    let recorded = job(&h, id).await.expect("the job");
    assert_eq!((recorded.status, recorded.tier.as_ref()), (JobStatus::Queued, None));
    assert_eq!(recorded.labels, FOREIGN);
    assert_no_launch(&h).await;

    let detail = h.get(&format!("/api/v1/jobs/{id}")).await.expect(200);
    assert_eq!((detail["status"].as_str(), detail["tier"].as_str()), (Some("queued"), None));
    let explanation = detail["explanation"].as_str().expect("an explanation");
    assert!(explanation.starts_with("not for ghr: no_matching_tier"), "{explanation}");
}

/// GitHub fills `started_at` even on a queued job: ghr records a queued job as not started. GitHub-hosted
/// jobs of a tenant org (and jobs of runners that are not ghr's) are not timed by
/// `ghr_job_queued_to_in_progress_seconds`: it measures ghr's service only.
#[tokio::test]
async fn queued_jobs_have_not_started_and_only_ghr_runners_are_timed() {
    let h = Harness::start_serving_metrics().await;
    let acme = h.install("acme").await;
    let source = JobSource::from_emulator(&h, acme, "app");
    let ours = JobId(91_001);
    assert_applied(&deliver(&h, &source.delivery("queued", ours, SMALL, None)).await, "queued");
    let queued = job(&h, ours).await.expect("recorded");
    assert_eq!(queued.started_at, None, "a queued job has not started, whatever GitHub's started_at says");

    let hosted = JobId(91_002);
    assert_applied(&deliver(&h, &source.delivery("queued", hosted, &["ubuntu-latest"], None)).await, "queued");
    let started = source.delivery("in_progress", hosted, &["ubuntu-latest"], Some("GitHub Actions 7"));
    assert_applied(&deliver(&h, &started).await, "in_progress");
    assert!(job(&h, hosted).await.is_some_and(|j| j.started_at.is_some()), "a running job has started");

    let text = h.metrics().await;
    let count = text
        .lines()
        .find_map(|line| line.strip_prefix("ghr_job_queued_to_in_progress_seconds_count "))
        .map(|v| v.trim().parse::<f64>().unwrap_or(-1.0));
    assert!(count.is_none_or(|n| n == 0.0), "no job of ghr's runners started yet: {count:?}\n{text}");
}
