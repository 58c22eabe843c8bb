//! The dispatcher's read per pass with waiting jobs that cannot start (every tenant at its limit), at 2,000
//! and 50,000 waiting jobs: the demand snapshot of the one tenant a delivery changed, the full snapshot of
//! the safety tick, and, for comparison, the read every delivery's pass made before (every waiting job).
//! The store is a WAL file, as in production.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ghr_core::ids::{AccountId, InstallationId, JobId, OrgName, TierName};
use ghr_core::job::{JobObservation, JobStatus};
use ghr_core::ports::{DemandQuery, Reservation, ReserveRequest, Store};
use ghr_core::reason::Reason;
use ghr_core::tenant::{NewTenant, OrgType, TenantMetadata, TenantStatus};
use ghr_store::SqliteStore;
use std::hint::black_box;
use std::time::{Duration, Instant};

const TENANTS: u64 = 10;
const LIMIT: u32 = 2;
const WAITING: [u64; 2] = [2_000, 50_000];
const WARM_UP: Duration = Duration::from_millis(500);
const MEASUREMENT: Duration = Duration::from_secs(3);
const SAMPLES: usize = 10;

fn tenant(id: u64) -> NewTenant {
    NewTenant {
        installation_id: InstallationId(id),
        org_name: OrgName::new(format!("org-{id}")),
        org_type: OrgType::Organization,
        status: TenantStatus::Active,
        tier: "small".into(),
        max_runners: LIMIT,
        metadata: TenantMetadata { github_account_id: Some(AccountId(id)), sender_login: None, sender_id: None },
    }
}

fn queued(job: u64) -> JobObservation {
    let installation = job % TENANTS + 1;
    let at = chrono::Utc::now();
    JobObservation {
        job_id: JobId(job),
        installation_id: InstallationId(installation),
        repository: format!("org-{installation}/app"),
        labels: vec!["self-hosted".into(), "linux".into(), "x64".into(), "small".into()],
        tier: Some(TierName::from("small")),
        status: JobStatus::Queued,
        conclusion: None,
        runner_name: None,
        queued_at: Some(at),
        started_at: None,
        completed_at: None,
        observed_at: at,
    }
}

/// Tenants at their limit and `waiting` jobs already marked `tenant_at_limit`, as after a first pass.
async fn seed(store: &SqliteStore, waiting: u64) {
    let started = Instant::now();
    let now = chrono::Utc::now();
    for id in 1..=TENANTS {
        store.tenant_create(tenant(id), now).await.expect("seed tenant_create");
    }
    for job in 1..=waiting {
        store.job_observe(queued(job)).await.expect("seed job_observe");
    }
    for id in 1..=TENANTS {
        for _ in 0..LIMIT {
            let request = ReserveRequest {
                installation_id: InstallationId(id),
                tier: "small".into(),
                scope_repo: None,
                intended_job: None,
                global_cap: None,
                environment: "bench".into(),
                now,
            };
            let reserved = store.runner_reserve(request).await.expect("seed runner_reserve");
            assert!(matches!(reserved, Reservation::Reserved(_)), "seeding fills every tenant's limit");
        }
    }
    // Two jobs per tenant are covered by its runners; the rest wait at the limit.
    let reasons = ((TENANTS * u64::from(LIMIT) + 1)..=waiting).map(|job| (JobId(job), Some(Reason::TenantAtLimit)));
    store.job_set_wait_reasons(reasons.collect(), now).await.expect("seed wait reasons");
    eprintln!("seeded {waiting} waiting jobs in {:.1} s", started.elapsed().as_secs_f64());
}

fn planner_reads(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let mut group = c.benchmark_group("dispatch_read");
    group.warm_up_time(WARM_UP).measurement_time(MEASUREMENT).sample_size(SAMPLES);
    for waiting in WAITING {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("bench.db");
        let store = runtime.block_on(async {
            let store = SqliteStore::open(&path.display().to_string()).await.expect("open the store");
            seed(&store, waiting).await;
            store
        });
        let one = DemandQuery { tenants: Some(vec![InstallationId(1)]), global_cap: None };
        group.bench_with_input(BenchmarkId::new("changed_tenant", waiting), &one, |b, query| {
            b.iter(|| black_box(runtime.block_on(store.demand_snapshot(query.clone())).expect("demand_snapshot")))
        });
        group.bench_with_input(BenchmarkId::new("full", waiting), &DemandQuery::default(), |b, query| {
            b.iter(|| black_box(runtime.block_on(store.demand_snapshot(query.clone())).expect("demand_snapshot")))
        });
        group.bench_function(BenchmarkId::new("every_waiting_job", waiting), |b| {
            b.iter(|| black_box(runtime.block_on(store.job_list_wanting_runner()).expect("job_list_wanting_runner")))
        });
        runtime.block_on(store.close());
    }
    group.finish();
}

criterion_group!(benches, planner_reads);
criterion_main!(benches);
