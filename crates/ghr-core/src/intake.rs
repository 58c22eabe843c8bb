//! Webhook intake as the store applies it: one delivery with the job change it reports, applied together
//! with other deliveries in one write transaction (group commit, [`crate::ports::Store::intake_jobs`]).

use crate::ids::{JobId, RunnerName};
use crate::job::{JobChange, JobObservation, JobStatus};
use crate::ports::DeliveryRecord;
use crate::reason::Reason;
use crate::runner::{Runner, RunnerState};

/// One webhook delivery to record, deduplicated on its id, with the workflow-job change it reports.
#[derive(Debug, Clone, PartialEq)]
pub struct JobIntake {
    pub delivery: DeliveryRecord,
    /// None for a delivery that is only recorded (a `ping`, an event or action ghr does not act on).
    pub job: Option<JobIntakeChange>,
}

/// What a `workflow_job` delivery changes.
#[derive(Debug, Clone, PartialEq)]
pub struct JobIntakeChange {
    pub observation: JobObservation,
    /// The wait reason a job created by this observation starts with (`no_matching_tier` for a queued job no
    /// tier matches), with its timeline entry. Ignored when the job already exists.
    pub initial_wait_reason: Option<Reason>,
    /// The runner GitHub names on the job and the state it moves to (busy on `in_progress`, finished on
    /// `completed`), bound to the job when the observation changes the job.
    pub runner: Option<RunnerBinding>,
}

/// A runner GitHub reports on a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerBinding {
    pub name: RunnerName,
    pub state: RunnerState,
}

impl RunnerBinding {
    /// The runner state a job status implies for the runner running it; None for a queued job.
    pub fn for_status(name: RunnerName, status: JobStatus) -> Option<Self> {
        let state = match status {
            JobStatus::Queued => return None,
            JobStatus::InProgress => RunnerState::Busy,
            JobStatus::Completed => RunnerState::Finished,
        };
        Some(Self { name, state })
    }
}

/// What applying one [`JobIntake`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum JobIntakeOutcome {
    /// The delivery id was recorded before (a redelivery, or a duplicate earlier in the same batch): nothing
    /// changed.
    Duplicate,
    /// The delivery is recorded, with what it did to its job (None when it reports none).
    Recorded { job: Option<JobId>, change: Option<JobChange>, runner: Option<Box<Runner>> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_state_follows_the_job_status() {
        let name = RunnerName::new("ghr-1");
        let table = [
            (JobStatus::Queued, None),
            (JobStatus::InProgress, Some(RunnerState::Busy)),
            (JobStatus::Completed, Some(RunnerState::Finished)),
        ];
        for (status, want) in table {
            assert_eq!(RunnerBinding::for_status(name.clone(), status).map(|b| b.state), want, "{status}");
        }
    }
}
