//! `GithubClient` against the stateful GitHub emulator: real JWT verification, token issuance and
//! expiry, JIT rules, runner registrations, jobs, deliveries and injected faults.

use ghr_core::ids::{GithubRunnerId, InstallationId, JobId, OrgName, RunnerName};
use ghr_core::job::JobStatus;
use ghr_core::ports::{GitHubApi, GithubError, JitRequest, RunnerScope};
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use ghr_testkit::TEST_APP_PRIVATE_KEY_PEM;
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, JobSpec, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, Instant};

const GROUP: &str = "ghr";
const DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

async fn emulator(config: EmulatorConfig) -> GithubEmulator {
    GithubEmulator::start(config).await.expect("emulator starts")
}

fn client(github: &GithubEmulator, adjust: impl FnOnce(&mut GithubClientConfig)) -> GithubClient {
    let credentials = AppCredentials {
        app_id: github.app_id(),
        private_key_pem: SecretString::from(TEST_APP_PRIVATE_KEY_PEM.to_owned()),
    };
    let mut config = GithubClientConfig::new(credentials);
    config.api_base_url = github.base_url().to_owned();
    config.retry.base_delay = Duration::from_millis(10);
    config.retry.max_delay = Duration::from_secs(3);
    adjust(&mut config);
    GithubClient::new(config).expect("client builds")
}

fn org(login: &str) -> RunnerScope {
    RunnerScope::Org(OrgName::from(login))
}

fn jit(installation: InstallationId, scope: RunnerScope, name: &str, labels: &[&str]) -> JitRequest {
    JitRequest {
        installation_id: installation,
        scope,
        name: RunnerName::from(name),
        labels: labels.iter().map(|label| (*label).to_owned()).collect(),
        runner_group: GROUP.to_owned(),
    }
}

/// An emulator with org `acme` installed and its `ghr` runner group.
async fn acme() -> (GithubEmulator, InstallationId, u64) {
    let github = emulator(EmulatorConfig::default()).await;
    let installation = github.install_org("acme").await.expect("install acme");
    let group = github.add_runner_group("acme", GROUP).expect("runner group");
    (github, installation, group)
}

#[tokio::test]
async fn one_token_serves_many_calls() {
    let (github, installation, group) = acme().await;
    let client = client(&github, |_| {});
    for _ in 0..5 {
        client.list_runners(installation, &org("acme")).await.unwrap();
    }
    assert_eq!(client.runner_group_id(installation, "acme", GROUP).await.unwrap(), group);
    assert_eq!(github.counters().token_requests, 1);
    assert_eq!(client.stats().token_requests, 1);
    let window = client.rate_limit(installation).expect("rate limit reported");
    assert!(window.remaining < window.limit, "{window:?}");
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_before_they_expire() {
    let github =
        emulator(EmulatorConfig { installation_token_ttl: Duration::from_secs(2), ..Default::default() }).await;
    let installation = github.install_org("acme").await.unwrap();
    let client = client(&github, |c| c.token_refresh_margin = Duration::from_secs(1));
    let first = client.installation_token(installation).await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    while github.counters().token_requests < 2 {
        assert!(Instant::now() < deadline, "no refresh within {DEADLINE:?}");
        client.list_runners(installation, &org("acme")).await.expect("calls keep working across the refresh");
        tokio::time::sleep(POLL).await;
    }
    let second = client.installation_token(installation).await.unwrap();
    assert_ne!(first.token.expose_secret(), second.token.expose_secret());
    assert_eq!(client.stats().retries, 0, "refreshed before GitHub refused the old token");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let (github, installation, _) = acme().await;
    let client = client(&github, |_| {});
    client.installation_token(installation).await.unwrap();

    github.rate_limit_next(1, 1);
    let started = Instant::now();
    client.list_runners(installation, &org("acme")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After: {:?}", started.elapsed());
    assert_eq!(github.counters().injected_rate_limits, 1);

    github.fail_next(2, StatusCode::BAD_GATEWAY);
    client.list_runners(installation, &org("acme")).await.unwrap();
    assert_eq!(github.counters().injected_failures, 2);
    assert_eq!(client.stats().retries, 3);

    github.fail_next(10, StatusCode::SERVICE_UNAVAILABLE);
    let client = self::client(&github, |c| c.retry.max_retries = 1);
    let err = client.list_deliveries(5).await.unwrap_err();
    assert!(matches!(err, GithubError::Server { status: 503 }), "{err:?}");
}

#[tokio::test]
async fn org_jit_configs_follow_githubs_rules() {
    let (github, installation, group) = acme().await;
    let client = client(&github, |_| {});
    let config = client
        .create_jit_config(&jit(installation, org("acme"), "ghr-test-1-small-1", &["self-hosted", "small"]))
        .await
        .unwrap();
    assert!(!config.encoded_jit_config.expose_secret().is_empty());
    let runner = github.runner(config.runner_id).expect("registered in the emulator");
    assert_eq!(runner.name, "ghr-test-1-small-1");
    assert_eq!(runner.group_id, group);

    let duplicate = client
        .create_jit_config(&jit(installation, org("acme"), "ghr-test-1-small-1", &["self-hosted"]))
        .await
        .unwrap_err();
    assert!(matches!(duplicate, GithubError::Conflict(_)), "{duplicate:?}");

    let no_labels = client.create_jit_config(&jit(installation, org("acme"), "ghr-test-1-small-2", &[])).await;
    assert!(matches!(no_labels, Err(GithubError::Unprocessable(_))), "{no_labels:?}");

    let mut unknown_group = jit(installation, org("acme"), "ghr-test-1-small-3", &["self-hosted"]);
    unknown_group.runner_group = "nope".into();
    let err = client.create_jit_config(&unknown_group).await.unwrap_err();
    assert!(matches!(&err, GithubError::NotFound(what) if what.contains("nope")), "{err:?}");
}

#[tokio::test]
async fn repo_jit_configs_for_personal_accounts() {
    let github = emulator(EmulatorConfig::default()).await;
    let installation = github.install_user("octocat").await.unwrap();
    github.ensure_repo(installation, "hello").unwrap();
    let client = client(&github, |_| {});
    let scope = RunnerScope::Repo("octocat/hello".into());
    let config =
        client.create_jit_config(&jit(installation, scope.clone(), "ghr-test-2-small-1", &["small"])).await.unwrap();
    let runners = client.list_runners(installation, &scope).await.unwrap();
    assert_eq!(runners.iter().map(|r| r.id).collect::<Vec<_>>(), vec![config.runner_id]);
    assert_eq!(github.runner(config.runner_id).unwrap().group_id, 1);
}

#[tokio::test]
async fn runners_are_listed_read_and_deleted() {
    let (github, installation, _) = acme().await;
    let client = client(&github, |_| {});
    let mut ids = Vec::new();
    for n in 0..3 {
        let request = jit(installation, org("acme"), &format!("ghr-test-1-small-{n}"), &["self-hosted", "small"]);
        ids.push(client.create_jit_config(&request).await.unwrap().runner_id);
    }
    let listed = client.list_runners(installation, &org("acme")).await.unwrap();
    assert_eq!(listed.len(), 3);
    let runner = client.get_runner(installation, &org("acme"), ids[1]).await.unwrap().expect("runner");
    assert_eq!(runner.name, "ghr-test-1-small-1");
    assert!(runner.labels.contains(&"small".to_owned()));
    assert!(!runner.busy);

    client.delete_runner(installation, &org("acme"), ids[1]).await.unwrap();
    assert_eq!(client.get_runner(installation, &org("acme"), ids[1]).await.unwrap(), None);
    client.delete_runner(installation, &org("acme"), ids[1]).await.expect("deleting a missing runner is fine");
    assert_eq!(client.list_runners(installation, &org("acme")).await.unwrap().len(), 2);
    assert!(github.runner(ids[1]).is_none());
    assert_eq!(client.get_runner(installation, &org("acme"), GithubRunnerId(999_999)).await.unwrap(), None);
}

#[tokio::test]
async fn another_installations_org_is_not_visible() {
    let (github, acme, _) = acme().await;
    github.install_org("globex").await.unwrap();
    let client = client(&github, |_| {});
    let err = client.list_runners(acme, &org("globex")).await.unwrap_err();
    assert!(matches!(err, GithubError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn jobs_are_read_and_unknown_ones_are_none() {
    let (github, installation, _) = acme().await;
    let job = github.queue_job(JobSpec::new(installation, "app", &["self-hosted", "small"])).await.unwrap();
    let client = client(&github, |_| {});
    let seen = client.get_job(installation, "acme/app", job).await.unwrap().expect("job");
    assert_eq!((seen.id, seen.status, seen.runner_name), (job, JobStatus::Queued, None));
    assert_eq!(client.get_job(installation, "acme/app", JobId(987_654_321)).await.unwrap(), None);
}

#[tokio::test]
async fn deliveries_are_listed_and_redelivered() {
    let (github, installation, _) = acme().await;
    let client = client(&github, |_| {});
    let deliveries = client.list_deliveries(50).await.unwrap();
    let created = deliveries
        .iter()
        .find(|d| d.event == "installation" && d.installation_id == Some(installation))
        .expect("installation.created was delivered (and failed: no webhook target)");
    assert_eq!(created.action.as_deref(), Some("created"));
    assert!(!created.redelivery);

    let before = github.deliveries().len();
    client.redeliver(created.id).await.unwrap();
    github.wait_until(DEADLINE, |g| g.deliveries().len() > before).await.expect("a redelivery is recorded");
    let newest = client.list_deliveries(1).await.unwrap();
    assert!(newest[0].redelivery, "{newest:?}");
    assert_eq!(newest[0].guid, created.guid);
    assert_eq!(github.counters().token_requests, 0, "App endpoints use the JWT only");

    let err = client.redeliver(123_456_789).await.unwrap_err();
    assert!(matches!(err, GithubError::NotFound(_)), "{err:?}");
}
