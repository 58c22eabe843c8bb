//! The calls recovery after an outage needs, real client against the emulator: failed deliveries found
//! page by page past the newest hundred, queued jobs found without any webhook (and what that costs),
//! and refused App JWTs and revoked installation tokens replaced once.

mod support;

use ghr_core::ids::{InstallationId, JobId, OrgName, RunnerName};
use ghr_core::job::JobStatus;
use ghr_core::ports::RunnerScope;
use ghr_core::ports::{DeliveriesRequest, DeliveryStatusFilter, GitHubApi, GithubError, HookDelivery, JitRequest};
use ghr_github::GithubClient;
use ghr_testkit::github::{Counters, EmulatorConfig, GithubEmulator, JobSpec};
use ghr_testkit::runner::{EmulatedRunner, RunnerOptions};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::{FakeGithub, Reply, emulator_client};

const DEADLINE: Duration = Duration::from_secs(10);
const DELIVERIES_ROUTE: &str = "GET /app/hook/deliveries";

async fn emulator(config: EmulatorConfig) -> GithubEmulator {
    GithubEmulator::start(config).await.expect("emulator starts")
}

/// Every delivery, following cursors from the newest page; returns them and the number of pages.
async fn all_deliveries(
    client: &GithubClient,
    status: Option<DeliveryStatusFilter>,
    per_page: u32,
) -> (Vec<HookDelivery>, usize) {
    let (mut all, mut pages, mut cursor) = (Vec::new(), 0, None);
    loop {
        let request = DeliveriesRequest { status, per_page, cursor };
        let page = client.list_deliveries_page(&request).await.expect("a page of deliveries");
        pages += 1;
        all.extend(page.deliveries);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (all, pages),
        }
    }
}

fn ids(deliveries: &[HookDelivery]) -> Vec<u64> {
    deliveries.iter().map(|delivery| delivery.id).collect()
}

#[tokio::test]
async fn failed_deliveries_are_found_past_the_newest_hundred() {
    // The receiver (ghr, say) fails during an outage, then a busy App buries the failures.
    let receiver_up = Arc::new(AtomicBool::new(false));
    let up = receiver_up.clone();
    let receiver = FakeGithub::start(move |_| Reply::empty(if up.load(Ordering::SeqCst) { 200 } else { 503 })).await;
    let github = emulator(EmulatorConfig::default()).await;
    github.set_webhook_target(format!("{}/webhook", receiver.base_url()), "secret");
    let acme = github.install_org("acme").await.unwrap();
    for _ in 0..4 {
        github.queue_job(JobSpec::new(acme, "app", &["self-hosted"])).await.unwrap();
    }
    receiver_up.store(true, Ordering::SeqCst);
    for _ in 0..120 {
        github.queue_job(JobSpec::new(acme, "app", &["self-hosted"])).await.unwrap();
    }
    let client = emulator_client(&github, |_| {});

    let newest = client.list_deliveries(100).await.unwrap();
    assert!(newest.iter().all(|d| d.status_code == 200), "the newest page alone shows no failure");

    let before = github.counters().calls(DELIVERIES_ROUTE);
    let (failed, pages) = all_deliveries(&client, Some(DeliveryStatusFilter::Failure), 100).await;
    assert_eq!((failed.len(), pages), (5, 1), "installation.created and four jobs, in one call");
    assert!(failed.iter().all(|d| d.status_code == 503));
    assert!(ids(&failed).windows(2).all(|pair| pair[0] > pair[1]), "newest first");
    assert_eq!(github.counters().calls(DELIVERIES_ROUTE) - before, 1);

    let (everything, pages) = all_deliveries(&client, None, 50).await;
    let want: Vec<u64> = github.deliveries().iter().rev().map(|d| d.id).collect();
    assert_eq!((ids(&everything), pages), (want, 3), "125 attempts in pages of 50, newest first");
    let (succeeded, _) = all_deliveries(&client, Some(DeliveryStatusFilter::Success), 100).await;
    assert_eq!(succeeded.len(), 120);
}

#[tokio::test]
async fn paging_stops_at_the_delivery_log_limit_and_bad_cursors_are_refused() {
    let github = emulator(EmulatorConfig { delivery_log_limit: 7, ..Default::default() }).await;
    for org in ["acme", "globex", "initech"] {
        let installation = github.install_org(org).await.unwrap();
        for _ in 0..3 {
            github.queue_job(JobSpec::new(installation, "app", &["self-hosted"])).await.unwrap();
        }
    }
    let client = emulator_client(&github, |_| {});
    let (all, pages) = all_deliveries(&client, Some(DeliveryStatusFilter::Failure), 3).await;
    assert_eq!((all.len(), pages), (7, 3), "no webhook target: every attempt failed (502), only 7 are kept");
    assert!(all.iter().all(|d| d.status_code == 502));

    let bad = DeliveriesRequest { status: None, per_page: 3, cursor: Some("not-a-cursor".into()) };
    let err = client.list_deliveries_page(&bad).await.unwrap_err();
    assert!(matches!(&err, GithubError::Unprocessable(m) if m.contains("status 400")), "{err:?}");
}

/// Starts an emulated runner for `labels` in the background; it takes the oldest job it fits.
async fn start_runner(client: &GithubClient, installation: InstallationId, labels: &[&str]) {
    let request = JitRequest {
        installation_id: installation,
        scope: RunnerScope::Org(OrgName::from("acme")),
        name: RunnerName::from("ghr-test-1-gpu-1"),
        labels: labels.iter().map(|label| (*label).to_owned()).collect(),
        runner_group: "Default".to_owned(),
    };
    let jit = client.create_jit_config(&request).await.expect("JIT config");
    let encoded = secrecy::ExposeSecret::expose_secret(&jit.encoded_jit_config).to_owned();
    let runner = EmulatedRunner::connect(&encoded, RunnerOptions::default()).await.expect("runner connects");
    tokio::spawn(runner.run());
}

fn api_cost(before: &Counters, after: &Counters) -> (u64, u64, u64) {
    let delta = |route: &str| after.calls(route) - before.calls(route);
    (
        delta("GET /installation/repositories"),
        delta("GET /repos/{owner}/{repo}/actions/runs"),
        delta("GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs"),
    )
}

#[tokio::test]
async fn queued_jobs_are_found_without_webhooks_at_a_known_api_cost() {
    let github = emulator(EmulatorConfig::default()).await;
    let acme = github.install_org("acme").await.unwrap();
    let globex = github.install_org("globex").await.unwrap();
    let client = emulator_client(&github, |_| {});
    // app: run A with one queued job; run B, a matrix: one job started, one still queued.
    let a1 = github.queue_job(JobSpec::new(acme, "app", &["self-hosted", "small"])).await.unwrap();
    let b1 = github.queue_job(JobSpec::new(acme, "app", &["gpu"]).duration(Duration::from_secs(60))).await.unwrap();
    let run_b = github.job(b1).unwrap().run_id;
    let b2 = github.queue_job(JobSpec::new(acme, "app", &["self-hosted", "large"]).in_run(run_b)).await.unwrap();
    start_runner(&client, acme, &["self-hosted", "gpu"]).await;
    github.wait_for_job(b1, JobStatus::InProgress, DEADLINE).await.unwrap();
    // lib: a finished run; docs: no runs; globex: not acme's.
    let done = github.queue_job(JobSpec::new(acme, "lib", &["self-hosted"])).await.unwrap();
    github.cancel_job(done).await.unwrap();
    github.ensure_repo(acme, "docs").unwrap();
    github.queue_job(JobSpec::new(globex, "secret", &["self-hosted"])).await.unwrap();

    let before = github.counters();
    let repositories = client.list_installation_repositories(acme).await.unwrap();
    assert_eq!(repositories, ["acme/app", "acme/lib", "acme/docs"]);
    let mut found = Vec::new();
    for repository in &repositories {
        found.extend(client.list_queued_jobs(acme, repository).await.unwrap());
    }
    let found_ids: BTreeSet<JobId> = found.iter().map(|job| job.id).collect();
    assert_eq!(found_ids, BTreeSet::from([a1, b2]), "b2 sits in an in-progress run");
    let b2_seen = found.iter().find(|job| job.id == b2).unwrap();
    assert_eq!(b2_seen.labels, ["self-hosted", "large"]);
    assert_eq!(b2_seen.status, JobStatus::Queued);
    assert_eq!(b2_seen.created_at, Some(trim_to_seconds(github.job(b2).unwrap().created_at)));
    // Cost: 1 page of repositories + 2 run listings per repository (3) + 1 job listing per live run (2).
    assert_eq!(api_cost(&before, &github.counters()), (1, 6, 2));

    let err = client.list_queued_jobs(acme, "globex/secret").await.unwrap_err();
    assert!(matches!(err, GithubError::NotFound(_)), "{err:?}");
}

/// GitHub's timestamps have whole seconds.
fn trim_to_seconds(at: ghr_core::Timestamp) -> ghr_core::Timestamp {
    chrono::DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

#[tokio::test]
async fn a_refused_app_jwt_is_reminted_once() {
    let github = emulator(EmulatorConfig::default()).await;
    github.install_org("acme").await.unwrap();
    let client = emulator_client(&github, |_| {});
    let request = DeliveriesRequest { status: None, per_page: 10, cursor: None };

    github.refuse_next_app_jwts(1);
    let page = client.list_deliveries_page(&request).await.expect("a fresh JWT is accepted");
    assert_eq!(page.deliveries.len(), 1);
    assert_eq!(github.counters().refused_jwts, 1);
    assert_eq!(client.stats().retries, 1);

    github.refuse_next_app_jwts(2);
    let err = client.list_deliveries_page(&request).await.unwrap_err();
    assert!(matches!(err, GithubError::Unauthorized), "{err:?}");
    assert_eq!(github.counters().refused_jwts, 3, "one retry only");
}

#[tokio::test]
async fn a_revoked_installation_token_is_replaced_once() {
    let github = emulator(EmulatorConfig::default()).await;
    let acme = github.install_org("acme").await.unwrap();
    let client = emulator_client(&github, |_| {});
    let scope = RunnerScope::Org(OrgName::from("acme"));
    client.list_runners(acme, &scope).await.unwrap();
    assert_eq!(github.revoke_installation_tokens(acme), 1);
    client.list_runners(acme, &scope).await.expect("a new token is fetched after the 401");
    assert_eq!(github.counters().tokens_issued, 2);
    assert_eq!(client.stats().retries, 1);

    // The new token's request itself refused twice (App JWT): the call fails as Unauthorized.
    github.revoke_installation_tokens(acme);
    github.refuse_next_app_jwts(2);
    let err = client.list_runners(acme, &scope).await.unwrap_err();
    assert!(matches!(err, GithubError::Unauthorized), "{err:?}");
}
