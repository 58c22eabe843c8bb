//! `/api/v1/tenants`: onboarding by hand, listing and filtering, lookup by id or login, plans and limits,
//! and the status lifecycle with its refusals.

use crate::support::Harness;
use ghr_api::TenantDetail;
use ghr_config::Onboarding;
use reqwest::Method;
use serde_json::{Value, json};

fn ids(list: &Value) -> Vec<u64> {
    list["items"].as_array().expect("a list").iter().map(|t| t["installation_id"].as_u64().expect("an id")).collect()
}

#[tokio::test]
async fn tenants_are_added_listed_filtered_and_shown() {
    let h = Harness::start().await;
    let acme = h.post("/api/v1/tenants", Some(&json!({"installation_id": 101, "org_name": "Acme-Corp"}))).await;
    let acme = acme.expect(201);
    assert_eq!(acme["status"], "active");
    assert_eq!(acme["org_type"], "Organization");
    assert_eq!(acme["tier"], "small", "the configured default tier");
    assert_eq!(acme["max_runners"], 2, "derived from the tier");

    let duplicate = h.post("/api/v1/tenants", Some(&json!({"installation_id": 101, "org_name": "other"}))).await;
    let message = duplicate.expect_error(409, "conflict");
    assert!(message.contains("already exists") && message.contains("Acme-Corp"), "{message}");

    let solo = json!({"installation_id": 102, "org_name": "solo", "org_type": "User", "tier": "medium"});
    let solo = h.post("/api/v1/tenants", Some(&solo)).await.expect(201);
    assert_eq!(
        (solo["org_type"].as_str(), solo["tier"].as_str(), solo["max_runners"].as_u64()),
        (Some("User"), Some("medium"), Some(5))
    );

    for (body, needle) in [
        (json!({"installation_id": 103, "org_name": "   "}), "org_name"),
        (json!({"installation_id": 103, "org_name": "x", "tier": "huge"}), "known tiers: small, medium, large"),
        (json!({"installation_id": 103, "org_name": "x", "colour": "red"}), "colour"),
        (json!({"org_name": "x"}), "installation_id"),
        (json!({"installation_id": 103, "org_name": "x", "org_type": "Team"}), "org_type"),
    ] {
        let message = h.post("/api/v1/tenants", Some(&body)).await.expect_error(400, "bad_request");
        assert!(message.contains(needle), "{body}: {message}");
    }
    assert_eq!(h.get("/api/v1/tenants/103").await.status, 404, "refused adds create nothing");

    h.post("/api/v1/tenants/solo/suspend", None).await.expect(200);
    assert_eq!(ids(&h.get("/api/v1/tenants").await.expect(200)), vec![101, 102]);
    assert_eq!(ids(&h.get("/api/v1/tenants?status=active").await.expect(200)), vec![101]);
    assert_eq!(ids(&h.get("/api/v1/tenants?status=suspended").await.expect(200)), vec![102]);
    assert_eq!(ids(&h.get("/api/v1/tenants?status=pending").await.expect(200)), Vec::<u64>::new());
    let message = h.get("/api/v1/tenants?status=bogus").await.expect_error(400, "bad_request");
    assert!(message.contains("`pending`, `active`, `suspended`, `deleted`"), "{message}");
    // Pages of one, in installation order, until the last page has no cursor.
    let first = h.get("/api/v1/tenants?limit=1").await.expect(200);
    assert_eq!(ids(&first), vec![101]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = h.get(&format!("/api/v1/tenants?limit=1&cursor={cursor}")).await.expect(200);
    assert_eq!(ids(&second), vec![102]);
    assert!(second.get("next_cursor").is_none(), "the last page: {second}");
    let message = h
        .get(&format!("/api/v1/tenants?limit=1&status=suspended&cursor={cursor}"))
        .await
        .expect_error(400, "bad_request");
    assert!(message.contains("other filters"), "a cursor continues only the filters it came from: {message}");
    let message = h.get("/api/v1/tenants?cursor=nonsense").await.expect_error(400, "bad_request");
    assert!(message.contains("next_cursor"), "{message}");
    h.get("/api/v1/tenants?limit=0").await.expect_error(400, "bad_request");
    h.get("/api/v1/tenants?limit=1001").await.expect_error(400, "bad_request");
    h.get("/api/v1/tenants?state=active").await.expect_error(400, "bad_request");

    let by_id: TenantDetail = serde_json::from_value(h.get("/api/v1/tenants/101").await.expect(200)).expect("a detail");
    assert_eq!(by_id.tenant.org_name.as_str(), "Acme-Corp");
    assert_eq!((by_id.live_runners, by_id.live_by_tier.len(), by_id.waiting_jobs.len()), (0, 0, 0));
    for login in ["Acme-Corp", "acme-corp", "ACME-CORP"] {
        let detail = h.get(&format!("/api/v1/tenants/{login}")).await.expect(200);
        assert_eq!(detail["installation_id"], 101, "lookup by {login}");
    }
    let message = h.get("/api/v1/tenants/nobody").await.expect_error(404, "not_found");
    assert!(message.contains("nobody"), "{message}");
}

#[tokio::test]
async fn set_tier_rederives_max_runners_unless_explicit() {
    let h = Harness::start().await;
    h.post("/api/v1/tenants", Some(&json!({"installation_id": 201, "org_name": "acme"}))).await.expect(201);

    let medium = h.put("/api/v1/tenants/acme/tier", &json!({"tier": "medium"})).await.expect(200);
    assert_eq!((medium["tier"].as_str(), medium["max_runners"].as_u64()), (Some("medium"), Some(5)));
    let explicit = h.put("/api/v1/tenants/201/tier", &json!({"tier": "large", "max_runners": 3})).await.expect(200);
    assert_eq!((explicit["tier"].as_str(), explicit["max_runners"].as_u64()), (Some("large"), Some(3)));
    let shown = h.get("/api/v1/tenants/ACME").await.expect(200);
    assert_eq!((shown["tier"].as_str(), shown["max_runners"].as_u64()), (Some("large"), Some(3)), "persisted");
    let back = h.put("/api/v1/tenants/acme/tier", &json!({"tier": "small", "max_runners": null})).await.expect(200);
    assert_eq!((back["tier"].as_str(), back["max_runners"].as_u64()), (Some("small"), Some(2)));

    let message = h.put("/api/v1/tenants/acme/tier", &json!({"tier": "huge"})).await.expect_error(400, "bad_request");
    assert!(message.contains("\"huge\"") && message.contains("known tiers: small, medium, large"), "{message}");
    let message = h.put("/api/v1/tenants/acme/tier", &json!({"tier": "small", "max_runners": 0})).await;
    assert!(message.expect_error(400, "bad_request").contains("max_runners"));
    for body in [json!({"tier": "small", "limit": 3}), json!({}), json!({"tier": 5})] {
        h.put("/api/v1/tenants/acme/tier", &body).await.expect_error(400, "bad_request");
    }
    let message = h.put("/api/v1/tenants/nobody/tier", &json!({"tier": "small"})).await.expect_error(404, "not_found");
    assert!(message.contains("nobody"), "{message}");
    let unchanged = h.get("/api/v1/tenants/acme").await.expect(200);
    assert_eq!((unchanged["tier"].as_str(), unchanged["max_runners"].as_u64()), (Some("small"), Some(2)));
}

#[tokio::test]
async fn tenant_status_follows_its_lifecycle() {
    let h = Harness::start_with(|s| s.onboarding = Onboarding::Approval).await;
    let added = h.post("/api/v1/tenants", Some(&json!({"installation_id": 301, "org_name": "acme"}))).await;
    assert_eq!(added.expect(201)["status"], "pending", "approval onboarding");

    let status = async |action: &str| -> (u16, Value) {
        let answer = h.send(Method::POST, &format!("/api/v1/tenants/acme/{action}"), None).await;
        (answer.status, answer.json())
    };
    let (code, body) = status("approve").await;
    assert_eq!((code, body["status"].as_str()), (200, Some("active")));
    let (code, body) = status("approve").await;
    assert_eq!((code, body["error"].as_str()), (409, Some("conflict")), "only a pending tenant can be approved");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("is active; it cannot become active")), "{body}");
    for (action, expected) in
        [("suspend", "suspended"), ("suspend", "suspended"), ("resume", "active"), ("resume", "active")]
    {
        let (code, body) = status(action).await;
        assert_eq!((code, body["status"].as_str()), (200, Some(expected)), "{action}: {body}");
    }

    // An uninstalled tenant is kept, listed as deleted, and no action brings it back.
    let gone = h.install("gone-org").await;
    h.github.uninstall(gone).await.expect("uninstalling the App");
    let deleted = h.get("/api/v1/tenants?status=deleted").await.expect(200);
    assert_eq!(
        deleted["items"].as_array().map(|l| l.iter().map(|t| t["org_name"].clone()).collect()),
        Some(vec![json!("gone-org")])
    );
    for action in ["suspend", "resume", "approve"] {
        let answer = h.post(&format!("/api/v1/tenants/gone-org/{action}"), None).await;
        let message = answer.expect_error(409, "conflict");
        assert!(message.contains("is deleted"), "{action}: {message}");
    }

    for action in ["suspend", "resume", "approve"] {
        let message = h.post(&format!("/api/v1/tenants/999/{action}"), None).await.expect_error(404, "not_found");
        assert!(message.contains("999"), "{action}: {message}");
    }
    h.get("/api/v1/tenants/999").await.expect_error(404, "not_found");
    assert_eq!(h.get("/api/v1/tenants/acme/frobnicate").await.status, 404, "unknown actions are unknown routes");
}

/// A limit raised or a plan upgraded through the API starts the tenant's waiting jobs at once: the change marks
/// the tenant for the dispatcher. The dispatcher's tick is an hour here, so nothing else would start them.
#[tokio::test]
async fn a_raised_limit_or_upgraded_plan_starts_waiting_jobs_at_once() {
    use crate::support::{LARGE, SMALL, eventually};
    use ghr_core::ports::RunnerFilter;
    use ghr_core::reason::Reason;
    use ghr_core::runner::RunnerState;

    let h = Harness::start_with(|s| s.dispatch_tick = std::time::Duration::from_secs(3600)).await;
    let acme = h.install("acme").await;
    h.put("/api/v1/tenants/acme/tier", &json!({"tier": "small", "max_runners": 1})).await.expect(200);
    let live = async |tier: &str| {
        let filter = RunnerFilter {
            installation_id: Some(acme),
            tier: Some(tier.into()),
            states: RunnerState::LIVE.to_vec(),
            ..RunnerFilter::default()
        };
        h.store.runner_list(filter).await.expect("runner_list").len()
    };
    let reason = async |job| h.store.job_get(job).await.expect("job_get").and_then(|j| j.wait_reason);

    let small: Vec<_> = [0, 1, 2].map(|_| h.queue(acme, "app", SMALL)).into_iter().collect();
    let mut waiting = Vec::new();
    for job in small {
        waiting.push(job.await);
    }
    eventually("two small jobs wait for the limit", async || {
        let mut at_limit = 0;
        for job in &waiting {
            at_limit += usize::from(reason(*job).await == Some(Reason::TenantAtLimit));
        }
        (live("small").await == 1 && at_limit == 2).then_some(())
    })
    .await;
    h.put("/api/v1/tenants/acme/tier", &json!({"tier": "small", "max_runners": 3})).await.expect(200);
    eventually("a runner for every small job", async || (live("small").await == 3).then_some(())).await;

    let large = h.queue(acme, "app", LARGE).await;
    eventually("the large job waits for a plan that includes it", async || {
        (reason(large).await == Some(Reason::TierNotEntitled)).then_some(())
    })
    .await;
    h.put("/api/v1/tenants/acme/tier", &json!({"tier": "large", "max_runners": 4})).await.expect(200);
    eventually("a large runner after the upgrade", async || (live("large").await == 1).then_some(())).await;
}
