//! Tenants on PostgreSQL. (Being written.)
use crate::codec::backend;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, OrgName};
use ghr_core::ports::StoreError;
use ghr_core::tenant::{NewTenant, Tenant, TenantStatus, TenantUpdate};
use sqlx::{PgConnection, PgPool};

pub(super) const OP_CREATE: &str = "tenant_create";
pub(super) const OP_UPDATE: &str = "tenant_update";

fn pending(op: &'static str) -> StoreError {
    backend(op)(sqlx::Error::Protocol("not written yet".into()))
}

pub(super) async fn create(
    _conn: &mut PgConnection,
    _t: NewTenant,
    _now: Timestamp,
) -> Result<(Tenant, bool), StoreError> {
    Err(pending(OP_CREATE))
}
pub(super) async fn get(_pool: &PgPool, _id: InstallationId) -> Result<Option<Tenant>, StoreError> {
    Err(pending("tenant_get"))
}
pub(super) async fn find_by_org(_pool: &PgPool, _org: &OrgName) -> Result<Option<Tenant>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn list(_pool: &PgPool, _s: Option<TenantStatus>) -> Result<Vec<Tenant>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn ids_after(
    _pool: &PgPool,
    _s: TenantStatus,
    _a: Option<InstallationId>,
    _l: u32,
) -> Result<Vec<InstallationId>, StoreError> {
    Err(pending("x"))
}
pub(super) async fn update(
    _conn: &mut PgConnection,
    _id: InstallationId,
    _u: TenantUpdate,
    _now: Timestamp,
) -> Result<Option<Tenant>, StoreError> {
    Err(pending(OP_UPDATE))
}
