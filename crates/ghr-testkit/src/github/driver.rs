//! The driver API: what a test or the demo does to the emulated GitHub (install, suspend, rename,
//! queue and cancel jobs) and what it inspects. Calls that send a webhook return once it was
//! answered or dropped, so tests stay deterministic.

use super::delivery::{self, Outgoing};
use super::info::{DeliveryInfo, InstallationInfo, JobInfo, JobSpec, RunnerInfo, RunnerScopeInfo};
use super::state::{GroupRecord, InstallationRecord, JobRecord, RunnerRecord, Scope, State};
use super::{EmulatorError, GithubEmulator};
use crate::webhook::{default_sender, installation_payload, installation_target_renamed_payload};
use chrono::Utc;
use ghr_core::event::Sender;
use ghr_core::ids::{AccountId, GithubRunnerId, InstallationId, JobId};
use ghr_core::job::JobStatus;
use ghr_core::tenant::OrgType;
use std::time::{Duration, Instant};

/// How often [`GithubEmulator::wait_until`] re-checks its condition.
const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(10);
const CANCELLED: &str = "cancelled";

impl GithubEmulator {
    /// Install the App on a new (or previously uninstalled) organisation; sends `installation.created`.
    pub async fn install_org(&self, login: &str) -> Result<InstallationId, EmulatorError> {
        self.install(login, OrgType::Organization).await
    }

    /// Install the App on a personal account; sends `installation.created`.
    pub async fn install_user(&self, login: &str) -> Result<InstallationId, EmulatorError> {
        self.install(login, OrgType::User).await
    }

    async fn install(&self, login: &str, kind: OrgType) -> Result<InstallationId, EmulatorError> {
        let (installation_id, event) = {
            let mut state = self.shared().lock();
            let account_id = match state.account_by_login(login) {
                Some(account) if account.kind != kind => {
                    return Err(EmulatorError::AccountKindMismatch { login: login.to_owned() });
                }
                Some(account) => {
                    if let Some(installation) = state.installation_of_account(account.id) {
                        let installation = InstallationId(installation.id);
                        return Err(EmulatorError::AlreadyInstalled { login: login.to_owned(), installation });
                    }
                    account.id
                }
                None => state.add_account(login, kind),
            };
            let id = state.next_id();
            let record = InstallationRecord { id, account_id, suspended_at: None, created_at: Utc::now() };
            state.installations.insert(id, record);
            let sender = match kind {
                OrgType::User => Sender { login: login.to_owned(), id: AccountId(account_id) },
                OrgType::Organization => default_sender(),
            };
            (id, self.installation_event(&state, id, "created", &sender))
        };
        self.send(event).await?;
        Ok(InstallationId(installation_id))
    }

    fn installation_event(
        &self,
        state: &State,
        installation_id: u64,
        action: &str,
        sender: &Sender,
    ) -> Option<Outgoing> {
        let installation = state.installations.get(&installation_id)?;
        let account = state.account_view(installation.account_id)?;
        let payload = installation_payload(
            action,
            InstallationId(installation_id),
            &account,
            self.app_id(),
            installation.suspended_at,
            sender,
        );
        Some(Outgoing::new("installation", &payload, Some(installation_id), None))
    }

    async fn send(&self, event: Option<Outgoing>) -> Result<Option<DeliveryInfo>, EmulatorError> {
        match event {
            Some(event) => delivery::finish(delivery::dispatch(self.shared(), event)).await.map(Some),
            None => Ok(None),
        }
    }

    /// Uninstall: the installation and its tokens disappear; sends `installation.deleted`.
    /// Its queued jobs stay queued and are never assigned.
    pub async fn uninstall(&self, installation: InstallationId) -> Result<(), EmulatorError> {
        let event = {
            let mut state = self.shared().lock();
            let event = self.installation_event(&state, installation.0, "deleted", &default_sender());
            if state.installations.remove(&installation.0).is_none() {
                return Err(EmulatorError::UnknownInstallation(installation));
            }
            state.tokens.retain(|_, token| token.installation_id != installation.0);
            event
        };
        self.send(event).await.map(drop)
    }

    /// Suspend: tokens stop working (403), no jobs are assigned, no job webhooks are sent;
    /// sends `installation.suspend`.
    pub async fn suspend(&self, installation: InstallationId) -> Result<(), EmulatorError> {
        self.set_suspended(installation, true, "suspend").await
    }

    /// Lift a suspension; sends `installation.unsuspend`.
    pub async fn unsuspend(&self, installation: InstallationId) -> Result<(), EmulatorError> {
        self.set_suspended(installation, false, "unsuspend").await?;
        self.shared().runners_wakeup.notify_waiters();
        Ok(())
    }

    async fn set_suspended(
        &self,
        installation: InstallationId,
        suspended: bool,
        action: &str,
    ) -> Result<(), EmulatorError> {
        let event = {
            let mut state = self.shared().lock();
            let record =
                state.installations.get_mut(&installation.0).ok_or(EmulatorError::UnknownInstallation(installation))?;
            record.suspended_at = suspended.then(Utc::now);
            self.installation_event(&state, installation.0, action, &default_sender())
        };
        self.send(event).await.map(drop)
    }

    /// Rename the installation's account; sends `installation_target.renamed`. The old login 404s.
    pub async fn rename(&self, installation: InstallationId, new_login: &str) -> Result<(), EmulatorError> {
        let event = {
            let mut state = self.shared().lock();
            let account_id = state
                .installations
                .get(&installation.0)
                .map(|record| record.account_id)
                .ok_or(EmulatorError::UnknownInstallation(installation))?;
            if state.account_by_login(new_login).is_some_and(|other| other.id != account_id) {
                return Err(EmulatorError::LoginTaken(new_login.to_owned()));
            }
            let Some(account) = state.accounts.get_mut(&account_id) else {
                return Err(EmulatorError::UnknownInstallation(installation));
            };
            let old_login = std::mem::replace(&mut account.login, new_login.to_owned());
            let view = state.account_view(account_id);
            view.map(|view| {
                let payload = installation_target_renamed_payload(installation, &view, &old_login, &default_sender());
                Outgoing::new("installation_target", &payload, Some(installation.0), None)
            })
        };
        self.send(event).await.map(drop)
    }

    /// Add a runner group to an organisation; returns its id (`Default` is 1).
    pub fn add_runner_group(&self, org: &str, name: &str) -> Result<u64, EmulatorError> {
        let mut state = self.shared().lock();
        let account_id = state
            .account_by_login(org)
            .filter(|account| account.kind == OrgType::Organization)
            .map(|account| account.id)
            .ok_or_else(|| EmulatorError::UnknownOrg(org.to_owned()))?;
        let groups = state.groups.entry(account_id).or_default();
        let id = groups.iter().map(|group| group.id).max().unwrap_or(0) + 1;
        groups.push(GroupRecord { id, name: name.to_owned() });
        Ok(id)
    }

    /// The repository `name` of the installation's account (created if needed); returns its id.
    pub fn ensure_repo(&self, installation: InstallationId, name: &str) -> Result<u64, EmulatorError> {
        if name.is_empty() || name.contains('/') {
            return Err(EmulatorError::InvalidJobSpec(format!(
                "repository name {name:?} must be non-empty, without owner"
            )));
        }
        let mut state = self.shared().lock();
        let account_id = state
            .installations
            .get(&installation.0)
            .map(|record| record.account_id)
            .ok_or(EmulatorError::UnknownInstallation(installation))?;
        Ok(state.ensure_repo(account_id, name))
    }

    /// Queue a workflow job (creating its repository if needed; in a new workflow run unless the spec
    /// names one with [`JobSpec::in_run`]) and send `workflow_job.queued`
    /// (not for a suspended installation: GitHub sends those no events). Runners can take the job
    /// once the webhook was answered or dropped.
    pub async fn queue_job(&self, spec: JobSpec) -> Result<JobId, EmulatorError> {
        if spec.labels.is_empty() || spec.labels.iter().any(|label| label.trim().is_empty()) {
            return Err(EmulatorError::InvalidJobSpec("a job needs non-empty runs-on labels".to_owned()));
        }
        let repo_id = self.ensure_repo(spec.installation, &spec.repo)?;
        let (job_id, event) = {
            let mut state = self.shared().lock();
            let run_id = match spec.run_id {
                Some(run_id) if state.jobs.values().any(|job| job.run_id == run_id && job.repo_id == repo_id) => run_id,
                Some(run_id) => {
                    return Err(EmulatorError::InvalidJobSpec(format!(
                        "workflow run {run_id} has no job in repository {}",
                        spec.repo
                    )));
                }
                None => state.next_id(),
            };
            let id = state.next_id();
            let job = JobRecord {
                id,
                run_id,
                repo_id,
                installation_id: spec.installation.0,
                labels: spec.labels,
                name: spec.name,
                workflow_name: spec.workflow_name,
                head_branch: "main".to_owned(),
                status: JobStatus::Queued,
                conclusion: None,
                planned_conclusion: spec.conclusion,
                duration: spec.duration,
                runner_id: None,
                runner_name: None,
                runner_group: None,
                created_at: Utc::now(),
                started_at: None,
                completed_at: None,
                assignments: 0,
            };
            state.jobs.insert(id, job);
            (id, state.job_event(id, "queued"))
        };
        self.send(event).await?;
        {
            let mut state = self.shared().lock();
            // It may have been cancelled while the webhook was out.
            if state.jobs.get(&job_id).is_some_and(|job| job.status == JobStatus::Queued) {
                state.queued.insert(job_id);
            }
        }
        self.shared().runners_wakeup.notify_waiters();
        Ok(JobId(job_id))
    }

    /// Cancel a job: completed with conclusion `cancelled`; sends `workflow_job.completed`. A
    /// runner already on it learns the conclusion when it reports back.
    pub async fn cancel_job(&self, job: JobId) -> Result<(), EmulatorError> {
        let event = {
            let mut state = self.shared().lock();
            let status = state.jobs.get(&job.0).map(|record| record.status).ok_or(EmulatorError::UnknownJob(job))?;
            if status == JobStatus::Completed || !state.complete_job(job.0, CANCELLED, Utc::now()) {
                return Err(EmulatorError::JobCompleted(job));
            }
            state.job_event(job.0, "completed")
        };
        self.send(event).await.map(drop)
    }

    /// Attempt a delivery again (as `POST /app/hook/deliveries/{id}/attempts` does) and wait for it.
    pub async fn redeliver(&self, delivery_id: u64) -> Result<Option<DeliveryInfo>, EmulatorError> {
        match delivery::redeliver(self.shared(), delivery_id) {
            Some(handle) => delivery::finish(handle).await.map(Some),
            None => Ok(None),
        }
    }

    pub fn installations(&self) -> Vec<InstallationInfo> {
        let state = self.shared().lock();
        state.installations.values().filter_map(|record| installation_info(&state, record)).collect()
    }

    pub fn installation(&self, id: InstallationId) -> Option<InstallationInfo> {
        let state = self.shared().lock();
        state.installations.get(&id.0).and_then(|record| installation_info(&state, record))
    }

    /// Every runner registration, by id.
    pub fn runners(&self) -> Vec<RunnerInfo> {
        let state = self.shared().lock();
        state.runners.values().map(|runner| runner_info(&state, runner)).collect()
    }

    pub fn runner(&self, id: GithubRunnerId) -> Option<RunnerInfo> {
        let state = self.shared().lock();
        state.runners.get(&id.0).map(|runner| runner_info(&state, runner))
    }

    pub fn runner_by_name(&self, name: &str) -> Option<RunnerInfo> {
        let state = self.shared().lock();
        state.runners.values().find(|runner| runner.name == name).map(|runner| runner_info(&state, runner))
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Vec<JobInfo> {
        let state = self.shared().lock();
        state.jobs.values().filter_map(|job| job_info(&state, job)).collect()
    }

    pub fn job(&self, id: JobId) -> Option<JobInfo> {
        let state = self.shared().lock();
        state.jobs.get(&id.0).and_then(|job| job_info(&state, job))
    }

    /// Every delivery attempt, oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryInfo> {
        self.shared().lock().deliveries.values().map(delivery::info).collect()
    }

    pub fn counters(&self) -> super::Counters {
        self.shared().lock().counters.clone()
    }

    /// Wait until `condition` holds, checking every few milliseconds, for at most `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&GithubEmulator) -> bool,
    ) -> Result<(), EmulatorError> {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(EmulatorError::Timeout(timeout));
            }
            tokio::time::sleep(WAIT_POLL_INTERVAL).await;
        }
    }

    /// Wait until a job has reached `status` (or gone past it); returns the job then.
    pub async fn wait_for_job(
        &self,
        id: JobId,
        status: JobStatus,
        timeout: Duration,
    ) -> Result<JobInfo, EmulatorError> {
        self.wait_until(timeout, |emulator| emulator.job(id).is_some_and(|job| job.status >= status)).await?;
        self.job(id).ok_or(EmulatorError::UnknownJob(id))
    }
}

fn installation_info(state: &State, record: &InstallationRecord) -> Option<InstallationInfo> {
    let account = state.accounts.get(&record.account_id)?;
    Some(InstallationInfo {
        id: InstallationId(record.id),
        account_login: account.login.clone(),
        account_id: AccountId(account.id),
        account_kind: account.kind,
        suspended: record.suspended_at.is_some(),
    })
}

fn runner_info(state: &State, runner: &RunnerRecord) -> RunnerInfo {
    let scope = match runner.scope {
        Scope::Org(account_id) => RunnerScopeInfo::Org(
            state.accounts.get(&account_id).map(|account| account.login.clone()).unwrap_or_default(),
        ),
        Scope::Repo(repo_id) => {
            RunnerScopeInfo::Repo(state.repos.get(&repo_id).map(|repo| state.repo_full_name(repo)).unwrap_or_default())
        }
    };
    RunnerInfo {
        id: GithubRunnerId(runner.id),
        name: runner.name.clone(),
        scope,
        group_id: runner.group_id,
        labels: runner.labels.iter().map(|(_, name)| name.clone()).collect(),
        connected: runner.connected,
        online: runner.online(),
        busy: runner.job_id.is_some(),
        job_id: runner.job_id.map(JobId),
    }
}

fn job_info(state: &State, job: &JobRecord) -> Option<JobInfo> {
    let repo = state.repos.get(&job.repo_id)?;
    Some(JobInfo {
        id: JobId(job.id),
        run_id: job.run_id,
        installation_id: InstallationId(job.installation_id),
        repository: state.repo_full_name(repo),
        labels: job.labels.clone(),
        status: job.status,
        conclusion: job.conclusion.clone(),
        runner_id: job.runner_id.map(GithubRunnerId),
        runner_name: job.runner_name.clone(),
        created_at: job.created_at,
        started_at: job.started_at,
        completed_at: job.completed_at,
        duration: job.duration,
        assignments: job.assignments,
    })
}
