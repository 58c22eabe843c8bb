//! Job assignment to emulated runners, the job webhooks it causes, and the runner's life cycle.

use crate::common::*;
use ghr_core::job::JobStatus;
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, JobSpec};
use ghr_testkit::protocol::{self, AcquireRequest, ConnectRequest, ConnectResponse, JitConfigPayload, Secret};
use ghr_testkit::runner::{EmulatedRunner, RunEnd, RunnerError, RunnerOptions, run_emulated_runner};
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn idle(timeout_ms: u64) -> RunnerOptions {
    RunnerOptions { idle_timeout: Some(Duration::from_millis(timeout_ms)), ..RunnerOptions::default() }
}

#[tokio::test]
async fn a_runner_takes_the_oldest_job_whose_labels_fit_and_reports_it() {
    let (emulator, receiver) = start_with_receiver().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let gpu = emulator.queue_job(JobSpec::new(installation, "app", &["self-hosted", "gpu"])).await.unwrap();
    let first = emulator.queue_job(JobSpec::new(installation, "app", &["Self-Hosted", "GHR-small"])).await.unwrap();
    let second = emulator.queue_job(JobSpec::new(installation, "lib", &["self-hosted"])).await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (runner_id, config) = org_jit(&emulator, &token, "acme", "ghr-a", &["self-hosted", "ghr-small", "linux"]).await;

    let outcome = run_emulated_runner(&config, RunnerOptions::default()).await.unwrap();
    assert_eq!(outcome.runner_id.0, runner_id);
    assert_eq!(outcome.runner_name, "ghr-a");
    let RunEnd::Completed { job, conclusion } = outcome.end else { panic!("{outcome:?}") };
    assert_eq!((job.job_id, job.repository.as_str(), conclusion.as_str()), (first.0, "acme/app", "success"));

    let done = emulator.job(first).unwrap();
    assert_eq!((done.status, done.conclusion.as_deref()), (JobStatus::Completed, Some("success")));
    assert_eq!(done.runner_name.as_deref(), Some("ghr-a"));
    assert!(done.started_at.is_some() && done.completed_at.is_some());
    assert_eq!(emulator.job(gpu).unwrap().status, JobStatus::Queued, "labels do not fit");
    assert_eq!(emulator.job(second).unwrap().status, JobStatus::Queued, "one job per ephemeral runner");
    assert!(emulator.runner(outcome.runner_id).is_none(), "the ephemeral registration is removed");

    let kinds = receiver.kinds();
    assert_eq!(kinds[4..], ["workflow_job.in_progress", "workflow_job.completed"]);
    let received = receiver.received();
    let in_progress = received[4].json();
    assert_eq!(in_progress["workflow_job"]["id"], first.0);
    assert_eq!(in_progress["workflow_job"]["status"], "in_progress");
    assert_eq!(in_progress["workflow_job"]["runner_id"], runner_id);
    assert_eq!(in_progress["workflow_job"]["runner_name"], "ghr-a");
    assert_eq!(in_progress["workflow_job"]["runner_group_id"], 1);
    assert_eq!(in_progress["workflow_job"]["runner_group_name"], "Default");
    let completed = received[5].json();
    assert_eq!(completed["workflow_job"]["status"], "completed");
    assert_eq!(completed["workflow_job"]["conclusion"], "success");
    assert!(completed["workflow_job"]["completed_at"].is_string());
}

#[tokio::test]
async fn a_jit_credential_works_once() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (_, config) = org_jit(&emulator, &token, "acme", "ghr-a", &["x"]).await;
    let payload = JitConfigPayload::decode(&config).unwrap();
    let connect = |credential: Secret| {
        let url = format!("{}{}", emulator.base_url(), protocol::CONNECT_PATH);
        async move {
            client().post(url).json(&ConnectRequest { runner_id: payload.runner_id, credential }).send().await.unwrap()
        }
    };
    assert_eq!(connect(Secret::new("wrong")).await.status(), 401);
    assert_eq!(connect(payload.credential.clone()).await.status(), 200);
    assert_eq!(connect(payload.credential.clone()).await.status(), 409);
    let runner = emulator.runner_by_name("ghr-a").unwrap();
    assert!(runner.connected && runner.online);
    let error = run_emulated_runner(&config, idle(100)).await.unwrap_err();
    assert!(matches!(error, RunnerError::Refused { status: 409, .. }), "{error:?}");
}

#[tokio::test]
async fn runners_only_take_jobs_of_their_scope() {
    let emulator = start().await;
    let acme = emulator.install_org("acme").await.unwrap();
    let globex = emulator.install_org("globex").await.unwrap();
    let alice = emulator.install_user("alice").await.unwrap();
    let globex_job = emulator.queue_job(JobSpec::new(globex, "app", &["x"])).await.unwrap();
    let alice_other = emulator.queue_job(JobSpec::new(alice, "other", &["x"])).await.unwrap();
    let alice_app = emulator.queue_job(JobSpec::new(alice, "app", &["x"])).await.unwrap();

    let acme_token = installation_token(&emulator, acme).await;
    let (_, acme_config) = org_jit(&emulator, &acme_token, "acme", "acme-1", &["x"]).await;
    let outcome = run_emulated_runner(&acme_config, idle(200)).await.unwrap();
    assert_eq!(outcome.end, RunEnd::IdleTimeout, "another org's job is not ours");
    assert_eq!(emulator.job(globex_job).unwrap().status, JobStatus::Queued);

    let alice_token = installation_token(&emulator, alice).await;
    let body = serde_json::json!({ "name": "alice-1", "runner_group_id": 1, "labels": ["x"] });
    let (_, _, answer) =
        post_json(&emulator, &alice_token, "/repos/alice/app/actions/runners/generate-jitconfig", &body).await;
    let config = answer["encoded_jit_config"].as_str().unwrap().to_owned();
    let outcome = run_emulated_runner(&config, idle(2000)).await.unwrap();
    let RunEnd::Completed { job, .. } = outcome.end else { panic!("{outcome:?}") };
    assert_eq!(job.job_id, alice_app.0, "a repository runner takes only its repository's jobs");
    assert_eq!(emulator.job(alice_other).unwrap().status, JobStatus::Queued);
}

#[tokio::test]
async fn every_job_is_assigned_exactly_once_with_many_runners() {
    const JOBS: usize = 16;
    let (emulator, receiver) = start_with_receiver().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let mut runners = Vec::new();
    for index in 0..JOBS {
        let (_, config) =
            org_jit(&emulator, &token, "acme", &format!("ghr-{index}"), &["self-hosted", "ghr-small"]).await;
        runners.push(tokio::spawn(async move { run_emulated_runner(&config, RunnerOptions::default()).await }));
    }
    emulator
        .wait_until(WAIT, |emulator| emulator.runners().iter().filter(|runner| runner.online).count() == JOBS)
        .await
        .unwrap();
    let mut jobs = BTreeSet::new();
    for index in 0..JOBS {
        let spec = JobSpec::new(installation, &format!("repo-{}", index % 3), &["self-hosted", "ghr-small"])
            .duration(Duration::from_millis(20));
        jobs.insert(emulator.queue_job(spec).await.unwrap().0);
    }
    let mut ran = BTreeSet::new();
    for runner in runners {
        let outcome = runner.await.unwrap().unwrap();
        let RunEnd::Completed { job, .. } = outcome.end else { panic!("{outcome:?}") };
        assert!(ran.insert(job.job_id), "job {} ran twice", job.job_id);
    }
    assert_eq!(ran, jobs);
    let all = emulator.jobs();
    assert!(all.iter().all(|job| job.assignments == 1 && job.status == JobStatus::Completed));
    let runner_names: BTreeSet<_> = all.iter().map(|job| job.runner_name.clone().unwrap()).collect();
    assert_eq!(runner_names.len(), JOBS);
    assert!(emulator.runners().is_empty());
    let kinds = receiver.kinds();
    assert_eq!(kinds.iter().filter(|kind| *kind == "workflow_job.in_progress").count(), JOBS);
    assert_eq!(kinds.iter().filter(|kind| *kind == "workflow_job.completed").count(), JOBS);
}

#[tokio::test]
async fn suspended_and_uninstalled_installations_get_no_assignments() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (_, config) = org_jit(&emulator, &token, "acme", "ghr-1", &["x"]).await;
    emulator.suspend(installation).await.unwrap();
    let job = emulator.queue_job(JobSpec::new(installation, "app", &["x"])).await.unwrap();
    let waiting = tokio::spawn(async move { run_emulated_runner(&config, RunnerOptions::default()).await });
    emulator.wait_until(WAIT, |emulator| emulator.runner_by_name("ghr-1").is_some_and(|r| r.online)).await.unwrap();
    assert_eq!(emulator.job(job).unwrap().status, JobStatus::Queued);
    emulator.unsuspend(installation).await.unwrap();
    let outcome = waiting.await.unwrap().unwrap();
    let RunEnd::Completed { job: taken, .. } = outcome.end else { panic!("{outcome:?}") };
    assert_eq!(taken.job_id, job.0, "assigned once the suspension is lifted");

    let token = installation_token(&emulator, installation).await;
    let (_, config) = org_jit(&emulator, &token, "acme", "ghr-2", &["x"]).await;
    let orphan = emulator.queue_job(JobSpec::new(installation, "app", &["x"])).await.unwrap();
    emulator.uninstall(installation).await.unwrap();
    let outcome = run_emulated_runner(&config, idle(200)).await.unwrap();
    assert_eq!(outcome.end, RunEnd::IdleTimeout);
    assert_eq!(emulator.job(orphan).unwrap().status, JobStatus::Queued);
}

#[tokio::test]
async fn cancelling_a_running_job_reaches_its_runner() {
    let (emulator, receiver) = start_with_receiver().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (_, config) = org_jit(&emulator, &token, "acme", "ghr-1", &["x"]).await;
    let job = emulator
        .queue_job(JobSpec::new(installation, "app", &["x"]).duration(Duration::from_millis(700)))
        .await
        .unwrap();
    let running = tokio::spawn(async move { run_emulated_runner(&config, RunnerOptions::default()).await });
    emulator.wait_for_job(job, JobStatus::InProgress, WAIT).await.unwrap();
    emulator.cancel_job(job).await.unwrap();
    assert!(emulator.cancel_job(job).await.is_err(), "a completed job cannot be cancelled");
    let outcome = running.await.unwrap().unwrap();
    let RunEnd::Completed { conclusion, .. } = outcome.end else { panic!("{outcome:?}") };
    assert_eq!(conclusion, "cancelled");
    let completed = receiver.kinds().iter().filter(|kind| *kind == "workflow_job.completed").count();
    assert_eq!(completed, 1);
    let queued = emulator.queue_job(JobSpec::new(installation, "app", &["nobody"])).await.unwrap();
    emulator.cancel_job(queued).await.unwrap();
    let cancelled = emulator.job(queued).unwrap();
    assert_eq!((cancelled.conclusion.as_deref(), cancelled.runner_name), (Some("cancelled"), None));
}

#[tokio::test]
async fn planned_conclusions_are_reported() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let job = emulator.queue_job(JobSpec::new(installation, "app", &["x"]).conclusion("failure")).await.unwrap();
    let (_, config) = org_jit(&emulator, &token, "acme", "ghr-1", &["x"]).await;
    run_emulated_runner(&config, RunnerOptions::default()).await.unwrap();
    assert_eq!(emulator.job(job).unwrap().conclusion.as_deref(), Some("failure"));
}

#[tokio::test]
async fn deleting_a_waiting_runner_ends_it() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (runner_id, config) = org_jit(&emulator, &token, "acme", "ghr-1", &["x"]).await;
    let waiting = tokio::spawn(async move { run_emulated_runner(&config, RunnerOptions::default()).await });
    emulator.wait_until(WAIT, |emulator| emulator.runner_by_name("ghr-1").is_some_and(|r| r.online)).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(delete(&emulator, &token, &format!("/orgs/acme/actions/runners/{runner_id}")).await, 204);
    let outcome = waiting.await.unwrap().unwrap();
    assert_eq!(outcome.end, RunEnd::Deregistered);
    assert!(started.elapsed() < Duration::from_secs(2), "the open poll ends at once");
}

#[tokio::test]
async fn a_runner_fails_clearly_when_the_emulator_goes_away() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (_, config) = org_jit(&emulator, &token, "acme", "ghr-1", &["x"]).await;
    let options = RunnerOptions { unreachable_timeout: Duration::from_millis(500), ..RunnerOptions::default() };
    let runner = EmulatedRunner::connect(&config, options).await.unwrap();
    let waiting = tokio::spawn(runner.run());
    emulator.wait_until(WAIT, |emulator| emulator.runner_by_name("ghr-1").is_some_and(|r| r.online)).await.unwrap();
    emulator.shutdown().await.unwrap();
    let result = tokio::time::timeout(WAIT, waiting).await.expect("the runner does not hang").unwrap();
    assert!(matches!(result, Err(RunnerError::Unreachable { .. })), "{result:?}");
}

#[tokio::test]
async fn a_busy_runner_that_goes_silent_fails_its_job() {
    let config = EmulatorConfig { runner_lost_after: Duration::from_millis(300), ..EmulatorConfig::default() };
    let emulator = GithubEmulator::start(config).await.unwrap();
    let receiver = Receiver::start().await;
    emulator.set_webhook_target(receiver.url.clone(), WEBHOOK_SECRET);
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (runner_id, config) = org_jit(&emulator, &token, "acme", "ghr-1", &["x"]).await;
    let job =
        emulator.queue_job(JobSpec::new(installation, "app", &["x"]).duration(Duration::from_secs(60))).await.unwrap();
    // Play a runner by hand that takes the job and then never speaks again.
    let payload = JitConfigPayload::decode(&config).unwrap();
    let connect = ConnectRequest { runner_id: payload.runner_id, credential: payload.credential };
    let session: ConnectResponse = client()
        .post(format!("{}{}", emulator.base_url(), protocol::CONNECT_PATH))
        .json(&connect)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let acquire = AcquireRequest { session: session.session, wait_ms: 1000 };
    let response = client()
        .post(format!("{}{}", emulator.base_url(), protocol::ACQUIRE_PATH))
        .json(&acquire)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let failed = emulator.wait_for_job(job, JobStatus::Completed, WAIT).await.unwrap();
    assert_eq!(failed.conclusion.as_deref(), Some("failure"));
    assert!(emulator.runner(ghr_core::ids::GithubRunnerId(runner_id)).is_none());
    receiver_has(&emulator, &receiver, "workflow_job.completed").await;
}

async fn receiver_has(emulator: &GithubEmulator, receiver: &Receiver, kind: &str) {
    emulator.wait_until(WAIT, |_| receiver.kinds().iter().any(|seen| seen == kind)).await.unwrap();
}
