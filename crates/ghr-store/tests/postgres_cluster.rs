//! What only several store instances on one PostgreSQL schema (replicas) can show: the schema check on open,
//! wake-ups crossing from one replica to another (and not echoing back), leases judged across replicas,
//! and tenant writes racing between replicas.

use chrono::Utc;
use ghr_core::error::ErrorChain;
use ghr_core::ids::{InstallationId, OrgName};
use ghr_core::ports::{LeaseRequest, Store, StoreError, StoreWake, WakeFeed};
use ghr_core::tenant::{OrgNameTaken, TenantStatus, TenantUpdate};
use ghr_store::conformance::{at, new_tenant};
use ghr_store::testing::{fresh_postgres_url, fresh_schema_name, open_postgres_store, postgres_url, test_settings};
use ghr_store::{PgLocation, PgStore, SCHEMA_PARAM, SchemaMismatch};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;
use tokio::time::timeout;

/// How long a wake-up from another replica may take to arrive before the test fails.
const WAKE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a feed must stay silent to show that a change was not reported to it.
const QUIET: Duration = Duration::from_millis(300);

/// Two replicas of one fresh, migrated schema.
async fn two_replicas() -> (Arc<PgStore>, Arc<PgStore>) {
    let url = fresh_postgres_url().await;
    (Arc::new(open_postgres_store(&url).await), Arc::new(open_postgres_store(&url).await))
}

/// The schema mismatch in an error's chain of sources.
fn mismatch(error: &StoreError) -> &SchemaMismatch {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<SchemaMismatch>() {
            return found;
        }
        current = e.source();
    }
    panic!("expected a SchemaMismatch in the chain of {}", ErrorChain(error))
}

#[tokio::test]
async fn open_refuses_a_schema_never_migrated_until_it_is_migrated() {
    let schema = fresh_schema_name();
    let url = format!("{}?{SCHEMA_PARAM}={schema}", postgres_url());
    let admin = sqlx::PgPool::connect(&postgres_url()).await.expect("connect to the test server");
    // The schema name is a generated plain identifier.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\""))).execute(&admin).await.expect("schema");
    admin.close().await;

    let error = PgStore::open(&url, &test_settings()).await.expect_err("an empty schema is refused");
    assert!(matches!(mismatch(&error), SchemaMismatch::Missing { .. }), "{}", ErrorChain(&error));
    let message = ErrorChain(&error).to_string();
    assert!(message.contains("ghr store migrate"), "the refusal says what to do: {message}");

    let location = PgLocation::parse(&url).expect("a PostgreSQL URL");
    let (migrating, migrated) = PgStore::migrate(location, &test_settings()).await.expect("migrate");
    migrating.close().await;
    assert_eq!(migrated.from, None, "the schema was created: {migrated:?}");
    let store = PgStore::open(&url, &test_settings()).await.expect("a migrated schema opens");
    let (_, created) =
        store.tenant_create(new_tenant(1, "acme", TenantStatus::Active, "small", 1), at(0)).await.unwrap();
    assert!(created, "the migrated schema takes writes");
}

#[tokio::test]
async fn open_and_migrate_refuse_a_schema_newer_than_this_ghr() {
    let url = fresh_postgres_url().await;
    let store = open_postgres_store(&url).await;
    let known: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(store.pool())
        .await
        .expect("the applied version");
    // What a later ghr's migration leaves behind.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from a later ghr', TRUE, '\\x00'::BYTEA, 0)",
    )
    .bind(known + 1)
    .execute(store.pool())
    .await
    .expect("record a later migration");
    store.close().await;

    let error = PgStore::open(&url, &test_settings()).await.expect_err("a newer schema is refused");
    match mismatch(&error) {
        SchemaMismatch::Newer { applied, known: knows, .. } => assert_eq!((*applied, *knows), (known + 1, known)),
        other => panic!("expected Newer, got {other}"),
    }
    assert!(ErrorChain(&error).to_string().contains("newer"), "{}", ErrorChain(&error));
    let location = PgLocation::parse(&url).expect("a PostgreSQL URL");
    let error = PgStore::migrate(location, &test_settings()).await.expect_err("migrate does not downgrade");
    assert!(matches!(mismatch(&error), SchemaMismatch::Newer { .. }), "{}", ErrorChain(&error));
}

/// The next wake-up, which must come within [`WAKE_DEADLINE`] and name exactly `tenants`.
async fn expect_wake(feed: &mut Box<dyn WakeFeed>, tenants: &[u64], what: &str) {
    let wake = timeout(WAKE_DEADLINE, feed.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: no wake-up within {WAKE_DEADLINE:?}"))
        .expect("the wake feed");
    let want: Vec<InstallationId> = tenants.iter().copied().map(InstallationId).collect();
    assert_eq!(wake, StoreWake::Tenants(want), "{what}");
}

/// Nothing arrives within [`QUIET`].
async fn expect_quiet(feed: &mut Box<dyn WakeFeed>, what: &str) {
    if let Ok(wake) = timeout(QUIET, feed.next()).await {
        panic!("{what}: expected no wake-up, got {wake:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_cross_replicas_and_do_not_echo() {
    let (a, b) = two_replicas().await;
    let mut feed = b.wake_feed().await.expect("wake_feed").expect("PostgreSQL has a wake feed");

    a.tenant_create(new_tenant(7, "acme", TenantStatus::Active, "small", 1), at(0)).await.expect("tenant_create");
    expect_wake(&mut feed, &[7], "a tenant created by the other replica").await;

    let raise = TenantUpdate { max_runners: Some(4), ..TenantUpdate::default() };
    a.tenant_update(InstallationId(7), raise.clone(), at(1)).await.expect("tenant_update");
    expect_wake(&mut feed, &[7], "a limit raised by the other replica").await;

    // B's own writes: its engine already knows, so its feed stays quiet...
    b.tenant_create(new_tenant(8, "beta", TenantStatus::Active, "small", 1), at(2)).await.expect("tenant_create");
    b.tenant_update(InstallationId(8), raise, at(3)).await.expect("tenant_update");
    expect_quiet(&mut feed, "the replica's own writes").await;
    // ...and the next change from A still arrives, alone: a job queued for a tier. (Written as A's connection
    // would write it, so that the trigger alone is under test here.)
    sqlx::query(
        "INSERT INTO jobs (job_id, installation_id, repository, labels, tier, status, received_at, updated_at) \
         VALUES (1, 8, 'beta/app', '[\"self-hosted\",\"small\"]', 'small', 'queued', 0, 0)",
    )
    .execute(a.pool())
    .await
    .expect("queue a job");
    expect_wake(&mut feed, &[8], "a job queued by the other replica").await;
}

fn lease(holder: &str, ttl: Duration) -> LeaseRequest {
    LeaseRequest { name: "reconciler".to_owned(), holder: holder.to_owned(), ttl, now: Utc::now() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_moves_to_another_replica_when_its_holder_stops_renewing() {
    const TTL: Duration = Duration::from_millis(800);
    const POLL: Duration = Duration::from_millis(50);
    let (a, b) = two_replicas().await;
    let held = a.lease_acquire(lease("a", TTL)).await.expect("lease_acquire");
    assert!(held.held_by("a"), "{held:?}");
    let refused = b.lease_acquire(lease("b", TTL)).await.expect("lease_acquire");
    assert_eq!(refused.holder, "a", "B is refused while A's lease runs");
    assert_eq!(refused.expires_at, held.expires_at, "both replicas see the one lease");

    // A stops renewing (as if it died); B asks again and again and gets the lease once it ran out.
    let started = tokio::time::Instant::now();
    let taken = timeout(TTL * 5, async {
        loop {
            let state = b.lease_acquire(lease("b", TTL)).await.expect("lease_acquire");
            if state.held_by("b") {
                return state;
            }
            assert_eq!(state.holder, "a", "only A or B can hold it");
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .expect("B takes the lease within a few lease times");
    assert!(taken.expires_at > held.expires_at, "{taken:?} after {held:?}");
    assert!(started.elapsed() + POLL >= TTL / 2, "not before A's lease ran out ({:?})", started.elapsed());
    let back = a.lease_acquire(lease("a", TTL)).await.expect("lease_acquire");
    assert_eq!(back.holder, "b", "A does not get its expired lease back while B renews");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acquires_over_two_replicas_leave_one_holder() {
    const TASKS: usize = 20;
    let (a, b) = two_replicas().await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store: Arc<PgStore> = Arc::clone(if task % 2 == 0 { &a } else { &b });
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            let holder = format!("replica-{task}");
            barrier.wait().await;
            let state = store.lease_acquire(lease(&holder, Duration::from_secs(60))).await.expect("lease_acquire");
            (holder, state)
        });
    }
    let outcomes = tasks.join_all().await;
    let winners: Vec<&String> = outcomes.iter().filter(|(h, s)| s.held_by(h)).map(|(h, _)| h).collect();
    assert_eq!(winners.len(), 1, "exactly one holder: {outcomes:?}");
    assert!(outcomes.iter().all(|(_, s)| &s.holder == winners[0]), "every asker sees the holder: {outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_create_racing_over_two_replicas_creates_one_row() {
    const TASKS: usize = 50;
    let (a, b) = two_replicas().await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store: Arc<PgStore> = Arc::clone(if task % 2 == 0 { &a } else { &b });
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            let secs = i64::try_from(task).expect("a small number");
            store.tenant_create(new_tenant(900, "racer", TenantStatus::Active, "small", 3), at(secs)).await
        });
    }
    let outcomes: Vec<_> = tasks.join_all().await.into_iter().map(|r| r.expect("tenant_create")).collect();
    assert_eq!(outcomes.iter().filter(|(_, inserted)| *inserted).count(), 1, "exactly one caller inserted");
    let first = &outcomes[0].0;
    assert!(outcomes.iter().all(|(t, _)| t == first), "every caller sees the same tenant");
    assert_eq!(b.tenant_list(None).await.expect("tenant_list"), vec![first.clone()], "one row");
    assert_eq!(a.tenant_counts().await.expect("tenant_counts").get(&TenantStatus::Active), Some(&1));
}

/// The login a refused write names, and the holder it reports.
fn taken(error: &StoreError) -> &OrgNameTaken {
    OrgNameTaken::find_in(error).unwrap_or_else(|| panic!("expected OrgNameTaken, got {}", ErrorChain(error)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_login_racing_over_two_replicas_goes_to_one_tenant() {
    const TASKS: u64 = 20;
    let (a, b) = two_replicas().await;
    let barrier = Arc::new(Barrier::new(TASKS as usize));
    let mut tasks = tokio::task::JoinSet::new();
    for installation in 1..=TASKS {
        let store: Arc<PgStore> = Arc::clone(if installation % 2 == 0 { &a } else { &b });
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            let tenant = new_tenant(installation, "Shared", TenantStatus::Active, "small", 1);
            store.tenant_create(tenant, at(0)).await
        });
    }
    let outcomes = tasks.join_all().await;
    let created: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(created.len(), 1, "one installation gets the login: {outcomes:?}");
    let (winner, inserted) = created[0];
    assert!(inserted);
    for error in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        let taken = taken(error);
        assert_eq!(taken.org_name, OrgName::from("Shared"));
        assert_eq!(taken.holder, Some(winner.installation_id), "the refusal names the holder");
    }
    assert_eq!(a.tenant_list(None).await.expect("tenant_list").len(), 1, "the refused creates wrote nothing");

    // Two renames onto one free login, from two replicas at once: one wins, the other is refused cleanly.
    for (id, org) in [(100, "left"), (101, "right")] {
        a.tenant_create(new_tenant(id, org, TenantStatus::Active, "small", 1), at(1)).await.expect("tenant_create");
    }
    let rename = || TenantUpdate { org_name: Some("merged".into()), ..TenantUpdate::default() };
    let (left, right) = tokio::join!(
        a.tenant_update(InstallationId(100), rename(), at(2)),
        b.tenant_update(InstallationId(101), rename(), at(2)),
    );
    let (won, lost, loser) = match (left, right) {
        (Ok(Some(won)), Err(lost)) => (won, lost, 101),
        (Err(lost), Ok(Some(won))) => (won, lost, 100),
        other => panic!("exactly one rename must win: {other:?}"),
    };
    assert_eq!(taken(&lost).holder, Some(won.installation_id), "the refusal names the winner");
    let unchanged = b.tenant_get(InstallationId(loser)).await.expect("tenant_get").expect("the loser exists");
    assert_ne!(unchanged.org_name.as_str(), "merged", "a refused rename writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_pruning_at_once_delete_each_row_once() {
    /// More than two delivery batches (5,000) and two job batches (500), so both replicas get work.
    const DELIVERIES: i64 = 12_000;
    const COMPLETED_JOBS: i64 = 2_500;
    const EVENTS_PER_JOB: i64 = 2;
    /// Rows stamped at these seconds of the contracts' clock: before and after the cut.
    const OLD: i64 = 10;
    const CUT: i64 = 100;
    const RECENT: i64 = 200;
    let (a, b) = two_replicas().await;
    let millis = |secs: i64| at(secs).timestamp_millis();
    sqlx::query(
        "INSERT INTO webhook_deliveries (delivery_id, event, received_at) \
         SELECT 'old-' || i, 'workflow_job', $1 FROM generate_series(1, $2) AS i",
    )
    .bind(millis(OLD))
    .bind(DELIVERIES)
    .execute(a.pool())
    .await
    .expect("seed deliveries");
    sqlx::query(
        "INSERT INTO jobs (job_id, installation_id, repository, labels, tier, status, conclusion, received_at, updated_at) \
         SELECT i, 1, 'org-1/app', '[]', 'small', 'completed', 'success', $1, $1 FROM generate_series(1, $2) AS i",
    )
    .bind(millis(OLD))
    .bind(COMPLETED_JOBS)
    .execute(a.pool())
    .await
    .expect("seed jobs");
    sqlx::query(
        "INSERT INTO job_events (job_id, at, kind, detail) \
         SELECT job, $1, 'status', 'completed' FROM generate_series(1, $2) AS job, generate_series(1, $3) AS k",
    )
    .bind(millis(OLD))
    .bind(COMPLETED_JOBS)
    .bind(EVENTS_PER_JOB)
    .execute(a.pool())
    .await
    .expect("seed timelines");
    // Kept: a recent delivery, a recently completed job and an old job still queued.
    sqlx::query("INSERT INTO webhook_deliveries (delivery_id, event, received_at) VALUES ('recent', 'ping', $1)")
        .bind(millis(RECENT))
        .execute(a.pool())
        .await
        .expect("seed");
    sqlx::query(
        "INSERT INTO jobs (job_id, installation_id, repository, labels, tier, status, received_at, updated_at) \
         VALUES (900001, 1, 'org-1/app', '[]', 'small', 'completed', $1, $2), \
                (900002, 1, 'org-1/app', '[]', 'small', 'queued', $1, $1)",
    )
    .bind(millis(OLD))
    .bind(millis(RECENT))
    .execute(a.pool())
    .await
    .expect("seed");

    let (left, right) = tokio::join!(a.prune(at(CUT)), b.prune(at(CUT)));
    let (left, right) = (left.expect("prune on A"), right.expect("prune on B"));
    let sum = |f: fn(&ghr_core::ports::Pruned) -> u64| f(&left) + f(&right);
    assert_eq!(sum(|p| p.deliveries), DELIVERIES as u64, "each old delivery deleted once: {left:?} {right:?}");
    assert_eq!(sum(|p| p.jobs), COMPLETED_JOBS as u64, "each old completed job deleted once: {left:?} {right:?}");
    assert_eq!(sum(|p| p.job_events), (COMPLETED_JOBS * EVENTS_PER_JOB) as u64, "with its timeline");
    assert_eq!(a.prune(at(CUT)).await.expect("prune"), ghr_core::ports::Pruned::default(), "nothing left to prune");

    let kept: Vec<(String, i64)> = sqlx::query_as(
        "SELECT 'delivery', COUNT(*) FROM webhook_deliveries UNION ALL SELECT 'job', COUNT(*) FROM jobs \
         UNION ALL SELECT 'event', COUNT(*) FROM job_events ORDER BY 1",
    )
    .fetch_all(b.pool())
    .await
    .expect("recount");
    let kept: Vec<(&str, i64)> = kept.iter().map(|(what, n)| (what.as_str(), *n)).collect();
    assert_eq!(kept, vec![("delivery", 1), ("event", 0), ("job", 2)], "recent and unfinished rows are kept");
    let counts = b.job_counts().await.expect("job_counts");
    let want = [(ghr_core::job::JobStatus::Completed, 1), (ghr_core::job::JobStatus::Queued, 1)];
    assert_eq!(counts, want.into_iter().collect(), "the kept counts follow the deletions");
}
