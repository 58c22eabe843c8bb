//! Reservations across replicas on PostgreSQL: several store instances on one schema (what several
//! `ghr serve` replicas are) reserving at once never exceed a tenant's limit or the global cap, never give a
//! job two runners, and never fail for a deadlock while reservations and releases race on the tenant and
//! global locks; runner updates from several replicas never move a runner back; and the planner's snapshots
//! read one instant while replicas write.
//!
//! Tenants and queued jobs are written with plain SQL on the schema (the same columns the tenants and jobs
//! modules write), so these tests depend on nothing but the reservation, runner and schema code.

use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, RunnerName};
use ghr_core::ports::{Reservation, ReserveRequest, RunnerUpdate, Store};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{OrgType, TenantStatus};
use ghr_store::PgStore;
use ghr_store::conformance::{at, reserve_request};
use ghr_store::testing::{fresh_postgres_url, open_postgres_store};
use sqlx::PgPool;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;

/// Store instances on one schema: the replicas of these tests.
const REPLICAS: usize = 4;
/// Reservations each scenario makes.
const RESERVATIONS: usize = 200;
/// Tasks that reserve and release in a loop in the churn scenarios (each holds at most one slot).
const CHURN_WORKERS: usize = 32;
/// The pause of a churn worker whose reservation was refused, before it asks again.
const REFUSED_PAUSE: Duration = Duration::from_millis(3);
/// The tier every test reserves on.
const TIER: &str = "small";

/// The stored names of the live states (as the schema keeps them).
fn live_states() -> Vec<&'static str> {
    RunnerState::LIVE.iter().map(|state| state.as_str()).collect()
}

/// `REPLICAS` store instances on a fresh schema.
async fn replicas() -> Vec<Arc<PgStore>> {
    let url = fresh_postgres_url().await;
    let mut stores = Vec::with_capacity(REPLICAS);
    for _ in 0..REPLICAS {
        stores.push(Arc::new(open_postgres_store(&url).await));
    }
    stores
}

/// An active organisation tenant on the `small` plan.
async fn insert_tenant(pool: &PgPool, id: u64, max_runners: u32) {
    sqlx::query(
        "INSERT INTO tenants (installation_id, org_name, org_name_lower, org_type, status, tier, max_runners, \
             created_at, updated_at) \
         VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(i64::try_from(id).expect("test installation ids are small"))
    .bind(format!("org-{id}"))
    .bind(OrgType::Organization.as_str())
    .bind(TenantStatus::Active.as_str())
    .bind(TIER)
    .bind(i64::from(max_runners))
    .bind(at(0).timestamp_millis())
    .execute(pool)
    .await
    .expect("insert a tenant");
}

/// `count` jobs of `installation` queued for the test tier, ids from `first`.
async fn queue_jobs(pool: &PgPool, installation: u64, first: u64, count: u64) {
    sqlx::query(
        "INSERT INTO jobs (job_id, installation_id, repository, labels, tier, status, received_at, queued_at, \
             updated_at) \
         SELECT id, $1, $2, $3, $4, 'queued', $5 + id, $5 + id, $5 + id FROM generate_series($6::BIGINT, $7) AS id",
    )
    .bind(i64::try_from(installation).expect("test installation ids are small"))
    .bind(format!("org-{installation}/app"))
    .bind(format!("[\"self-hosted\",\"{TIER}\"]"))
    .bind(TIER)
    .bind(at(0).timestamp_millis())
    .bind(i64::try_from(first).expect("small job ids"))
    .bind(i64::try_from(first + count - 1).expect("small job ids"))
    .execute(pool)
    .await
    .expect("queue jobs");
}

/// Live runners of one tenant, or of every tenant, counted by the database now.
async fn live_count(pool: &PgPool, installation: Option<u64>) -> u32 {
    let installation = installation.map(|id| i64::try_from(id).expect("small installation ids"));
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM runners WHERE state = ANY($1) AND ($2::BIGINT IS NULL OR installation_id = $2)",
    )
    .bind(live_states())
    .bind(installation)
    .fetch_one(pool)
    .await
    .expect("count live runners");
    u32::try_from(n).expect("a small count")
}

/// The most runners the stored records show live at one instant, reading each runner as the interval
/// `[created_at, terminated_at)`: what usage and billing see, which must never exceed what was admitted.
async fn peak_of_records(pool: &PgPool, installation: Option<u64>) -> u32 {
    let installation = installation.map(|id| i64::try_from(id).expect("small installation ids"));
    let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT created_at, terminated_at FROM runners WHERE $1::BIGINT IS NULL OR installation_id = $1",
    )
    .bind(installation)
    .fetch_all(pool)
    .await
    .expect("read runner intervals");
    // At one instant a release (-1) counts before a start (+1): the intervals are half-open.
    let mut events: Vec<(i64, i32)> = Vec::new();
    for (created, terminated) in rows {
        match terminated {
            Some(end) if end <= created => {}
            Some(end) => events.extend([(created, 1), (end, -1)]),
            None => events.push((created, 1)),
        }
    }
    events.sort();
    let (mut live, mut peak) = (0i32, 0i32);
    for (_, step) in events {
        live += step;
        peak = peak.max(live);
    }
    u32::try_from(peak).expect("a count is never negative")
}

/// The outcomes of one reservation from each of `RESERVATIONS` tasks started at once, spread over the replicas.
async fn reserve_all_at_once(stores: &[Arc<PgStore>], request: impl Fn(usize) -> ReserveRequest) -> Vec<Reservation> {
    let mut tasks = JoinSet::new();
    for task in 0..RESERVATIONS {
        let store = Arc::clone(&stores[task % stores.len()]);
        let request = request(task);
        tasks.spawn(async move { store.runner_reserve(request).await });
    }
    let mut outcomes = Vec::with_capacity(RESERVATIONS);
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.expect("a reservation task panicked");
        outcomes.push(outcome.unwrap_or_else(|e| panic!("runner_reserve failed: {}", ghr_core::error::ErrorChain(&e))));
    }
    outcomes
}

/// Reserved runners among `outcomes`, each once; the rest must be `other`.
fn reserved_seqs(outcomes: &[Reservation], other: &Reservation) -> BTreeSet<u64> {
    let mut seqs = BTreeSet::new();
    for outcome in outcomes {
        match outcome {
            Reservation::Reserved(runner) => assert!(seqs.insert(runner.seq.0), "seq {} issued twice", runner.seq),
            refused => assert_eq!(refused, other, "every reservation that did not get a slot says why"),
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_limit_holds_across_replicas() {
    const LIMIT: u32 = 3;
    let stores = replicas().await;
    let pool = stores[0].pool();
    insert_tenant(pool, 1, LIMIT).await;
    queue_jobs(pool, 1, 1, 50).await;

    let outcomes = reserve_all_at_once(&stores, |task| reserve_request(1, TIER, task as i64)).await;
    let reserved = reserved_seqs(&outcomes, &Reservation::Refused(Reason::TenantAtLimit));
    assert_eq!(reserved.len(), LIMIT as usize, "exactly max_runners of {RESERVATIONS} reservations succeed");
    assert_eq!(live_count(pool, Some(1)).await, LIMIT, "the database holds exactly max_runners live runners");
    let counts = stores[1].runner_live_counts().await.expect("runner_live_counts");
    assert_eq!(counts.get(&InstallationId(1)), Some(&LIMIT), "every replica reads the same count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_limit_holds_while_releases_interleave() {
    const LIMIT: u32 = 3;
    let stores = replicas().await;
    insert_tenant(stores[0].pool(), 1, LIMIT).await;
    queue_jobs(stores[0].pool(), 1, 1, 50).await;

    let peak = churn(&stores, &[1], None).await;
    assert!(peak <= LIMIT, "{peak} live runners seen at once with max_runners {LIMIT}");
    let records = peak_of_records(stores[0].pool(), Some(1)).await;
    assert!(records <= LIMIT, "runner records show {records} live at one instant with max_runners {LIMIT}");
    assert_eq!(live_count(stores[0].pool(), Some(1)).await, 0, "every reserved runner was released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_cap_holds_across_replicas() {
    const CAP: u32 = 5;
    const TENANTS: [u64; 4] = [1, 2, 3, 4];
    let stores = replicas().await;
    let pool = stores[0].pool();
    for id in TENANTS {
        insert_tenant(pool, id, 10).await;
        queue_jobs(pool, id, id * 1_000, 20).await;
    }
    let capped = |task: usize| ReserveRequest {
        global_cap: Some(CAP),
        ..reserve_request(TENANTS[task % TENANTS.len()], TIER, task as i64)
    };
    let outcomes = reserve_all_at_once(&stores, capped).await;
    let reserved = reserved_seqs(&outcomes, &Reservation::Refused(Reason::GlobalCap));
    assert_eq!(reserved.len(), CAP as usize, "exactly the cap's number of reservations succeed across tenants");
    assert_eq!(live_count(pool, None).await, CAP, "the database holds exactly the cap's number of live runners");

    // Again with releases interleaved: the cap holds at every moment, and in the records.
    for id in TENANTS {
        let release = stores[0].runner_list(ghr_core::ports::RunnerFilter {
            installation_id: Some(InstallationId(id)),
            ..Default::default()
        });
        for runner in release.await.expect("runner_list") {
            let update = RunnerUpdate::state(RunnerState::Terminated, at(RESERVATIONS as i64));
            stores[1].runner_update(&runner.name, update).await.expect("runner_update");
        }
    }
    let peak = churn(&stores, &TENANTS, Some(CAP)).await;
    assert!(peak <= CAP, "{peak} live runners seen at once under a global cap of {CAP}");
    let records = peak_of_records(pool, None).await;
    assert!(records <= CAP, "runner records show {records} live at one instant under a global cap of {CAP}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_gets_two_runners_across_replicas() {
    const JOBS: u64 = 17;
    let stores = replicas().await;
    insert_tenant(stores[0].pool(), 1, 1_000).await;
    queue_jobs(stores[0].pool(), 1, 1, JOBS).await;

    let outcomes = reserve_all_at_once(&stores, |task| reserve_request(1, TIER, task as i64)).await;
    let reserved = reserved_seqs(&outcomes, &Reservation::NoDemand);
    assert_eq!(reserved.len() as u64, JOBS, "one runner per queued job, then no demand");
    assert_eq!(u64::from(live_count(stores[0].pool(), Some(1)).await), JOBS);
    let again = stores[2].runner_reserve(reserve_request(1, TIER, 1_000)).await.expect("runner_reserve");
    assert_eq!(again, Reservation::NoDemand, "every queued job is covered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_and_releases_racing_on_both_locks_never_fail() {
    const TENANTS: [u64; 3] = [1, 2, 3];
    const CAP: u32 = 4;
    const ROUNDS: usize = 12;
    const WORKERS: usize = 16;
    let stores = replicas().await;
    let pool = stores[0].pool().clone();
    for id in TENANTS {
        insert_tenant(&pool, id, 2).await;
        queue_jobs(&pool, id, id * 1_000, 50).await;
    }
    let clock = Arc::new(AtomicI64::new(0));
    let mut tasks = JoinSet::new();
    for worker in 0..WORKERS {
        let stores = stores.clone();
        let (clock, pool) = (Arc::clone(&clock), pool.clone());
        tasks.spawn(async move {
            for round in 0..ROUNDS {
                let step = worker + round;
                let tenant = TENANTS[step % TENANTS.len()];
                // Half the reservations take the global lock after the tenant's, half only the tenant's.
                let global_cap = (step % 2 == 0).then_some(CAP);
                let request = ReserveRequest {
                    global_cap,
                    ..reserve_request(tenant, TIER, clock.fetch_add(1, Ordering::SeqCst))
                };
                let store = &stores[step % stores.len()];
                let outcome = store.runner_reserve(request).await.map_err(|e| format!("runner_reserve: {e}"))?;
                if step % 3 == 0 {
                    // An operator's limit change: writes the tenant row every reservation locks.
                    sqlx::query("UPDATE tenants SET max_runners = 2 + $2, updated_at = $3 WHERE installation_id = $1")
                        .bind(i64::try_from(tenant).expect("small ids"))
                        .bind(i64::try_from(round % 2).expect("0 or 1"))
                        .bind(clock.fetch_add(1, Ordering::SeqCst))
                        .execute(&pool)
                        .await
                        .map_err(|e| format!("tenant limit change: {e}"))?;
                }
                if let Reservation::Reserved(runner) = outcome {
                    // Released by another replica than the one that reserved it.
                    let other = &stores[(step + 1) % stores.len()];
                    let update = RunnerUpdate::state(RunnerState::Terminated, ms(clock.fetch_add(1, Ordering::SeqCst)));
                    other.runner_update(&runner.name, update).await.map_err(|e| format!("runner_update: {e}"))?;
                }
            }
            Ok::<_, String>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a racing task panicked").unwrap_or_else(|e| panic!("a store call failed: {e}"));
    }
    assert_eq!(live_count(&pool, None).await, 0, "every reserved runner was released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_read_one_instant_while_replicas_write() {
    const TENANTS: [u64; 4] = [1, 2, 3, 4];
    let stores = replicas().await;
    for id in TENANTS {
        insert_tenant(stores[0].pool(), id, 2).await;
        queue_jobs(stores[0].pool(), id, id * 1_000, 10).await;
    }
    let reader = Arc::clone(&stores[REPLICAS - 1]);
    let done = AtomicBool::new(false);
    let churning = async {
        churn(&stores, &TENANTS, None).await;
        done.store(true, Ordering::SeqCst);
    };
    // The churn's runners are only ever requested (unbound) or terminated, so in any one instant a tenant's
    // unbound runners are its live runners, the tenants' live runners add up to the deployment's, and the
    // tenants with unbound runners are those of the live runners. Reads at different instants would not agree.
    let reading = async {
        let mut reads = 0u32;
        while !done.load(Ordering::SeqCst) {
            let everyone = Some(TENANTS.iter().copied().map(InstallationId).collect());
            let query = ghr_core::ports::DemandQuery { tenants: everyone, global_cap: Some(1_000) };
            let snapshot = reader.demand_snapshot(query).await.expect("demand_snapshot");
            let live: u32 = snapshot.tenants.values().map(|load| load.live).sum();
            assert_eq!(live, snapshot.global_live, "per-tenant and global live counts of one snapshot");
            for (id, load) in &snapshot.tenants {
                let unbound: u32 =
                    snapshot.unbound.iter().filter(|(k, _)| k.installation_id == *id).map(|(_, n)| n).sum();
                assert_eq!(unbound, load.live, "tenant {id}: unbound and live runners of one snapshot");
            }
            let fleet =
                reader.fleet_records(ghr_core::planner::fleet::StaleQuery::all(at(0))).await.expect("fleet_records");
            let of_live: BTreeSet<InstallationId> = fleet.live.iter().map(|r| r.installation_id).collect();
            let of_demand: BTreeSet<InstallationId> = fleet.demand.keys().map(|k| k.installation_id).collect();
            assert_eq!(of_live, of_demand, "tenants with unbound runners are those of the live runners");
            assert_eq!(fleet.tenants.keys().copied().collect::<BTreeSet<_>>(), of_live, "the live runners' tenants");
            reads += 1;
        }
        reads
    };
    let ((), reads) = tokio::join!(churning, reading);
    assert!(reads > 0, "the snapshots were read while the replicas wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_updates_from_several_replicas_never_move_a_runner_back() {
    const RUNNERS: u64 = 40;
    const STEPS: [RunnerState; 5] =
        [RunnerState::Launching, RunnerState::Idle, RunnerState::Busy, RunnerState::Finished, RunnerState::Terminated];
    let stores = replicas().await;
    insert_tenant(stores[0].pool(), 1, 1_000).await;
    queue_jobs(stores[0].pool(), 1, 1, RUNNERS).await;
    let mut names = Vec::new();
    for i in 0..RUNNERS {
        match stores[0].runner_reserve(reserve_request(1, TIER, i as i64)).await.expect("runner_reserve") {
            Reservation::Reserved(runner) => names.push(runner.name),
            other => panic!("reservation {i}: {other:?}"),
        }
    }
    // Every step of every runner at once, each from another replica: whatever order they commit in, each is
    // merged into the state the previous one committed, so the terminal state is never left.
    let mut tasks = JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        for (step, state) in STEPS.into_iter().enumerate() {
            let store = Arc::clone(&stores[(i + step) % stores.len()]);
            let name = name.clone();
            tasks.spawn(async move {
                let update = RunnerUpdate::state(state, ms(1_000 + step as i64));
                store.runner_update(&name, update).await.map(|runner| runner.map(|r| r.state))
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let state = joined.expect("an update task panicked").unwrap_or_else(|e| panic!("runner_update failed: {e}"));
        assert!(state.is_some(), "every runner exists");
    }
    for name in &names {
        let runner = stores[1].runner_get(name).await.expect("runner_get").expect("a reserved runner");
        assert_eq!(runner.state, RunnerState::Terminated, "{name} left its terminal state");
        assert_eq!(runner.terminated_at, Some(ms(1_000 + 4)), "{name}: termination stamped once, by its own update");
    }
    assert_eq!(live_count(stores[0].pool(), Some(1)).await, 0, "no runner came back to life");
}

/// `ms` milliseconds after the tests' epoch.
fn ms(millis: i64) -> Timestamp {
    at(0) + chrono::Duration::milliseconds(millis)
}

/// `RESERVATIONS` reservations, each released soon after, by `CHURN_WORKERS` tasks spread over the replicas
/// and the tenants; a refused worker asks again after a pause. After each reservation the worker counts the
/// live runners of the reserved tenant (of all, under a cap) and a watcher counts them continuously: returns
/// the most seen, and panics on a failed store call.
async fn churn(stores: &[Arc<PgStore>], tenants: &[u64], global_cap: Option<u32>) -> u32 {
    let clock = Arc::new(AtomicI64::new(1_000_000));
    let remaining = Arc::new(AtomicU32::new(u32::try_from(RESERVATIONS).expect("a small count")));
    let peak = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let scope = move |tenant: u64| if global_cap.is_some() { None } else { Some(tenant) };

    let watcher = {
        let (pool, peak, done) = (stores[0].pool().clone(), Arc::clone(&peak), Arc::clone(&done));
        let watched = scope(tenants[0]);
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(live_count(&pool, watched).await, Ordering::SeqCst);
            }
        })
    };
    let mut workers = JoinSet::new();
    for worker in 0..CHURN_WORKERS {
        let (store, releaser) =
            (Arc::clone(&stores[worker % stores.len()]), Arc::clone(&stores[(worker + 1) % stores.len()]));
        let (clock, remaining, peak) = (Arc::clone(&clock), Arc::clone(&remaining), Arc::clone(&peak));
        let tenant = tenants[worker % tenants.len()];
        workers.spawn(async move {
            while remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                let name = reserve_until_admitted(&store, tenant, global_cap, &clock).await;
                peak.fetch_max(live_count(store.pool(), scope(tenant)).await, Ordering::SeqCst);
                let update = RunnerUpdate::state(RunnerState::Terminated, ms(clock.fetch_add(1, Ordering::SeqCst)));
                let released = releaser.runner_update(&name, update).await;
                let released = released.unwrap_or_else(|e| panic!("runner_update failed: {e}"));
                assert_eq!(released.map(|r| r.state), Some(RunnerState::Terminated), "release of {name}");
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined.expect("a churn worker panicked");
    }
    done.store(true, Ordering::SeqCst);
    watcher.await.expect("the watcher panicked");
    peak.load(Ordering::SeqCst)
}

/// Reserve a runner for `tenant`, asking again after a pause while admission refuses it.
async fn reserve_until_admitted(
    store: &PgStore,
    tenant: u64,
    global_cap: Option<u32>,
    clock: &AtomicI64,
) -> RunnerName {
    loop {
        let mut request = reserve_request(tenant, TIER, 0);
        request.global_cap = global_cap;
        request.now = ms(clock.fetch_add(1, Ordering::SeqCst));
        match store.runner_reserve(request).await {
            Ok(Reservation::Reserved(runner)) => return runner.name,
            Ok(Reservation::Refused(Reason::TenantAtLimit | Reason::GlobalCap)) => {
                tokio::time::sleep(REFUSED_PAUSE).await;
            }
            Ok(other) => panic!("a churn reservation got {other:?}: the jobs should keep demand open"),
            Err(e) => panic!("runner_reserve failed: {}", ghr_core::error::ErrorChain(&e)),
        }
    }
}
