//! The reconciler lease: which of the replicas sharing a store runs the singleton work (the reconciler's pass,
//! with its orphan and timeout rules, missed-webhook scan, recovery poll and retention).
//!
//! A [`LeaseKeeper`] asks the store for [`RECONCILER_LEASE`] every third of its lifetime
//! ([`RENEWALS_PER_TTL`]), so two renewals in a row may fail before the lease could run out. It publishes this
//! replica's [`Role`] on a `watch` channel; the reconciler runs passes only while it reads [`Role::Leader`].
//!
//! Leadership is judged by this process's monotonic clock, never by a late answer: a lease granted by a call
//! sent at `t` is trusted until `t + ttl − margin` ([`SAFETY_MARGIN_DIVISOR`]), since the store counted the
//! lifetime from a moment no earlier than `t`. The keeper steps down at that instant even while a renewal is
//! still on its way, and on any failed renewal; an answer that arrives after it does not make it leader again.
//! A dead leader's lease therefore moves to a survivor within `ttl` plus one renewal interval; a leader that
//! stops gracefully gives the lease up ([`Store::lease_release`]) so a survivor takes it at its next renewal.

use crate::metrics as m;
use ghr_core::clock::Clock;
use ghr_core::ports::{LeaseRequest, RECONCILER_LEASE, Store};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Renewals per lease lifetime: the lease is renewed every `ttl / RENEWALS_PER_TTL`.
pub const RENEWALS_PER_TTL: u32 = 3;
/// The leader stops `ttl / SAFETY_MARGIN_DIVISOR` before its lease could run out (clock rates differ, and work
/// started just before the deadline needs a moment to notice it).
pub const SAFETY_MARGIN_DIVISOR: u32 = 5;

/// This replica's part in the singleton work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Holds the reconciler lease: runs the singleton work.
    Leader,
    /// Another replica holds the lease, or this one could not confirm it: takes webhooks and dispatches only.
    Standby,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Standby => "standby",
        }
    }

    pub fn is_leader(self) -> bool {
        self == Role::Leader
    }
}

/// Keeps (or waits for) the reconciler lease for one replica and publishes its role.
pub struct LeaseKeeper {
    store: Arc<dyn Store>,
    /// Stamps the requests (a store shared across hosts judges expiry by its own clock instead).
    clock: Arc<dyn Clock>,
    replica_id: String,
    ttl: Duration,
    role: watch::Sender<Role>,
    takeovers: AtomicU64,
}

impl LeaseKeeper {
    /// A keeper for `replica_id`, standby until its first renewal succeeds.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, replica_id: String, ttl: Duration) -> Self {
        let (role, _) = watch::channel(Role::Standby);
        metrics::gauge!(m::RECONCILER_LEADER).set(0.0);
        Self { store, clock, replica_id, ttl, role, takeovers: AtomicU64::new(0) }
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// The current role.
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// The role and its changes.
    pub fn watch(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// How many times this replica became leader.
    pub fn takeovers(&self) -> u64 {
        self.takeovers.load(Ordering::Relaxed)
    }

    /// How often the lease is renewed (or a standby tries to take it).
    pub fn renew_every(&self) -> Duration {
        self.ttl / RENEWALS_PER_TTL
    }

    /// How long after a renewal was sent its lease is trusted.
    fn trusted_for(&self) -> Duration {
        self.ttl - self.ttl / SAFETY_MARGIN_DIVISOR
    }

    /// Renew or take the lease every [`LeaseKeeper::renew_every`] until `stop`, then step down and give the lease
    /// up. Stop this only once the singleton work has stopped (see [`crate::reconciler::Reconciler::run`]).
    pub async fn run(&self, stop: CancellationToken) {
        // Export both series from the start (the recorder may have been installed after `new`).
        metrics::gauge!(m::RECONCILER_LEADER).set(if self.role().is_leader() { 1.0 } else { 0.0 });
        metrics::counter!(m::LEASE_TAKEOVERS).increment(0);
        let mut trusted_until: Option<Instant> = None;
        loop {
            let sent = Instant::now();
            let request = LeaseRequest {
                name: RECONCILER_LEASE.to_owned(),
                holder: self.replica_id.clone(),
                ttl: self.ttl,
                now: self.clock.now(),
            };
            let call = self.store.lease_acquire(request);
            tokio::pin!(call);
            let answer = loop {
                tokio::select! {
                    answer = &mut call => break Some(answer),
                    () = sleep_until(trusted_until) => {
                        trusted_until = None;
                        self.step_down("the lease renewal had not returned before the lease could run out");
                    }
                    () = stop.cancelled() => break None,
                }
            };
            let Some(answer) = answer else { break };
            trusted_until = match answer {
                Ok(state) if state.held_by(&self.replica_id) => {
                    match trusted_until_after(sent, Instant::now(), self.trusted_for()) {
                        Some(until) => {
                            self.lead();
                            Some(until)
                        }
                        None => {
                            self.step_down("the lease renewal returned too late to trust the lease");
                            None
                        }
                    }
                }
                Ok(state) => {
                    if self.role().is_leader() {
                        tracing::warn!(holder = %state.holder, "another replica holds the reconciler lease");
                    }
                    self.step_down("another replica holds the lease");
                    None
                }
                Err(error) => {
                    tracing::warn!(
                        error = %crate::error::ErrorChain(&error),
                        "could not renew the reconciler lease; retrying"
                    );
                    self.step_down("the lease renewal failed");
                    None
                }
            };
            tokio::select! {
                () = tokio::time::sleep(self.renew_every()) => {}
                () = sleep_until(trusted_until) => {
                    trusted_until = None;
                    self.step_down("the lease could run out before the next renewal");
                }
                () = stop.cancelled() => break,
            }
        }
        self.step_down("the replica is stopping");
        if let Err(error) = self.store.lease_release(RECONCILER_LEASE, &self.replica_id).await {
            tracing::warn!(
                error = %crate::error::ErrorChain(&error),
                "could not give up the reconciler lease; another replica takes it when it runs out"
            );
        }
    }

    fn lead(&self) {
        if self.role.send_replace(Role::Leader) == Role::Standby {
            self.takeovers.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::LEASE_TAKEOVERS).increment(1);
            metrics::gauge!(m::RECONCILER_LEADER).set(1.0);
            tracing::info!(replica = %self.replica_id, "this replica now runs the reconciler (lease taken)");
        }
    }

    fn step_down(&self, why: &str) {
        if self.role.send_replace(Role::Standby) == Role::Leader {
            metrics::gauge!(m::RECONCILER_LEADER).set(0.0);
            tracing::info!(replica = %self.replica_id, why, "this replica stopped running the reconciler");
        }
    }
}

/// Until when a lease granted to a request sent at `sent` and answered at `answered` may be trusted: `trusted_for`
/// after the request was sent, since the store counted the lifetime from no earlier than that; `None` when the
/// answer came at or after that instant (the lease may already have run out).
fn trusted_until_after(sent: Instant, answered: Instant, trusted_for: Duration) -> Option<Instant> {
    let until = sent + trusted_for;
    (answered < until).then_some(until)
}

/// Sleep until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghr_core::clock::SystemClock;
    use ghr_store::SqliteStore;
    use std::time::Duration;

    /// A short lease, so handovers happen within a test.
    const TTL: Duration = Duration::from_secs(1);
    /// Generous bound on anything that should happen within a lease's lifetime.
    const BOUND: Duration = Duration::from_secs(5);
    const POLL: Duration = Duration::from_millis(10);

    async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let path = dir.path().join("ghr.db");
        Arc::new(SqliteStore::open(&path.display().to_string()).await.expect("opening the store"))
    }

    fn keeper(store: Arc<dyn Store>, id: &str) -> Arc<LeaseKeeper> {
        Arc::new(LeaseKeeper::new(store, Arc::new(SystemClock), id.to_owned(), TTL))
    }

    fn start(keeper: &Arc<LeaseKeeper>, stop: &CancellationToken) -> tokio::task::JoinHandle<()> {
        let (keeper, stop) = (keeper.clone(), stop.clone());
        tokio::spawn(async move { keeper.run(stop).await })
    }

    /// Wait until `keeper` has `role`; how long it took.
    async fn until_role(keeper: &LeaseKeeper, role: Role) -> Duration {
        let started = Instant::now();
        let mut watch = keeper.watch();
        tokio::time::timeout(BOUND, watch.wait_for(|r| *r == role))
            .await
            .unwrap_or_else(|_| panic!("{} did not become {role:?} within {BOUND:?}", keeper.replica_id()))
            .expect("the keeper is alive");
        started.elapsed()
    }

    #[tokio::test]
    async fn a_grant_is_trusted_from_when_it_was_asked_for_and_not_at_all_when_it_comes_back_too_late() {
        let k = LeaseKeeper::new(
            Arc::new(SqliteStore::open_in_memory().await.expect("a store")),
            Arc::new(SystemClock),
            "a".into(),
            Duration::from_secs(15),
        );
        assert_eq!((k.renew_every(), k.trusted_for()), (Duration::from_secs(5), Duration::from_secs(12)));
        let sent = Instant::now();
        let trusted = k.trusted_for();
        assert_eq!(trusted_until_after(sent, sent + Duration::from_millis(30), trusted), Some(sent + trusted));
        assert_eq!(trusted_until_after(sent, sent + trusted, trusted), None, "answered as trust ran out");
        assert_eq!(trusted_until_after(sent, sent + Duration::from_secs(20), trusted), None, "after the lease's end");
    }

    #[tokio::test]
    async fn one_leader_at_a_time_and_a_graceful_stop_hands_over_within_one_renewal() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (a, b) = (keeper(store(&dir).await, "a"), keeper(store(&dir).await, "b"));
        let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
        let task_a = start(&a, &stop_a);
        until_role(&a, Role::Leader).await;
        let task_b = start(&b, &stop_b);
        // Several lifetimes: the holder keeps renewing, the other never leads.
        let watched = Instant::now();
        while watched.elapsed() < 3 * TTL {
            assert!(
                a.role().is_leader() && !b.role().is_leader(),
                "a leads and b waits: {:?}/{:?}",
                a.role(),
                b.role()
            );
            tokio::time::sleep(POLL).await;
        }
        assert_eq!((a.takeovers(), b.takeovers()), (1, 0));

        stop_a.cancel();
        task_a.await.expect("a stops");
        assert_eq!(a.role(), Role::Standby);
        let took = until_role(&b, Role::Leader).await;
        assert!(took <= b.renew_every() + Duration::from_millis(500), "b took over after {took:?}");
        stop_b.cancel();
        task_b.await.expect("b stops");
    }

    #[tokio::test]
    async fn a_leader_that_dies_without_giving_up_the_lease_is_replaced_within_its_lifetime_and_a_renewal() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (a, b) = (keeper(store(&dir).await, "a"), keeper(store(&dir).await, "b"));
        let stop = CancellationToken::new();
        let task_a = start(&a, &stop);
        until_role(&a, Role::Leader).await;
        let task_b = start(&b, &stop);
        tokio::time::sleep(TTL / 2).await;
        assert!(!b.role().is_leader());
        // A crash: the keeper's task is gone mid-lease, nothing released.
        task_a.abort();
        let _ = task_a.await;
        let took = until_role(&b, Role::Leader).await;
        assert!(took <= TTL + b.renew_every() + Duration::from_millis(500), "b took over after {took:?}");
        stop.cancel();
        task_b.await.expect("b stops");
    }

    #[tokio::test]
    async fn a_failed_renewal_steps_down_before_the_lease_could_run_out() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("ghr.db");
        let sqlite = Arc::new(SqliteStore::open(&path.display().to_string()).await.expect("opening the store"));
        let a = keeper(sqlite.clone(), "a");
        let stop = CancellationToken::new();
        let task = start(&a, &stop);
        until_role(&a, Role::Leader).await;
        sqlite.close().await;
        let took = until_role(&a, Role::Standby).await;
        assert!(took < a.trusted_for(), "a led on for {took:?} with a store that fails");
        stop.cancel();
        task.await.expect("a stops");
    }
}
