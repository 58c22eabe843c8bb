//! Several replicas on one SQLite file: one reconciler leader at a time, standbys that never run a pass, a
//! graceful handover within one renewal, a crashed leader replaced within its lease's lifetime and a renewal,
//! `/readyz` naming each replica's role, a pass abandoned when the lease cannot be renewed, and the leader gauge
//! and takeover counter on `/metrics`.

mod support;

use async_trait::async_trait;
use ghr_core::ids::InstanceId;
use ghr_core::ports::{Instance, LaunchRequest, Provider, ProviderError};
use ghr_engine::Ports;
use ghr_engine::assembly::Engine;
use ghr_engine::lease::Role;
use ghr_engine::reconciler::Reconciler;
use ghr_engine::settings::EngineSettings;
use ghr_store::SqliteStore;
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::provider::RecordingProvider;
use support::{Harness, github_client};
use tokio_util::sync::CancellationToken;

/// A short lease, so handovers happen within a test (renewed every third of it).
const TTL: Duration = Duration::from_secs(1);
/// Slack on top of a bound the protocol promises (scheduling on a loaded machine, the store's write lock).
const SLACK: Duration = Duration::from_millis(1500);
/// Generous bound on waiting for a role.
const ROLE_DEADLINE: Duration = Duration::from_secs(10);

fn replica(id: &'static str) -> impl FnOnce(&mut EngineSettings) {
    move |settings| {
        settings.replica_id = id.to_owned();
        settings.lease_ttl = TTL;
    }
}

/// Wait until `reconciler`'s replica has `role`; how long it took.
async fn until_role(reconciler: &Reconciler, role: Role) -> Duration {
    let started = Instant::now();
    let mut watch = reconciler.lease().watch();
    tokio::time::timeout(ROLE_DEADLINE, watch.wait_for(|r| *r == role))
        .await
        .unwrap_or_else(|_| panic!("{} did not become {role:?}", reconciler.lease().replica_id()))
        .expect("the lease keeper is alive");
    started.elapsed()
}

/// Wait until `reconciler` has run at least one pass.
async fn until_passed(reconciler: &Reconciler) {
    let deadline = Instant::now() + ROLE_DEADLINE;
    while reconciler.passes() == 0 {
        assert!(Instant::now() < deadline, "{} never ran a pass", reconciler.lease().replica_id());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn readyz(h: &Harness) -> Value {
    h.send_raw(Method::GET, "/readyz", None, None, None).await.expect(200)
}

#[tokio::test]
async fn one_leader_runs_the_reconciler_and_a_graceful_stop_hands_over_within_one_renewal() {
    let a = Harness::start_with(replica("replica-a")).await;
    until_role(&a.server.reconciler, Role::Leader).await;
    until_passed(&a.server.reconciler).await;
    let b = a.start_replica(replica("replica-b")).await;

    // Over several lifetimes of the lease the holder keeps it and the standby never runs a pass.
    let watched = Instant::now();
    while watched.elapsed() < 3 * TTL {
        let roles = (a.server.reconciler.lease().role(), b.server.reconciler.lease().role());
        assert_eq!(roles, (Role::Leader, Role::Standby));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.server.reconciler.passes(), 0, "a standby runs no reconciler pass");
    assert!(b.server.reconciler.last_report().is_none());
    assert_eq!(a.server.reconciler.lease().takeovers(), 1);

    let (ready_a, ready_b) = (readyz(&a).await, readyz(&b).await);
    assert_eq!((ready_a["status"].as_str(), ready_b["status"].as_str()), (Some("ready"), Some("ready")));
    assert_eq!((ready_a["replica"].as_str(), ready_a["role"].as_str()), (Some("replica-a"), Some("leader")));
    assert_eq!((ready_b["replica"].as_str(), ready_b["role"].as_str()), (Some("replica-b"), Some("standby")));

    // The leader gives the lease up on its way out: the standby takes it at its next renewal and, leader
    // now, runs a pass at once.
    let a_reconciler = a.server.reconciler.clone();
    a.server.shutdown().await;
    assert_eq!(a_reconciler.lease().role(), Role::Standby);
    let took = until_role(&b.server.reconciler, Role::Leader).await;
    let renewal = b.server.reconciler.lease().renew_every();
    assert!(took <= renewal + SLACK, "the standby took over after {took:?} (renewal every {renewal:?})");
    until_passed(&b.server.reconciler).await;
    assert_eq!(readyz(&b).await["role"].as_str(), Some("leader"));
    b.server.shutdown().await;
}

#[tokio::test]
async fn a_crashed_leader_is_replaced_within_its_lease_lifetime_and_a_renewal() {
    // The first server only provides the database file and the GitHub emulator; it stops at once.
    let first = Harness::start_with(replica("replica-first")).await;
    first.server.shutdown().await;

    // The leader that crashes: an engine whose reconciler loop (with its lease keeper) is aborted mid-lease.
    let store = Arc::new(SqliteStore::open(&first.db.display().to_string()).await.expect("opening the store"));
    let ports = Ports::new(store, Arc::new(github_client(&first.github)), Arc::new(RecordingProvider::default()));
    let mut settings = EngineSettings::from_config(&ghr_config::Config::builtin());
    replica("replica-crash")(&mut settings);
    let crashing = Engine::assemble(&ports, Arc::new(settings)).reconciler;
    let task = tokio::spawn(crashing.clone().run(CancellationToken::new()));
    until_role(&crashing, Role::Leader).await;
    until_passed(&crashing).await;

    let b = Harness::start_on_file(first.db.clone(), replica("replica-b")).await;
    tokio::time::sleep(TTL / 2).await;
    assert_eq!(b.server.reconciler.lease().role(), Role::Standby);
    assert_eq!(readyz(&b).await["role"].as_str(), Some("standby"));
    let passes_before = b.server.reconciler.passes();
    assert_eq!(passes_before, 0, "a standby runs no reconciler pass");

    task.abort();
    assert!(task.await.expect_err("aborted").is_cancelled());
    let took = until_role(&b.server.reconciler, Role::Leader).await;
    let bound = TTL + b.server.reconciler.lease().renew_every() + SLACK;
    assert!(took <= bound, "the survivor took over after {took:?} (bound {bound:?})");
    until_passed(&b.server.reconciler).await;
    assert_eq!(readyz(&b).await["role"].as_str(), Some("leader"));
    assert_eq!(b.server.reconciler.lease().takeovers(), 1);
    b.server.shutdown().await;
}

#[tokio::test]
async fn the_leader_gauge_and_the_takeover_counter_are_exported() {
    let h = Harness::start_serving_metrics().await;
    until_role(&h.server.reconciler, Role::Leader).await;
    let text = h.metrics().await;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} is not exported:\n{text}"))
            .trim()
            .to_owned()
    };
    assert_eq!(value(ghr_engine::metrics::RECONCILER_LEADER), "1");
    assert_eq!(value(ghr_engine::metrics::LEASE_TAKEOVERS), "1");
}

/// A provider whose instance listing never answers (the reconciler's pass hangs in it); it notes when a listing
/// starts and when the waiting listing is dropped.
#[derive(Default)]
struct HangingProvider {
    inner: RecordingProvider,
    listing: AtomicBool,
    abandoned: Arc<AtomicBool>,
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl Provider for HangingProvider {
    fn name(&self) -> &'static str {
        "hanging"
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Instance, ProviderError> {
        self.inner.launch(request).await
    }

    async fn terminate(&self, id: &InstanceId) -> Result<(), ProviderError> {
        self.inner.terminate(id).await
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        let _flag = DropFlag(self.abandoned.clone());
        self.listing.store(true, Ordering::SeqCst);
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_pass_under_way_is_abandoned_when_the_lease_cannot_be_renewed() {
    // The first server only provides the database file and the GitHub emulator; it stops at once.
    let first = Harness::start_with(replica("replica-first")).await;
    first.server.shutdown().await;
    let store = Arc::new(SqliteStore::open(&first.db.display().to_string()).await.expect("opening the store"));
    let provider = Arc::new(HangingProvider::default());
    let ports = Ports::new(store.clone(), Arc::new(github_client(&first.github)), provider.clone());
    let mut settings = EngineSettings::from_config(&ghr_config::Config::builtin());
    replica("replica-stuck")(&mut settings);
    let reconciler = Engine::assemble(&ports, Arc::new(settings)).reconciler;
    let stop = CancellationToken::new();
    let task = tokio::spawn(reconciler.clone().run(stop.clone()));
    until_role(&reconciler, Role::Leader).await;
    let deadline = Instant::now() + ROLE_DEADLINE;
    while !provider.listing.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the leader's pass never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Every renewal fails from now on: the leader steps down before its lease could run out, and the pass
    // under way stops where it is.
    store.close().await;
    let took = until_role(&reconciler, Role::Standby).await;
    assert!(took < TTL + SLACK, "the leader stepped down after {took:?}");
    let deadline = Instant::now() + ROLE_DEADLINE;
    while !provider.abandoned.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the pass went on without the lease");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(reconciler.last_report().is_none(), "the abandoned pass reported nothing");
    stop.cancel();
    task.await.expect("the reconciler stops");
}
