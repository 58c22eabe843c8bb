//! Runners: one ephemeral runner per reserved slot, and its lifecycle.
//!
//! ```text
//! requested ─► launching ─► idle ─► busy ─► finished ─► terminated
//!     │            │          │                              ▲
//!     └────────────┴──────────┴──► failed / terminated ──────┘
//! ```
//! A runner holds a slot of its tenant's limit from `requested` until `terminated` or `failed`.
//!
//! GitHub, not ghr, is the truth about which runner runs which job, and its events may arrive before
//! ghr has recorded the launch: `requested ─► busy` and `requested ─► finished` are legal (the runner took
//! its job within milliseconds of starting). A state change the lifecycle forbids leaves the state as it
//! is ([`RunnerState::merge`]); what the launch learnt (instance, registration) is recorded whatever the
//! state, and [`LaunchRecorded`] says what the launcher must do next.

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
            Requested => matches!(next, Launching | Busy | Finished | Failed | Terminated),
            Launching => matches!(next, Idle | Busy | Finished | Terminated | Failed),
            Idle => matches!(next, Busy | Finished | Terminated),
            Busy => matches!(next, Finished | Terminated),
            // A teardown asked for before the launch recorded an instance ends as `failed` if the launch
            // then fails (no instance ever existed).
            Finished => matches!(next, Terminated | Failed),
            Terminated | Failed => false,
        }
    }

    /// The state after asking for `next`: `next` when the lifecycle allows it, otherwise `self` unchanged.
    pub fn merge(self, next: RunnerState) -> RunnerState {
        if self.can_become(next) { next } else { self }
    }
}

/// What the launcher must do once the provider started an instance and the store recorded it, given
/// the runner's state after that record (see [`LaunchRecorded::after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchRecorded {
    /// Nothing more: the runner is starting (`launching`) or already running its job (`busy`).
    Running,
    /// The job completed, or a teardown was asked for, while the instance was starting: terminate it now
    /// (its slot is still held and is freed once the instance is gone).
    TearDown,
    /// The runner was released while launching (`terminated` / `failed`): terminate the instance and
    /// delete its registration.
    Undo,
}

impl LaunchRecorded {
    pub fn after(state: RunnerState) -> LaunchRecorded {
        match state {
            RunnerState::Requested | RunnerState::Launching | RunnerState::Idle | RunnerState::Busy => {
                LaunchRecorded::Running
            }
            RunnerState::Finished => LaunchRecorded::TearDown,
            RunnerState::Terminated | RunnerState::Failed => LaunchRecorded::Undo,
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
            // GitHub's in_progress / completed can arrive before the launch is recorded.
            (Requested, Busy),
            (Requested, Finished),
            (Finished, Failed),
        ];
        let refused = [
            (Terminated, Idle),
            (Failed, Launching),
            (Busy, Idle),
            (Busy, Launching),
            (Busy, Failed),
            (Finished, Busy),
            (Finished, Launching),
            (Idle, Launching),
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

    #[test]
    fn merge_keeps_the_state_on_a_refused_change() {
        use RunnerState::*;
        let table = [
            // (current, asked, result)
            (Requested, Launching, Launching),
            (Busy, Launching, Busy),
            (Finished, Launching, Finished),
            (Terminated, Launching, Terminated),
            (Requested, Busy, Busy),
            (Finished, Busy, Finished),
            (Busy, Failed, Busy),
        ];
        for (current, asked, result) in table {
            assert_eq!(current.merge(asked), result, "{current} + {asked}");
        }
    }

    #[test]
    fn what_the_launcher_does_after_recording_an_instance() {
        use RunnerState::*;
        let table = [
            (Launching, LaunchRecorded::Running),
            (Busy, LaunchRecorded::Running),
            (Finished, LaunchRecorded::TearDown),
            (Terminated, LaunchRecorded::Undo),
            (Failed, LaunchRecorded::Undo),
        ];
        for (state, expected) in table {
            assert_eq!(LaunchRecorded::after(state), expected, "{state}");
        }
    }
}
