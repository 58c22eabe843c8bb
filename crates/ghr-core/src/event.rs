//! Webhook events as the domain sees them. `ghr-github` parses GitHub's JSON into these.

use crate::Timestamp;
use crate::ids::{AccountId, GithubRunnerId, InstallationId, JobId, OrgName};
use crate::tenant::OrgType;

/// The account an installation belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub login: OrgName,
    pub id: AccountId,
    pub kind: OrgType,
}

/// Who triggered an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub login: String,
    pub id: AccountId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallationAction {
    Created,
    Deleted,
    Suspend,
    Unsuspend,
    NewPermissionsAccepted,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowJobAction {
    Queued,
    /// Waiting for an environment approval; for runner demand it is the same as queued.
    Waiting,
    InProgress,
    Completed,
    Other(String),
}

/// The parts of a `workflow_job` payload ghr uses.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowJob {
    pub id: JobId,
    pub run_id: u64,
    /// `repository.full_name`.
    pub repository: String,
    pub labels: Vec<String>,
    pub conclusion: Option<String>,
    pub runner_id: Option<GithubRunnerId>,
    pub runner_name: Option<String>,
    pub created_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
}

/// Why an event type ghr does not act on is ignored.
pub const IGNORED_EVENT_TYPE: &str = "event type not used";
/// Why an installation on an enterprise account is ignored.
pub const IGNORED_ENTERPRISE: &str = "enterprise installation: runners are scoped per organisation installation";
/// Why an `installation_target` action other than `renamed` is ignored.
pub const IGNORED_TARGET_ACTION: &str = "installation_target action not used";
/// Why a rename that names no new login is ignored.
pub const IGNORED_RENAME_WITHOUT_NAME: &str =
    "installation_target.renamed carries no new login (account.login, slug or name)";

/// A verified, parsed webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    Installation {
        action: InstallationAction,
        installation_id: InstallationId,
        account: Account,
        sender: Option<Sender>,
    },
    /// `installation_target.renamed`: the org or user changed its login.
    InstallationTargetRenamed {
        installation_id: InstallationId,
        new_login: OrgName,
    },
    WorkflowJob {
        action: WorkflowJobAction,
        installation_id: Option<InstallationId>,
        job: WorkflowJob,
    },
    Ping,
    /// A delivery ghr acknowledges and does not act on: an event type it does not use, or a known event
    /// about something ghr does not serve (an enterprise installation). `reason` says which, for the answer
    /// and the logs.
    Ignored {
        event: String,
        reason: &'static str,
    },
}

impl WebhookEvent {
    /// The installation the event concerns, if any.
    pub fn installation_id(&self) -> Option<InstallationId> {
        match self {
            WebhookEvent::Installation { installation_id, .. }
            | WebhookEvent::InstallationTargetRenamed { installation_id, .. } => Some(*installation_id),
            WebhookEvent::WorkflowJob { installation_id, .. } => *installation_id,
            WebhookEvent::Ping | WebhookEvent::Ignored { .. } => None,
        }
    }
}
