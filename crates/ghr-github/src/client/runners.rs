//! Self-hosted runner endpoints: JIT configs, runner groups (cached by name), and registrations.

use super::http::{Answer, Auth, Call};
use super::pages::{MAX_PAGES, PER_PAGE};
use super::{GithubClient, lock};
use ghr_core::ids::{GithubRunnerId, InstallationId};
use ghr_core::ports::{GithubError, GithubRunner, JitConfig, JitRequest, RunnerScope};
use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// The runner group every repository-level runner belongs to.
pub const REPO_RUNNER_GROUP_ID: u64 = 1;
/// The runner's work directory inside its install directory.
pub const JIT_WORK_FOLDER: &str = "_work";
/// `status` of a connected runner.
const STATUS_ONLINE: &str = "online";

#[derive(Serialize)]
struct JitBody<'a> {
    name: &'a str,
    runner_group_id: u64,
    labels: &'a [String],
    work_folder: &'static str,
}

#[derive(Deserialize)]
struct JitAnswer {
    runner: RawRunnerRef,
    encoded_jit_config: SecretString,
}

#[derive(Deserialize)]
struct RawRunnerRef {
    id: u64,
}

#[derive(Deserialize)]
struct RunnerPage {
    runners: Vec<RawRunner>,
}

#[derive(Deserialize)]
struct RawRunner {
    id: u64,
    name: String,
    status: String,
    busy: bool,
    #[serde(default)]
    labels: Vec<RawLabel>,
}

#[derive(Deserialize)]
struct RawLabel {
    name: String,
}

#[derive(Deserialize)]
struct GroupPage {
    runner_groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
struct RawGroup {
    id: u64,
    name: String,
}

impl From<RawRunner> for GithubRunner {
    fn from(raw: RawRunner) -> Self {
        GithubRunner {
            id: GithubRunnerId(raw.id),
            name: raw.name,
            online: raw.status == STATUS_ONLINE,
            busy: raw.busy,
            labels: raw.labels.into_iter().map(|label| label.name).collect(),
        }
    }
}

/// `owner/name` split in two; anything else is refused before a call is made.
pub(crate) fn split_repository(repository: &str) -> Result<(&str, &str), GithubError> {
    match repository.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => Ok((owner, name)),
        _ => Err(GithubError::Unprocessable(format!("repository {repository:?} is not of the form owner/name"))),
    }
}

impl GithubClient {
    /// Path segments of the runners collection of a scope.
    fn runners_path(scope: &RunnerScope) -> Result<Vec<&str>, GithubError> {
        Ok(match scope {
            RunnerScope::Org(org) => vec!["orgs", org.as_str(), "actions", "runners"],
            RunnerScope::Repo(repository) => {
                let (owner, name) = split_repository(repository)?;
                vec!["repos", owner, name, "actions", "runners"]
            }
        })
    }

    fn runners_url(&self, scope: &RunnerScope, tail: &[&str]) -> Result<reqwest::Url, GithubError> {
        let mut segments = Self::runners_path(scope)?;
        segments.extend_from_slice(tail);
        Ok(self.url(&segments))
    }

    pub(crate) async fn jit_config(&self, request: &JitRequest) -> Result<JitConfig, GithubError> {
        let runner_group_id = match &request.scope {
            RunnerScope::Org(org) => {
                self.runner_group_id(request.installation_id, org.as_str(), &request.runner_group).await?
            }
            RunnerScope::Repo(_) => REPO_RUNNER_GROUP_ID,
        };
        let body = JitBody {
            name: request.name.as_str(),
            runner_group_id,
            labels: &request.labels,
            work_folder: JIT_WORK_FOLDER,
        };
        let url = self.runners_url(&request.scope, &["generate-jitconfig"])?;
        let call = Call::new(Method::POST, url, Auth::Installation(request.installation_id)).with_json(&body)?;
        let answer = match self.execute(&call).await {
            Ok(answer) => answer,
            Err(err) => {
                if let (GithubError::NotFound(_), RunnerScope::Org(org)) = (&err, &request.scope) {
                    // The group may have been deleted and re-created: look it up again next time.
                    lock(&self.inner.groups).remove(&group_key(org.as_str(), &request.runner_group));
                }
                return Err(err);
            }
        };
        let jit: JitAnswer = answer.json_secret()?;
        tracing::info!(runner = %request.name, runner_id = jit.runner.id, "JIT runner config minted");
        Ok(JitConfig { runner_id: GithubRunnerId(jit.runner.id), encoded_jit_config: jit.encoded_jit_config })
    }

    /// The id of the org's runner group named `name` (exact match), cached per (org, name).
    pub async fn runner_group_id(
        &self,
        installation: InstallationId,
        org: &str,
        name: &str,
    ) -> Result<u64, GithubError> {
        let key = group_key(org, name);
        if let Some(id) = lock(&self.inner.groups).get(&key) {
            return Ok(*id);
        }
        for page in 1..=MAX_PAGES {
            let mut url = self.url(&["orgs", org, "actions", "runner-groups"]);
            url.query_pairs_mut().append_pair("per_page", &PER_PAGE.to_string()).append_pair("page", &page.to_string());
            let answer = self.execute(&Call::new(Method::GET, url, Auth::Installation(installation))).await?;
            let groups = answer.json::<GroupPage>()?.runner_groups;
            if let Some(group) = groups.iter().find(|group| group.name == name) {
                lock(&self.inner.groups).insert(key, group.id);
                return Ok(group.id);
            }
            if groups.len() < PER_PAGE as usize {
                break;
            }
        }
        Err(GithubError::NotFound(format!("runner group {name:?} in organization {org}")))
    }

    pub(crate) async fn runner(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
        id: GithubRunnerId,
    ) -> Result<Option<GithubRunner>, GithubError> {
        let url = self.runners_url(scope, &[&id.to_string()])?;
        match self.execute(&Call::new(Method::GET, url, Auth::Installation(installation))).await {
            Ok(answer) => Ok(Some(answer.json::<RawRunner>()?.into())),
            Err(GithubError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub(crate) async fn runners(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
    ) -> Result<Vec<GithubRunner>, GithubError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = self.runners_url(scope, &[])?;
            url.query_pairs_mut().append_pair("per_page", &PER_PAGE.to_string()).append_pair("page", &page.to_string());
            let answer: Answer = self.execute(&Call::new(Method::GET, url, Auth::Installation(installation))).await?;
            let runners = answer.json::<RunnerPage>()?.runners;
            let last = runners.len() < PER_PAGE as usize;
            all.extend(runners.into_iter().map(GithubRunner::from));
            if last {
                return Ok(all);
            }
        }
        Err(GithubError::decode_message(format!("runner list of {scope:?} did not end after {MAX_PAGES} pages")))
    }

    pub(crate) async fn remove_runner(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
        id: GithubRunnerId,
    ) -> Result<(), GithubError> {
        let url = self.runners_url(scope, &[&id.to_string()])?;
        match self.execute(&Call::new(Method::DELETE, url, Auth::Installation(installation))).await {
            Ok(_) | Err(GithubError::NotFound(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

fn group_key(org: &str, name: &str) -> (String, String) {
    (org.to_ascii_lowercase(), name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_must_be_owner_slash_name() {
        assert_eq!(split_repository("acme/app").unwrap(), ("acme", "app"));
        for bad in ["", "acme", "/app", "acme/", "a/b/c"] {
            assert!(matches!(split_repository(bad), Err(GithubError::Unprocessable(_))), "{bad}");
        }
    }

    #[test]
    fn runner_status_and_labels_are_mapped() {
        let raw: RawRunner = serde_json::from_str(
            r#"{"id":5,"name":"ghr-prod-1-small-1","os":"linux","status":"online","busy":true,
                "labels":[{"id":1,"name":"self-hosted","type":"read-only"},{"id":2,"name":"small","type":"custom"}]}"#,
        )
        .unwrap();
        let runner = GithubRunner::from(raw);
        assert_eq!(runner.id, GithubRunnerId(5));
        assert!(runner.online && runner.busy);
        assert_eq!(runner.labels, vec!["self-hosted", "small"]);
    }
}
