//! The admin surface: one [`Admin`] trait with the operations of `ghr tenants|runners|jobs|usage`, served
//! over HTTP under `/api/v1` and implemented locally on the store ([`LocalAdmin`]) so the CLI works
//! against a running server and directly on a database alike.

mod local;
pub mod remote;
pub mod types;

pub use local::LocalAdmin;
pub use remote::RemoteAdmin;
pub use types::*;

use async_trait::async_trait;
use ghr_core::ids::JobId;
use ghr_core::job::Job;
use ghr_core::runner::Runner;
use ghr_core::tenant::{Tenant, TenantStatus};

/// A failed admin operation, mapped to an HTTP status in one place ([`AdminError::status`]).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("missing or wrong admin token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("internal error: {0}")]
    Internal(String),
    #[error("cannot reach the ghr server: {0}")]
    Unavailable(String),
}

impl AdminError {
    pub fn status(&self) -> u16 {
        match self {
            AdminError::NotFound(_) => 404,
            AdminError::BadRequest(_) => 400,
            AdminError::Conflict(_) => 409,
            AdminError::Unauthorized => 401,
            AdminError::Internal(_) => 500,
            AdminError::Unavailable(_) => 503,
        }
    }

    /// The stable error code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NotFound(_) => "not_found",
            AdminError::BadRequest(_) => "bad_request",
            AdminError::Conflict(_) => "conflict",
            AdminError::Unauthorized => "unauthorized",
            AdminError::Internal(_) => "internal",
            AdminError::Unavailable(_) => "unavailable",
        }
    }
}

/// Operator operations. `reference` is an installation id or an org login.
#[async_trait]
pub trait Admin: Send + Sync {
    async fn tenants_list(&self, status: Option<TenantStatus>) -> Result<Vec<Tenant>, AdminError>;
    async fn tenant_show(&self, reference: &str) -> Result<TenantDetail, AdminError>;
    async fn tenant_add(&self, request: NewTenantRequest) -> Result<Tenant, AdminError>;
    async fn tenant_set_tier(&self, reference: &str, request: SetTierRequest) -> Result<Tenant, AdminError>;
    async fn tenant_action(&self, reference: &str, action: TenantAction) -> Result<Tenant, AdminError>;
    async fn runners_list(&self, query: RunnersQuery) -> Result<Vec<Runner>, AdminError>;
    async fn jobs_list(&self, query: JobsQuery) -> Result<Vec<Job>, AdminError>;
    async fn job_show(&self, id: JobId) -> Result<JobDetail, AdminError>;
    async fn usage(&self, query: UsageQuery) -> Result<UsageReport, AdminError>;
}
