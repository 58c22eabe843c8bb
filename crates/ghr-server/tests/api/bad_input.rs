//! Admin input that used to be accepted: impossible installation ids, org names GitHub would never allow,
//! limits that remove the limit, and a second live tenant under an existing login. Each is refused with the
//! right status and a message that says what to fix, and nothing is written.

use crate::support::Harness;
use ghr_core::input::GITHUB_ID_MAX;
use ghr_core::tenant::MAX_RUNNERS_LIMIT;
use serde_json::{Value, json};

/// An error answer quotes at most a clipped piece of the input.
const SHORT_ANSWER: usize = 1200;

async fn tenant_count(h: &Harness) -> usize {
    h.get("/api/v1/tenants").await.expect(200)["items"].as_array().map(Vec::len).expect("a list")
}

#[tokio::test]
async fn impossible_ids_and_names_are_refused_with_400_and_nothing_is_written() {
    let h = Harness::start().await;
    let huge = "a".repeat(1024 * 1024);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"installation_id": 0, "org_name": "acme"}), "installation_id"),
        (json!({"installation_id": GITHUB_ID_MAX + 1, "org_name": "acme"}), "installation_id"),
        (json!({"installation_id": u64::MAX, "org_name": "acme"}), "installation_id"),
        (json!({"installation_id": 1, "org_name": ""}), "org_name"),
        (json!({"installation_id": 1, "org_name": huge}), "org_name"),
        (json!({"installation_id": 1, "org_name": "ac\u{0}me"}), "org_name"),
        (json!({"installation_id": 1, "org_name": "acme\r\nX-Injected: 1"}), "org_name"),
        (json!({"installation_id": 1, "org_name": "../../etc"}), "org_name"),
        (json!({"installation_id": 1, "org_name": "-acme"}), "org_name"),
        (json!({"installation_id": 1, "org_name": "ac--me"}), "org_name"),
        (json!({"installation_id": 1, "org_name": "a".repeat(40)}), "org_name"),
        (json!({"installation_id": 1, "org_name": " acme "}), "org_name"),
    ];
    for (body, field) in cases {
        let answer = h.post("/api/v1/tenants", Some(&body)).await;
        assert!(answer.text.len() < SHORT_ANSWER, "{field}: a {} byte answer", answer.text.len());
        let message = answer.expect_error(400, "bad_request");
        assert!(message.contains(field), "the message names {field}: {message}");
    }
    assert_eq!(tenant_count(&h).await, 0, "nothing was written");
    let ok = json!({"installation_id": GITHUB_ID_MAX, "org_name": "a".repeat(39)});
    h.post("/api/v1/tenants", Some(&ok)).await.expect(201);
}

#[tokio::test]
async fn max_runners_beyond_the_bound_is_refused() {
    let h = Harness::start().await;
    h.post("/api/v1/tenants", Some(&json!({"installation_id": 11, "org_name": "acme"}))).await.expect(201);
    for bad in [u64::from(u32::MAX), u64::from(MAX_RUNNERS_LIMIT) + 1, 0] {
        let answer = h.put("/api/v1/tenants/acme/tier", &json!({"tier": "large", "max_runners": bad})).await;
        let message = answer.expect_error(400, "bad_request");
        assert!(message.contains("max_runners"), "{bad}: {message}");
    }
    let shown = h.get("/api/v1/tenants/acme").await.expect(200);
    assert_eq!((shown["tier"].as_str(), shown["max_runners"].as_u64()), (Some("small"), Some(2)), "unchanged");
    let top = json!({"tier": "large", "max_runners": MAX_RUNNERS_LIMIT});
    let changed = h.put("/api/v1/tenants/acme/tier", &top).await.expect(200);
    assert_eq!(changed["max_runners"].as_u64(), Some(u64::from(MAX_RUNNERS_LIMIT)));
}

#[tokio::test]
async fn a_second_live_tenant_with_an_existing_login_is_refused_with_409() {
    let h = Harness::start().await;
    h.post("/api/v1/tenants", Some(&json!({"installation_id": 21, "org_name": "ADM1"}))).await.expect(201);
    for login in ["ADM1", "adm1", "Adm1"] {
        let answer = h.post("/api/v1/tenants", Some(&json!({"installation_id": 22, "org_name": login}))).await;
        let message = answer.expect_error(409, "conflict");
        assert!(message.contains("already used by tenant 21"), "names the holder: {message}");
    }
    assert_eq!(tenant_count(&h).await, 1, "nothing was written");
    // The login names one tenant, so an operator's action hits it.
    let suspended = h.post("/api/v1/tenants/adm1/suspend", None).await.expect(200);
    assert_eq!(suspended["installation_id"].as_u64(), Some(21));
    // A suspended tenant still holds its login.
    let answer = h.post("/api/v1/tenants", Some(&json!({"installation_id": 23, "org_name": "adm1"}))).await;
    answer.expect_error(409, "conflict");
}

#[tokio::test]
async fn an_unknown_huge_reference_is_not_echoed_back() {
    let h = Harness::start().await;
    let reference = "x".repeat(6 * 1024);
    let answer = h.get(&format!("/api/v1/tenants/{reference}")).await;
    assert!(answer.text.len() < SHORT_ANSWER, "a {} byte answer", answer.text.len());
    answer.expect_error(404, "not_found");
}
