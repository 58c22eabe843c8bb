//! The [`GitHubApi`] port implementation: each method delegates to the resource module that owns it.

use super::GithubClient;
use async_trait::async_trait;
use ghr_core::ids::{GithubRunnerId, InstallationId, JobId};
use ghr_core::ports::{
    DeliveriesPage, DeliveriesRequest, GitHubApi, GithubError, GithubJob, GithubRunner, GithubUsage, JitConfig,
    JitRequest, RunnerScope,
};

#[async_trait]
impl GitHubApi for GithubClient {
    fn usage(&self) -> GithubUsage {
        let stats = self.stats();
        GithubUsage {
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

    async fn list_installation_repositories(&self, installation: InstallationId) -> Result<Vec<String>, GithubError> {
        self.installation_repositories(installation).await
    }

    async fn list_queued_jobs(
        &self,
        installation: InstallationId,
        repository: &str,
    ) -> Result<Vec<GithubJob>, GithubError> {
        self.queued_jobs(installation, repository).await
    }

    async fn list_deliveries_page(&self, request: &DeliveriesRequest) -> Result<DeliveriesPage, GithubError> {
        self.deliveries_page(request).await
    }

    async fn redeliver(&self, delivery: u64) -> Result<(), GithubError> {
        self.redeliver_delivery(delivery).await
    }
}
