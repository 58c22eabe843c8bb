//! The admin surface: the [`Admin`] operations of `ghr tenants|runners|jobs|usage` (defined with their wire
//! types in `ghr-api`), served over HTTP under `/api/v1` and implemented here on the store ([`LocalAdmin`]),
//! so the CLI works against a running server (`ghr_api::Client`) and directly on a database alike.

mod cursor;
mod local;

pub use cursor::{Cursor, Filters};
pub use ghr_api::{Admin, ApiError};
pub use local::{DEFAULT_USAGE_DAYS, LocalAdmin, explain};
