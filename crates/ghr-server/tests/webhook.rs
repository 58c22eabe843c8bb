//! `POST /webhook` end to end against a real server: the signature over the raw bytes, the body limit,
//! malformed and incomplete deliveries, unknown events, redeliveries, the installation lifecycle and workflow
//! jobs in and out of order — each checked by the HTTP answer and by what the store then holds.

#[path = "webhook/auth.rs"]
mod auth;
#[path = "webhook/bad_input.rs"]
mod bad_input;
#[path = "webhook/concurrency.rs"]
mod concurrency;
#[path = "webhook/installations.rs"]
mod installations;
#[path = "webhook/intake.rs"]
mod intake;
#[path = "webhook/jobs.rs"]
mod jobs;
mod support;
