//! One module per console page.

pub mod job;
pub mod jobs;
pub mod login;
pub mod overview;
pub mod runners;
pub mod tenant;
pub mod tenants;
