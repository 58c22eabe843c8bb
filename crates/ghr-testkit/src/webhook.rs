//! Webhook helpers: HMAC signatures, signed delivery requests, and GitHub-shaped event payloads.
//!
//! The emulator sends its webhooks through these builders, and tests of ghr's `/webhook` endpoint
//! use them to craft valid, invalid and unsigned deliveries.

use axum::body::Body;
use axum::http::{self, Request};
use chrono::{DateTime, SecondsFormat, Utc};
use ghr_core::event::{Account, Sender};
use ghr_core::ids::{GithubRunnerId, InstallationId, JobId};
use ghr_core::job::JobStatus;
use ghr_core::tenant::OrgType;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `X-Hub-Signature-256`: HMAC-SHA256 of the exact body.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// `X-GitHub-Event`: the event name (`workflow_job`, `installation`, ...).
pub const EVENT_HEADER: &str = "x-github-event";
/// `X-GitHub-Delivery`: the delivery GUID, kept by redeliveries.
pub const DELIVERY_HEADER: &str = "x-github-delivery";
/// `X-GitHub-Hook-ID`: the id of the webhook configuration.
pub const HOOK_ID_HEADER: &str = "x-github-hook-id";
/// `X-GitHub-Hook-Installation-Target-ID`: for App webhooks, the App id.
pub const TARGET_ID_HEADER: &str = "x-github-hook-installation-target-id";
/// `X-GitHub-Hook-Installation-Target-Type`: for App webhooks, `integration`.
pub const TARGET_TYPE_HEADER: &str = "x-github-hook-installation-target-type";
/// The prefix of the signature header's value.
pub const SIGNATURE_PREFIX: &str = "sha256=";
/// The `User-Agent` GitHub's webhook sender uses (`GitHub-Hookshot/<short sha>`).
pub const HOOKSHOT_USER_AGENT: &str = "GitHub-Hookshot/e1a2b3c";
/// The target type of App webhooks.
pub const APP_TARGET_TYPE: &str = "integration";
/// The hook id the emulator reports for the App's webhook.
pub const APP_HOOK_ID: u64 = 448_811_020;

/// The user every emulated event is attributed to (GitHub's mascot).
pub fn default_sender() -> Sender {
    Sender { login: "octocat".to_owned(), id: ghr_core::ids::AccountId(583_231) }
}

/// `sha256=<hex>`: the value of `X-Hub-Signature-256` for `body` under `secret`.
pub fn sign(secret: impl AsRef<[u8]>, body: &[u8]) -> String {
    let mut mac = hmac_sha256(secret.as_ref());
    mac.update(body);
    format!("{SIGNATURE_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` (the full `sha256=<hex>` value) is the signature of `body` under `secret`,
/// compared in constant time.
pub fn verify(secret: impl AsRef<[u8]>, body: &[u8], header: &str) -> bool {
    let Some(hex_part) = header.strip_prefix(SIGNATURE_PREFIX) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_part) else {
        return false;
    };
    let mut mac = hmac_sha256(secret.as_ref());
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn hmac_sha256(secret: &[u8]) -> Hmac<Sha256> {
    // RFC 2104: a key longer than the hash's block is hashed, a shorter one is zero-padded to the
    // block. Doing that here yields a block-sized key, whose constructor cannot fail.
    let mut key = hmac::digest::Key::<Hmac<Sha256>>::default();
    if secret.len() > key.len() {
        let digest = Sha256::digest(secret);
        key[..digest.len()].copy_from_slice(&digest);
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    <Hmac<Sha256> as KeyInit>::new(&key)
}

/// A fresh delivery GUID in GitHub's format (a random UUID, lower-case, hyphenated).
pub fn new_guid() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-4{}-{}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        variant_nibble(bytes[8]),
        &hex[17..20],
        &hex[20..32]
    )
}

fn variant_nibble(byte: u8) -> char {
    // RFC 4122 variant: the top two bits are `10`, so the first hex digit is 8, 9, a or b.
    const VARIANT: [char; 4] = ['8', '9', 'a', 'b'];
    VARIANT[usize::from(byte >> 6)]
}

/// GitHub's timestamp format in payloads: RFC 3339, whole seconds, `Z`.
pub fn github_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One webhook delivery as an HTTP request: headers and the exact body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDelivery {
    pub event: String,
    pub guid: String,
    pub body: Vec<u8>,
    /// The `X-Hub-Signature-256` value; `None` sends no signature header.
    pub signature: Option<String>,
    pub hook_id: u64,
    /// `(id, type)` for the `X-GitHub-Hook-Installation-Target-*` headers.
    pub target: (u64, String),
}

impl SignedDelivery {
    /// A delivery of `payload` for `event`, signed with `secret`, with a fresh GUID.
    pub fn new(event: &str, payload: &Value, secret: impl AsRef<[u8]>) -> Self {
        Self::from_body(event, payload.to_string().into_bytes(), secret)
    }

    /// A delivery of exactly these body bytes, signed with `secret`.
    pub fn from_body(event: &str, body: Vec<u8>, secret: impl AsRef<[u8]>) -> Self {
        let signature = Some(sign(secret, &body));
        Self {
            event: event.to_owned(),
            guid: new_guid(),
            body,
            signature,
            hook_id: APP_HOOK_ID,
            target: (0, APP_TARGET_TYPE.to_owned()),
        }
    }

    /// A delivery without a signature header.
    pub fn unsigned(event: &str, payload: &Value) -> Self {
        Self { signature: None, ..Self::from_body(event, payload.to_string().into_bytes(), b"") }
    }

    /// Replace the GUID (to simulate a redelivery or a duplicate).
    pub fn with_guid(mut self, guid: impl Into<String>) -> Self {
        self.guid = guid.into();
        self
    }

    /// Replace the signature header (`None` removes it), e.g. with a wrong one.
    pub fn with_signature(mut self, signature: Option<String>) -> Self {
        self.signature = signature;
        self
    }

    /// Set the `X-GitHub-Hook-Installation-Target-ID` (the App id for App webhooks).
    pub fn with_target_id(mut self, app_id: u64) -> Self {
        self.target.0 = app_id;
        self
    }

    /// Every header GitHub sends with a delivery, lower-case names.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            ("user-agent", HOOKSHOT_USER_AGENT.to_owned()),
            (EVENT_HEADER, self.event.clone()),
            (DELIVERY_HEADER, self.guid.clone()),
            (HOOK_ID_HEADER, self.hook_id.to_string()),
            (TARGET_ID_HEADER, self.target.0.to_string()),
            (TARGET_TYPE_HEADER, self.target.1.clone()),
        ];
        if let Some(signature) = &self.signature {
            headers.push((SIGNATURE_HEADER, signature.clone()));
        }
        headers
    }

    /// A `POST uri` request, for driving an axum router in-process (`tower::ServiceExt::oneshot`).
    pub fn to_request(&self, uri: &str) -> Result<Request<Body>, http::Error> {
        let mut builder = Request::post(uri);
        for (name, value) in self.headers() {
            builder = builder.header(name, value);
        }
        builder.body(Body::from(self.body.clone()))
    }

    /// POST the delivery to `url` with `client`.
    pub async fn send(&self, client: &reqwest::Client, url: &str) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = client.post(url);
        for (name, value) in self.headers() {
            request = request.header(name, value);
        }
        request.body(self.body.clone()).send().await
    }
}

/// A repository as payloads describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub id: u64,
    pub name: String,
    pub owner: Account,
}

impl Repository {
    /// `owner/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner.login, self.name)
    }
}

/// The `workflow_job` object of a `workflow_job` event.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowJobPayload {
    pub id: JobId,
    pub run_id: u64,
    pub name: String,
    pub workflow_name: String,
    pub head_branch: String,
    pub status: JobStatus,
    pub conclusion: Option<String>,
    pub labels: Vec<String>,
    pub runner_id: Option<GithubRunnerId>,
    pub runner_name: Option<String>,
    pub runner_group_id: Option<u64>,
    pub runner_group_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

fn account_json(account: &Account) -> Value {
    json!({
        "login": account.login.as_str(),
        "id": account.id.0,
        "node_id": format!("MDQ6VXNlcj{}", account.id.0),
        "type": account.kind.as_str(),
        "site_admin": false,
    })
}

fn sender_json(sender: &Sender) -> Value {
    json!({ "login": sender.login, "id": sender.id.0, "type": "User", "site_admin": false })
}

/// An `installation` event (`created`, `deleted`, `suspend`, `unsuspend`, ...).
pub fn installation_payload(
    action: &str,
    installation_id: InstallationId,
    account: &Account,
    app_id: u64,
    suspended_at: Option<DateTime<Utc>>,
    sender: &Sender,
) -> Value {
    let target_type = account.kind.as_str();
    let mut body = json!({
        "action": action,
        "installation": {
            "id": installation_id.0,
            "account": account_json(account),
            "app_id": app_id,
            "app_slug": "ghr-test",
            "target_id": account.id.0,
            "target_type": target_type,
            "repository_selection": "all",
            "permissions": { "organization_self_hosted_runners": "write", "administration": "write", "actions": "read" },
            "events": ["workflow_job"],
            "suspended_at": suspended_at.map(github_time),
            "suspended_by": suspended_at.map(|_| sender_json(sender)),
        },
        "sender": sender_json(sender),
    });
    if action == "created" {
        body["repositories"] = json!([]);
    }
    body
}

/// An `installation_target` event with action `renamed`: `account` carries the new login.
pub fn installation_target_renamed_payload(
    installation_id: InstallationId,
    account: &Account,
    old_login: &str,
    sender: &Sender,
) -> Value {
    json!({
        "action": "renamed",
        "account": account_json(account),
        "changes": { "login": { "from": old_login } },
        "installation": { "id": installation_id.0, "node_id": format!("MDIzOkludGVncmF0aW9u{}", installation_id.0) },
        "target_type": account.kind.as_str(),
        "sender": sender_json(sender),
    })
}

/// The `workflow_job` object, as the REST API (`GET .../actions/jobs/{id}`) and webhooks show it.
pub fn workflow_job_json(job: &WorkflowJobPayload, repository: &Repository) -> Value {
    let full_name = repository.full_name();
    json!({
        "id": job.id.0,
        "run_id": job.run_id,
        "run_attempt": 1,
        "node_id": format!("CR_kwDO{}", job.id.0),
        "head_sha": "0123456789abcdef0123456789abcdef01234567",
        "url": format!("https://api.github.com/repos/{full_name}/actions/jobs/{}", job.id.0),
        "html_url": format!("https://github.com/{full_name}/actions/runs/{}/job/{}", job.run_id, job.id.0),
        "run_url": format!("https://api.github.com/repos/{full_name}/actions/runs/{}", job.run_id),
        "status": job.status.as_str(),
        "conclusion": job.conclusion,
        // GitHub reports `started_at` even for a queued job (it equals `created_at` then).
        "created_at": github_time(job.created_at),
        "started_at": github_time(job.started_at.unwrap_or(job.created_at)),
        "completed_at": job.completed_at.map(github_time),
        "name": job.name,
        "workflow_name": job.workflow_name,
        "head_branch": job.head_branch,
        "steps": [],
        "labels": job.labels,
        "runner_id": job.runner_id.map(|id| id.0),
        "runner_name": job.runner_name,
        "runner_group_id": job.runner_group_id,
        "runner_group_name": job.runner_group_name,
    })
}

/// A `workflow_job` event (`queued`, `in_progress`, `completed`, `waiting`).
pub fn workflow_job_payload(
    action: &str,
    job: &WorkflowJobPayload,
    repository: &Repository,
    installation_id: InstallationId,
    sender: &Sender,
) -> Value {
    let mut body = json!({
        "action": action,
        "workflow_job": workflow_job_json(job, repository),
        "repository": {
            "id": repository.id,
            "node_id": format!("R_kgDO{}", repository.id),
            "name": repository.name,
            "full_name": repository.full_name(),
            "private": true,
            "owner": account_json(&repository.owner),
        },
        "installation": { "id": installation_id.0, "node_id": format!("MDIzOkludGVncmF0aW9u{}", installation_id.0) },
        "sender": sender_json(sender),
    });
    if repository.owner.kind == OrgType::Organization {
        body["organization"] = json!({ "login": repository.owner.login.as_str(), "id": repository.owner.id.0 });
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghr_core::ids::{AccountId, OrgName};

    #[test]
    fn signature_matches_githubs_documented_example() {
        let signature = sign("It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(signature, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert!(verify("It's a Secret to Everybody", b"Hello, World!", &signature));
        assert!(!verify("wrong secret", b"Hello, World!", &signature));
        assert!(!verify("It's a Secret to Everybody", b"Hello, World?", &signature));
        assert!(!verify("It's a Secret to Everybody", b"Hello, World!", "sha1=757107ea"));
        assert!(!verify("It's a Secret to Everybody", b"Hello, World!", "sha256=zz"));
    }

    #[test]
    fn keys_of_any_length_sign_like_plain_hmac() {
        for length in [0, 1, 63, 64, 65, 200] {
            let secret = vec![0x5a_u8; length];
            let mut reference = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
            reference.update(b"payload");
            let expected = format!("sha256={}", hex::encode(reference.finalize().into_bytes()));
            assert_eq!(sign(&secret, b"payload"), expected, "key of {length} bytes");
        }
    }

    #[test]
    fn guids_look_like_uuids_and_differ() {
        let a = new_guid();
        let b = new_guid();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn signed_delivery_carries_githubs_headers() {
        let payload = json!({"zen": "Design for failure."});
        let delivery = SignedDelivery::new("ping", &payload, "s3cret").with_target_id(42);
        let headers = delivery.headers();
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
        assert_eq!(get(EVENT_HEADER).as_deref(), Some("ping"));
        assert_eq!(get(TARGET_ID_HEADER).as_deref(), Some("42"));
        assert_eq!(get(TARGET_TYPE_HEADER).as_deref(), Some(APP_TARGET_TYPE));
        assert!(get("user-agent").is_some_and(|ua| ua.starts_with("GitHub-Hookshot/")));
        let signature = get(SIGNATURE_HEADER).unwrap();
        assert!(verify("s3cret", &delivery.body, &signature));
        let unsigned = SignedDelivery::unsigned("ping", &payload);
        assert!(unsigned.headers().iter().all(|(n, _)| *n != SIGNATURE_HEADER));
        let request = delivery.to_request("/webhook").unwrap();
        assert_eq!(request.headers()[DELIVERY_HEADER], delivery.guid.as_str());
    }

    #[test]
    fn workflow_job_payload_has_the_documented_shape() {
        let owner = Account { login: OrgName::from("acme"), id: AccountId(7), kind: OrgType::Organization };
        let repository = Repository { id: 9, name: "app".to_owned(), owner };
        let created = DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z").unwrap().with_timezone(&Utc);
        let job = WorkflowJobPayload {
            id: JobId(11),
            run_id: 12,
            name: "build".to_owned(),
            workflow_name: "CI".to_owned(),
            head_branch: "main".to_owned(),
            status: JobStatus::Queued,
            conclusion: None,
            labels: vec!["self-hosted".to_owned(), "ghr-small".to_owned()],
            runner_id: None,
            runner_name: None,
            runner_group_id: None,
            runner_group_name: None,
            created_at: created,
            started_at: None,
            completed_at: None,
        };
        let body = workflow_job_payload("queued", &job, &repository, InstallationId(5), &default_sender());
        assert_eq!(body["action"], "queued");
        assert_eq!(body["workflow_job"]["id"], 11);
        assert_eq!(body["workflow_job"]["status"], "queued");
        assert_eq!(body["workflow_job"]["created_at"], "2025-01-02T03:04:05Z");
        assert_eq!(body["workflow_job"]["runner_name"], Value::Null);
        assert_eq!(body["workflow_job"]["labels"][1], "ghr-small");
        assert_eq!(body["repository"]["full_name"], "acme/app");
        assert_eq!(body["repository"]["owner"]["type"], "Organization");
        assert_eq!(body["organization"]["login"], "acme");
        assert_eq!(body["installation"]["id"], 5);
    }

    #[test]
    fn installation_payloads_have_the_documented_shape() {
        let account = Account { login: OrgName::from("alice"), id: AccountId(3), kind: OrgType::User };
        let created = installation_payload("created", InstallationId(8), &account, 99, None, &default_sender());
        assert_eq!(created["installation"]["account"]["login"], "alice");
        assert_eq!(created["installation"]["account"]["type"], "User");
        assert_eq!(created["installation"]["app_id"], 99);
        assert!(created["repositories"].is_array());
        let renamed = installation_target_renamed_payload(InstallationId(8), &account, "alicia", &default_sender());
        assert_eq!(renamed["changes"]["login"]["from"], "alicia");
        assert_eq!(renamed["account"]["login"], "alice");
        assert_eq!(renamed["installation"]["id"], 8);
    }
}
