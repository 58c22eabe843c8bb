//! Load and robustness through the real webhook path: the per-tenant limit holds under a burst of
//! concurrent webhooks, a second tenant is not starved, every job completes, nothing is left over, and
//! the same holds when 10 % of webhook deliveries are lost.

mod common;

use ghr_core::job::JobStatus;
use ghr_testkit::github::JobSpec;
use std::time::Duration;

const BIG_BURST: usize = 200;
const SMALL_BURST: usize = 50;

fn labels(tier: &str) -> [&str; 4] {
    ["self-hosted", "linux", "x64", tier]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_and_nobody_starves_under_a_burst() {
    let stack = ghr::stack::LocalStack::start(common::options()).await.expect("stack starts");
    let api = ghr_server::admin::LocalAdmin::new(stack.store.clone(), stack.settings.clone());
    use ghr_api::{Admin, SetTierRequest};

    let big = stack.emulator.install_org("bigcorp").await.unwrap();
    let small = stack.emulator.install_org("smallco").await.unwrap();
    // bigcorp may use small and medium runners, but only 3 at a time across both tiers.
    api.tenant_set_tier(&big.to_string(), SetTierRequest { tier: "medium".into(), max_runners: Some(3) })
        .await
        .unwrap();

    // Queue everything concurrently: 200 webhooks for bigcorp over two tiers, 50 for smallco.
    let mut queued = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..BIG_BURST {
        let emulator = stack.emulator.clone();
        let tier = if i % 2 == 0 { "small" } else { "medium" };
        tasks.spawn(async move { emulator.queue_job(JobSpec::new(big, "mono", &labels(tier))).await });
    }
    for _ in 0..SMALL_BURST {
        let emulator = stack.emulator.clone();
        tasks.spawn(async move { emulator.queue_job(JobSpec::new(small, "site", &labels("small"))).await });
    }
    while let Some(result) = tasks.join_next().await {
        queued.push(result.unwrap().expect("job queued"));
    }
    assert_eq!(queued.len(), BIG_BURST + SMALL_BURST);

    let all_done = stack
        .wait_for(Duration::from_secs(240), || async {
            stack.emulator.jobs().iter().filter(|j| j.status == JobStatus::Completed).count() == BIG_BURST + SMALL_BURST
        })
        .await;
    let jobs = stack.emulator.jobs();
    let done = jobs.iter().filter(|j| j.status == JobStatus::Completed).count();
    assert!(all_done, "only {done} of {} jobs completed", BIG_BURST + SMALL_BURST);
    assert!(jobs.iter().all(|j| j.assignments == 1), "a job was assigned twice");
    assert!(jobs.iter().all(|j| j.runner_name.as_deref().is_some_and(|r| r.starts_with("ghr-"))));

    let big_peak = common::peak(&stack, big).await;
    assert!(big_peak <= 3, "bigcorp had {big_peak} runners at once, limit 3");
    assert!(big_peak >= 2, "bigcorp never ran in parallel (peak {big_peak})");
    let small_peak = common::peak(&stack, small).await;
    assert!(small_peak <= 2, "smallco had {small_peak} runners at once, limit 2");

    // Not starved: smallco's 50 jobs finish long before bigcorp's 200 (it does not queue behind them).
    let last = |tenant| {
        jobs.iter()
            .filter(|j| j.installation_id == tenant)
            .filter_map(|j| j.completed_at)
            .max()
            .expect("completed jobs")
    };
    let (small_last, big_last) = (last(small), last(big));
    assert!(small_last < big_last, "smallco finished at {small_last}, after bigcorp at {big_last}");

    common::assert_nothing_left(&stack).await;
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_job_is_served_when_a_tenth_of_the_webhooks_are_lost() {
    let mut options = common::options();
    options.emulator.seed = 7;
    let stack = ghr::stack::LocalStack::start(options).await.expect("stack starts");
    let org = stack.emulator.install_org("lossy").await.unwrap();
    stack.emulator.drop_webhooks(0.10);
    let mut ids = Vec::new();
    for i in 0..40 {
        let tier = if i % 3 == 0 { "small" } else { "self-hosted" };
        let labels: Vec<&str> = if tier == "small" { labels("small").to_vec() } else { vec!["self-hosted"] };
        ids.push(stack.emulator.queue_job(JobSpec::new(org, "app", &labels)).await.unwrap());
    }
    let served = stack
        .wait_for(Duration::from_secs(120), || async {
            ids.iter().all(|id| stack.emulator.job(*id).is_some_and(|j| j.status == JobStatus::Completed))
        })
        .await;
    let dropped = stack.emulator.deliveries().iter().filter(|d| d.dropped).count();
    let pending: Vec<_> =
        ids.iter().filter(|id| stack.emulator.job(**id).is_none_or(|j| j.status != JobStatus::Completed)).collect();
    assert!(served, "jobs never served: {pending:?} ({dropped} deliveries dropped)");
    assert!(dropped > 0, "the fault injection dropped nothing; the test proves nothing");
    // Stop losing webhooks so the last completions and their redeliveries settle.
    stack.emulator.drop_webhooks(0.0);
    common::assert_nothing_left(&stack).await;
    assert!(common::peak(&stack, org).await <= 2);
    stack.stop().await.unwrap();
}
