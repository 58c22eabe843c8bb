//! Races between replicas that a single process cannot have: the reconciler's fleet snapshot is read before it
//! lists GitHub's registrations, and another replica may reserve a runner and mint its registration in between.
//! That registration is not a ghost: deleting it would strand the new runner before it connects.

mod support;

use async_trait::async_trait;
use ghr_core::ids::{GithubRunnerId, InstallationId, JobId, OrgName, RunnerName};
use ghr_core::job::JobStatus;
use ghr_core::ports::{
    DeliveriesPage, DeliveriesRequest, GitHubApi, GithubError, GithubJob, GithubRunner, JitConfig, JitRequest,
    Reservation, ReserveRequest, RunnerScope, RunnerUpdate, Store,
};
use ghr_core::runner::RunnerState;
use ghr_engine::Ports;
use ghr_engine::assembly::Engine;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{SMALL, labels, live_runners, observe, options, start, wait};

const SOON: Duration = Duration::from_secs(20);
const FIRST_JOB: JobId = JobId(910_000_001);
const SECOND_JOB: JobId = JobId(910_000_002);

/// The production client, except that the first registration listing of `org` first plays another replica:
/// it reserves a runner for the queued `SECOND_JOB` and mints that runner's registration.
struct AnotherReplicaLaunches {
    inner: Arc<dyn GitHubApi>,
    store: Arc<dyn Store>,
    installation: InstallationId,
    environment: String,
    launched: Mutex<Option<RunnerName>>,
}

impl AnotherReplicaLaunches {
    async fn launch_behind_the_snapshot(&self, scope: &RunnerScope) {
        if self.launched.lock().unwrap().is_some() {
            return;
        }
        let reservation = self
            .store
            .runner_reserve(ReserveRequest {
                installation_id: self.installation,
                tier: SMALL.into(),
                scope_repo: None,
                intended_job: Some(SECOND_JOB),
                global_cap: None,
                environment: self.environment.clone(),
                now: chrono::Utc::now(),
            })
            .await
            .expect("reserving");
        let Reservation::Reserved(runner) = reservation else {
            panic!("the other replica's reservation: {reservation:?}")
        };
        let request = JitRequest {
            installation_id: self.installation,
            scope: scope.clone(),
            name: runner.name.clone(),
            labels: labels(SMALL).into_iter().map(String::from).collect(),
            runner_group: "Default".into(),
        };
        self.inner.create_jit_config(&request).await.expect("minting the other replica's registration");
        *self.launched.lock().unwrap() = Some(runner.name.clone());
    }
}

#[async_trait]
impl GitHubApi for AnotherReplicaLaunches {
    async fn create_jit_config(&self, request: &JitRequest) -> Result<JitConfig, GithubError> {
        self.inner.create_jit_config(request).await
    }
    async fn get_runner(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
        id: GithubRunnerId,
    ) -> Result<Option<GithubRunner>, GithubError> {
        self.inner.get_runner(installation, scope, id).await
    }
    async fn list_runners(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
    ) -> Result<Vec<GithubRunner>, GithubError> {
        if installation == self.installation {
            self.launch_behind_the_snapshot(scope).await;
        }
        self.inner.list_runners(installation, scope).await
    }
    async fn delete_runner(
        &self,
        installation: InstallationId,
        scope: &RunnerScope,
        id: GithubRunnerId,
    ) -> Result<(), GithubError> {
        self.inner.delete_runner(installation, scope, id).await
    }
    async fn get_job(
        &self,
        installation: InstallationId,
        repository: &str,
        id: JobId,
    ) -> Result<Option<GithubJob>, GithubError> {
        self.inner.get_job(installation, repository, id).await
    }
    async fn list_installation_repositories(&self, installation: InstallationId) -> Result<Vec<String>, GithubError> {
        self.inner.list_installation_repositories(installation).await
    }
    async fn list_queued_jobs(
        &self,
        installation: InstallationId,
        repository: &str,
    ) -> Result<Vec<GithubJob>, GithubError> {
        self.inner.list_queued_jobs(installation, repository).await
    }
    async fn list_deliveries_page(&self, request: &DeliveriesRequest) -> Result<DeliveriesPage, GithubError> {
        self.inner.list_deliveries_page(request).await
    }
    async fn redeliver(&self, delivery: u64) -> Result<(), GithubError> {
        self.inner.redeliver(delivery).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_minted_by_another_replica_after_the_snapshot_is_not_a_ghost() {
    // The stack's own dispatcher is quiet, so only the "other replica" reserves for the second job.
    let stack = start(options(|s| s.dispatch_tick = Duration::from_secs(3600))).await;
    let acme = stack.emulator.install_org("acme").await.expect("installing the App");
    // A live runner of acme, so the reconciler lists acme's registrations.
    observe(&stack, acme, "acme/app", FIRST_JOB, &labels(SMALL), JobStatus::Queued).await;
    stack.server.dispatcher_wake.notify_one();
    wait(&stack, SOON, "a runner is launched for the first job", || async {
        live_runners(&stack, acme).await.iter().any(|r| r.state != RunnerState::Requested)
    })
    .await;
    // The second job: queued straight into the store, so the stack's dispatcher is not woken for it.
    observe(&stack, acme, "acme/app", SECOND_JOB, &labels(SMALL), JobStatus::Queued).await;

    let github = Arc::new(AnotherReplicaLaunches {
        inner: stack.github.clone(),
        store: stack.store.clone(),
        installation: acme,
        environment: stack.settings.environment.clone(),
        launched: Mutex::new(None),
    });
    let leader = Engine::assemble(
        &Ports::new(stack.store.clone(), github.clone(), stack.provider.clone()),
        stack.settings.clone(),
    );
    let report = leader.reconciler.pass(chrono::Utc::now()).await;
    let launched = github.launched.lock().unwrap().clone().expect("the other replica launched during the pass");
    assert_eq!(report.ghost_registrations_deleted, 0, "{report:?}");
    assert!(
        stack.emulator.runner_by_name(launched.as_str()).is_some(),
        "the registration of a runner reserved after the snapshot is kept"
    );

    // Clean-up: the other replica's runner never launches; release it and remove its registration.
    let scope = RunnerScope::Org(OrgName::from("acme"));
    let registration = stack.emulator.runner_by_name(launched.as_str()).expect("registered").id;
    stack.github.delete_runner(acme, &scope, registration).await.expect("deleting");
    stack
        .store
        .runner_update(&launched, RunnerUpdate::state(RunnerState::Failed, chrono::Utc::now()))
        .await
        .expect("releasing");
    stack.stop().await.expect("the stack stops");
}
