//! Races between replicas: several store instances on one table prefix (the moto emulator;
//! `GHR_TEST_MOTO_ENDPOINT`) creating one tenant, taking one login, and asking for one lease at once.
//!
//! These races mean something only on an emulator that applies each request atomically, as DynamoDB does.
//! moto's DynamoDB does not when its server runs requests on several threads at once: an `UpdateItem` that
//! creates an item shows it without attributes to a concurrent request, and a cancelled `TransactWriteItems`
//! restores a copy of whole tables, undoing writes other requests made meanwhile. The emulator these tests
//! run on must therefore serve one request at a time.

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use ghr_core::ids::{InstallationId, OrgName};
use ghr_core::ports::{LeaseRequest, Store, StoreError};
use ghr_core::tenant::{OrgNameTaken, TenantStatus, TenantUpdate};
use ghr_store::conformance::{at, new_tenant};
use ghr_store_dynamodb::DynamoStore;
use ghr_store_dynamodb::testing::{store_on, unique_prefix};
use std::time::Duration;
use tokio::task::JoinSet;

/// Store instances sharing one prefix, as replicas do.
const REPLICAS: usize = 4;
/// Concurrent creates of one installation.
const CREATES: usize = 20;
/// Concurrent askers of one lease.
const ASKERS: usize = 12;

async fn replicas() -> Vec<DynamoStore> {
    let prefix = unique_prefix();
    let mut stores = Vec::new();
    for _ in 0..REPLICAS {
        stores.push(store_on(&prefix).await);
    }
    stores
}

async fn count(store: &DynamoStore, table: &str) -> i32 {
    let answer = store.client().scan().table_name(table).select(Select::Count).send().await.expect("scan");
    assert!(answer.last_evaluated_key.is_none(), "one page holds a test's items");
    answer.count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_installation_make_one_item() {
    let stores = replicas().await;
    let mut tasks = JoinSet::new();
    for n in 0..CREATES {
        let store = stores[n % REPLICAS].clone();
        tasks.spawn(async move {
            store.tenant_create(new_tenant(42, "Racer", TenantStatus::Active, "small", 3), at(n as i64)).await
        });
    }
    let results: Vec<_> = tasks.join_all().await.into_iter().map(|r| r.expect("tenant_create")).collect();
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1, "exactly one create inserts");
    let (winner, _) = results.iter().find(|(_, created)| *created).expect("the insert");
    assert!(results.iter().all(|(tenant, _)| tenant == winner), "every caller gets the one tenant");
    assert_eq!(count(&stores[0], &stores[0].tables().tenants).await, 1, "one tenant item");
    // And one claim of its login, naming it.
    let claim = stores[0]
        .client()
        .get_item()
        .table_name(&stores[0].tables().state)
        .key("pk", AttributeValue::S("org#racer".to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("get-item")
        .item
        .expect("the claim");
    assert_eq!(claim.get("installation_id"), Some(&AttributeValue::N("42".to_owned())));
}

fn is_taken(error: &StoreError) -> bool {
    OrgNameTaken::find_in(error).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_and_renames_onto_one_login_leave_one_live_holder() {
    let stores = replicas().await;
    // Tenants 1..=4 exist under their own logins; 11..=14 are new. All race for "contested".
    for id in 1..=4u64 {
        let tenant = new_tenant(id, &format!("own-{id}"), TenantStatus::Active, "small", 1);
        stores[0].tenant_create(tenant, at(0)).await.expect("tenant_create");
    }
    let mut tasks = JoinSet::new();
    for id in 1..=4u64 {
        let renamer = stores[id as usize % REPLICAS].clone();
        tasks.spawn(async move {
            let rename = TenantUpdate { org_name: Some(OrgName::from("Contested")), ..TenantUpdate::default() };
            renamer.tenant_update(InstallationId(id), rename, at(1)).await.map(|t| t.is_some())
        });
        let creator = stores[(id as usize + 1) % REPLICAS].clone();
        tasks.spawn(async move {
            let tenant = new_tenant(id + 10, "contested", TenantStatus::Active, "small", 1);
            creator.tenant_create(tenant, at(1)).await.map(|(_, created)| created)
        });
    }
    let results = tasks.join_all().await;
    let won = results.iter().filter(|r| matches!(r, Ok(true))).count();
    let refused = results.iter().filter(|r| r.as_ref().is_err_and(is_taken)).count();
    assert_eq!((won, refused), (1, results.len() - 1), "one wins, the others are refused: {results:?}");
    let holders: Vec<_> = stores[0]
        .tenant_list(None)
        .await
        .expect("tenant_list")
        .into_iter()
        .filter(|t| t.org_name.as_str().eq_ignore_ascii_case("contested"))
        .collect();
    assert_eq!(holders.len(), 1, "one tenant has the login: {holders:?}");
    let found = stores[1].tenant_find_by_org(&OrgName::from("CONTESTED")).await.expect("tenant_find_by_org");
    assert_eq!(found.as_ref(), holders.first());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lease_askers_get_one_holder() {
    let stores = replicas().await;
    let mut tasks = JoinSet::new();
    for n in 0..ASKERS {
        let store = stores[n % REPLICAS].clone();
        tasks.spawn(async move {
            let request = LeaseRequest {
                name: "reconciler".to_owned(),
                holder: format!("replica-{n}"),
                ttl: Duration::from_secs(60),
                now: at(0),
            };
            (format!("replica-{n}"), store.lease_acquire(request).await.expect("lease_acquire"))
        });
    }
    let answers = tasks.join_all().await;
    let holders: Vec<_> = answers.iter().filter(|(asker, state)| state.held_by(asker)).collect();
    assert_eq!(holders.len(), 1, "exactly one asker holds the lease: {answers:?}");
    let holder = &holders[0].1.holder;
    assert!(answers.iter().all(|(_, state)| &state.holder == holder), "every asker is told the one holder");
}

#[tokio::test]
async fn write_checks_leave_one_probe_item_and_nothing_else() {
    let store = &replicas().await[0];
    for _ in 0..3 {
        store.check_writable().await.expect("check_writable");
    }
    let tables = store.tables();
    for table in [&tables.tenants, &tables.jobs, &tables.runners, &tables.deliveries] {
        assert_eq!(count(store, table).await, 0, "the probe writes nothing to {table}");
    }
    assert_eq!(count(store, &tables.state).await, 1, "one probe item in the state table, however many probes");
}
