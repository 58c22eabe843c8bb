//! Signed webhook deliveries, lifecycle events, dropped deliveries and redelivery.

use crate::common::*;
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, JobSpec, StatusCode};
use ghr_testkit::webhook;
use serde_json::Value;
use std::time::Duration;

#[tokio::test]
async fn deliveries_are_signed_and_carry_githubs_headers() {
    let (emulator, receiver) = start_with_receiver().await;
    let installation = emulator.install_org("acme").await.unwrap();
    let job = emulator.queue_job(JobSpec::new(installation, "app", &["self-hosted", "ghr-small"])).await.unwrap();
    let received = receiver.received();
    assert_eq!(receiver.kinds(), ["installation.created", "workflow_job.queued"]);
    for delivery in &received {
        assert!(webhook::verify(WEBHOOK_SECRET, &delivery.body, delivery.header("x-hub-signature-256")));
        assert!(!webhook::verify("another secret", &delivery.body, delivery.header("x-hub-signature-256")));
        assert_eq!(delivery.header("content-type"), "application/json");
        assert!(delivery.header("user-agent").starts_with("GitHub-Hookshot/"));
        assert_eq!(delivery.header("x-github-hook-installation-target-type"), "integration");
        assert_eq!(delivery.header("x-github-hook-installation-target-id"), emulator.app_id().to_string());
        assert_eq!(delivery.header("x-github-delivery").len(), 36);
    }
    assert_ne!(received[0].header("x-github-delivery"), received[1].header("x-github-delivery"));
    let created = received[0].json();
    assert_eq!(created["installation"]["id"], installation.0);
    assert_eq!(created["installation"]["account"]["login"], "acme");
    assert_eq!(created["installation"]["account"]["type"], "Organization");
    assert!(created["sender"]["login"].is_string());
    let queued = received[1].json();
    assert_eq!(queued["workflow_job"]["id"], job.0);
    assert_eq!(queued["workflow_job"]["status"], "queued");
    assert_eq!(queued["workflow_job"]["labels"][1], "ghr-small");
    assert_eq!(queued["workflow_job"]["runner_name"], Value::Null);
    assert_eq!(queued["repository"]["full_name"], "acme/app");
    assert_eq!(queued["installation"]["id"], installation.0);
    let deliveries = emulator.deliveries();
    assert!(deliveries.iter().all(|delivery| delivery.status_code == 200 && delivery.succeeded()));
    assert_eq!(emulator.counters().webhooks_sent, 2);
}

#[tokio::test]
async fn installation_lifecycle_sends_its_events() {
    let (emulator, receiver) = start_with_receiver().await;
    let installation = emulator.install_org("acme").await.unwrap();
    emulator.suspend(installation).await.unwrap();
    emulator.queue_job(JobSpec::new(installation, "app", &["x"])).await.unwrap();
    emulator.unsuspend(installation).await.unwrap();
    emulator.rename(installation, "acme-corp").await.unwrap();
    emulator.uninstall(installation).await.unwrap();
    let user = emulator.install_user("alice").await.unwrap();
    assert_eq!(
        receiver.kinds(),
        [
            "installation.created",
            "installation.suspend",
            // No workflow_job.queued: a suspended installation gets no events.
            "installation.unsuspend",
            "installation_target.renamed",
            "installation.deleted",
            "installation.created",
        ]
    );
    let received = receiver.received();
    assert!(received[1].json()["installation"]["suspended_at"].is_string());
    let renamed = received[3].json();
    assert_eq!(renamed["account"]["login"], "acme-corp");
    assert_eq!(renamed["changes"]["login"]["from"], "acme");
    assert_eq!(renamed["installation"]["id"], installation.0);
    assert_eq!(received[4].json()["installation"]["account"]["login"], "acme-corp");
    let alice = received[5].json();
    assert_eq!(alice["installation"]["id"], user.0);
    assert_eq!(alice["installation"]["account"]["type"], "User");
    assert!(emulator.installation(installation).is_none());
    assert!(emulator.install_user("alice").await.is_err(), "one installation per account");
    let again = emulator.install_org("acme-corp").await.unwrap();
    assert_ne!(again, installation, "a reinstall is a new installation");
}

#[tokio::test]
async fn dropped_deliveries_show_as_failed_and_redelivery_keeps_the_guid() {
    let (emulator, receiver) = start_with_receiver().await;
    let installation = emulator.install_org("acme").await.unwrap();
    emulator.drop_next_webhooks(1);
    let job = emulator.queue_job(JobSpec::new(installation, "app", &["x"])).await.unwrap();
    assert_eq!(receiver.received().len(), 1, "the queued event was withheld");
    let jwt = app_jwt(&emulator);
    let (status, _, list) = get(&emulator, &jwt, "/app/hook/deliveries?per_page=10").await;
    assert_eq!(status, StatusCode::OK);
    let newest = &list[0];
    assert_eq!(newest["event"], "workflow_job");
    assert_eq!(newest["action"], "queued");
    assert_eq!(newest["status_code"], 502);
    assert_eq!(newest["status"], "failed to connect to host");
    assert_eq!(newest["redelivery"], false);
    assert_eq!(newest["installation_id"], installation.0);
    assert_eq!(list[1]["event"], "installation");
    assert_eq!(list[1]["status_code"], 200);
    let failed_id = newest["id"].as_u64().unwrap();
    let guid = newest["guid"].as_str().unwrap().to_owned();

    let (status, _, _) =
        post_json(&emulator, &jwt, &format!("/app/hook/deliveries/{failed_id}/attempts"), &Value::Null).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    emulator.wait_until(Duration::from_secs(5), |emulator| emulator.deliveries().len() == 3).await.unwrap();
    let redelivered = receiver.received().pop().unwrap();
    assert_eq!(redelivered.header("x-github-delivery"), guid);
    assert_eq!(redelivered.json()["workflow_job"]["id"], job.0);
    assert!(webhook::verify(WEBHOOK_SECRET, &redelivered.body, redelivered.header("x-hub-signature-256")));
    let (_, _, list) = get(&emulator, &jwt, "/app/hook/deliveries").await;
    assert_eq!(list[0]["guid"], guid.as_str());
    assert_eq!(list[0]["redelivery"], true);
    assert_eq!(list[0]["status_code"], 200);
    let (status, _, _) = post_json(&emulator, &jwt, "/app/hook/deliveries/999999999/attempts", &Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let counters = emulator.counters();
    assert_eq!((counters.webhooks_sent, counters.webhooks_dropped), (2, 1));
}

#[tokio::test]
async fn delivery_log_pages_with_a_cursor() {
    let (emulator, _receiver) = start_with_receiver().await;
    for login in ["a", "b", "c", "d", "e"] {
        emulator.install_org(login).await.unwrap();
    }
    let jwt = app_jwt(&emulator);
    let mut path = "/app/hook/deliveries?per_page=2".to_owned();
    let mut logins = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, headers, page) = get(&emulator, &jwt, &path).await;
        assert_eq!(status, StatusCode::OK);
        ids.extend(page.as_array().unwrap().iter().map(|item| item["id"].as_u64().unwrap()));
        logins.extend(page.as_array().unwrap().iter().map(|item| item["installation_id"].as_u64().unwrap()));
        let Some(link) = headers.get("link") else { break };
        let link = link.to_str().unwrap();
        let url = link.trim_start_matches('<').split('>').next().unwrap();
        path = url.trim_start_matches(emulator.base_url()).to_owned();
    }
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "newest first: {ids:?}");
    let installations: Vec<u64> = emulator.installations().iter().rev().map(|installation| installation.id.0).collect();
    assert_eq!(logins, installations);
}

#[tokio::test]
async fn failing_and_unreachable_receivers_are_recorded() {
    let (emulator, receiver) = start_with_receiver().await;
    receiver.set_status(500);
    emulator.install_org("acme").await.unwrap();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}/webhook", closed.local_addr().unwrap());
    drop(closed);
    emulator.set_webhook_target(closed_url, WEBHOOK_SECRET);
    emulator.install_org("globex").await.unwrap();
    let codes: Vec<u16> = emulator.deliveries().iter().map(|delivery| delivery.status_code).collect();
    assert_eq!(codes, [500, 502]);
    assert!(emulator.deliveries().iter().all(|delivery| !delivery.succeeded() && !delivery.dropped));
    assert_eq!(emulator.counters().webhooks_failed, 2);
    let no_target = start().await;
    no_target.install_org("acme").await.unwrap();
    assert!(no_target.deliveries()[0].dropped, "without a target a delivery is recorded, not sent");
}

#[tokio::test]
async fn drop_rate_is_deterministic_for_a_seed() {
    async fn pattern(seed: u64) -> Vec<bool> {
        let receiver = Receiver::start().await;
        let config = EmulatorConfig { seed, ..EmulatorConfig::default() };
        let emulator = GithubEmulator::start(config).await.unwrap();
        emulator.set_webhook_target(receiver.url.clone(), WEBHOOK_SECRET);
        emulator.drop_webhooks(0.5);
        for index in 0..24 {
            emulator.install_org(&format!("org-{index}")).await.unwrap();
        }
        let dropped: Vec<bool> = emulator.deliveries().iter().map(|delivery| delivery.dropped).collect();
        assert_eq!(receiver.received().len(), dropped.iter().filter(|dropped| !**dropped).count());
        dropped
    }
    let first = pattern(11).await;
    assert_eq!(first, pattern(11).await);
    assert!(first.iter().any(|dropped| *dropped) && first.iter().any(|dropped| !*dropped), "{first:?}");
}
