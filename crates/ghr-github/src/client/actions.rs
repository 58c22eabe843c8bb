//! GitHub Actions reads as an installation: one job, the installation's repositories, and the queued
//! jobs of a repository (its queued and in-progress workflow runs, then their jobs).

use super::GithubClient;
use super::http::{Auth, Call};
use super::runners::split_repository;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, JobId};
use ghr_core::job::JobStatus;
use ghr_core::ports::{GithubError, GithubJob};
use reqwest::Method;
use serde::Deserialize;
use std::collections::BTreeSet;

/// Run statuses that can hold a job waiting for a runner. A run is `queued` until its first job starts
/// and `in_progress` from then on, while other jobs of it (a wide matrix, a later job) may still be queued.
pub const RUN_STATUSES_WITH_QUEUED_JOBS: [&str; 2] = ["queued", "in_progress"];
/// The job status of a job waiting for a runner (`waiting`, `pending`, `requested` wait for something else).
pub const JOB_STATUS_QUEUED: &str = "queued";

#[derive(Deserialize)]
pub(crate) struct RawJob {
    id: u64,
    status: String,
    conclusion: Option<String>,
    runner_name: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    created_at: Option<Timestamp>,
    started_at: Option<Timestamp>,
}

#[derive(Deserialize)]
struct JobsPage {
    jobs: Vec<RawJob>,
}

#[derive(Deserialize)]
struct RunsPage {
    workflow_runs: Vec<RawRun>,
}

#[derive(Deserialize)]
struct RawRun {
    id: u64,
}

#[derive(Deserialize)]
struct RepositoriesPage {
    repositories: Vec<RawRepository>,
}

#[derive(Deserialize)]
struct RawRepository {
    full_name: String,
}

/// GitHub's job statuses folded onto ghr's three: everything before a runner picks the job up is queued.
fn job_status(status: &str) -> Option<JobStatus> {
    match status {
        "queued" | "waiting" | "requested" | "pending" => Some(JobStatus::Queued),
        "in_progress" => Some(JobStatus::InProgress),
        "completed" => Some(JobStatus::Completed),
        _ => None,
    }
}

impl TryFrom<RawJob> for GithubJob {
    type Error = GithubError;
    fn try_from(raw: RawJob) -> Result<Self, GithubError> {
        let status = job_status(&raw.status).ok_or_else(|| {
            GithubError::decode_message(format!("job {} has unknown status {:?}", raw.id, raw.status))
        })?;
        Ok(GithubJob {
            id: JobId(raw.id),
            status,
            conclusion: raw.conclusion,
            runner_name: raw.runner_name.filter(|name| !name.is_empty()),
            labels: raw.labels,
            created_at: raw.created_at,
            started_at: raw.started_at,
        })
    }
}

impl GithubClient {
    /// `GET /repos/{owner}/{repo}/actions/jobs/{id}`; None on 404.
    pub(crate) async fn job(
        &self,
        installation: InstallationId,
        repository: &str,
        id: JobId,
    ) -> Result<Option<GithubJob>, GithubError> {
        let (owner, name) = split_repository(repository)?;
        let url = self.url(&["repos", owner, name, "actions", "jobs", &id.to_string()]);
        match self.execute(&Call::new(Method::GET, url, Auth::Installation(installation))).await {
            Ok(answer) => Ok(Some(answer.json::<RawJob>()?.try_into()?)),
            Err(GithubError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `GET /installation/repositories`, every page: `owner/name` of each repository the installation sees.
    pub(crate) async fn installation_repositories(
        &self,
        installation: InstallationId,
    ) -> Result<Vec<String>, GithubError> {
        let url = self.url(&["installation", "repositories"]);
        self.all_pages(url, Auth::Installation(installation), |page: RepositoriesPage| {
            page.repositories.into_iter().map(|repository| repository.full_name).collect()
        })
        .await
    }

    /// The queued jobs of `repository`, oldest run first. Costs, per repository: one call per page of
    /// runs for each of [`RUN_STATUSES_WITH_QUEUED_JOBS`] (at least 2), plus one call per page of jobs
    /// for each such run. A run that disappears between the two listings is skipped.
    pub(crate) async fn queued_jobs(
        &self,
        installation: InstallationId,
        repository: &str,
    ) -> Result<Vec<GithubJob>, GithubError> {
        let (owner, name) = split_repository(repository)?;
        let auth = Auth::Installation(installation);
        // A run can move from `queued` to `in_progress` between the two listings: count it once.
        let mut runs = BTreeSet::new();
        for status in RUN_STATUSES_WITH_QUEUED_JOBS {
            let mut url = self.url(&["repos", owner, name, "actions", "runs"]);
            url.query_pairs_mut().append_pair("status", status);
            let ids =
                self.all_pages(url, auth, |page: RunsPage| page.workflow_runs.into_iter().map(|r| r.id).collect());
            runs.extend(ids.await?);
        }
        let mut queued = Vec::new();
        for run in runs {
            let mut url = self.url(&["repos", owner, name, "actions", "runs", &run.to_string(), "jobs"]);
            url.query_pairs_mut().append_pair("filter", "latest");
            let jobs = match self.all_pages(url, auth, |page: JobsPage| page.jobs).await {
                Ok(jobs) => jobs,
                Err(GithubError::NotFound(_)) => continue,
                Err(err) => return Err(err),
            };
            for job in jobs.into_iter().filter(|job| job.status == JOB_STATUS_QUEUED) {
                queued.push(GithubJob::try_from(job)?);
            }
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_statuses_fold_onto_three() {
        for (text, want) in [
            ("queued", Some(JobStatus::Queued)),
            ("waiting", Some(JobStatus::Queued)),
            ("requested", Some(JobStatus::Queued)),
            ("pending", Some(JobStatus::Queued)),
            ("in_progress", Some(JobStatus::InProgress)),
            ("completed", Some(JobStatus::Completed)),
            ("exploded", None),
        ] {
            assert_eq!(job_status(text), want, "{text}");
        }
    }

    #[test]
    fn jobs_decode_githubs_shape_with_labels_and_times() {
        let raw: RawJob = serde_json::from_str(
            r#"{"id":29679449,"run_id":10,"status":"queued","conclusion":null,"created_at":"2024-01-02T03:04:05Z",
                "started_at":"2024-01-02T03:04:05Z","completed_at":null,"name":"build","labels":["self-hosted","small"],
                "runner_id":null,"runner_name":null,"runner_group_id":null,"runner_group_name":null}"#,
        )
        .unwrap();
        let job = GithubJob::try_from(raw).unwrap();
        assert_eq!(job.labels, vec!["self-hosted", "small"]);
        assert_eq!(job.created_at.map(|t| t.to_rfc3339()).as_deref(), Some("2024-01-02T03:04:05+00:00"));
        assert_eq!(job.started_at, job.created_at);
        assert_eq!(job.runner_name, None);
        let bare: RawJob = serde_json::from_str(r#"{"id":1,"status":"completed","conclusion":"success"}"#).unwrap();
        let bare = GithubJob::try_from(bare).unwrap();
        assert!(bare.labels.is_empty() && bare.created_at.is_none());
    }
}
