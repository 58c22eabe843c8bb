//! Shared helpers of the load and CLI tests: starting a stack, and exact limit checks from runner records.
#![allow(dead_code)]

use ghr::demo::peak_concurrency;
use ghr::stack::{LocalStack, StackOptions};
use ghr_core::ids::InstallationId;
use ghr_core::ports::RunnerFilter;
use ghr_core::runner::RunnerState;
use std::time::Duration;

pub fn options() -> StackOptions {
    StackOptions::new(env!("CARGO_BIN_EXE_ghr"))
}

/// The most runners the tenant ever had at once, from the recorded reservation..termination intervals.
pub async fn peak(stack: &LocalStack, tenant: InstallationId) -> u32 {
    let runners = stack
        .store
        .runner_list(RunnerFilter {
            installation_id: Some(tenant),
            tier: None,
            states: RunnerState::ALL.to_vec(),
            ..RunnerFilter::default()
        })
        .await
        .expect("listing runners");
    let refs: Vec<_> = runners.iter().collect();
    peak_concurrency(&refs, chrono::Utc::now())
}

/// Wait until nothing is live, running or registered any more, and fail with what is left otherwise.
pub async fn assert_nothing_left(stack: &LocalStack) {
    let settled =
        stack.wait_for(Duration::from_secs(15), || async { stack.leftovers().await.is_ok_and(|l| l.is_empty()) }).await;
    let leftovers = stack.leftovers().await.expect("reading leftovers");
    assert!(settled && leftovers.is_empty(), "left over after the run: {leftovers:?}");
}
