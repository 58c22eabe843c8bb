//! What operators see of a running fleet: runners by state, jobs with their timeline and the explanation
//! of why they wait, per-tenant counts, and usage as JSON and CSV.

use crate::support::fleet::{self, Fleet};
use crate::support::{Answer, Harness};
use chrono::{Duration, SecondsFormat, Utc};
use ghr_api::{JobDetail, UsageReport};
use reqwest::Method;
use serde_json::{Value, json};

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["name"].as_str().expect("a name").to_owned())
        .collect();
    names.sort();
    names
}

fn job_ids(list: &Value) -> Vec<u64> {
    list["items"].as_array().expect("a list").iter().map(|j| j["job_id"].as_u64().expect("a job id")).collect()
}

fn sorted(mut ids: Vec<u64>) -> Vec<u64> {
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn runners_are_listed_by_state_tenant_and_tier() {
    let h = Harness::start().await;
    let Fleet { live_runner, gone_runner, .. } = fleet::build(&h).await;
    let live = vec![live_runner.to_string()];
    let mut both = vec![live_runner.to_string(), gone_runner.to_string()];
    both.sort();

    for (query, expected) in [
        ("", &live),
        ("?state=live", &live),
        ("?state=launching", &live),
        ("?state=all", &both),
        ("?state=terminated", &vec![gone_runner.to_string()]),
        ("?state=busy", &vec![]),
        ("?tenant=ACME", &live),
        ("?tenant=acme&state=all&tier=small", &both),
        ("?tenant=beta&state=all", &vec![]),
        ("?tier=large", &vec![]),
    ] {
        assert_eq!(&names(&h.get(&format!("/api/v1/runners{query}")).await.expect(200)), expected, "runners{query}");
    }
    let runner = &h.get("/api/v1/runners").await.expect(200)["items"][0];
    assert_eq!((runner["state"].as_str(), runner["tier"].as_str()), (Some("launching"), Some("small")));
    assert!(runner["instance_id"].as_str().is_some_and(|id| id.ends_with(live_runner.as_str())), "{runner}");

    let message = h.get("/api/v1/runners?state=bogus").await.expect_error(400, "bad_request");
    assert!(message.contains("`live`, `all`, `requested`, `launching`"), "{message}");
    let message = h.get("/api/v1/runners?tier=huge").await.expect_error(400, "bad_request");
    assert!(message.contains("known tiers"), "{message}");
    h.get("/api/v1/runners?colour=red").await.expect_error(400, "bad_request");
    h.get("/api/v1/runners?tenant=nobody").await.expect_error(404, "not_found");
}

#[tokio::test]
async fn jobs_are_listed_and_explained() {
    let h = Harness::start().await;
    let f = fleet::build(&h).await;
    let all = h.get("/api/v1/jobs").await.expect(200);
    let every = sorted(vec![f.starting.0, f.done.0, f.suspended.0, f.foreign.0, f.not_entitled.0]);
    assert_eq!(sorted(job_ids(&all)), every);
    assert_eq!(job_ids(&all)[0], f.not_entitled.0, "newest first");

    for (query, expected) in [
        ("?status=completed", vec![f.done.0]),
        ("?status=queued", sorted(vec![f.starting.0, f.suspended.0, f.foreign.0, f.not_entitled.0])),
        ("?reason=tenant_suspended", vec![f.suspended.0]),
        ("?reason=tier_not_entitled&tenant=acme", vec![f.not_entitled.0]),
        ("?tenant=BETA", vec![f.suspended.0]),
        ("?status=in_progress", vec![]),
    ] {
        assert_eq!(sorted(job_ids(&h.get(&format!("/api/v1/jobs{query}")).await.expect(200))), expected, "jobs{query}");
    }
    assert_eq!(job_ids(&h.get("/api/v1/jobs?limit=2").await.expect(200)).len(), 2);
    for query in ["?limit=0", "?limit=10001", "?limit=x", "?status=bogus", "?reason=bogus", "?colour=red"] {
        h.get(&format!("/api/v1/jobs{query}")).await.expect_error(400, "bad_request");
    }
    h.get("/api/v1/jobs?tenant=nobody").await.expect_error(404, "not_found");

    let show = async |id: u64| -> JobDetail {
        serde_json::from_value(h.get(&format!("/api/v1/jobs/{id}")).await.expect(200)).expect("a job detail")
    };
    let kinds = |d: &JobDetail| d.timeline.iter().map(|e| e.kind.clone()).collect::<Vec<_>>();

    let waiting = show(f.suspended.0).await;
    assert!(waiting.explanation.starts_with("waiting: tenant_suspended — "), "{}", waiting.explanation);
    assert!(waiting.explanation.contains("resume"), "says what unblocks it: {}", waiting.explanation);
    assert_eq!(kinds(&waiting), ["queued", "waiting"]);
    assert_eq!(waiting.timeline[1].detail, "tenant_suspended");

    let not_entitled = show(f.not_entitled.0).await;
    assert!(not_entitled.explanation.starts_with("waiting: tier_not_entitled"), "{}", not_entitled.explanation);
    assert_eq!(not_entitled.job.tier.as_deref(), Some("large"));

    let foreign = show(f.foreign.0).await;
    assert!(foreign.explanation.starts_with("not for ghr: no_matching_tier"), "{}", foreign.explanation);
    assert_eq!(foreign.job.tier, None);

    let starting = show(f.starting.0).await;
    assert!(starting.explanation.contains("a small runner is starting"), "{}", starting.explanation);
    assert_eq!(kinds(&starting), ["queued", "runner_requested", "runner_launched"]);
    assert!(starting.timeline[2].detail.contains(f.live_runner.as_str()), "{:?}", starting.timeline);

    let done = show(f.done.0).await;
    assert_eq!(done.explanation, "completed (success)");
    assert_eq!(done.job.runner_name.as_deref(), Some(f.gone_runner.as_str()));
    assert!(kinds(&done).ends_with(&["in_progress".to_owned(), "completed".to_owned()]), "{:?}", kinds(&done));

    let message = h.get("/api/v1/jobs/abc").await.expect_error(400, "bad_request");
    assert!(message.contains("\"abc\""), "{message}");
    let message = h.get("/api/v1/jobs/999999999").await.expect_error(404, "not_found");
    assert!(message.contains("999999999"), "{message}");
}

#[tokio::test]
async fn tenant_detail_counts_live_runners_and_waiting_jobs() {
    let h = Harness::start().await;
    fleet::build(&h).await;
    let acme = h.get("/api/v1/tenants/acme").await.expect(200);
    assert_eq!(acme["live_runners"], 1);
    assert_eq!(acme["live_by_tier"], json!({"small": 1}));
    assert_eq!(acme["waiting_jobs"], json!({"starting": 1, "tier_not_entitled": 1}));
    let beta = h.get("/api/v1/tenants/beta").await.expect(200);
    assert_eq!((beta["status"].as_str(), beta["live_runners"].as_u64()), (Some("suspended"), Some(0)));
    assert_eq!(beta["waiting_jobs"], json!({"tenant_suspended": 1}));
}

#[tokio::test]
async fn usage_is_reported_as_json_and_csv() {
    let h = Harness::start().await;
    let f = fleet::build(&h).await;
    let report: UsageReport = serde_json::from_value(h.get("/api/v1/usage").await.expect(200)).expect("a report");
    assert_eq!(report.rows.len(), 1, "only acme ran runners: {report:?}");
    let row = &report.rows[0];
    assert_eq!((row.installation_id, row.org_name.as_deref(), row.tier.as_str()), (f.acme.0, Some("acme"), "small"));
    assert_eq!(row.runners, 2);
    assert!(row.runner_seconds >= 0.0 && row.price_per_hour == Some(0.0416), "{row:?}");
    let window = (report.to - report.from).num_days();
    assert_eq!(window, 30, "the default window");

    let csv_checks = |answer: &Answer| {
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert!(answer.content_type.starts_with("text/csv"), "{}", answer.content_type);
        let lines: Vec<&str> = answer.text.lines().collect();
        assert_eq!(lines[0], "installation_id,org_name,tier,runners,runner_seconds,price_per_hour,cost");
        assert_eq!(lines.len(), 2, "{}", answer.text);
        assert!(lines[1].starts_with(&format!("{},acme,small,2,", f.acme)), "{}", lines[1]);
    };
    csv_checks(&h.get("/api/v1/usage?format=csv").await);
    let bearer = format!("Bearer {}", crate::support::ADMIN_TOKEN);
    csv_checks(&h.send_raw(Method::GET, "/api/v1/usage", Some(&bearer), None, Some("text/csv")).await);
    let json_anyway = h.send_raw(Method::GET, "/api/v1/usage?format=json", Some(&bearer), None, Some("text/csv")).await;
    assert!(json_anyway.expect(200)["rows"].is_array(), "format wins over Accept");

    let instant = |d: Duration| (Utc::now() + d).to_rfc3339_opts(SecondsFormat::Secs, true);
    let beta = h.get(&format!("/api/v1/usage?tenant=beta&from={}", instant(Duration::hours(-1)))).await.expect(200);
    assert_eq!(beta["rows"], json!([]), "beta ran nothing");
    let before = format!("/api/v1/usage?from={}&to={}", instant(Duration::days(-3)), instant(Duration::days(-2)));
    assert_eq!(h.get(&before).await.expect(200)["rows"], json!([]), "nothing ran two days ago");

    let message = h.get("/api/v1/usage?from=yesterday").await.expect_error(400, "bad_request");
    assert!(message.contains("`from`") && message.contains("RFC 3339"), "{message}");
    h.get("/api/v1/usage?to=2026-13-01T00:00:00Z").await.expect_error(400, "bad_request");
    let reversed = format!("/api/v1/usage?from={}&to={}", instant(Duration::hours(1)), instant(Duration::hours(-1)));
    let message = h.get(&reversed).await.expect_error(400, "bad_request");
    assert!(message.contains("before"), "{message}");
    h.get("/api/v1/usage?format=xml").await.expect_error(400, "bad_request");
    h.get("/api/v1/usage?tenant=nobody").await.expect_error(404, "not_found");
}
