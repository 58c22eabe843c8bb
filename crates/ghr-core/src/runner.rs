//! Runners: one ephemeral runner per reserved slot, and its lifecycle.
//!
//! ```text
//! requested ─► launching ─► idle ─► busy ─► finished ─► terminated
//!     │            │          │                              ▲
//!     └────────────┴──────────┴──► failed / terminated ──────┘
//! ```
//! A runner holds a slot of its tenant's limit from `requested` until `terminated` or `failed`.

use crate::Timestamp;
use crate::ids::{GithubRunnerId, InstallationId, InstanceId, JobId, RunnerName, RunnerSeq, TierName};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunnerState {
    /// A slot is reserved; nothing is launched yet.
    Requested,
    /// JIT config minted and the provider asked to launch.
    Launching,
    /// Registered with GitHub, waiting for a job.
    Idle,
    /// Running a job.
    Busy,
    /// The job completed; the instance is being torn down.
    Finished,
    /// The instance is gone; the slot is free.
    Terminated,
    /// Launch failed before an instance existed; the slot is free.
    Failed,
}

impl RunnerState {
    pub const ALL: [RunnerState; 7] = [
        RunnerState::Requested,
        RunnerState::Launching,
        RunnerState::Idle,
        RunnerState::Busy,
        RunnerState::Finished,
        RunnerState::Terminated,
        RunnerState::Failed,
    ];
    /// States that hold a slot of the tenant's limit.
    pub const LIVE: [RunnerState; 5] =
        [RunnerState::Requested, RunnerState::Launching, RunnerState::Idle, RunnerState::Busy, RunnerState::Finished];
    /// Live states in which the runner has not taken a job yet: supply for queued jobs.
    pub const UNBOUND: [RunnerState; 3] = [RunnerState::Requested, RunnerState::Launching, RunnerState::Idle];

    pub fn as_str(self) -> &'static str {
        match self {
            RunnerState::Requested => "requested",
            RunnerState::Launching => "launching",
            RunnerState::Idle => "idle",
            RunnerState::Busy => "busy",
            RunnerState::Finished => "finished",
            RunnerState::Terminated => "terminated",
            RunnerState::Failed => "failed",
        }
    }

    pub fn is_live(self) -> bool {
        Self::LIVE.contains(&self)
    }

    pub fn is_unbound(self) -> bool {
        Self::UNBOUND.contains(&self)
    }

    /// Whether the lifecycle allows `self -> next`. Staying in the same state is allowed (idempotent).
    pub fn can_become(self, next: RunnerState) -> bool {
        use RunnerState::*;
        if self == next {
            return true;
        }
        match self {
            Requested => matches!(next, Launching | Failed | Terminated),
            Launching => matches!(next, Idle | Busy | Finished | Terminated | Failed),
            Idle => matches!(next, Busy | Finished | Terminated),
            Busy => matches!(next, Finished | Terminated),
            Finished => matches!(next, Terminated),
            Terminated | Failed => false,
        }
    }
}

impl fmt::Display for RunnerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunnerState {
    type Err = crate::tenant::UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunnerState::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| crate::tenant::UnknownValue {
            kind: "runner state",
            value: s.to_owned(),
            expected: "requested, launching, idle, busy, finished, terminated, failed",
        })
    }
}

/// A runner record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runner {
    pub seq: RunnerSeq,
    pub name: RunnerName,
    pub installation_id: InstallationId,
    /// The runner's size.
    pub tier: TierName,
    /// The tenant's plan when the slot was reserved (the `ghr:tenant_tier` tag).
    pub tenant_tier: TierName,
    /// `owner/name` for repository-level runners (personal-account tenants); None for org runners.
    pub scope_repo: Option<String>,
    pub state: RunnerState,
    pub instance_id: Option<InstanceId>,
    pub github_runner_id: Option<GithubRunnerId>,
    /// The job this runner was started for (a hint: GitHub may give it another job of the same org and tier).
    pub intended_job: Option<JobId>,
    /// The job it actually ran (from `workflow_job.in_progress`).
    pub job_id: Option<JobId>,
    pub created_at: Timestamp,
    pub launched_at: Option<Timestamp>,
    pub registered_at: Option<Timestamp>,
    pub job_started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub terminated_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub updated_at: Timestamp,
}

impl Runner {
    /// Seconds this runner has cost so far: from launch to termination (or `now` while live).
    pub fn billable_seconds(&self, now: Timestamp) -> i64 {
        match self.launched_at {
            None => 0,
            Some(start) => {
                let end = self.terminated_at.unwrap_or(now);
                (end - start).num_seconds().max(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_table() {
        use RunnerState::*;
        let allowed = [
            (Requested, Launching),
            (Requested, Failed),
            (Launching, Idle),
            (Launching, Busy),
            (Launching, Failed),
            (Idle, Busy),
            (Busy, Finished),
            (Finished, Terminated),
            (Idle, Terminated),
            (Busy, Busy),
        ];
        let refused = [
            (Terminated, Idle),
            (Failed, Launching),
            (Busy, Idle),
            (Finished, Busy),
            (Idle, Launching),
            (Requested, Busy),
        ];
        for (from, to) in allowed {
            assert!(from.can_become(to), "{from} -> {to} should be allowed");
        }
        for (from, to) in refused {
            assert!(!from.can_become(to), "{from} -> {to} should be refused");
        }
        assert!(Finished.is_live() && !Finished.is_unbound());
        assert!(!Terminated.is_live() && !Failed.is_live());
    }
}
