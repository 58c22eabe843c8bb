//! Tenants, deliveries, checkpoints, leases and the write check on DynamoDB (the moto emulator;
//! `GHR_TEST_MOTO_ENDPOINT`): their conformance contracts, the seed's hand-run commands against ghr's items,
//! and races between several store instances sharing one table prefix (replicas).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use ghr_core::ids::{InstallationId, OrgName, TierName};
use ghr_core::ports::{LeaseRequest, Store};
use ghr_core::tenant::{OrgNameTaken, OrgType, TenantMetadata, TenantStatus, TenantUpdate};
use ghr_store::conformance::{self as contract, at, new_tenant};
use ghr_store_dynamodb::DynamoStore;
use ghr_store_dynamodb::testing::fresh_store;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

async fn fresh() -> Arc<dyn Store> {
    Arc::new(fresh_store().await)
}

/// Run one contract on a fresh store.
async fn run<F, Fut>(contract: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    contract(fresh().await).await;
}

#[tokio::test]
async fn tenant_create_is_idempotent() {
    run(contract::tenant_create_is_idempotent).await;
}

#[tokio::test]
async fn tenant_update_applies_given_fields() {
    run(contract::tenant_update_applies_given_fields).await;
}

#[tokio::test]
async fn tenant_list_filters_by_status() {
    run(contract::tenant_list_filters_by_status).await;
}

#[tokio::test]
async fn tenant_find_by_org_ignores_case() {
    run(contract::tenant_find_by_org_ignores_case).await;
}

#[tokio::test]
async fn tenant_org_name_is_unique_among_live_tenants() {
    run(contract::tenant_org_name_is_unique_among_live_tenants).await;
}

#[tokio::test]
async fn delivery_record_deduplicates() {
    run(contract::delivery_record_deduplicates).await;
}

#[tokio::test]
async fn checkpoints_keep_the_last_value() {
    run(contract::checkpoints_keep_the_last_value).await;
}

#[tokio::test]
async fn lease_has_one_holder_until_released_or_expired() {
    run(contract::lease_has_one_holder_until_released_or_expired).await;
}

#[tokio::test]
async fn check_writable_repeats_without_side_effects() {
    run(contract::check_writable_repeats_without_side_effects).await;
}

/// The attributes of `pairs` as one item.
fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect()
}

fn num(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn text(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// The raw item of tenant `id`.
async fn raw_tenant(store: &DynamoStore, id: u64) -> HashMap<String, AttributeValue> {
    let answer = store
        .client()
        .get_item()
        .table_name(&store.tables().tenants)
        .key("installation_id", num(id))
        .consistent_read(true)
        .send()
        .await
        .expect("get-item");
    answer.item.unwrap_or_else(|| panic!("tenant {id} has no item"))
}

/// The seed's troubleshooting `put-item`: no `org_type`, no `metadata`, none of ghr's counters, times typed
/// with `date -u +%Y-%m-%dT%H:%M:%SZ`.
async fn put_by_hand(client: &Client, table: &str, id: u64, org: &str) {
    let hand_made = item(&[
        ("installation_id", num(id)),
        ("tier", text("small")),
        ("status", text("active")),
        ("org_name", text(org)),
        ("max_runners", num(2)),
        ("created_at", text("2024-01-01T00:00:00Z")),
        ("updated_at", text("2024-01-01T00:00:00Z")),
    ]);
    client.put_item().table_name(table).set_item(Some(hand_made)).send().await.expect("put-item");
}

fn the_first_of_2024() -> ghr_core::Timestamp {
    chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").expect("a time").to_utc()
}

fn expect_taken<T: std::fmt::Debug>(result: Result<T, ghr_core::ports::StoreError>, holder: u64) {
    let error = result.expect_err("the login is taken");
    let taken = OrgNameTaken::find_in(&error).unwrap_or_else(|| panic!("OrgNameTaken in the chain: {error:?}"));
    assert_eq!(taken.holder, Some(InstallationId(holder)), "{taken:?}");
}

#[tokio::test]
async fn a_hand_made_seed_tenant_decodes_is_found_and_updates() {
    let store = fresh_store().await;
    put_by_hand(store.client(), &store.tables().tenants, 12345678, "acme-hand").await;
    let id = InstallationId(12345678);

    let tenant = store.tenant_get(id).await.expect("tenant_get").expect("the hand-made tenant");
    assert_eq!((tenant.org_type, tenant.metadata.clone()), (OrgType::Organization, TenantMetadata::default()));
    assert_eq!((tenant.status, tenant.tier.as_str(), tenant.max_runners), (TenantStatus::Active, "small", 2));
    assert_eq!((tenant.created_at, tenant.updated_at), (the_first_of_2024(), the_first_of_2024()));
    for login in ["acme-hand", "ACME-HAND"] {
        let found = store.tenant_find_by_org(&OrgName::from(login)).await.expect("tenant_find_by_org");
        assert_eq!(found.as_ref(), Some(&tenant), "a tenant without a claim is found through org-name-index: {login}");
    }
    let nobody = store.tenant_find_by_org(&OrgName::from("")).await.expect("tenant_find_by_org(empty)");
    assert_eq!(nobody, None, "no tenant has an empty login");
    assert_eq!(store.tenant_list(Some(TenantStatus::Active)).await.expect("tenant_list"), vec![tenant.clone()]);
    assert_eq!(store.tenant_counts().await.expect("tenant_counts").get(&TenantStatus::Active), Some(&1));

    // Its login is held: another installation cannot be onboarded under it while it lives.
    expect_taken(
        store.tenant_create(new_tenant(9, "Acme-Hand", TenantStatus::Active, "small", 1), at(0)).await,
        12345678,
    );

    let upgrade = TenantUpdate { tier: Some(TierName::from("large")), max_runners: Some(7), ..TenantUpdate::default() };
    let upgraded = store.tenant_update(id, upgrade, at(1)).await.expect("tenant_update").expect("found");
    assert_eq!((upgraded.tier.as_str(), upgraded.max_runners, upgraded.updated_at), ("large", 7, at(1)));
    let suspend = TenantUpdate { status: Some(TenantStatus::Suspended), ..TenantUpdate::default() };
    let suspended = store.tenant_update(id, suspend, at(2)).await.expect("tenant_update").expect("found");
    assert_eq!((suspended.status, suspended.max_runners), (TenantStatus::Suspended, 7));
    let raw = raw_tenant(&store, 12345678).await;
    assert!(!raw.contains_key("org_type") && !raw.contains_key("live_runners"), "only named attributes: {raw:?}");

    // Deleted, it lets the login go.
    let delete = TenantUpdate { status: Some(TenantStatus::Deleted), ..TenantUpdate::default() };
    store.tenant_update(id, delete, at(3)).await.expect("tenant_update").expect("found");
    let (successor, created) =
        store.tenant_create(new_tenant(9, "Acme-Hand", TenantStatus::Active, "small", 1), at(4)).await.expect("create");
    assert!(created);
    let found = store.tenant_find_by_org(&OrgName::from("acme-hand")).await.expect("tenant_find_by_org");
    assert_eq!(found, Some(successor), "the live successor wins over the deleted hand-made tenant");
}

#[tokio::test]
async fn the_seeds_update_item_is_what_get_returns_next_and_keeps_ghrs_counters() {
    let store = fresh_store().await;
    let (client, table) = (store.client(), store.tables().tenants.clone());
    store.tenant_create(new_tenant(12345678, "Acme", TenantStatus::Active, "small", 2), at(0)).await.expect("create");
    // Admission's counters, as a reservation leaves them.
    client
        .update_item()
        .table_name(&table)
        .key("installation_id", num(12345678))
        .update_expression("SET live_runners = :one, live_version = :one, runner_seq = :four")
        .expression_attribute_values(":one", num(1))
        .expression_attribute_values(":four", num(4))
        .send()
        .await
        .expect("counters");

    // The seed README's "Upgrade Tenant Tier", verbatim but for the time.
    client
        .update_item()
        .table_name(&table)
        .key("installation_id", num(12345678))
        .update_expression("SET tier = :tier, max_runners = :max, updated_at = :now")
        .expression_attribute_values(":tier", text("medium"))
        .expression_attribute_values(":max", num(5))
        .expression_attribute_values(":now", text("2024-01-01T00:00:00Z"))
        .send()
        .await
        .expect("the seed's update-item");
    let tenant = store.tenant_get(InstallationId(12345678)).await.expect("tenant_get").expect("found");
    assert_eq!((tenant.tier.as_str(), tenant.max_runners), ("medium", 5));
    assert_eq!(tenant.updated_at, the_first_of_2024());

    // ghr's own update changes only what it names: the counters and the seed's upgrade stay.
    let suspend = TenantUpdate { status: Some(TenantStatus::Suspended), ..TenantUpdate::default() };
    store.tenant_update(InstallationId(12345678), suspend, at(5)).await.expect("tenant_update").expect("found");
    let raw = raw_tenant(&store, 12345678).await;
    for (name, value) in [("live_runners", num(1)), ("runner_seq", num(4)), ("max_runners", num(5))] {
        assert_eq!(raw.get(name), Some(&value), "{name} after ghr's update: {raw:?}");
    }
    assert_eq!(raw.get("status"), Some(&text("suspended")));
    assert_eq!(raw.get("org_type"), Some(&text("Organization")), "the seed's attributes: {raw:?}");
    assert!(matches!(raw.get("metadata"), Some(AttributeValue::M(_))), "metadata is a map: {raw:?}");
    assert_eq!(raw.get("created_at"), Some(&text("2026-01-01T00:00:00.000Z")), "ISO-8601 as the seed writes it");

    // The seed's "List Active Tenants" scan sees ghr's tenants by their seed attributes.
    store.tenant_create(new_tenant(7, "beta", TenantStatus::Active, "small", 2), at(6)).await.expect("create");
    let active = client
        .scan()
        .table_name(&table)
        .filter_expression("#s = :active")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":active", text("active"))
        .send()
        .await
        .expect("the seed's scan");
    let ids: Vec<_> = active.items().iter().map(|i| i.get("installation_id").cloned()).collect();
    assert_eq!(ids, vec![Some(num(7))], "only the active tenant");
}

#[tokio::test]
async fn a_claim_left_stale_by_a_hand_edit_is_taken_over() {
    let store = fresh_store().await;
    store.tenant_create(new_tenant(1, "Stale-Co", TenantStatus::Active, "small", 2), at(0)).await.expect("create");
    // An operator marks it deleted by hand: its claim still names it.
    store
        .client()
        .update_item()
        .table_name(&store.tables().tenants)
        .key("installation_id", num(1))
        .update_expression("SET #s = :deleted")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":deleted", text("deleted"))
        .send()
        .await
        .expect("update-item");
    let (successor, created) =
        store.tenant_create(new_tenant(2, "stale-co", TenantStatus::Active, "small", 2), at(1)).await.expect("create");
    assert!(created, "the login of a tenant deleted by hand is free");
    let found = store.tenant_find_by_org(&OrgName::from("STALE-CO")).await.expect("tenant_find_by_org");
    assert_eq!(found, Some(successor));
    let revive = TenantUpdate { status: Some(TenantStatus::Active), ..TenantUpdate::default() };
    expect_taken(store.tenant_update(InstallationId(1), revive, at(2)).await, 2);
}

#[tokio::test]
async fn deliveries_expire_a_ttl_after_they_are_received_and_never_before_the_write() {
    let store = fresh_store().await;
    let delivery = ghr_core::ports::DeliveryRecord {
        delivery_id: ghr_core::ids::DeliveryId::from("d-1"),
        event: "workflow_job".to_owned(),
        action: Some("queued".to_owned()),
        installation_id: Some(InstallationId(3)),
        received_at: at(0),
    };
    let before = chrono::Utc::now().timestamp();
    assert!(store.delivery_record(&delivery).await.expect("delivery_record"));
    let raw = store
        .client()
        .get_item()
        .table_name(&store.tables().deliveries)
        .key("delivery_id", text("d-1"))
        .send()
        .await
        .expect("get-item")
        .item
        .expect("recorded");
    let Some(AttributeValue::N(expires)) = raw.get("expires_at") else { panic!("no TTL attribute: {raw:?}") };
    let expires: i64 = expires.parse().expect("epoch seconds");
    let ttl = i64::try_from(ghr_store_dynamodb::DEFAULT_TTL.as_secs()).expect("a TTL");
    let floor = before.max(at(0).timestamp()) + ttl;
    assert!((floor..floor + 60).contains(&expires), "expires_at {expires} is a TTL after the later of now and receipt");
}

#[tokio::test]
async fn leases_name_their_holder_on_refusal_and_expire_by_the_requests_clock() {
    let store = fresh_store().await;
    let request = |holder: &str, secs| LeaseRequest {
        name: "reconciler".to_owned(),
        holder: holder.to_owned(),
        ttl: Duration::from_secs(30),
        now: at(secs),
    };
    let first = store.lease_acquire(request("a", 0)).await.expect("lease_acquire");
    assert_eq!((first.holder.as_str(), first.expires_at), ("a", at(30)));
    let refused = store.lease_acquire(request("b", 29)).await.expect("lease_acquire");
    assert_eq!((refused.holder.as_str(), refused.expires_at), ("a", at(30)), "refused, told who holds it");
    let taken = store.lease_acquire(request("b", 30)).await.expect("lease_acquire");
    assert_eq!((taken.holder.as_str(), taken.expires_at), ("b", at(60)), "expired at the request's `now`");
}
