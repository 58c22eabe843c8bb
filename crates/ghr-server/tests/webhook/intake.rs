//! What the endpoint accepts at all: the body limit, malformed or incomplete known events, missing GitHub
//! headers, events ghr does not act on, and redeliveries of the same GUID.

use crate::support::webhooks::{
    INSTALLATION, INSTALLATION_TARGET, JobSource, WORKFLOW_JOB, account, assert_applied, assert_duplicate,
    assert_ignored, assert_nothing_recorded, deliver, delivery_seen, headers_without, installation, jobs, post_chunked,
    post_raw, runners, tenant, tenants, timeline_kinds,
};
use crate::support::{Answer, FOREIGN, Harness, MAX_BODY_BYTES, WEBHOOK_SECRET};
use ghr_core::ids::{InstallationId, JobId};
use ghr_core::job::JobStatus;
use ghr_core::tenant::OrgType;
use ghr_testkit::webhook::{DELIVERY_HEADER, EVENT_HEADER, SignedDelivery};
use serde_json::{Value, json};

const ACME: InstallationId = InstallationId(7101);
/// The longest reason a 400 answer may give: a short sentence, never an echo of the body.
const SHORT_REASON: usize = 120;
/// Chunk size of chunked uploads.
const CHUNK: usize = 4096;

/// `payload` as compact JSON padded with trailing spaces (still valid JSON) to exactly `len` bytes.
fn padded(payload: &Value, len: usize) -> Vec<u8> {
    let mut body = payload.to_string().into_bytes();
    assert!(body.len() <= len, "the payload alone is {} bytes", body.len());
    body.resize(len, b' ');
    body
}

fn created_payload(id: InstallationId, login: &str) -> Value {
    serde_json::from_slice(&installation("created", id, &account(login, id.0 + 1, OrgType::Organization)).body)
        .expect("JSON")
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_one_at_the_limit_accepted() {
    let h = Harness::start().await;
    let over = SignedDelivery::from_body(
        INSTALLATION,
        padded(&created_payload(ACME, "acme"), MAX_BODY_BYTES + 1),
        WEBHOOK_SECRET,
    );
    let message = deliver(&h, &over).await.expect_error(413, "too_large");
    assert!(message.contains(&MAX_BODY_BYTES.to_string()), "names the limit: {message}");
    assert_nothing_recorded(&h, &over.guid).await;

    let beta = InstallationId(7102);
    let at_limit =
        SignedDelivery::from_body(INSTALLATION, padded(&created_payload(beta, "beta"), MAX_BODY_BYTES), WEBHOOK_SECRET);
    assert_applied(&deliver(&h, &at_limit).await, "tenant created");
    assert!(tenant(&h, beta).await.is_some(), "the delivery at the limit is applied");
    assert!(tenant(&h, ACME).await.is_none(), "the oversize one is not");
}

#[tokio::test]
async fn a_chunked_body_is_limited_while_it_is_read() {
    let h = Harness::start().await;
    let over = SignedDelivery::from_body(
        INSTALLATION,
        padded(&created_payload(ACME, "acme"), MAX_BODY_BYTES + 1),
        WEBHOOK_SECRET,
    );
    let (status, text) = post_chunked(&h, &over.headers(), &over.body, CHUNK).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("too_large"), "{text}");
    assert_nothing_recorded(&h, &over.guid).await;

    let small = installation("created", ACME, &account("acme", ACME.0 + 1, OrgType::Organization));
    let (status, text) = post_chunked(&h, &small.headers(), &small.body, CHUNK).await;
    assert_eq!(status, 202, "{text}");
    assert!(tenant(&h, ACME).await.is_some(), "a chunked delivery under the limit is applied");
}

#[tokio::test]
async fn malformed_or_incomplete_known_events_are_refused_with_a_short_reason() {
    let h = Harness::start().await;
    let acme = account("acme", 502, OrgType::Organization);
    let source = JobSource::new(ACME, &acme, 12, "app");
    let job = source.payload("queued", JobId(91), FOREIGN, None);
    let without = |pointer: &str| -> Vec<u8> {
        let mut body = job.clone();
        let (parent, leaf) = pointer.rsplit_once('/').expect("a JSON pointer");
        body.pointer_mut(parent).and_then(Value::as_object_mut).expect("an object").remove(leaf);
        body.to_string().into_bytes()
    };
    let with = |pointer: &str, value: Value| -> Vec<u8> {
        let mut body = job.clone();
        *body.pointer_mut(pointer).expect("an existing field") = value;
        body.to_string().into_bytes()
    };
    let created = serde_json::from_slice::<Value>(&installation("created", ACME, &acme).body).expect("JSON");
    let mut no_account = created.clone();
    no_account["installation"].as_object_mut().expect("an object").remove("account");
    let mut unknown_type = created.clone();
    unknown_type["installation"]["account"]["type"] = json!("Mannequin");

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (WORKFLOW_JOB, b"{\"action\": \"queued\", \"workflow_job\": ".to_vec(), "workflow_job"),
        (WORKFLOW_JOB, Vec::new(), "workflow_job"),
        (WORKFLOW_JOB, b"[1, 2, 3]".to_vec(), "workflow_job"),
        (WORKFLOW_JOB, with("/workflow_job/id", json!("ninety-one")), "workflow_job"),
        (INSTALLATION, b"not json at all".to_vec(), "installation"),
        (INSTALLATION_TARGET, b"{\"action\": \"renamed\"".to_vec(), "installation_target"),
        (WORKFLOW_JOB, without("/workflow_job/id"), "workflow_job.id"),
        (WORKFLOW_JOB, with("/workflow_job/id", Value::Null), "workflow_job.id"),
        (WORKFLOW_JOB, without("/workflow_job/labels"), "workflow_job.labels"),
        (WORKFLOW_JOB, without("/repository/full_name"), "repository.full_name"),
        (WORKFLOW_JOB, without("/action"), "action"),
        (INSTALLATION, no_account.to_string().into_bytes(), "installation.account"),
        (INSTALLATION, unknown_type.to_string().into_bytes(), "installation.account.type"),
    ];
    let mut guids = Vec::new();
    for (event, body, named) in cases {
        let delivery = SignedDelivery::from_body(event, body, WEBHOOK_SECRET);
        let message = deliver(&h, &delivery).await.expect_error(400, "malformed");
        assert!(message.contains(named), "{event}: the reason should name {named:?}: {message}");
        assert!(message.len() <= SHORT_REASON, "{event}: a short reason, not {} bytes: {message}", message.len());
        guids.push(delivery.guid);
    }
    assert_eq!((tenants(&h).await, jobs(&h).await, runners(&h).await), (vec![], vec![], vec![]));
    for guid in guids {
        assert!(!delivery_seen(&h, &guid).await, "a refused delivery is not recorded");
    }
}

#[tokio::test]
async fn a_missing_event_or_delivery_header_is_refused() {
    let h = Harness::start().await;
    let good = installation("created", ACME, &account("acme", 503, OrgType::Organization));
    let answer = post_raw(&h, &headers_without(&good, EVENT_HEADER), good.body.clone()).await;
    assert!(answer.expect_error(400, "missing_event").contains("X-GitHub-Event"), "{}", answer.text);
    let answer = post_raw(&h, &headers_without(&good, DELIVERY_HEADER), good.body.clone()).await;
    assert!(answer.expect_error(400, "missing_delivery").contains("X-GitHub-Delivery"), "{}", answer.text);
    assert_nothing_recorded(&h, &good.guid).await;
    assert_applied(&deliver(&h, &good).await, "tenant created");
}

/// An empty `X-GitHub-Delivery` is no delivery id: accepting it records the id `""`, after which every other
/// delivery without one is answered `duplicate` and silently dropped. An empty `X-GitHub-Event` names no event
/// and must not be acknowledged as an unused one.
#[tokio::test]
async fn empty_event_or_delivery_headers_count_as_missing() {
    let h = Harness::start().await;
    let acme = account("acme", 503, OrgType::Organization);
    let no_id = deliver(&h, &installation("created", ACME, &acme).with_guid("")).await;
    let beta = InstallationId(7103);
    let second_no_id =
        deliver(&h, &installation("created", beta, &account("beta", 506, OrgType::Organization)).with_guid("")).await;
    let no_event = deliver(&h, &SignedDelivery { event: String::new(), ..installation("created", ACME, &acme) }).await;
    let outcome = |answer: &Answer| (answer.status, answer.json()["error"].as_str().map(str::to_owned));
    assert_eq!(
        [outcome(&no_id), outcome(&second_no_id), outcome(&no_event)],
        [
            (400, Some("missing_delivery".to_owned())),
            (400, Some("missing_delivery".to_owned())),
            (400, Some("missing_event".to_owned()))
        ],
        "answers: {} / {} / {}",
        no_id.text,
        second_no_id.text,
        no_event.text
    );
    assert_nothing_recorded(&h, "").await;
}

#[tokio::test]
async fn unknown_events_ping_and_unused_actions_are_acknowledged_and_change_nothing() {
    let h = Harness::start().await;
    let acme = account("acme", 504, OrgType::Organization);
    assert_applied(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant created");
    let source = JobSource::new(ACME, &acme, 13, "app");
    assert_applied(&deliver(&h, &source.delivery("queued", JobId(92), FOREIGN, None)).await, "queued");
    let before = (tenants(&h).await, jobs(&h).await, runners(&h).await);

    let signed = |event: &str, body: Value| SignedDelivery::new(event, &body, WEBHOOK_SECRET);
    let push =
        json!({"ref": "refs/heads/main", "repository": {"full_name": "acme/app"}, "installation": {"id": ACME.0}});
    let zen = json!({"zen": "Mind your words, they are important.", "hook_id": 448_811_020, "hook": {"type": "App"}});
    let mut requested = source.payload("queued", JobId(93), FOREIGN, None);
    requested["action"] = json!("requested");
    // A repository webhook (not the App's) carries no installation.
    let mut repository_hook = source.payload("queued", JobId(95), FOREIGN, None);
    repository_hook.as_object_mut().expect("an object").remove("installation");
    let cases = [
        (signed("push", push), "event type not used"),
        (SignedDelivery::from_body("push", b"not even JSON".to_vec(), WEBHOOK_SECRET), "event type not used"),
        (signed("ping", zen), "ping"),
        (
            signed(INSTALLATION_TARGET, json!({"action": "transferred", "installation": {"id": ACME.0}})),
            "installation_target action not used",
        ),
        (installation("new_permissions_accepted", ACME, &acme), "installation action needs no change"),
        (signed(WORKFLOW_JOB, requested), "workflow_job action not used"),
        (signed(WORKFLOW_JOB, repository_hook), "workflow_job without installation"),
    ];
    for (delivery, detail) in cases {
        assert_ignored(&deliver(&h, &delivery).await, detail);
    }
    assert_eq!((tenants(&h).await, jobs(&h).await, runners(&h).await), before, "nothing changed");
}

#[tokio::test]
async fn a_redelivered_guid_is_answered_duplicate_and_changes_nothing() {
    let h = Harness::start().await;
    let acme = account("acme", 505, OrgType::Organization);
    let created = installation("created", ACME, &acme);
    assert_applied(&deliver(&h, &created).await, "tenant created");
    let changed = h.put(&format!("/api/v1/tenants/{ACME}/tier"), &json!({"tier": "large"})).await.expect(200);
    assert_eq!((changed["tier"].as_str(), changed["max_runners"].as_u64()), (Some("large"), Some(10)));

    assert_duplicate(&deliver(&h, &created).await);
    // The same event under a new GUID (GitHub sent it twice): recognised, not applied again.
    assert_ignored(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant already exists");
    let tenant = tenant(&h, ACME).await.expect("the tenant");
    assert_eq!((tenant.tier.as_str(), tenant.max_runners), ("large", 10), "the operator's plan is kept");
    assert_eq!(tenants(&h).await.len(), 1);

    let source = JobSource::new(ACME, &acme, 14, "app");
    let job = JobId(94);
    let queued = source.delivery("queued", job, FOREIGN, None);
    assert_applied(&deliver(&h, &queued).await, "queued");
    assert_duplicate(&deliver(&h, &queued).await);
    assert_ignored(&deliver(&h, &source.delivery("queued", job, FOREIGN, None)).await, "job state already recorded");
    assert_eq!(jobs(&h).await.len(), 1, "the job is recorded once");
    // A job no tier matches is recorded with the reason `no_matching_tier` once.
    assert_eq!(timeline_kinds(&h, job).await, ["queued", "waiting"]);

    let completed = source.delivery("completed", job, FOREIGN, None);
    assert_applied(&deliver(&h, &completed).await, "completed");
    assert_duplicate(&deliver(&h, &completed).await);
    assert_duplicate(&deliver(&h, &queued).await);
    assert_eq!(timeline_kinds(&h, job).await, ["queued", "waiting", "completed"]);
    let recorded = crate::support::webhooks::job(&h, job).await.expect("the job");
    assert_eq!((recorded.status, recorded.conclusion.as_deref()), (JobStatus::Completed, Some("success")));
}
