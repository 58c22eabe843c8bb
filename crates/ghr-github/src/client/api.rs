//! The [`GitHubApi`] port implementation, plus the job and App webhook-delivery endpoints.

use super::GithubClient;
use super::http::{Auth, Call};
use super::runners::{PER_PAGE, split_repository};
use async_trait::async_trait;
use ghr_core::Timestamp;
use ghr_core::ids::{DeliveryId, GithubRunnerId, InstallationId, JobId};
use ghr_core::job::JobStatus;
use ghr_core::ports::{
    GitHubApi, GithubError, GithubJob, GithubRunner, HookDelivery, JitConfig, JitRequest, RunnerScope,
};
use reqwest::Method;
use serde::Deserialize;

#[derive(Deserialize)]
struct RawJob {
    id: u64,
    status: String,
    conclusion: Option<String>,
    runner_name: Option<String>,
}

#[derive(Deserialize)]
struct RawDelivery {
    id: u64,
    guid: String,
    delivered_at: Timestamp,
    redelivery: bool,
    status_code: u16,
    event: String,
    action: Option<String>,
    installation_id: Option<u64>,
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
        let status = job_status(&raw.status)
            .ok_or_else(|| GithubError::Decode(format!("job {} has unknown status {:?}", raw.id, raw.status)))?;
        Ok(GithubJob {
            id: JobId(raw.id),
            status,
            conclusion: raw.conclusion,
            runner_name: raw.runner_name.filter(|name| !name.is_empty()),
        })
    }
}

impl From<RawDelivery> for HookDelivery {
    fn from(raw: RawDelivery) -> Self {
        HookDelivery {
            id: raw.id,
            guid: DeliveryId::new(raw.guid),
            delivered_at: raw.delivered_at,
            redelivery: raw.redelivery,
            status_code: raw.status_code,
            event: raw.event,
            action: raw.action,
            installation_id: raw.installation_id.map(InstallationId),
        }
    }
}

impl GithubClient {
    async fn job(
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

    /// `GET /app/hook/deliveries?per_page=N` (one page; `limit` is clamped to 1..=100).
    async fn deliveries(&self, limit: u32) -> Result<Vec<HookDelivery>, GithubError> {
        let mut url = self.url(&["app", "hook", "deliveries"]);
        url.query_pairs_mut().append_pair("per_page", &limit.clamp(1, PER_PAGE).to_string());
        let answer = self.execute(&Call::new(Method::GET, url, Auth::App)).await?;
        Ok(answer.json::<Vec<RawDelivery>>()?.into_iter().map(HookDelivery::from).collect())
    }

    /// `POST /app/hook/deliveries/{id}/attempts`.
    async fn redeliver_delivery(&self, delivery: u64) -> Result<(), GithubError> {
        let url = self.url(&["app", "hook", "deliveries", &delivery.to_string(), "attempts"]);
        self.execute(&Call::new(Method::POST, url, Auth::App)).await?;
        tracing::info!(delivery, "webhook redelivery requested");
        Ok(())
    }
}

#[async_trait]
impl GitHubApi for GithubClient {
    fn usage(&self) -> ghr_core::ports::GithubUsage {
        let stats = self.stats();
        ghr_core::ports::GithubUsage {
            calls: stats.calls,
            token_requests: stats.token_requests,
            retries: stats.retries,
            rate_limited: stats.rate_limited,
            remaining: self.rate_limits().into_iter().map(|(id, limit)| (id, limit.remaining)).collect(),
            app_remaining: self.app_rate_limit().map(|limit| limit.remaining),
        }
    }

    async fn create_jit_config(&self, request: &JitRequest) -> Result<JitConfig, GithubError> {
        self.jit_config(request).await
    }

    async fn get_runner(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
        id: GithubRunnerId,
    ) -> Result<Option<GithubRunner>, GithubError> {
        self.runner(installation, scope, id).await
    }

    async fn list_runners(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
    ) -> Result<Vec<GithubRunner>, GithubError> {
        self.runners(installation, scope).await
    }

    async fn delete_runner(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
        id: GithubRunnerId,
    ) -> Result<(), GithubError> {
        self.remove_runner(installation, scope, id).await
    }

    async fn get_job(
        &self,
        installation: InstallationId,
        repository: &str,
        id: JobId,
    ) -> Result<Option<GithubJob>, GithubError> {
        self.job(installation, repository, id).await
    }

    async fn list_deliveries(&self, limit: u32) -> Result<Vec<HookDelivery>, GithubError> {
        self.deliveries(limit).await
    }

    async fn redeliver(&self, delivery: u64) -> Result<(), GithubError> {
        self.redeliver_delivery(delivery).await
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
    fn deliveries_decode_githubs_shape() {
        let raw: Vec<RawDelivery> = serde_json::from_str(
            r#"[{"id":12345678,"guid":"0b989ba4-242f-11e5-81e1-c7b6966d2516","delivered_at":"2019-06-03T00:57:16Z",
                 "redelivery":false,"duration":0.27,"status":"OK","status_code":200,"event":"workflow_job",
                 "action":"queued","installation_id":123,"repository_id":456,"throttled_at":null},
                {"id":12345679,"guid":"1b989ba4-242f-11e5-81e1-c7b6966d2516","delivered_at":"2019-06-03T00:58:16Z",
                 "redelivery":true,"duration":0.1,"status":"Invalid HTTP Response: 503","status_code":503,
                 "event":"ping","action":null,"installation_id":null,"repository_id":null}]"#,
        )
        .unwrap();
        let deliveries: Vec<HookDelivery> = raw.into_iter().map(HookDelivery::from).collect();
        assert_eq!(deliveries[0].id, 12345678);
        assert_eq!(deliveries[0].guid.as_str(), "0b989ba4-242f-11e5-81e1-c7b6966d2516");
        assert_eq!(deliveries[0].installation_id, Some(InstallationId(123)));
        assert_eq!(deliveries[0].action.as_deref(), Some("queued"));
        assert!(deliveries[1].redelivery);
        assert_eq!(deliveries[1].status_code, 503);
        assert_eq!(deliveries[1].installation_id, None);
    }
}
