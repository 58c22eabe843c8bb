//! Pure domain of ghr: everything here is data and decisions, nothing here does IO.
//!
//! Invariant: this crate never depends on an async runtime, a database driver, an HTTP client or a
//! cloud SDK. Adapters (store, GitHub, cloud) implement the traits in [`ports`]; the engine drives them.

pub mod admission;
pub mod clock;
pub mod cost;
pub mod entitlement;
pub mod error;
pub mod event;
pub mod ids;
pub mod input;
pub mod intake;
pub mod job;
pub mod labels;
pub mod planner;
pub mod pool;
pub mod ports;
pub mod reason;
pub mod retry;
pub mod runner;
pub mod stats;
pub mod tenant;
pub mod text;
pub mod tier;

/// Wall-clock instant used throughout the domain (UTC).
pub type Timestamp = chrono::DateTime<chrono::Utc>;
