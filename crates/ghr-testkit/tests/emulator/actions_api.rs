//! Workflow runs and their jobs as GitHub serves them: a run's status summarises its jobs, `status`
//! filters keep pagination links, unknown filters are refused, and delivery filters follow status codes.

use crate::common::{app_jwt, get, installation_token, start};
use axum::http::StatusCode;
use ghr_testkit::github::JobSpec;
use serde_json::Value;

fn run_ids(body: &Value) -> Vec<u64> {
    body["workflow_runs"]
        .as_array()
        .map(|runs| runs.iter().filter_map(|run| run["id"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn runs_are_filtered_by_the_status_their_jobs_give_them() {
    let emulator = start().await;
    let acme = emulator.install_org("acme").await.unwrap();
    let token = installation_token(&emulator, acme).await;
    let queued = emulator.queue_job(JobSpec::new(acme, "app", &["x"])).await.unwrap();
    let first = emulator.queue_job(JobSpec::new(acme, "app", &["y"])).await.unwrap();
    let run = emulator.job(first).unwrap().run_id;
    emulator.queue_job(JobSpec::new(acme, "app", &["y"]).in_run(run)).await.unwrap();
    emulator.cancel_job(first).await.unwrap();
    let queued_run = emulator.job(queued).unwrap().run_id;

    let (status, _, body) = get(&emulator, &token, "/repos/acme/app/actions/runs?status=queued").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run_ids(&body), [queued_run]);
    let (_, _, body) = get(&emulator, &token, "/repos/acme/app/actions/runs?status=in_progress").await;
    assert_eq!(run_ids(&body), [run], "a finished job and a queued one: the run is in progress");
    let (_, _, body) = get(&emulator, &token, &format!("/repos/acme/app/actions/runs/{run}/jobs")).await;
    let statuses: Vec<&str> =
        body["jobs"].as_array().unwrap().iter().filter_map(|job| job["status"].as_str()).collect();
    assert_eq!(statuses, ["completed", "queued"]);

    let (_, headers, body) = get(&emulator, &token, "/repos/acme/app/actions/runs?per_page=1").await;
    assert_eq!(run_ids(&body), [run], "newest first");
    assert!(headers["link"].to_str().unwrap().contains("page=2>; rel=\"next\""));
    let (_, headers, _) = get(&emulator, &token, "/repos/acme/app/actions/runs?status=completed&per_page=1").await;
    assert!(headers.get("link").is_none(), "no completed run yet");
    let (status, _, _) = get(&emulator, &token, "/repos/acme/app/actions/runs?status=bogus").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, _) = get(&emulator, &token, "/repos/acme/app/actions/runs/999999/jobs").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&emulator, &app_jwt(&emulator), "/installation/repositories").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an installation token is required");
}

#[tokio::test]
async fn delivery_pages_carry_the_filter_in_their_next_link() {
    let emulator = start().await;
    for org in ["acme", "globex", "initech"] {
        emulator.install_org(org).await.unwrap();
    }
    let jwt = app_jwt(&emulator);
    let (status, headers, body) = get(&emulator, &jwt, "/app/hook/deliveries?status=failure&per_page=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 2);
    let link = headers["link"].to_str().unwrap().to_owned();
    assert!(link.contains("status=failure") && link.contains("cursor=v1_"), "{link}");
    let (_, _, success) = get(&emulator, &jwt, "/app/hook/deliveries?status=success").await;
    assert_eq!(success, Value::Array(Vec::new()), "no receiver: nothing succeeded");
    let (status, _, _) = get(&emulator, &jwt, "/app/hook/deliveries?status=ok").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
