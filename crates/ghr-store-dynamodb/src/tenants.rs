//! Tenants on the seed's table: create (with the org-name claim), get, find by org, list, counts, update.

use crate::DynamoStore;
use crate::item::Item;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, OrgName};
use ghr_core::ports::StoreError;
use ghr_core::tenant::{NewTenant, Tenant, TenantStatus, TenantUpdate};
use std::collections::BTreeMap;

/// Decode a tenant item as the seed writes it (or as an operator's hand-made `put-item` leaves it).
pub(crate) fn tenant_from_item(op: &'static str, item: &Item) -> Result<Tenant, StoreError> {
    todo!("{op} {item:?}")
}

pub(crate) async fn create(
    store: &DynamoStore,
    tenant: NewTenant,
    now: Timestamp,
) -> Result<(Tenant, bool), StoreError> {
    todo!("{store:?} {tenant:?} {now}")
}

pub(crate) async fn get(store: &DynamoStore, id: InstallationId) -> Result<Option<Tenant>, StoreError> {
    todo!("{store:?} {id}")
}

pub(crate) async fn find_by_org(store: &DynamoStore, org: &OrgName) -> Result<Option<Tenant>, StoreError> {
    todo!("{store:?} {org}")
}

pub(crate) async fn list(store: &DynamoStore, status: Option<TenantStatus>) -> Result<Vec<Tenant>, StoreError> {
    todo!("{store:?} {status:?}")
}

pub(crate) async fn ids_after(
    store: &DynamoStore,
    status: TenantStatus,
    after: Option<InstallationId>,
    limit: u32,
) -> Result<Vec<InstallationId>, StoreError> {
    todo!("{store:?} {status:?} {after:?} {limit}")
}

pub(crate) async fn counts(store: &DynamoStore) -> Result<BTreeMap<TenantStatus, u64>, StoreError> {
    todo!("{store:?}")
}

pub(crate) async fn update(
    store: &DynamoStore,
    id: InstallationId,
    update: TenantUpdate,
    now: Timestamp,
) -> Result<Option<Tenant>, StoreError> {
    todo!("{store:?} {id} {update:?} {now}")
}
