//! REST endpoints against a scripted server: JIT configs (org and repo), runner groups, runner
//! registrations, jobs and App webhook deliveries; paths, bodies, pagination and 404 handling.

mod support;

use ghr_core::ids::{GithubRunnerId, InstallationId, JobId, OrgName, RunnerName};
use ghr_core::job::JobStatus;
use ghr_core::ports::{GitHubApi, GithubError, JitRequest, RunnerScope};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::json;
use support::{FakeGithub, Recorded, Reply, runners_json, token_for};

const INSTALLATION: InstallationId = InstallationId(7);
const JIT_SECRET: &str = "eyJzZWNyZXQiOiJkbyBub3QgbG9nIG1lIn0=";

fn org() -> RunnerScope {
    RunnerScope::Org(OrgName::from("acme"))
}

fn repo() -> RunnerScope {
    RunnerScope::Repo("octocat/hello".into())
}

fn jit_request(scope: RunnerScope, group: &str) -> JitRequest {
    JitRequest {
        installation_id: INSTALLATION,
        scope,
        name: RunnerName::from("ghr-test-7-small-1"),
        labels: vec!["self-hosted".into(), "small".into()],
        runner_group: group.into(),
    }
}

/// 150 runner groups over two pages; "ghr" is on the second.
fn groups_page(request: &Recorded) -> Reply {
    let page: u64 = query_value(request, "page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let groups: Vec<_> = match page {
        1 => (1..=100).map(|id| json!({"id": id, "name": format!("group-{id}"), "visibility": "all"})).collect(),
        2 => (101..=150)
            .map(|id| json!({"id": id, "name": if id == 142 { "ghr".to_owned() } else { format!("group-{id}") }}))
            .collect(),
        _ => Vec::new(),
    };
    Reply::json(200, json!({"total_count": 150, "runner_groups": groups}))
}

fn query_value<'a>(request: &'a Recorded, key: &str) -> Option<&'a str> {
    request.query.as_deref()?.split('&').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

fn jit_reply() -> Reply {
    Reply::json(
        201,
        json!({"runner": {"id": 23, "name": "ghr-test-7-small-1", "os": "unknown", "status": "offline", "busy": false,
                          "labels": []}, "encoded_jit_config": JIT_SECRET}),
    )
}

fn github_like(request: &Recorded) -> Reply {
    match (request.method.as_str(), request.path.as_str()) {
        (_, _) if request.is_token_request() => token_for(request),
        ("GET", "/orgs/acme/actions/runner-groups") => groups_page(request),
        ("POST", "/orgs/acme/actions/runners/generate-jitconfig") => jit_reply(),
        ("POST", "/repos/octocat/hello/actions/runners/generate-jitconfig") => jit_reply(),
        _ => Reply::not_found(),
    }
}

#[tokio::test]
async fn org_jit_config_resolves_the_group_by_name_and_caches_it() {
    let github = FakeGithub::start(github_like).await;
    let client = github.client();
    let config = client.create_jit_config(&jit_request(org(), "ghr")).await.unwrap();
    assert_eq!(config.runner_id, GithubRunnerId(23));
    assert_eq!(config.encoded_jit_config.expose_secret(), JIT_SECRET);
    assert!(!format!("{config:?}").contains(JIT_SECRET), "Debug redacts the JIT config");

    let requests = github.api_requests();
    let group_pages: Vec<_> = requests.iter().filter(|r| r.path.ends_with("runner-groups")).collect();
    assert_eq!(group_pages.len(), 2);
    assert_eq!(group_pages[0].query.as_deref(), Some("per_page=100&page=1"));
    assert_eq!(group_pages[1].query.as_deref(), Some("per_page=100&page=2"));
    let jit = requests.last().unwrap();
    assert_eq!(jit.method, Method::POST);
    assert_eq!(jit.header("content-type"), Some("application/json"));
    assert_eq!(
        jit.json(),
        json!({"name": "ghr-test-7-small-1", "runner_group_id": 142, "labels": ["self-hosted", "small"],
               "work_folder": "_work"})
    );

    // Second JIT: the group id comes from the cache, also for a differently cased org login.
    client.create_jit_config(&jit_request(org(), "ghr")).await.unwrap();
    assert_eq!(client.runner_group_id(INSTALLATION, "ACME", "ghr").await.unwrap(), 142);
    let group_calls = github.api_requests().iter().filter(|r| r.path.ends_with("runner-groups")).count();
    assert_eq!(group_calls, 2, "runner group looked up once");
}

#[tokio::test]
async fn unknown_runner_group_is_not_found_by_name() {
    let github = FakeGithub::start(github_like).await;
    let err = github.client().create_jit_config(&jit_request(org(), "nope")).await.unwrap_err();
    match err {
        GithubError::NotFound(what) => assert!(what.contains("\"nope\"") && what.contains("acme"), "{what}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(github.api_requests().iter().all(|r| !r.path.ends_with("generate-jitconfig")));
}

#[tokio::test]
async fn a_jit_404_forgets_the_cached_group() {
    let github = FakeGithub::start(|request| {
        if request.path.ends_with("generate-jitconfig") {
            Reply::json(404, json!({"message": "Runner group not found"}))
        } else {
            github_like(request)
        }
    })
    .await;
    let client = github.client();
    for _ in 0..2 {
        let err = client.create_jit_config(&jit_request(org(), "ghr")).await.unwrap_err();
        assert!(matches!(err, GithubError::NotFound(_)), "{err:?}");
    }
    let group_calls = github.api_requests().iter().filter(|r| r.path.ends_with("runner-groups")).count();
    assert_eq!(group_calls, 4, "the group is looked up again after GitHub did not know it");
}

#[tokio::test]
async fn repo_jit_config_uses_group_1_and_the_repo_path() {
    let github = FakeGithub::start(github_like).await;
    let config = github.client().create_jit_config(&jit_request(repo(), "ignored")).await.unwrap();
    assert_eq!(config.runner_id, GithubRunnerId(23));
    let requests = github.api_requests();
    assert_eq!(requests.len(), 1, "no runner group lookup for repositories");
    assert_eq!(requests[0].path, "/repos/octocat/hello/actions/runners/generate-jitconfig");
    assert_eq!(requests[0].json()["runner_group_id"], 1);
}

#[tokio::test]
async fn jit_conflicts_and_validation_errors_carry_githubs_message() {
    let github = FakeGithub::start(|request| {
        if request.is_token_request() {
            token_for(request)
        } else if request.path.starts_with("/orgs/") {
            Reply::json(409, json!({"message": "Already exists - A runner with the name already exists."}))
        } else {
            Reply::json(422, json!({"message": "Validation Failed", "errors": ["labels must not be empty"]}))
        }
    })
    .await;
    let client = github.client();
    client.runner_group_id(INSTALLATION, "acme", "ghr").await.ok();
    let mut request = jit_request(repo(), "ghr");
    let err = client.create_jit_config(&request).await.unwrap_err();
    assert!(matches!(&err, GithubError::Unprocessable(m) if m.contains("labels must not be empty")), "{err:?}");
    request.scope = org();
    // The group lookup itself answers 409 here: the conflict surfaces with GitHub's text.
    let err = client.create_jit_config(&request).await.unwrap_err();
    assert!(matches!(&err, GithubError::Conflict(m) if m.contains("already exists")), "{err:?}");
}

#[tokio::test]
async fn malformed_jit_answers_do_not_leak_the_config() {
    let github = FakeGithub::start(|request| {
        if request.is_token_request() {
            token_for(request)
        } else {
            Reply::json(201, json!({"runner": {"id": "not-a-number"}, "encoded_jit_config": JIT_SECRET}))
        }
    })
    .await;
    let err = github.client().create_jit_config(&jit_request(repo(), "ghr")).await.unwrap_err();
    assert!(matches!(&err, GithubError::Decode { message, source: None } if !message.contains(JIT_SECRET)), "{err:?}");
}

#[tokio::test]
async fn runners_are_listed_over_all_pages() {
    let github = FakeGithub::start(|request| {
        if request.is_token_request() {
            return token_for(request);
        }
        match query_value(request, "page") {
            Some("1") => Reply::json(200, runners_json(1, 100)),
            Some("2") => Reply::json(200, runners_json(101, 100)),
            Some("3") => Reply::json(200, runners_json(201, 17)),
            _ => Reply::json(200, runners_json(1, 0)),
        }
    })
    .await;
    let client = github.client();
    let runners = client.list_runners(INSTALLATION, &org()).await.unwrap();
    assert_eq!(runners.len(), 217);
    assert_eq!(runners[216].id, GithubRunnerId(217));
    assert_eq!(runners[0].labels, vec!["self-hosted"]);
    let queries: Vec<_> = github.api_requests().iter().map(|r| r.query.clone().unwrap_or_default()).collect();
    assert_eq!(queries, ["per_page=100&page=1", "per_page=100&page=2", "per_page=100&page=3"]);

    client.list_runners(INSTALLATION, &repo()).await.unwrap();
    assert_eq!(github.api_requests().last().unwrap().path, "/repos/octocat/hello/actions/runners");
}

#[tokio::test]
async fn get_and_delete_runners_treat_404_as_absent() {
    let github = FakeGithub::start(|request| match (request.method.as_str(), request.path.as_str()) {
        _ if request.is_token_request() => token_for(request),
        ("GET", "/orgs/acme/actions/runners/5") => Reply::json(
            200,
            json!({"id": 5, "name": "ghr-x", "os": "linux", "status": "offline", "busy": false, "labels": []}),
        ),
        ("DELETE", "/repos/octocat/hello/actions/runners/5") => Reply::empty(204),
        _ => Reply::not_found(),
    })
    .await;
    let client = github.client();
    let runner = client.get_runner(INSTALLATION, &org(), GithubRunnerId(5)).await.unwrap().expect("runner 5");
    assert_eq!(runner.name, "ghr-x");
    assert!(!runner.online && !runner.busy);
    assert_eq!(client.get_runner(INSTALLATION, &org(), GithubRunnerId(6)).await.unwrap(), None);
    client.delete_runner(INSTALLATION, &repo(), GithubRunnerId(5)).await.unwrap();
    client.delete_runner(INSTALLATION, &repo(), GithubRunnerId(6)).await.unwrap();
    let deletes: Vec<_> = github.api_requests().into_iter().filter(|r| r.method == Method::DELETE).collect();
    assert_eq!(deletes.len(), 2);
    let err = client.get_runner(INSTALLATION, &RunnerScope::Repo("bad".into()), GithubRunnerId(1)).await.unwrap_err();
    assert!(matches!(err, GithubError::Unprocessable(_)), "{err:?}");
}

#[tokio::test]
async fn jobs_are_read_and_missing_ones_are_none() {
    let github = FakeGithub::start(|request| match request.path.as_str() {
        _ if request.is_token_request() => token_for(request),
        "/repos/acme/app/actions/jobs/99" => Reply::json(
            200,
            json!({"id": 99, "run_id": 1, "status": "completed", "conclusion": "failure",
                   "runner_name": "ghr-test-7-small-1", "labels": ["small"]}),
        ),
        "/repos/acme/app/actions/jobs/98" => {
            Reply::json(200, json!({"id": 98, "status": "waiting", "conclusion": null, "runner_name": null}))
        }
        _ => Reply::not_found(),
    })
    .await;
    let client = github.client();
    let job = client.get_job(INSTALLATION, "acme/app", JobId(99)).await.unwrap().expect("job 99");
    assert_eq!((job.id, job.status), (JobId(99), JobStatus::Completed));
    assert_eq!(job.conclusion.as_deref(), Some("failure"));
    assert_eq!(job.runner_name.as_deref(), Some("ghr-test-7-small-1"));
    let waiting = client.get_job(INSTALLATION, "acme/app", JobId(98)).await.unwrap().expect("job 98");
    assert_eq!((waiting.status, waiting.runner_name), (JobStatus::Queued, None));
    assert_eq!(client.get_job(INSTALLATION, "acme/app", JobId(1)).await.unwrap(), None);
}

#[tokio::test]
async fn deliveries_and_redelivery_use_the_app_jwt() {
    let github = FakeGithub::start(|request| match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/app/hook/deliveries") => Reply::json(
            200,
            json!([{"id": 11, "guid": "aaaa-bbbb", "delivered_at": "2026-03-01T10:00:00Z", "redelivery": false,
                    "duration": 0.2, "status": "OK", "status_code": 202, "event": "workflow_job", "action": "queued",
                    "installation_id": 7, "repository_id": 3}]),
        ),
        ("POST", "/app/hook/deliveries/11/attempts") => Reply::json(202, json!({})),
        _ => Reply::not_found(),
    })
    .await;
    let client = github.client();
    let deliveries = client.list_deliveries(25).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!((deliveries[0].id, deliveries[0].guid.as_str()), (11, "aaaa-bbbb"));
    assert_eq!(deliveries[0].installation_id, Some(INSTALLATION));
    client.redeliver(11).await.unwrap();
    let err = client.redeliver(12).await.unwrap_err();
    assert!(matches!(err, GithubError::NotFound(_)), "{err:?}");
    client.list_deliveries(1000).await.unwrap();

    let requests = github.requests();
    assert_eq!(github.token_requests(), 0, "App calls need no installation token");
    assert_eq!(requests[0].query.as_deref(), Some("per_page=25"));
    assert_eq!(requests[3].query.as_deref(), Some("per_page=100"), "limit clamped to GitHub's page size");
    assert!(requests.iter().all(|r| r.bearer().is_some_and(|jwt| jwt.split('.').count() == 3)));
}

#[tokio::test]
async fn enterprise_server_paths_keep_the_api_prefix() {
    let github = FakeGithub::start_at("/api/v3", |request| {
        if request.path == "/api/v3/app/installations/7/access_tokens" {
            token_for(request)
        } else if request.path == "/api/v3/orgs/acme/actions/runners" {
            Reply::json(200, runners_json(1, 1))
        } else {
            Reply::not_found()
        }
    })
    .await;
    let runners = github.client().list_runners(INSTALLATION, &org()).await.unwrap();
    assert_eq!(runners.len(), 1);
}

#[tokio::test]
async fn unreadable_answers_are_decode_errors() {
    let github = FakeGithub::start(|request| {
        if request.is_token_request() { token_for(request) } else { Reply::json(200, json!({"unexpected": true})) }
    })
    .await;
    let err = github.client().list_runners(INSTALLATION, &org()).await.unwrap_err();
    assert!(
        matches!(&err, GithubError::Decode { message, source: Some(_) } if message.contains("GET /orgs/acme/actions/runners")),
        "{err:?}"
    );
}
