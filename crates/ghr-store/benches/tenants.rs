//! Tenant reads of the SQLite store at 100,000 tenants: lookup by installation id, lookup by login,
//! and full / by-status listings. The store is a WAL file, as in production.

use criterion::{Criterion, criterion_group, criterion_main};
use ghr_core::ids::{AccountId, InstallationId, OrgName};
use ghr_core::ports::Store;
use ghr_core::tenant::{NewTenant, OrgType, TenantMetadata, TenantStatus};
use ghr_store::SqliteStore;
use std::hint::black_box;
use std::time::{Duration, Instant};

const TENANTS: u64 = 100_000;
/// Lookups walk the id space with this stride so consecutive reads hit different pages.
const STRIDE: u64 = 7_919;
const WARM_UP: Duration = Duration::from_millis(500);
const MEASUREMENT: Duration = Duration::from_secs(2);
/// A full listing takes a few hundred milliseconds: 10 samples need a little longer.
const LIST_MEASUREMENT: Duration = Duration::from_secs(5);
const LOOKUP_SAMPLES: usize = 20;
const LIST_SAMPLES: usize = 10;

/// Mostly active tenants, as in a healthy deployment: 80 % active, 10 % suspended, 5 % pending, 5 % deleted.
fn status_of(id: u64) -> TenantStatus {
    match id % 20 {
        0 => TenantStatus::Pending,
        1 => TenantStatus::Deleted,
        2 | 3 => TenantStatus::Suspended,
        _ => TenantStatus::Active,
    }
}

fn tenant(id: u64) -> NewTenant {
    NewTenant {
        installation_id: InstallationId(id),
        org_name: OrgName::new(format!("Org-{id}")),
        org_type: if id.is_multiple_of(3) { OrgType::User } else { OrgType::Organization },
        status: status_of(id),
        tier: if id.is_multiple_of(2) { "small".into() } else { "large".into() },
        max_runners: 5,
        metadata: TenantMetadata {
            github_account_id: Some(AccountId(id + 10_000_000)),
            sender_login: Some(format!("admin-{id}")),
            sender_id: Some(AccountId(id + 20_000_000)),
        },
    }
}

async fn seed(store: &SqliteStore) {
    let started = Instant::now();
    let now = chrono::Utc::now();
    for id in 1..=TENANTS {
        store.tenant_create(tenant(id), now).await.expect("seed tenant_create");
    }
    eprintln!("seeded {TENANTS} tenants in {:.1} s", started.elapsed().as_secs_f64());
}

fn tenants(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("bench.db");
    let store = runtime.block_on(async {
        let store = SqliteStore::open(&path.display().to_string()).await.expect("open the store");
        seed(&store).await;
        store
    });

    let mut group = c.benchmark_group("tenants_100k");
    group.warm_up_time(WARM_UP).measurement_time(MEASUREMENT).sample_size(LOOKUP_SAMPLES);
    let mut next = 0u64;
    group.bench_function("tenant_get", |b| {
        b.iter(|| {
            next = (next + STRIDE) % TENANTS;
            let found = runtime.block_on(store.tenant_get(InstallationId(next + 1))).expect("tenant_get");
            black_box(found.expect("seeded tenant"))
        })
    });
    group.bench_function("tenant_find_by_org", |b| {
        b.iter(|| {
            next = (next + STRIDE) % TENANTS;
            // Lower-case query for a mixed-case login: the case-insensitive path.
            let org = OrgName::new(format!("org-{}", next + 1));
            let found = runtime.block_on(store.tenant_find_by_org(&org)).expect("tenant_find_by_org");
            black_box(found.expect("seeded tenant"))
        })
    });
    group.sample_size(LIST_SAMPLES).measurement_time(LIST_MEASUREMENT);
    group.bench_function("tenant_list_all", |b| {
        b.iter(|| black_box(runtime.block_on(store.tenant_list(None)).expect("tenant_list").len()))
    });
    group.bench_function("tenant_list_active", |b| {
        b.iter(|| {
            let active = runtime.block_on(store.tenant_list(Some(TenantStatus::Active))).expect("tenant_list");
            black_box(active.len())
        })
    });
    group.finish();
    runtime.block_on(store.close());
}

criterion_group!(benches, tenants);
criterion_main!(benches);
