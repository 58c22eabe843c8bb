//! Deliveries to `POST /webhook` as GitHub sends them (or deliberately not): signed `installation`,
//! `installation_target` and `workflow_job` deliveries built from the testkit payloads, raw posts with any
//! headers, the answers read completely, and the store state the tests assert on.

use super::{Answer, Harness, WEBHOOK_PATH, WEBHOOK_SECRET};
use chrono::Utc;
use ghr_core::event::Account;
use ghr_core::ids::{AccountId, DeliveryId, InstallationId, JobId, OrgName};
use ghr_core::job::{Job, JobStatus};
use ghr_core::ports::{JobFilter, RunnerFilter};
use ghr_core::runner::{Runner, RunnerState};
use ghr_core::tenant::{OrgType, Tenant};
use ghr_testkit::webhook::{
    Repository, SignedDelivery, WorkflowJobPayload, default_sender, installation_payload,
    installation_target_renamed_payload, workflow_job_payload,
};
use reqwest::header::CONTENT_TYPE;

/// `X-GitHub-Event` of installation deliveries.
pub const INSTALLATION: &str = "installation";
/// `X-GitHub-Event` of rename deliveries.
pub const INSTALLATION_TARGET: &str = "installation_target";
/// `X-GitHub-Event` of job deliveries.
pub const WORKFLOW_JOB: &str = "workflow_job";

/// POST `body` with exactly these headers (nothing else GitHub would add); the answer read completely.
pub async fn post_raw(h: &Harness, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
    let mut request = h.http.post(format!("{}{WEBHOOK_PATH}", h.base));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.body(body).send().await.unwrap_or_else(|e| panic!("POST {WEBHOOK_PATH} failed: {e}"));
    read(response).await
}

/// POST a delivery with every header GitHub sends.
pub async fn deliver(h: &Harness, delivery: &SignedDelivery) -> Answer {
    let response = delivery
        .send(&h.http, &format!("{}{WEBHOOK_PATH}", h.base))
        .await
        .unwrap_or_else(|e| panic!("POST {WEBHOOK_PATH} ({} {}) failed: {e}", delivery.event, delivery.guid));
    read(response).await
}

async fn read(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type =
        response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.unwrap_or_else(|e| panic!("reading a webhook answer: {e}"));
    Answer { status, content_type, text }
}

/// The headers of `delivery` without the one named `omitted` (lower-case).
pub fn headers_without(delivery: &SignedDelivery, omitted: &str) -> Vec<(&'static str, String)> {
    delivery.headers().into_iter().filter(|(name, _)| *name != omitted).collect()
}

/// Assert `202 {"status": "applied", "detail": detail}`.
#[track_caller]
pub fn assert_applied(answer: &Answer, detail: &str) {
    let body = answer.expect(202);
    assert_eq!((body["status"].as_str(), body["detail"].as_str()), (Some("applied"), Some(detail)), "{body}");
}

/// Assert `200 {"status": "ignored", "detail": detail}`.
#[track_caller]
pub fn assert_ignored(answer: &Answer, detail: &str) {
    let body = answer.expect(200);
    assert_eq!((body["status"].as_str(), body["detail"].as_str()), (Some("ignored"), Some(detail)), "{body}");
}

/// Assert `200 {"status": "duplicate"}`.
#[track_caller]
pub fn assert_duplicate(answer: &Answer) {
    let body = answer.expect(200);
    assert_eq!(body["status"], "duplicate", "{body}");
}

/// An account as installation payloads describe it.
pub fn account(login: &str, id: u64, kind: OrgType) -> Account {
    Account { login: OrgName::from(login), id: AccountId(id), kind }
}

/// A signed `installation` delivery (`created`, `deleted`, `suspend`, `unsuspend`, ...) with a fresh GUID.
pub fn installation(action: &str, id: InstallationId, account: &Account) -> SignedDelivery {
    let suspended_at = (action == "suspend").then(Utc::now);
    let payload = installation_payload(action, id, account, APP_ID, suspended_at, &default_sender());
    SignedDelivery::new(INSTALLATION, &payload, WEBHOOK_SECRET)
}

/// A signed `installation_target.renamed` delivery: `account` carries the new login.
pub fn renamed(id: InstallationId, account: &Account, old_login: &str) -> SignedDelivery {
    let payload = installation_target_renamed_payload(id, account, old_login, &default_sender());
    SignedDelivery::new(INSTALLATION_TARGET, &payload, WEBHOOK_SECRET)
}

/// The App id written into crafted installation payloads (ghr does not read it).
const APP_ID: u64 = 1;

/// One repository of a tenant, and the `workflow_job` deliveries about its jobs.
#[derive(Debug, Clone)]
pub struct JobSource {
    pub installation: InstallationId,
    pub repository: Repository,
}

impl JobSource {
    /// A repository of `owner` that only the deliveries know about (no runner can be registered for it).
    pub fn new(installation: InstallationId, owner: &Account, repo_id: u64, repo: &str) -> JobSource {
        JobSource { installation, repository: Repository { id: repo_id, name: repo.to_owned(), owner: owner.clone() } }
    }

    /// A repository the emulator knows (created there if needed), so that runners for its jobs can be
    /// registered.
    pub fn from_emulator(h: &Harness, installation: InstallationId, repo: &str) -> JobSource {
        let info = h.github.installation(installation).expect("an installation the emulator knows");
        let id = h.github.ensure_repo(installation, repo).expect("a repository of the installation");
        let owner = account(&info.account_login, info.account_id.0, info.account_kind);
        JobSource { installation, repository: Repository { id, name: repo.to_owned(), owner } }
    }

    /// `owner/name`, as the store records it.
    pub fn full_name(&self) -> String {
        self.repository.full_name()
    }

    /// The payload of a `workflow_job` delivery for `job` asking for `labels`.
    pub fn payload(&self, action: &str, job: JobId, labels: &[&str], runner: Option<&str>) -> serde_json::Value {
        let now = Utc::now();
        let (status, conclusion) = match action {
            "in_progress" => (JobStatus::InProgress, None),
            "completed" => (JobStatus::Completed, Some("success".to_owned())),
            _ => (JobStatus::Queued, None),
        };
        let job = WorkflowJobPayload {
            id: job,
            run_id: job.0 + 1,
            name: "build".into(),
            workflow_name: "CI".into(),
            head_branch: "main".into(),
            status,
            conclusion,
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            runner_id: None,
            runner_name: runner.map(str::to_owned),
            runner_group_id: None,
            runner_group_name: None,
            created_at: now,
            started_at: (status >= JobStatus::InProgress).then_some(now),
            completed_at: (status == JobStatus::Completed).then_some(now),
        };
        workflow_job_payload(action, &job, &self.repository, self.installation, &default_sender())
    }

    /// A signed `workflow_job` delivery with a fresh GUID.
    pub fn delivery(&self, action: &str, job: JobId, labels: &[&str], runner: Option<&str>) -> SignedDelivery {
        SignedDelivery::new(WORKFLOW_JOB, &self.payload(action, job, labels, runner), WEBHOOK_SECRET)
    }
}

/// The tenant of `id`, if the store has one.
pub async fn tenant(h: &Harness, id: InstallationId) -> Option<Tenant> {
    h.store.tenant_get(id).await.expect("reading a tenant")
}

/// Every tenant.
pub async fn tenants(h: &Harness) -> Vec<Tenant> {
    h.store.tenant_list(None).await.expect("listing tenants")
}

/// Job `id`, if the store has it.
pub async fn job(h: &Harness, id: JobId) -> Option<Job> {
    h.store.job_get(id).await.expect("reading a job")
}

/// Every job.
pub async fn jobs(h: &Harness) -> Vec<Job> {
    h.store.job_list(JobFilter::default()).await.expect("listing jobs")
}

/// The kinds of job `id`'s timeline, oldest first.
pub async fn timeline_kinds(h: &Harness, id: JobId) -> Vec<String> {
    h.store.job_timeline(id).await.expect("reading a timeline").into_iter().map(|e| e.kind).collect()
}

/// Every runner record, in any state.
pub async fn runners(h: &Harness) -> Vec<Runner> {
    let filter = RunnerFilter { states: RunnerState::ALL.to_vec(), ..RunnerFilter::default() };
    h.store.runner_list(filter).await.expect("listing runners")
}

/// Whether the store recorded delivery `guid` (a recorded delivery is never applied again).
pub async fn delivery_seen(h: &Harness, guid: &str) -> bool {
    h.store.delivery_seen(&DeliveryId::new(guid)).await.expect("checking a delivery id")
}

/// Assert that the store holds no tenant, no job, no runner and not the delivery `guid`.
pub async fn assert_nothing_recorded(h: &Harness, guid: &str) {
    assert_eq!(tenants(h).await, vec![], "no tenant may be recorded");
    assert_eq!(jobs(h).await, vec![], "no job may be recorded");
    assert_eq!(runners(h).await, vec![], "no runner may be reserved");
    assert!(!delivery_seen(h, guid).await, "delivery {guid} must stay unrecorded so that a redelivery applies");
}

/// Run a dispatcher pass and assert that nothing got a runner. Passes are serial: one woken by an earlier
/// delivery either finished before this one (its reservations would be listed) or sees the same state.
pub async fn assert_no_launch(h: &Harness) {
    let report = h.server.dispatcher.pass().await.expect("a dispatcher pass");
    assert_eq!(report.reserved, 0, "nothing should need a runner: {report:?}");
    assert_eq!(runners(h).await, vec![], "no runner may be reserved");
    assert_eq!(h.provider.running(), vec![], "no instance may be launched");
}

/// POST `body` over a raw HTTP/1.1 connection with `Transfer-Encoding: chunked` (no `Content-Length`, so the
/// server learns the size only by reading), in chunks of `chunk` bytes; returns the status and the answer text.
pub async fn post_chunked(h: &Harness, headers: &[(&str, String)], body: &[u8], chunk: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = format!("POST {WEBHOOK_PATH} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n", h.server.addr);
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("transfer-encoding: chunked\r\n\r\n");
    let mut bytes = request.into_bytes();
    for part in body.chunks(chunk) {
        bytes.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        bytes.extend_from_slice(part);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(h.server.addr).await.expect("connecting to the server");
    stream.write_all(&bytes).await.expect("sending a chunked request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("reading the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 answer: {answer}"));
    let text = answer.split_once("\r\n\r\n").map(|(_, text)| text.to_owned()).unwrap_or_default();
    (status, text)
}
