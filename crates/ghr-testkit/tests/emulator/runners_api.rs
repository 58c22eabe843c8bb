//! Runner groups, JIT configs, runner listing/pagination/get/delete, and the job endpoint.

use crate::common::*;
use ghr_core::job::JobStatus;
use ghr_testkit::github::{JobSpec, StatusCode};
use ghr_testkit::protocol::JitConfigPayload;
use ghr_testkit::runner::{EmulatedRunner, RunEnd, RunnerOptions};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

const JIT_PATH: &str = "/orgs/acme/actions/runners/generate-jitconfig";

#[tokio::test]
async fn jit_config_answers_like_github_and_encodes_a_credential() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let body = json!({ "name": "ghr-1", "runner_group_id": 1, "labels": ["Self-Hosted", "ghr-small"], "work_folder": "_work" });
    let (status, _, body) = post_json(&emulator, &token, JIT_PATH, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let runner = &body["runner"];
    assert_eq!(runner["name"], "ghr-1");
    assert_eq!(runner["os"], "linux");
    assert_eq!(runner["status"], "offline");
    assert_eq!(runner["busy"], false);
    let labels: Vec<&str> = runner["labels"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(labels, ["self-hosted", "ghr-small"]);
    assert_eq!(runner["labels"][0]["type"], "custom");
    let config = JitConfigPayload::decode(body["encoded_jit_config"].as_str().unwrap()).unwrap();
    assert_eq!(config.url, emulator.base_url());
    assert_eq!(config.runner_id, runner["id"].as_u64().unwrap());
    assert_eq!(config.runner_name, "ghr-1");
    assert!(config.credential.expose().len() >= 32);
    let info = emulator.runner_by_name("ghr-1").unwrap();
    assert!(!info.connected && !info.online && !info.busy);
}

#[tokio::test]
async fn jit_config_refuses_duplicates_unknown_groups_and_bad_bodies() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    org_jit(&emulator, &token, "acme", "ghr-1", &["ghr-small"]).await;
    let cases = [
        (json!({ "name": "GHR-1", "runner_group_id": 1, "labels": ["x"] }), StatusCode::CONFLICT),
        (json!({ "name": "ghr-2", "runner_group_id": 2, "labels": ["x"] }), StatusCode::NOT_FOUND),
        (json!({ "name": "ghr-2", "runner_group_id": 1, "labels": [] }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "name": "ghr-2", "runner_group_id": 1 }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "name": "", "runner_group_id": 1, "labels": ["x"] }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "runner_group_id": 1, "labels": ["x"] }), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({ "name": "ghr-2", "runner_group_id": 1, "labels": (0..101).map(|i| format!("l{i}")).collect::<Vec<_>>() }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (body, expected) in cases {
        let (status, _, answer) = post_json(&emulator, &token, JIT_PATH, &body).await;
        assert_eq!(status, expected, "{body} -> {answer}");
        assert!(answer["message"].is_string());
    }
    assert_eq!(emulator.runners().len(), 1, "refused requests register nothing");
    let group = emulator.add_runner_group("acme", "ghr").unwrap();
    assert_eq!(group, 2);
    let body = json!({ "name": "ghr-2", "runner_group_id": group, "labels": ["x"] });
    let (status, _, answer) = post_json(&emulator, &token, JIT_PATH, &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(answer["runner"]["runner_group_id"], group);
    let (status, _, groups) = get(&emulator, &token, "/orgs/acme/actions/runner-groups").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(groups["total_count"], 2);
    assert_eq!(groups["runner_groups"][0]["name"], "Default");
    assert_eq!(groups["runner_groups"][0]["id"], 1);
    assert_eq!(groups["runner_groups"][1]["name"], "ghr");
}

#[tokio::test]
async fn runner_lists_paginate_with_link_headers() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let mut created = BTreeSet::new();
    for index in 0..7 {
        created.insert(org_jit(&emulator, &token, "acme", &format!("ghr-{index}"), &["x"]).await.0);
    }
    let mut seen = BTreeSet::new();
    let mut sizes = Vec::new();
    for page in 1..=3 {
        let (status, headers, body) =
            get(&emulator, &token, &format!("/orgs/acme/actions/runners?per_page=3&page={page}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total_count"], 7);
        let runners = body["runners"].as_array().unwrap();
        sizes.push(runners.len());
        seen.extend(runners.iter().map(|runner| runner["id"].as_u64().unwrap()));
        let link = headers.get("link").map(|value| value.to_str().unwrap().to_owned()).unwrap_or_default();
        assert_eq!(link.contains("rel=\"next\""), page < 3, "page {page}: {link}");
        if page == 1 {
            let next = format!("{}/orgs/acme/actions/runners?per_page=3&page=2>; rel=\"next\"", emulator.base_url());
            assert!(link.contains(&next), "{link}");
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, created);
    let (_, _, body) = get(&emulator, &token, "/orgs/acme/actions/runners?name=ghr-4").await;
    assert_eq!(body["total_count"], 1);
    assert_eq!(body["runners"][0]["name"], "ghr-4");
}

#[tokio::test]
async fn runners_can_be_read_and_deleted_but_not_while_busy() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (idle_id, _) = org_jit(&emulator, &token, "acme", "ghr-idle", &["x"]).await;
    let path = format!("/orgs/acme/actions/runners/{idle_id}");
    let (status, _, body) = get(&emulator, &token, &path).await;
    assert_eq!((status, body["name"].as_str()), (StatusCode::OK, Some("ghr-idle")));
    assert_eq!(delete(&emulator, &token, &path).await, StatusCode::NO_CONTENT);
    assert_eq!(get(&emulator, &token, &path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(delete(&emulator, &token, &path).await, StatusCode::NOT_FOUND);
    assert_eq!(get(&emulator, &token, "/orgs/acme/actions/runners/abc").await.0, StatusCode::NOT_FOUND);

    let (busy_id, config) = org_jit(&emulator, &token, "acme", "ghr-busy", &["x"]).await;
    let job = emulator
        .queue_job(JobSpec::new(installation, "app", &["x"]).duration(Duration::from_millis(800)))
        .await
        .unwrap();
    let runner = tokio::spawn(async move {
        EmulatedRunner::connect(&config, RunnerOptions::default()).await.unwrap().run().await.unwrap()
    });
    emulator.wait_for_job(job, JobStatus::InProgress, Duration::from_secs(5)).await.unwrap();
    let busy_path = format!("/orgs/acme/actions/runners/{busy_id}");
    let (status, _, body) = get(&emulator, &token, &busy_path).await;
    assert_eq!((body["status"].as_str(), body["busy"].as_bool()), (Some("online"), Some(true)), "{status} {body}");
    let (status, _, body) = get(&emulator, &token, "/orgs/acme/actions/runners").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["runners"][0]["busy"], true);
    let response =
        client().delete(format!("{}{busy_path}", emulator.base_url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let outcome = runner.await.unwrap();
    assert!(matches!(outcome.end, RunEnd::Completed { .. }), "{outcome:?}");
    assert_eq!(get(&emulator, &token, &busy_path).await.0, StatusCode::NOT_FOUND, "ephemeral: removed after its job");
}

#[tokio::test]
async fn personal_accounts_use_repository_runners() {
    let emulator = start().await;
    let installation = emulator.install_user("alice").await.unwrap();
    emulator.ensure_repo(installation, "app").unwrap();
    let token = installation_token(&emulator, installation).await;
    let body = json!({ "name": "ghr-r1", "runner_group_id": 1, "labels": ["x"] });
    let (status, _, answer) =
        post_json(&emulator, &token, "/orgs/alice/actions/runners/generate-jitconfig", &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a user is not an organisation: {answer}");
    let repo_jit = "/repos/alice/app/actions/runners/generate-jitconfig";
    let (status, _, answer) = post_json(&emulator, &token, repo_jit, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let runner_id = answer["runner"]["id"].as_u64().unwrap();
    let (status, _, _) =
        post_json(&emulator, &token, repo_jit, &json!({ "name": "r2", "runner_group_id": 2, "labels": ["x"] })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "repository runners only have group 1");
    let (status, _, list) = get(&emulator, &token, "/repos/alice/app/actions/runners").await;
    assert_eq!((status, list["total_count"].as_u64()), (StatusCode::OK, Some(1)));
    assert_eq!(get(&emulator, &token, "/repos/alice/other/actions/runners").await.0, StatusCode::NOT_FOUND);
    let path = format!("/repos/alice/app/actions/runners/{runner_id}");
    assert_eq!(get(&emulator, &token, &path).await.0, StatusCode::OK);
    assert_eq!(delete(&emulator, &token, &path).await, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn jobs_are_readable_by_their_installation() {
    let emulator = start().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let other = emulator.install_org("globex").await.unwrap();
    let job = emulator.queue_job(JobSpec::new(installation, "app", &["self-hosted", "ghr-small"])).await.unwrap();
    let token = installation_token(&emulator, installation).await;
    let (status, _, body) = get(&emulator, &token, &format!("/repos/acme/app/actions/jobs/{job}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], job.0);
    assert_eq!(body["status"], "queued");
    assert_eq!(body["conclusion"], serde_json::Value::Null);
    assert_eq!(body["labels"], json!(["self-hosted", "ghr-small"]));
    assert!(body["run_id"].as_u64().is_some() && body["created_at"].is_string());
    let other_token = installation_token(&emulator, other).await;
    let (status, _, _) = get(&emulator, &other_token, &format!("/repos/acme/app/actions/jobs/{job}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    emulator.ensure_repo(installation, "lib").unwrap();
    let (status, _, _) = get(&emulator, &token, &format!("/repos/acme/lib/actions/jobs/{job}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a job belongs to one repository");
    emulator.cancel_job(job).await.unwrap();
    let (_, _, body) = get(&emulator, &token, &format!("/repos/acme/app/actions/jobs/{job}")).await;
    assert_eq!((body["status"].as_str(), body["conclusion"].as_str()), (Some("completed"), Some("cancelled")));
}
