//! The admin API contract, end to end against a real server: bearer-token protection of every route, and
//! `openapi.json` kept in sync with the routes, types and real answers of the server.

#[path = "api/bad_input.rs"]
mod bad_input;
#[path = "api/fleet_views.rs"]
mod fleet_views;
#[path = "api/remote_parity.rs"]
mod remote_parity;
mod support;
#[path = "api/tenants.rs"]
mod tenants;

use ghr_api::{
    ApiError, ErrorBody, JobDetail, JobStatus, NewTenantRequest, Reason, RunnerState, RunnerStates, SetTierRequest,
    TenantDetail, TenantStatus, UsageReport,
};
use ghr_config::Onboarding;
use ghr_server::api::ROUTES;
use ghr_server::webhook::{HEADER_DELIVERY, HEADER_SIGNATURE};
use ghr_testkit::webhook::{SignedDelivery, default_sender, installation_payload, sign};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::openapi::Spec;
use support::{ADMIN_TOKEN, Harness, MAX_BODY_BYTES, SMALL, WEBHOOK_PATH, WEBHOOK_SECRET, fleet};

/// Routes served outside `/api/v1`, without the admin token.
const UNPROTECTED: &[(&str, &str)] = &[("get", "/healthz"), ("get", "/readyz"), ("post", WEBHOOK_PATH)];

fn method(name: &str) -> Method {
    name.to_uppercase().parse().expect("an HTTP method")
}

#[tokio::test]
async fn every_admin_route_requires_the_bearer_token() {
    let h = Harness::start_with(|s| s.onboarding = Onboarding::Approval).await;
    let acme = h.install("acme").await;
    let job = h.queue(acme, "app", SMALL).await;
    // One request per route that succeeds with the right token, in an order that makes each succeed.
    let table: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        ("get", "/api/v1/tenants", "/api/v1/tenants?status=pending".into(), None, 200),
        (
            "post",
            "/api/v1/tenants",
            "/api/v1/tenants".into(),
            Some(json!({"installation_id": 777, "org_name": "zeta"})),
            201,
        ),
        ("get", "/api/v1/tenants/{tenant}", "/api/v1/tenants/acme".into(), None, 200),
        (
            "put",
            "/api/v1/tenants/{tenant}/tier",
            "/api/v1/tenants/acme/tier".into(),
            Some(json!({"tier": "medium"})),
            200,
        ),
        ("post", "/api/v1/tenants/{tenant}/approve", "/api/v1/tenants/acme/approve".into(), None, 200),
        ("post", "/api/v1/tenants/{tenant}/suspend", "/api/v1/tenants/acme/suspend".into(), None, 200),
        ("post", "/api/v1/tenants/{tenant}/resume", "/api/v1/tenants/acme/resume".into(), None, 200),
        ("get", "/api/v1/runners", "/api/v1/runners?state=all".into(), None, 200),
        ("get", "/api/v1/jobs", "/api/v1/jobs?status=queued".into(), None, 200),
        ("get", "/api/v1/jobs/{job}", format!("/api/v1/jobs/{job}"), None, 200),
        ("get", "/api/v1/usage", "/api/v1/usage?format=csv".into(), None, 200),
        ("get", "/api/v1/reconciler", "/api/v1/reconciler".into(), None, 200),
    ];
    let driven: BTreeSet<(&str, &str)> = table.iter().map(|(m, p, ..)| (*m, *p)).collect();
    let routes: BTreeSet<(&str, &str)> = ROUTES.iter().copied().collect();
    assert_eq!(driven, routes, "the test must drive every route in api::ROUTES");

    let refused = [
        None,
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {ADMIN_TOKEN}x")),
        Some(format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])),
        Some(format!("Basic {ADMIN_TOKEN}")),
        Some(ADMIN_TOKEN.to_owned()),
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
    ];
    for (m, route, path, body, ok) in &table {
        for authorization in &refused {
            let answer = h.send_raw(method(m), path, authorization.as_deref(), body.as_ref(), None).await;
            let message = answer.expect_error(401, "unauthorized");
            assert!(message.contains("Authorization: Bearer"), "{m} {route}: {message}");
        }
        // The refused attempts changed nothing: the first authorised one still succeeds (no 409 on the add).
        let answer = h.send_raw(method(m), path, Some(&format!("Bearer {ADMIN_TOKEN}")), body.as_ref(), None).await;
        assert_eq!(answer.status, *ok, "{m} {route} with the right token: {}", answer.text);
    }
    // Health and webhook routes are not behind the token.
    assert_eq!(h.send_raw(Method::GET, "/healthz", None, None, None).await.status, 200);
    assert_eq!(h.send_raw(Method::GET, "/readyz", None, None, None).await.status, 200);
}

#[test]
fn openapi_lists_exactly_the_served_routes() {
    let spec = Spec::load();
    let documented: BTreeSet<(String, String)> = spec.operations().into_iter().map(|op| (op.method, op.path)).collect();
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().chain(UNPROTECTED).map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "undocumented routes: {missing:?}; documented but not served: {extra:?}"
    );

    let mut operation_ids = BTreeSet::new();
    for op in spec.operations() {
        let id =
            op.body["operationId"].as_str().unwrap_or_else(|| panic!("{} {} has no operationId", op.method, op.path));
        assert!(operation_ids.insert(id.to_owned()), "operationId {id} is used twice");
        // Every `{param}` of the template is a declared path parameter, and nothing else is.
        let in_template: BTreeSet<String> = op
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        let declared: BTreeSet<String> = op.body["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| spec.resolve(p))
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "path parameters are required");
                p["name"].as_str().expect("a named parameter").to_owned()
            })
            .collect();
        assert_eq!(in_template, declared, "{} {}: path parameters", op.method, op.path);
    }
}

#[test]
fn openapi_operations_document_success_and_error_answers() {
    let spec = Spec::load();
    assert_eq!(spec.doc()["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for op in spec.operations() {
        let name = format!("{} {}", op.method, op.path);
        let responses = op.body["responses"].as_object().unwrap_or_else(|| panic!("{name} has no responses"));
        let success = ["200", "201"].into_iter().find(|code| responses.contains_key(*code));
        let success = success.unwrap_or_else(|| panic!("{name} documents no 200/201 answer"));
        let answer = spec.resolve(&responses[success]);
        let content = answer["content"].as_object().unwrap_or_else(|| panic!("{name} {success} has no content"));
        assert!(content.values().all(|media| media.get("schema").is_some()), "{name} {success} lacks a schema");

        let protected = spec.is_protected(&op);
        assert_eq!(protected, op.path.starts_with("/api/v1/"), "{name}: only the admin API needs the token");
        let codes: BTreeSet<&str> = responses.keys().map(String::as_str).collect();
        let params: Vec<&Value> =
            op.body["parameters"].as_array().into_iter().flatten().map(|p| spec.resolve(p)).collect();
        let takes_input = op.body.get("requestBody").is_some() || params.iter().any(|p| p["in"] == "query");
        let names_a_resource = op.path.contains('{') || params.iter().any(|p| p["name"] == "tenant");
        let mut wanted = Vec::new();
        if protected {
            wanted.extend(["401", "500"]);
            if takes_input {
                wanted.push("400");
            }
            if names_a_resource {
                wanted.push("404");
            }
            if op.method == "post" && op.path.starts_with("/api/v1/tenants") {
                wanted.push("409");
            }
        }
        if op.path == WEBHOOK_PATH {
            wanted.extend(["202", "400", "401", "413", "415", "500"]);
        }
        for code in wanted {
            assert!(codes.contains(code), "{name} does not document {code} (it documents {codes:?})");
        }
    }
}

#[test]
fn openapi_types_match_the_rust_types() {
    let spec = Spec::load();
    let enum_of = |name: &str| -> Vec<String> {
        spec.schema(name)["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .map(|v| v.as_str().expect("a string").to_owned())
            .collect()
    };
    let names = |all: Vec<&'static str>| all.into_iter().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(enum_of("TenantStatus"), names(TenantStatus::ALL.iter().map(|s| s.as_str()).collect()));
    assert_eq!(enum_of("RunnerState"), names(RunnerState::ALL.iter().map(|s| s.as_str()).collect()));
    assert_eq!(enum_of("JobStatus"), names(JobStatus::ALL.iter().map(|s| s.as_str()).collect()));
    assert_eq!(enum_of("Reason"), names(Reason::ALL.iter().map(|r| r.as_str()).collect()));
    assert_eq!(enum_of("OrgType"), names(ghr_api::OrgType::ALL.iter().map(|t| t.as_str()).collect()));
    let runners = spec.operation("get", "/api/v1/runners");
    let runner_filter = &runners.body["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "state")
        .expect("a state parameter")["schema"]["enum"];
    let states: Vec<&str> = RunnerStates::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(runner_filter, &json!(states));

    // Error bodies: the fields ErrorBody serialises, and a code for every ApiError.
    let body = serde_json::to_value(ErrorBody { error: "x".into(), message: "y".into() }).expect("serialisable");
    let mut errors = Vec::new();
    spec.check(spec.schema("Error"), &json!({"error": "conflict", "message": "y"}), "$", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let fields: BTreeSet<String> = body.as_object().expect("an object").keys().cloned().collect();
    assert_eq!(spec.required_fields(spec.schema("Error")), fields);
    let codes = enum_of_error(&spec);
    for error in [
        ApiError::NotFound(String::new()),
        ApiError::BadRequest(String::new()),
        ApiError::Conflict(String::new()),
        ApiError::Unauthorized,
        ApiError::Internal(String::new()),
        ApiError::Unavailable(String::new()),
    ] {
        assert!(codes.contains(error.code()), "error code {} is not documented", error.code());
    }

    // Request bodies: every field the Rust type has is documented, and the documented required ones are the
    // ones without a serde default.
    let full = NewTenantRequest {
        installation_id: 1,
        org_name: "acme".into(),
        org_type: ghr_api::OrgType::User,
        tier: Some("small".into()),
    };
    assert_request_fields(
        &spec,
        "NewTenantRequest",
        &serde_json::to_value(full).expect("serialisable"),
        &["installation_id", "org_name"],
    );
    let full = SetTierRequest { tier: "small".into(), max_runners: Some(3) };
    assert_request_fields(&spec, "SetTierRequest", &serde_json::to_value(full).expect("serialisable"), &["tier"]);
    for name in ["NewTenantRequest", "SetTierRequest"] {
        let example = &spec.schema(name)["example"];
        let mut errors = Vec::new();
        spec.check(spec.schema(name), example, "$", &mut errors);
        assert!(errors.is_empty(), "the {name} example does not match its schema: {errors:?}");
    }
    serde_json::from_value::<NewTenantRequest>(spec.schema("NewTenantRequest")["example"].clone())
        .expect("a valid example");
    serde_json::from_value::<SetTierRequest>(spec.schema("SetTierRequest")["example"].clone())
        .expect("a valid example");
}

fn enum_of_error(spec: &Spec) -> BTreeSet<String> {
    spec.schema("Error")["properties"]["error"]["enum"]
        .as_array()
        .expect("an enum of codes")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn assert_request_fields(spec: &Spec, name: &str, full: &Value, required: &[&str]) {
    let schema = spec.schema(name);
    let documented: BTreeSet<&str> =
        schema["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
    let sent: BTreeSet<&str> = full.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(documented, sent, "{name}: documented vs. Rust fields");
    let required: BTreeSet<String> = required.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(spec.required_fields(schema), required, "{name}: required fields");
    assert_eq!(schema["additionalProperties"], false, "{name}: the server refuses unknown fields");
    let mut errors = Vec::new();
    spec.check(schema, full, "$", &mut errors);
    assert!(errors.is_empty(), "{name}: {errors:?}");
}

#[tokio::test]
async fn openapi_schemas_match_real_answers() {
    let spec = Spec::load();
    let h = Harness::start().await;
    let f = fleet::build(&h).await;
    let ok = |m: &str, p: &str, v: &Value| spec.assert_answer(m, p, 200, v);

    let tenants = h.get("/api/v1/tenants").await.expect(200);
    ok("get", "/api/v1/tenants", &tenants);
    assert_eq!(tenants["items"].as_array().map(Vec::len), Some(2));
    let detail = h.get("/api/v1/tenants/acme").await.expect(200);
    ok("get", "/api/v1/tenants/{tenant}", &detail);
    serde_json::from_value::<TenantDetail>(detail).expect("a TenantDetail");
    let changed = h.put("/api/v1/tenants/beta/tier", &json!({"tier": "large", "max_runners": 4})).await.expect(200);
    ok("put", "/api/v1/tenants/{tenant}/tier", &changed);
    for action in ["resume", "suspend"] {
        let tenant = h.post(&format!("/api/v1/tenants/beta/{action}"), None).await.expect(200);
        ok("post", &format!("/api/v1/tenants/{{tenant}}/{action}"), &tenant);
    }
    let added =
        h.post("/api/v1/tenants", Some(&json!({"installation_id": 31337, "org_name": "gamma"}))).await.expect(201);
    spec.assert_answer("post", "/api/v1/tenants", 201, &added);
    ok("get", "/api/v1/runners", &h.get("/api/v1/runners?state=all").await.expect(200));
    ok("get", "/api/v1/jobs", &h.get("/api/v1/jobs").await.expect(200));
    for job in [f.starting, f.done, f.suspended, f.foreign, f.not_entitled] {
        let detail = h.get(&format!("/api/v1/jobs/{job}")).await.expect(200);
        ok("get", "/api/v1/jobs/{job}", &detail);
        serde_json::from_value::<JobDetail>(detail).expect("a JobDetail");
    }
    let usage = h.get("/api/v1/usage").await.expect(200);
    ok("get", "/api/v1/usage", &usage);
    assert!(!serde_json::from_value::<UsageReport>(usage).expect("a UsageReport").rows.is_empty());
    let csv = h.get("/api/v1/usage?format=csv").await;
    assert!(csv.content_type.starts_with("text/csv"), "{}", csv.content_type);
    spec.response_schema("get", "/api/v1/usage", 200, "text/csv");
    ok("get", "/api/v1/reconciler", &h.get("/api/v1/reconciler").await.expect(200));
    h.server.reconciler.pass(chrono::Utc::now()).await;
    let reconciler = h.get("/api/v1/reconciler").await.expect(200);
    assert!(reconciler["report"].is_object(), "{reconciler}");
    ok("get", "/api/v1/reconciler", &reconciler);

    // Error answers.
    let errors = [
        ("get", "/api/v1/tenants", "/api/v1/tenants?status=bogus", 400),
        ("get", "/api/v1/tenants/{tenant}", "/api/v1/tenants/nobody", 404),
        ("post", "/api/v1/tenants/{tenant}/approve", "/api/v1/tenants/acme/approve", 409),
        ("get", "/api/v1/jobs/{job}", "/api/v1/jobs/not-a-number", 400),
    ];
    for (m, route, path, status) in errors {
        let answer = h.send(method(m), path, None).await;
        spec.assert_answer(m, route, status, &answer.expect(status));
    }
    let refused = h.send_raw(Method::GET, "/api/v1/tenants", None, None, None).await;
    spec.assert_answer("get", "/api/v1/tenants", 401, &refused.expect(401));

    // Health.
    ok("get", "/healthz", &h.send_raw(Method::GET, "/healthz", None, None, None).await.expect(200));
    ok("get", "/readyz", &h.send_raw(Method::GET, "/readyz", None, None, None).await.expect(200));

    // Webhook answers.
    let hook = |delivery: SignedDelivery| {
        let h = &h;
        async move { delivery.send(&h.http, &format!("{}{WEBHOOK_PATH}", h.base)).await.expect("a webhook answer") }
    };
    let account = ghr_core::event::Account {
        login: "delta".into(),
        id: ghr_core::ids::AccountId(404_404),
        kind: ghr_core::tenant::OrgType::Organization,
    };
    let created = installation_payload(
        "created",
        ghr_core::ids::InstallationId(5150),
        &account,
        h.github.app_id(),
        None,
        &default_sender(),
    );
    let delivery = SignedDelivery::new("installation", &created, WEBHOOK_SECRET);
    let cases = [
        (delivery.clone(), 202),
        (delivery.clone(), 200),
        (SignedDelivery::new("ping", &json!({"zen": "Keep it logically awesome."}), WEBHOOK_SECRET), 200),
        (SignedDelivery::unsigned("ping", &json!({})), 401),
        (delivery.clone().with_signature(Some(sign("not-the-secret", &delivery.body))), 401),
        (SignedDelivery::new("workflow_job", &json!({"action": "queued"}), WEBHOOK_SECRET), 400),
        (SignedDelivery::from_body("ping", vec![b' '; MAX_BODY_BYTES + 1], WEBHOOK_SECRET), 413),
    ];
    for (delivery, status) in cases {
        let response = hook(delivery).await;
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.expect("a JSON answer");
        spec.assert_answer("post", WEBHOOK_PATH, status, &body);
    }
    let headerless = h
        .http
        .post(format!("{}{WEBHOOK_PATH}", h.base))
        .header(HEADER_SIGNATURE, sign(WEBHOOK_SECRET, b"{}"))
        .header(HEADER_DELIVERY, "d-1")
        .body("{}")
        .send()
        .await
        .expect("a webhook answer");
    assert_eq!(headerless.status().as_u16(), 400);
    let body: Value = headerless.json().await.expect("a JSON answer");
    assert_eq!(body["error"], "missing_event");
    spec.assert_answer("post", WEBHOOK_PATH, 400, &body);
    let form_body = b"payload=%7B%7D";
    let form = h
        .http
        .post(format!("{}{WEBHOOK_PATH}", h.base))
        .header(HEADER_SIGNATURE, sign(WEBHOOK_SECRET, form_body))
        .header(HEADER_DELIVERY, "d-2")
        .header("x-github-event", "ping")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body.to_vec())
        .send()
        .await
        .expect("a webhook answer");
    assert_eq!(form.status().as_u16(), 415);
    let body: Value = form.json().await.expect("a JSON answer");
    spec.assert_answer("post", WEBHOOK_PATH, 415, &body);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_401_names_the_scheme() {
    let h = Harness::start().await;
    let lower = h.send_raw(Method::GET, "/api/v1/tenants", Some(&format!("bearer {ADMIN_TOKEN}")), None, None).await;
    assert_eq!(lower.status, 200, "{}", lower.text);
    let refused = h.http.get(format!("{}/api/v1/tenants", h.base)).send().await.expect("request");
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "WWW-Authenticate: {challenge:?}");
}

#[tokio::test]
async fn resume_does_not_skip_approval() {
    let h = Harness::start_with(|s| s.onboarding = Onboarding::Approval).await;
    h.install("pendingco").await;
    let answer = h.post("/api/v1/tenants/pendingco/resume", None).await;
    let message = answer.expect_error(409, "conflict");
    assert!(message.contains("pending"), "{message}");
    h.post("/api/v1/tenants/pendingco/approve", None).await.expect(200);
}
