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
use ghr_store_dynamodb::testing::{fresh_store, store_on, unique_prefix};
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
