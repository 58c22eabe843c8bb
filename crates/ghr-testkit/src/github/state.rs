//! The emulator's model: accounts, installations, repositories, runner groups, runners, jobs,
//! tokens and deliveries, with the lookups and the job assignment rule the handlers share.

use super::EmulatorConfig;
use super::WebhookTarget;
use super::delivery::Outgoing;
use super::faults::Faults;
use super::info::Counters;
use crate::webhook::{Repository, WorkflowJobPayload, default_sender, workflow_job_payload};
use chrono::{DateTime, Utc};
use ghr_core::event::Account;
use ghr_core::ids::{AccountId, GithubRunnerId, InstallationId, JobId, OrgName};
use ghr_core::job::JobStatus;
use ghr_core::tenant::OrgType;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The id of every organisation's `Default` runner group (and the only group of repository runners).
pub(crate) const DEFAULT_RUNNER_GROUP_ID: u64 = 1;
pub(crate) const DEFAULT_RUNNER_GROUP_NAME: &str = "Default";
/// A connected runner with no open poll is reported offline after this long without a request.
pub(crate) const RUNNER_OFFLINE_AFTER: Duration = Duration::from_secs(5);
/// The first id handed out; all kinds share one sequence so that mixing up kinds of ids fails loudly.
const FIRST_ID: u64 = 1000;

pub(crate) struct AccountRecord {
    pub(crate) id: u64,
    pub(crate) login: String,
    pub(crate) kind: OrgType,
}

pub(crate) struct InstallationRecord {
    pub(crate) id: u64,
    pub(crate) account_id: u64,
    pub(crate) suspended_at: Option<DateTime<Utc>>,
    pub(crate) created_at: DateTime<Utc>,
}

pub(crate) struct RepoRecord {
    pub(crate) id: u64,
    pub(crate) owner_id: u64,
    pub(crate) name: String,
}

pub(crate) struct GroupRecord {
    pub(crate) id: u64,
    pub(crate) name: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Organisation runner: the account id.
    Org(u64),
    /// Repository runner: the repository id.
    Repo(u64),
}

pub(crate) struct RunnerRecord {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) scope: Scope,
    pub(crate) group_id: u64,
    pub(crate) group_name: String,
    /// `(label id, lower-cased name)`.
    pub(crate) labels: Vec<(u64, String)>,
    /// The one-time JIT credential; `None` once consumed.
    pub(crate) credential: Option<String>,
    pub(crate) connected: bool,
    pub(crate) active_polls: u32,
    pub(crate) last_seen: Option<Instant>,
    pub(crate) job_id: Option<u64>,
}

impl RunnerRecord {
    pub(crate) fn online(&self) -> bool {
        self.connected
            && (self.active_polls > 0
                || self.job_id.is_some()
                || self.last_seen.is_some_and(|seen| seen.elapsed() < RUNNER_OFFLINE_AFTER))
    }

    fn accepts(&self, labels: &[String]) -> bool {
        labels.iter().all(|wanted| self.labels.iter().any(|(_, have)| have.eq_ignore_ascii_case(wanted)))
    }
}

pub(crate) struct JobRecord {
    pub(crate) id: u64,
    pub(crate) run_id: u64,
    pub(crate) repo_id: u64,
    pub(crate) installation_id: u64,
    pub(crate) labels: Vec<String>,
    pub(crate) name: String,
    pub(crate) workflow_name: String,
    pub(crate) head_branch: String,
    pub(crate) status: JobStatus,
    pub(crate) conclusion: Option<String>,
    pub(crate) planned_conclusion: String,
    pub(crate) duration: Duration,
    pub(crate) runner_id: Option<u64>,
    pub(crate) runner_name: Option<String>,
    pub(crate) runner_group: Option<(u64, String)>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) completed_at: Option<DateTime<Utc>>,
    pub(crate) assignments: u32,
}

pub(crate) struct TokenRecord {
    pub(crate) installation_id: u64,
    pub(crate) expires_at: DateTime<Utc>,
}

pub(crate) struct DeliveryRecord {
    pub(crate) id: u64,
    pub(crate) guid: String,
    pub(crate) event: String,
    pub(crate) action: Option<String>,
    pub(crate) installation_id: Option<u64>,
    pub(crate) repository_id: Option<u64>,
    pub(crate) delivered_at: DateTime<Utc>,
    pub(crate) duration: Duration,
    pub(crate) status: String,
    pub(crate) status_code: u16,
    pub(crate) redelivery: bool,
    pub(crate) dropped: bool,
    pub(crate) payload: Arc<Vec<u8>>,
}

/// Which primary rate-limit window a request counts against.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RateBucket {
    Installation(u64),
    App,
    Anonymous,
}

pub(crate) struct RateWindow {
    pub(crate) limit: u32,
    pub(crate) used: u32,
    /// Epoch seconds at which the window resets.
    pub(crate) reset: i64,
}

pub(crate) struct State {
    next_id: u64,
    pub(crate) accounts: BTreeMap<u64, AccountRecord>,
    pub(crate) installations: BTreeMap<u64, InstallationRecord>,
    pub(crate) repos: BTreeMap<u64, RepoRecord>,
    /// Runner groups per organisation account id.
    pub(crate) groups: BTreeMap<u64, Vec<GroupRecord>>,
    pub(crate) runners: BTreeMap<u64, RunnerRecord>,
    pub(crate) jobs: BTreeMap<u64, JobRecord>,
    /// Ids of queued jobs; ids grow with time, so iteration is oldest first.
    pub(crate) queued: BTreeSet<u64>,
    pub(crate) tokens: HashMap<String, TokenRecord>,
    /// Session secret → runner id; kept after the runner is removed so its poll can learn that.
    pub(crate) sessions: HashMap<String, u64>,
    pub(crate) deliveries: BTreeMap<u64, DeliveryRecord>,
    pub(crate) webhook_target: Option<WebhookTarget>,
    /// Further URLs deliveries alternate over with the target's (several replicas behind no load balancer).
    pub(crate) webhook_alternates: Vec<String>,
    /// Deliveries sent so far, which picks the next URL in turn.
    pub(crate) webhook_turn: usize,
    pub(crate) faults: Faults,
    pub(crate) rate_windows: HashMap<RateBucket, RateWindow>,
    pub(crate) counters: Counters,
}

impl State {
    pub(crate) fn new(config: &EmulatorConfig) -> Self {
        Self {
            next_id: FIRST_ID,
            accounts: BTreeMap::new(),
            installations: BTreeMap::new(),
            repos: BTreeMap::new(),
            groups: BTreeMap::new(),
            runners: BTreeMap::new(),
            jobs: BTreeMap::new(),
            queued: BTreeSet::new(),
            tokens: HashMap::new(),
            sessions: HashMap::new(),
            deliveries: BTreeMap::new(),
            webhook_target: config.webhook_target.clone(),
            webhook_alternates: Vec::new(),
            webhook_turn: 0,
            faults: Faults::new(config.seed),
            rate_windows: HashMap::new(),
            counters: Counters::default(),
        }
    }

    /// A fresh id, unique across every kind of object.
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn account_by_login(&self, login: &str) -> Option<&AccountRecord> {
        self.accounts.values().find(|account| account.login.eq_ignore_ascii_case(login))
    }

    /// The live installation of an account, if any.
    pub(crate) fn installation_of_account(&self, account_id: u64) -> Option<&InstallationRecord> {
        self.installations.values().find(|installation| installation.account_id == account_id)
    }

    pub(crate) fn repo_by_name(&self, owner_id: u64, name: &str) -> Option<&RepoRecord> {
        self.repos.values().find(|repo| repo.owner_id == owner_id && repo.name.eq_ignore_ascii_case(name))
    }

    /// `owner/name` of a repository (the owner's current login).
    pub(crate) fn repo_full_name(&self, repo: &RepoRecord) -> String {
        let owner = self.accounts.get(&repo.owner_id).map_or("unknown", |account| account.login.as_str());
        format!("{owner}/{}", repo.name)
    }

    /// Whether jobs of this installation may run: it exists and is not suspended.
    pub(crate) fn installation_active(&self, installation_id: u64) -> bool {
        self.installations.get(&installation_id).is_some_and(|installation| installation.suspended_at.is_none())
    }

    /// Add an account (with the `Default` runner group for organisations).
    pub(crate) fn add_account(&mut self, login: &str, kind: OrgType) -> u64 {
        let id = self.next_id();
        self.accounts.insert(id, AccountRecord { id, login: login.to_owned(), kind });
        if kind == OrgType::Organization {
            let default = GroupRecord { id: DEFAULT_RUNNER_GROUP_ID, name: DEFAULT_RUNNER_GROUP_NAME.to_owned() };
            self.groups.insert(id, vec![default]);
        }
        id
    }

    /// The repository `name` of `owner_id`, created if needed.
    pub(crate) fn ensure_repo(&mut self, owner_id: u64, name: &str) -> u64 {
        if let Some(repo) = self.repo_by_name(owner_id, name) {
            return repo.id;
        }
        let id = self.next_id();
        self.repos.insert(id, RepoRecord { id, owner_id, name: name.to_owned() });
        id
    }

    /// Remove a runner registration. Returns whether it existed.
    pub(crate) fn remove_runner(&mut self, runner_id: u64) -> bool {
        self.runners.remove(&runner_id).is_some()
    }

    /// Assign the oldest fitting queued job to the runner, as GitHub does: same organisation (or
    /// repository, for repository runners), every job label among the runner's labels, and the
    /// job's installation active. Returns the runner's job (an earlier one if it already has one).
    pub(crate) fn assign_job(&mut self, runner_id: u64, now: DateTime<Utc>) -> Option<u64> {
        let runner = self.runners.get(&runner_id)?;
        if let Some(job_id) = runner.job_id {
            return Some(job_id);
        }
        let job_id = self.queued.iter().copied().find(|job_id| {
            self.jobs.get(job_id).is_some_and(|job| {
                let in_scope = match runner.scope {
                    Scope::Org(account_id) => {
                        self.repos.get(&job.repo_id).is_some_and(|repo| repo.owner_id == account_id)
                    }
                    Scope::Repo(repo_id) => job.repo_id == repo_id,
                };
                job.status == JobStatus::Queued
                    && in_scope
                    && runner.accepts(&job.labels)
                    && self.installation_active(job.installation_id)
            })
        })?;
        let (runner_name, group) = (runner.name.clone(), (runner.group_id, runner.group_name.clone()));
        self.queued.remove(&job_id);
        if let Some(runner) = self.runners.get_mut(&runner_id) {
            runner.job_id = Some(job_id);
        }
        let job = self.jobs.get_mut(&job_id)?;
        job.status = JobStatus::InProgress;
        job.runner_id = Some(runner_id);
        job.runner_name = Some(runner_name);
        job.runner_group = Some(group);
        job.started_at = Some(now);
        job.assignments += 1;
        Some(job_id)
    }

    /// Complete a job (no-op when it already is); returns whether it changed.
    pub(crate) fn complete_job(&mut self, job_id: u64, conclusion: &str, now: DateTime<Utc>) -> bool {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return false;
        };
        if job.status == JobStatus::Completed {
            return false;
        }
        job.status = JobStatus::Completed;
        job.conclusion = Some(conclusion.to_owned());
        job.completed_at = Some(now);
        self.queued.remove(&job_id);
        true
    }
}

impl State {
    /// The payload view of an account.
    pub(crate) fn account_view(&self, account_id: u64) -> Option<Account> {
        let account = self.accounts.get(&account_id)?;
        Some(Account { login: OrgName::new(account.login.clone()), id: AccountId(account.id), kind: account.kind })
    }

    /// The payload view of a job and its repository.
    pub(crate) fn job_view(&self, job_id: u64) -> Option<(WorkflowJobPayload, Repository)> {
        let job = self.jobs.get(&job_id)?;
        let repo = self.repos.get(&job.repo_id)?;
        let repository = Repository { id: repo.id, name: repo.name.clone(), owner: self.account_view(repo.owner_id)? };
        let payload = WorkflowJobPayload {
            id: JobId(job.id),
            run_id: job.run_id,
            name: job.name.clone(),
            workflow_name: job.workflow_name.clone(),
            head_branch: job.head_branch.clone(),
            status: job.status,
            conclusion: job.conclusion.clone(),
            labels: job.labels.clone(),
            runner_id: job.runner_id.map(GithubRunnerId),
            runner_name: job.runner_name.clone(),
            runner_group_id: job.runner_group.as_ref().map(|(id, _)| *id),
            runner_group_name: job.runner_group.as_ref().map(|(_, name)| name.clone()),
            created_at: job.created_at,
            started_at: job.started_at,
            completed_at: job.completed_at,
        };
        Some((payload, repository))
    }

    /// The `workflow_job` webhook for a job's current state, ready to dispatch. None when the job
    /// is unknown or its installation is suspended or gone (GitHub sends those Apps no events).
    pub(crate) fn job_event(&self, job_id: u64, action: &str) -> Option<Outgoing> {
        let (payload, repository) = self.job_view(job_id)?;
        let installation_id = self.jobs.get(&job_id)?.installation_id;
        if !self.installation_active(installation_id) {
            return None;
        }
        let body =
            workflow_job_payload(action, &payload, &repository, InstallationId(installation_id), &default_sender());
        Some(Outgoing::new("workflow_job", &body, Some(installation_id), Some(repository.id)))
    }
}
