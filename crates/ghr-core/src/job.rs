//! Workflow jobs as ghr sees them: GitHub's status moves only forward, so duplicate and
//! out-of-order webhook deliveries are harmless.

use crate::Timestamp;
use crate::ids::{InstallationId, JobId, RunnerName, TierName};
use crate::reason::Reason;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// GitHub's status of a workflow job, ordered: queued < in_progress < completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    InProgress,
    Completed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 3] = [JobStatus::Queued, JobStatus::InProgress, JobStatus::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::InProgress => "in_progress",
            JobStatus::Completed => "completed",
        }
    }

    /// Whether an observation of `next` moves a job currently at `self` forward.
    pub fn advances_to(self, next: JobStatus) -> bool {
        next > self
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = crate::tenant::UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| crate::tenant::UnknownValue {
            kind: "job status",
            value: s.to_owned(),
            expected: "queued, in_progress, completed",
        })
    }
}

/// A workflow job ghr has heard of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: JobId,
    pub installation_id: InstallationId,
    /// `owner/name` of the repository.
    pub repository: String,
    /// The job's `runs-on` labels, as GitHub sent them.
    pub labels: Vec<String>,
    /// The tier the labels match, if any (None: not ours, `no_matching_tier`).
    pub tier: Option<TierName>,
    pub status: JobStatus,
    pub conclusion: Option<String>,
    /// The runner that took the job (GitHub decides; from `in_progress`).
    pub runner_name: Option<RunnerName>,
    /// Why the job is not running yet (None while nothing blocks it, or once it runs).
    pub wait_reason: Option<Reason>,
    /// When ghr first heard of the job.
    pub received_at: Timestamp,
    /// GitHub's `created_at` of the job, when known.
    pub queued_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

impl Job {
    /// Whether the job wants one of our runners now: still queued on GitHub and matched to a tier.
    pub fn wants_runner(&self) -> bool {
        self.status == JobStatus::Queued && self.tier.is_some()
    }
}

/// One observation of a job, from a webhook or from the GitHub API.
#[derive(Debug, Clone, PartialEq)]
pub struct JobObservation {
    pub job_id: JobId,
    pub installation_id: InstallationId,
    pub repository: String,
    pub labels: Vec<String>,
    pub tier: Option<TierName>,
    pub status: JobStatus,
    pub conclusion: Option<String>,
    pub runner_name: Option<RunnerName>,
    pub queued_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub observed_at: Timestamp,
}

/// What recording an observation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobChange {
    /// First time ghr heard of the job.
    Created,
    /// The status moved forward.
    Advanced { from: JobStatus },
    /// Duplicate or out-of-order: nothing changed.
    Unchanged,
}

/// One line of a job's timeline: the answer to "why is my job still waiting?".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: JobId,
    pub at: Timestamp,
    /// A short kind: `queued`, `waiting`, `runner_requested`, `in_progress`, `completed`, ...
    pub kind: String,
    /// Free text, for example the reason code or the runner name.
    pub detail: String,
}

/// Well-known timeline kinds.
pub mod event_kind {
    pub const QUEUED: &str = "queued";
    pub const IN_PROGRESS: &str = "in_progress";
    pub const COMPLETED: &str = "completed";
    pub const WAITING: &str = "waiting";
    pub const RUNNER_REQUESTED: &str = "runner_requested";
    pub const RUNNER_LAUNCHED: &str = "runner_launched";
    pub const LAUNCH_FAILED: &str = "launch_failed";
    pub const NO_LONGER_QUEUED: &str = "no_longer_queued";
    /// A status learnt from the REST API because its webhook never arrived.
    pub const STATUS_FROM_API: &str = "status_from_api";
    /// A queued job no webhook announced, found by polling the tenant's repositories.
    pub const FOUND_BY_POLL: &str = "found_by_poll";
    /// A ready warm-pool machine was bound to the job's runner (instead of a cold launch).
    pub const POOL_BOUND: &str = "pool_bound";
    /// The pool machine's agent fetched the runner's JIT config.
    pub const CONFIG_DELIVERED: &str = "config_delivered";
    /// The pool machine's agent started the runner with its config.
    pub const RUNNER_STARTED: &str = "runner_started";
    /// The pool machine's runner process ended.
    pub const RUNNER_EXITED: &str = "runner_exited";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_only_moves_forward() {
        use JobStatus::*;
        let table = [
            (Queued, InProgress, true),
            (Queued, Completed, true),
            (InProgress, Completed, true),
            (InProgress, Queued, false),
            (Completed, Queued, false),
            (Completed, InProgress, false),
            (Queued, Queued, false),
        ];
        for (from, to, forward) in table {
            assert_eq!(from.advances_to(to), forward, "{from} -> {to}");
        }
    }
}
