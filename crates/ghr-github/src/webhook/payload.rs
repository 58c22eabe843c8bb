//! Serde shapes of the webhook payloads ghr reads: only the fields it uses, all optional so that a
//! missing field is reported by name instead of as a generic serde error. Unknown fields are ignored.

use ghr_core::Timestamp;
use serde::Deserialize;

/// Any other event: only its `action`, for the delivery record.
#[derive(Debug, Deserialize)]
pub(super) struct ActionOnly {
    pub action: Option<String>,
}

/// `installation.*` events.
#[derive(Debug, Deserialize)]
pub(super) struct InstallationPayload {
    pub action: Option<String>,
    pub installation: Option<RawInstallation>,
    pub sender: Option<RawSender>,
}

/// `installation_target.*` events: `account` is the account after the change (an organisation or user with
/// a `login`, or an enterprise with a `slug` and a `name`).
#[derive(Debug, Deserialize)]
pub(super) struct InstallationTargetPayload {
    pub action: Option<String>,
    pub installation: Option<RawInstallation>,
    pub account: Option<RawAccount>,
}

/// `workflow_job.*` events.
#[derive(Debug, Deserialize)]
pub(super) struct WorkflowJobPayload {
    pub action: Option<String>,
    pub workflow_job: Option<RawWorkflowJob>,
    pub repository: Option<RawRepository>,
    pub installation: Option<RawInstallation>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawInstallation {
    pub id: Option<u64>,
    pub account: Option<RawAccount>,
}

/// An account: `{login, id, type}` for organisations and users, `{id, slug, name}` for enterprises.
#[derive(Debug, Deserialize)]
pub(super) struct RawAccount {
    pub login: Option<String>,
    pub id: Option<u64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub slug: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawSender {
    pub login: Option<String>,
    pub id: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawRepository {
    pub full_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawWorkflowJob {
    pub id: Option<u64>,
    pub run_id: Option<u64>,
    pub labels: Option<Vec<String>>,
    pub conclusion: Option<String>,
    pub runner_id: Option<u64>,
    pub runner_name: Option<String>,
    pub created_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
}
