//! Engine errors: what an operation was doing, and why it could not.

use ghr_core::ids::InstallationId;
use ghr_core::ports::{GithubError, ProviderError, StoreError};
use ghr_core::tenant::TenantStatus;
use ghr_core::tier::CatalogError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no tenant with installation id {0}")]
    UnknownTenant(InstallationId),
    #[error("no tenant with installation id or org name {0:?}")]
    UnknownTenantRef(String),
    #[error(transparent)]
    UnknownTier(CatalogError),
    #[error("tenant {id} is {from}; it cannot become {to}")]
    InvalidTransition { id: InstallationId, from: TenantStatus, to: TenantStatus },
    #[error("max_runners must be at least 1")]
    ZeroMaxRunners,
    #[error("store failed while {doing}")]
    Store {
        doing: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("GitHub call failed while {doing}")]
    Github {
        doing: &'static str,
        #[source]
        source: GithubError,
    },
    #[error("provider call failed while {doing}")]
    Provider {
        doing: &'static str,
        #[source]
        source: ProviderError,
    },
}

impl EngineError {
    /// Whether the error is the caller's (bad input), not the system's.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            EngineError::UnknownTenant(_)
                | EngineError::UnknownTenantRef(_)
                | EngineError::UnknownTier(_)
                | EngineError::InvalidTransition { .. }
                | EngineError::ZeroMaxRunners
        )
    }
}

/// Attach "what the store was doing" to a store result.
pub(crate) trait StoreContext<T> {
    fn doing(self, doing: &'static str) -> Result<T, EngineError>;
}

impl<T> StoreContext<T> for Result<T, StoreError> {
    fn doing(self, doing: &'static str) -> Result<T, EngineError> {
        self.map_err(|source| EngineError::Store { doing, source })
    }
}

pub use ghr_core::error::ErrorChain;
