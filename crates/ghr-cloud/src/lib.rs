//! Runner providers that need no cloud SDK: the local process provider.
//!
//! [`ProcessProvider`] implements [`ghr_core::ports::Provider`] by running one configured command per
//! runner on this host. It serves one-host deployments, `ghr demo` and tests; it needs Linux (`/proc`).

#[cfg(target_os = "linux")]
pub mod process;

#[cfg(target_os = "linux")]
pub use process::{ProcessProvider, ProcessProviderConfig};
