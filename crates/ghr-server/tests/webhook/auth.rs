//! Authentication of deliveries: the HMAC-SHA256 signature over the exact raw body, checked before anything
//! else; a refused delivery records nothing, so GitHub's redelivery of the same GUID is still applied.

use crate::support::webhooks::{
    INSTALLATION, JobSource, account, assert_applied, assert_nothing_recorded, deliver, delivery_seen, headers_without,
    installation, post_raw, tenant,
};
use crate::support::{FOREIGN, Harness, WEBHOOK_SECRET};
use ghr_core::ids::{InstallationId, JobId};
use ghr_core::tenant::{OrgType, TenantStatus};
use ghr_testkit::webhook::{EVENT_HEADER, SIGNATURE_HEADER, SignedDelivery, sign};

const ACME: InstallationId = InstallationId(7001);

#[tokio::test]
async fn a_wrong_signature_records_nothing_and_the_redelivery_is_applied() {
    let h = Harness::start().await;
    let acme = account("acme", 501, OrgType::Organization);
    let good = installation("created", ACME, &acme);
    let right_signature = good.signature.clone().expect("a signed delivery");

    let forged = good.clone().with_signature(Some(sign("not-the-secret", &good.body)));
    let message = deliver(&h, &forged).await.expect_error(401, "signature_invalid");
    assert!(!message.contains(&right_signature[7..]), "the answer must not reveal the expected MAC: {message}");
    // The right signature over other bytes (a body altered in transit).
    let tampered = String::from_utf8(good.body.clone()).expect("UTF-8 JSON").replace("acme", "evil");
    let tampered = SignedDelivery { body: tampered.into_bytes(), ..good.clone() };
    deliver(&h, &tampered).await.expect_error(401, "signature_invalid");
    let job = JobSource::new(ACME, &acme, 11, "app").delivery("queued", JobId(81), FOREIGN, None);
    let forged_job = job.clone().with_signature(Some(sign("not-the-secret", &job.body)));
    deliver(&h, &forged_job).await.expect_error(401, "signature_invalid");
    assert_nothing_recorded(&h, &good.guid).await;
    assert!(!delivery_seen(&h, &job.guid).await);

    // GitHub redelivers with the same GUID: applied now.
    assert_applied(&deliver(&h, &good).await, "tenant created");
    let tenant = tenant(&h, ACME).await.expect("the tenant after the redelivery");
    assert_eq!((tenant.org_name.as_str(), tenant.status), ("acme", TenantStatus::Active));
    assert!(delivery_seen(&h, &good.guid).await, "an applied delivery is recorded");
    assert_applied(&deliver(&h, &job).await, "queued");
}

#[tokio::test]
async fn missing_and_malformed_signature_headers_are_refused() {
    let h = Harness::start().await;
    let good = installation("created", ACME, &account("acme", 501, OrgType::Organization));
    let right = good.signature.clone().expect("a signed delivery");
    let mac = right.strip_prefix("sha256=").expect("a sha256= signature").to_owned();

    let answer = post_raw(&h, &headers_without(&good, SIGNATURE_HEADER), good.body.clone()).await;
    let message = answer.expect_error(401, "signature_missing");
    assert!(message.contains("X-Hub-Signature-256"), "names the header: {message}");
    assert!(answer.content_type.starts_with("application/json"), "{}", answer.content_type);

    let refused = [
        ("the right MAC under the sha1 scheme", format!("sha1={mac}")),
        ("a SHA-1 length MAC", format!("sha1={}", &mac[..40])),
        ("no scheme", mac.clone()),
        ("upper-case scheme", format!("SHA256={mac}")),
        ("not hexadecimal", format!("sha256={}", "zz".repeat(32))),
        ("too short", format!("sha256={}", &mac[..63])),
        ("too long", format!("sha256={mac}0")),
        ("empty MAC", "sha256=".to_owned()),
        ("empty header", String::new()),
        ("one digit off", format!("sha256={}{}", &mac[..63], if mac.ends_with('0') { '1' } else { '0' })),
    ];
    for (case, signature) in refused {
        let delivery = good.clone().with_signature(Some(signature));
        let answer = deliver(&h, &delivery).await;
        assert_eq!(answer.status, 401, "{case}: {}", answer.text);
        assert_eq!(answer.json()["error"], "signature_invalid", "{case}: {}", answer.text);
    }
    assert_nothing_recorded(&h, &good.guid).await;
    assert_applied(&deliver(&h, &good).await, "tenant created");
}

#[tokio::test]
async fn the_signature_covers_the_exact_raw_bytes() {
    let h = Harness::start().await;
    let acme = account("acme", 501, OrgType::Organization);
    let compact = installation("created", ACME, &acme);
    let payload: serde_json::Value = serde_json::from_slice(&compact.body).expect("JSON");
    let pretty = serde_json::to_vec_pretty(&payload).expect("serialisable");
    assert_ne!(pretty, compact.body);

    // The same JSON with other whitespace, under the signature of the compact bytes: refused.
    let reformatted = SignedDelivery { body: pretty.clone(), ..compact.clone() };
    deliver(&h, &reformatted).await.expect_error(401, "signature_invalid");
    // A trailing newline is a different body too.
    let mut newline = compact.body.clone();
    newline.push(b'\n');
    deliver(&h, &SignedDelivery { body: newline, ..compact.clone() }).await.expect_error(401, "signature_invalid");
    assert_nothing_recorded(&h, &compact.guid).await;

    // The pretty bytes signed as they are: accepted (the body is never re-serialised before the check).
    let signed_pretty = SignedDelivery::from_body(INSTALLATION, pretty, WEBHOOK_SECRET).with_guid(compact.guid.clone());
    assert_applied(&deliver(&h, &signed_pretty).await, "tenant created");
    assert!(tenant(&h, ACME).await.is_some());
}

#[tokio::test]
async fn the_signature_is_checked_before_headers_and_body() {
    let h = Harness::start().await;
    let good = installation("created", ACME, &account("acme", 501, OrgType::Organization));
    let wrong = sign("not-the-secret", &good.body);

    let mut headers = headers_without(&good, EVENT_HEADER);
    headers.retain(|(name, _)| *name != SIGNATURE_HEADER);
    headers.push((SIGNATURE_HEADER, wrong.clone()));
    post_raw(&h, &headers, good.body.clone()).await.expect_error(401, "signature_invalid");

    let garbage = b"{\"action\": \"created\", \"installation\": ".to_vec();
    let unsigned_garbage = SignedDelivery::from_body(INSTALLATION, garbage, "not-the-secret");
    deliver(&h, &unsigned_garbage).await.expect_error(401, "signature_invalid");
    assert_nothing_recorded(&h, &good.guid).await;
}
