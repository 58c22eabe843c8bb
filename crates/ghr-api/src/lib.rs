//! ghr's admin API as plain data: the request and response bodies of `/api/v1` ([`model`]), their enums
//! ([`enums`]), cursor pages ([`Page`]), the error every operation may return ([`ApiError`]), the [`Admin`]
//! trait both the server's local implementation and the HTTP [`Client`] implement, and the client itself.
//!
//! The wire format is defined here and nowhere else: the domain types of `ghr-core` never cross the API.
//! With the `domain` feature, [`convert`] maps them onto these types (the server's side); with the `clap`
//! feature, the enums are command-line value enums (the CLI's side).

pub mod agent;
pub mod client;
#[cfg(feature = "domain")]
pub mod convert;
pub mod enums;
pub mod error;
pub mod model;

pub use client::{API_PREFIX, Client};
pub use enums::{JobStatus, OrgType, Reason, RunnerState, RunnerStates, TenantAction, TenantStatus};
pub use error::{ApiError, ErrorBody};
pub use model::*;

use async_trait::async_trait;

/// Operator operations. `reference` is an installation id or an org login.
#[async_trait]
pub trait Admin: Send + Sync {
    /// Tenants by installation id, one page at a time.
    async fn tenants_list(&self, query: TenantsQuery) -> Result<Page<Tenant>, ApiError>;
    async fn tenant_show(&self, reference: &str) -> Result<TenantDetail, ApiError>;
    async fn tenant_add(&self, request: NewTenantRequest) -> Result<Tenant, ApiError>;
    async fn tenant_set_tier(&self, reference: &str, request: SetTierRequest) -> Result<Tenant, ApiError>;
    async fn tenant_action(&self, reference: &str, action: TenantAction) -> Result<Tenant, ApiError>;
    /// Runners in creation order, one page at a time.
    async fn runners_list(&self, query: RunnersQuery) -> Result<Page<Runner>, ApiError>;
    /// Jobs newest first, one page at a time.
    async fn jobs_list(&self, query: JobsQuery) -> Result<Page<Job>, ApiError>;
    async fn job_show(&self, id: u64) -> Result<JobDetail, ApiError>;
    async fn usage(&self, query: UsageQuery) -> Result<UsageReport, ApiError>;
}
