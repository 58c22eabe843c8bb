//! Group commit under concurrency, end to end over HTTP: many deliveries at once, each delivery id sent twice
//! and each job reported under two delivery ids, in and out of order. Every request is acknowledged, every
//! effect happens exactly once, nothing is lost.

use crate::support::webhooks::{
    JobSource, account, assert_applied, deliver, delivery_seen, installation, job, jobs, timeline_kinds,
};
use crate::support::{FOREIGN, Harness};
use ghr_core::ids::{InstallationId, JobId};
use ghr_core::job::JobStatus;
use ghr_core::reason::Reason;
use ghr_core::tenant::OrgType;
use ghr_testkit::webhook::SignedDelivery;

const ACME: InstallationId = InstallationId(7301);
/// Jobs delivered at once.
const JOBS: u64 = 120;
/// First job id.
const FIRST_JOB: u64 = 93_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_are_all_acknowledged_and_applied_exactly_once() {
    let h = Harness::start().await;
    let acme = account("acme", 731, OrgType::Organization);
    assert_applied(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant created");
    let source = JobSource::new(ACME, &acme, 31, "app");

    // Per job: `queued` under two ids (each sent twice) and, for every other job, `completed` (sent twice):
    // GitHub's duplicates and its out-of-order deliveries, all in flight together.
    let mut deliveries: Vec<SignedDelivery> = Vec::new();
    for n in 0..JOBS {
        let id = JobId(FIRST_JOB + n);
        let first = source.delivery("queued", id, FOREIGN, None);
        let second = source.delivery("queued", id, FOREIGN, None);
        deliveries.extend([first.clone(), first, second.clone(), second]);
        if n % 2 == 0 {
            let done = source.delivery("completed", id, FOREIGN, None);
            deliveries.extend([done.clone(), done]);
        }
    }
    let guids: Vec<String> = deliveries.iter().map(|d| d.guid.clone()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for delivery in deliveries {
        let (http, url) = (h.http.clone(), format!("{}/webhook", h.base));
        tasks.spawn(async move {
            let response = delivery.send(&http, &url).await.expect("a delivery sent");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("a JSON answer");
            (status, body["status"].as_str().unwrap_or_default().to_owned())
        });
    }
    let (mut applied, mut answered) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (status, outcome) = joined.expect("a sender task");
        assert!((200..300).contains(&status), "every delivery is acknowledged, got {status} ({outcome})");
        answered += 1;
        applied += usize::from(outcome == "applied");
    }
    assert_eq!(answered, guids.len(), "every delivery answered");
    // Applied: each job's first queued (or its completed, whichever came first), plus each completed that
    // came after its queued; at most two per job with a completed, one per job without.
    let completed_jobs = (JOBS as usize).div_ceil(2);
    assert!(
        (JOBS as usize..=JOBS as usize + completed_jobs).contains(&applied),
        "{applied} applied answers for {JOBS} jobs"
    );

    assert_eq!(jobs(&h).await.len(), JOBS as usize, "every job recorded once");
    for n in 0..JOBS {
        let id = JobId(FIRST_JOB + n);
        let recorded = job(&h, id).await.expect("the job");
        let kinds = timeline_kinds(&h, id).await;
        if n % 2 == 0 {
            assert_eq!(recorded.status, JobStatus::Completed, "job {id}: completed wins whatever the order");
            assert_eq!(kinds.iter().filter(|k| *k == "completed").count(), 1, "job {id}: {kinds:?}");
            assert!(kinds.iter().filter(|k| *k == "queued").count() <= 1, "job {id}: {kinds:?}");
        } else {
            assert_eq!(recorded.status, JobStatus::Queued);
            assert_eq!(recorded.wait_reason, Some(Reason::NoMatchingTier), "job {id}: its reason, set with it");
            assert_eq!(kinds, ["queued", "waiting"], "job {id}: one queued entry, one reason");
        }
    }
    for guid in &guids {
        assert!(delivery_seen(&h, guid).await, "delivery {guid} recorded");
    }
}
