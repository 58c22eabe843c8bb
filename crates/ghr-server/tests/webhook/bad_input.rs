//! Input GitHub's schema allows but ghr used to answer wrongly: ids beyond the store's range, enterprise
//! installations, renames without a login, form-encoded hooks, oversize text — each answered with the right
//! status and a message that says what to fix, and nothing written to the store.

use crate::support::webhooks::{
    INSTALLATION, INSTALLATION_TARGET, JobSource, account, assert_applied, assert_ignored, assert_nothing_recorded,
    deliver, delivery_seen, installation, post_raw, renamed, tenant, tenants,
};
use crate::support::{FOREIGN, Harness, WEBHOOK_SECRET};
use ghr_core::event::{IGNORED_ENTERPRISE, IGNORED_RENAME_WITHOUT_NAME};
use ghr_core::ids::{InstallationId, JobId};
use ghr_core::input::GITHUB_ID_MAX;
use ghr_core::tenant::OrgType;
use ghr_testkit::webhook::SignedDelivery;
use serde_json::{Value, json};

const ACME: InstallationId = InstallationId(7401);
/// 2^63: the first id a signed 64-bit column cannot hold.
const TOO_BIG: u64 = GITHUB_ID_MAX + 1;
/// An error answer quotes at most a clipped piece of the payload.
const SHORT_ANSWER: usize = 600;

fn body_of(delivery: &SignedDelivery) -> Value {
    serde_json::from_slice(&delivery.body).expect("JSON")
}

fn with(mut body: Value, pointer: &str, value: Value) -> Vec<u8> {
    *body.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} exists")) = value;
    body.to_string().into_bytes()
}

#[tokio::test]
async fn ids_the_store_cannot_hold_are_refused_with_400_naming_the_field() {
    let h = Harness::start().await;
    let acme = account("acme", 701, OrgType::Organization);
    let created = body_of(&installation("created", ACME, &acme));
    let job = JobSource::new(ACME, &acme, 15, "app").payload("queued", JobId(96), FOREIGN, None);
    let cases = [
        (INSTALLATION, with(created.clone(), "/installation/id", json!(TOO_BIG)), "installation.id"),
        (INSTALLATION, with(created.clone(), "/installation/account/id", json!(TOO_BIG)), "installation.account.id"),
        (INSTALLATION, with(created.clone(), "/sender/id", json!(u64::MAX)), "sender.id"),
        ("workflow_job", with(job.clone(), "/workflow_job/id", json!(TOO_BIG)), "workflow_job.id"),
        ("workflow_job", with(job.clone(), "/installation/id", json!(TOO_BIG)), "installation.id"),
    ];
    for (event, body, field) in cases {
        let delivery = SignedDelivery::from_body(event, body, WEBHOOK_SECRET);
        let message = deliver(&h, &delivery).await.expect_error(400, "malformed");
        assert!(message.contains(field) && message.contains("9223372036854775807"), "{field}: {message}");
        assert_nothing_recorded(&h, &delivery.guid).await;
    }
    // The largest storable id is accepted.
    let biggest = InstallationId(GITHUB_ID_MAX);
    assert_applied(&deliver(&h, &installation("created", biggest, &acme)).await, "tenant created");
    assert!(tenant(&h, biggest).await.is_some());
}

#[tokio::test]
async fn an_enterprise_installation_is_acknowledged_and_creates_no_tenant() {
    let h = Harness::start().await;
    let org = body_of(&installation("created", ACME, &account("big-corp", 702, OrgType::Organization)));
    let enterprise = json!({"id": 702, "slug": "big-corp", "name": "Big Corp", "node_id": "E_kgDNAr4"});
    for action in ["created", "suspend", "deleted"] {
        let mut body = org.clone();
        body["action"] = json!(action);
        body["installation"]["account"] = enterprise.clone();
        let delivery = SignedDelivery::new(INSTALLATION, &body, WEBHOOK_SECRET);
        assert_ignored(&deliver(&h, &delivery).await, IGNORED_ENTERPRISE);
        assert!(delivery_seen(&h, &delivery.guid).await, "an acknowledged delivery is recorded");
    }
    assert_eq!(tenants(&h).await, vec![]);
}

#[tokio::test]
async fn a_rename_takes_the_login_from_the_slug_or_is_ignored_without_one() {
    let h = Harness::start().await;
    let acme = account("acme", 703, OrgType::Organization);
    assert_applied(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant created");
    let base = body_of(&renamed(ACME, &acme, "acme-old"));

    let mut nameless = base.clone();
    nameless["account"] = json!({"id": 703, "node_id": "O_1"});
    let delivery = SignedDelivery::new(INSTALLATION_TARGET, &nameless, WEBHOOK_SECRET);
    assert_ignored(&deliver(&h, &delivery).await, IGNORED_RENAME_WITHOUT_NAME);
    assert_eq!(tenant(&h, ACME).await.expect("the tenant").org_name.as_str(), "acme");

    let mut slugged = base;
    slugged["account"] = json!({"id": 703, "slug": "acme-two", "name": "Acme Two"});
    let delivery = SignedDelivery::new(INSTALLATION_TARGET, &slugged, WEBHOOK_SECRET);
    assert_applied(&deliver(&h, &delivery).await, "tenant renamed");
    assert_eq!(tenant(&h, ACME).await.expect("the tenant").org_name.as_str(), "acme-two");
}

/// A hook configured with "Content type: application/x-www-form-urlencoded" sends `payload=<urlencoded JSON>`.
fn form_encoded(delivery: &SignedDelivery) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let json = String::from_utf8(delivery.body.clone()).expect("UTF-8");
    let encoded: String = json
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let body = format!("payload={encoded}").into_bytes();
    let signed = SignedDelivery::from_body(&delivery.event, body.clone(), WEBHOOK_SECRET).with_guid(&delivery.guid);
    let headers = signed
        .headers()
        .into_iter()
        .map(|(name, value)| {
            if name == "content-type" { (name, "application/x-www-form-urlencoded".to_owned()) } else { (name, value) }
        })
        .collect();
    (headers, body)
}

#[tokio::test]
async fn a_form_encoded_hook_is_refused_with_415_from_the_first_ping() {
    let h = Harness::start().await;
    let ping = SignedDelivery::new("ping", &json!({"zen": "Design for failure.", "hook_id": 1}), WEBHOOK_SECRET);
    let created = installation("created", ACME, &account("acme", 704, OrgType::Organization));
    for delivery in [&ping, &created] {
        let (headers, body) = form_encoded(delivery);
        let message = post_raw(&h, &headers, body).await.expect_error(415, "unsupported_media_type");
        assert!(message.contains("application/x-www-form-urlencoded"), "names what was received: {message}");
        assert!(message.contains("set the webhook content type to application/json"), "says the fix: {message}");
        assert_nothing_recorded(&h, &delivery.guid).await;
    }
    // The signature is still checked first.
    let (mut headers, body) = form_encoded(&created);
    for (name, value) in headers.iter_mut() {
        if *name == "x-hub-signature-256" {
            *value = ghr_testkit::webhook::sign("not-the-secret", &body);
        }
    }
    post_raw(&h, &headers, body).await.expect_error(401, "signature_invalid");
    // Without a content type, a form body is recognised too; a JSON one is accepted.
    let (headers, body) = form_encoded(&ping);
    let no_type: Vec<_> = headers.into_iter().filter(|(name, _)| *name != "content-type").collect();
    post_raw(&h, &no_type, body).await.expect_error(415, "unsupported_media_type");
    let json_no_type: Vec<_> = created.headers().into_iter().filter(|(name, _)| *name != "content-type").collect();
    assert_applied(&post_raw(&h, &json_no_type, created.body.clone()).await, "tenant created");
    // A charset parameter is fine.
    let other = installation("created", InstallationId(7402), &account("beta", 705, OrgType::Organization));
    let charset: Vec<_> = other
        .headers()
        .into_iter()
        .map(|(n, v)| if n == "content-type" { (n, "Application/JSON; charset=utf-8".to_owned()) } else { (n, v) })
        .collect();
    assert_applied(&post_raw(&h, &charset, other.body.clone()).await, "tenant created");
}

#[tokio::test]
async fn oversize_payload_text_is_refused_without_being_echoed() {
    let h = Harness::start().await;
    let huge = "a".repeat(60 * 1024);
    let created = body_of(&installation("created", ACME, &account("acme", 706, OrgType::Organization)));
    for pointer in ["/installation/account/login", "/installation/account/type", "/sender/login"] {
        let delivery =
            SignedDelivery::from_body(INSTALLATION, with(created.clone(), pointer, json!(huge)), WEBHOOK_SECRET);
        let answer = deliver(&h, &delivery).await;
        let message = answer.expect_error(400, "malformed");
        assert!(answer.text.len() < SHORT_ANSWER, "{pointer}: a {} byte answer", answer.text.len());
        assert!(message.contains("…[+"), "{pointer}: the quoted value is clipped: {message}");
        assert_nothing_recorded(&h, &delivery.guid).await;
    }
    for bad in ["../etc", "ac\r\nme", "nul\u{0}"] {
        let delivery = SignedDelivery::from_body(
            INSTALLATION,
            with(created.clone(), "/installation/account/login", json!(bad)),
            WEBHOOK_SECRET,
        );
        let message = deliver(&h, &delivery).await.expect_error(400, "malformed");
        assert!(message.contains("installation.account.login"), "{bad:?}: {message}");
    }
    assert_eq!(tenants(&h).await, vec![]);
}

#[tokio::test]
async fn ignored_events_are_counted_as_ignored_not_applied() {
    let h = Harness::start_serving_metrics().await;
    let acme = account("acme", 707, OrgType::Organization);
    assert_applied(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant created");
    assert_ignored(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant already exists");
    assert_ignored(
        &deliver(&h, &installation("new_permissions_accepted", ACME, &acme)).await,
        "installation action needs no change",
    );
    let text = h.metrics().await;
    let value = |outcome: &str| -> Option<f64> {
        let series = format!("ghr_webhook_events_total{{event=\"installation\",outcome=\"{outcome}\"}} ");
        text.lines().find_map(|line| line.strip_prefix(&series)).and_then(|v| v.trim().parse().ok())
    };
    assert_eq!((value("applied"), value("ignored")), (Some(1.0), Some(2.0)), "{text}");
}
