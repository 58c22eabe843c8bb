//! The storage conformance suite: the `Store` contract as executable checks, run against every backend.
//!
//! Test-support code, compiled always so that other crates' tests (another backend, an in-memory
//! fake) can run it: call [`run_all`] with a factory of fresh, empty stores. Each contract is also
//! public, so a backend can run one alone while debugging. A contract panics with a message naming
//! the broken rule; [`run_all`] prints each contract's name to stderr before it runs.
//!
//! The contracts use whole-second timestamps (stores keep at least millisecond precision), and
//! `reserve_is_atomic_under_concurrency` spawns tasks, so it needs a Tokio runtime.

mod counts;
mod fixtures;
mod health;
mod intake;
mod jobs;
mod leases;
mod pool;
mod reserve;
mod runners;
mod snapshot;
mod tenants;

pub use counts::counts_match_a_recount_after_mixed_changes;
pub use fixtures::{ENVIRONMENT, at, new_tenant, queued, reserve_request};
pub use health::check_writable_repeats_without_side_effects;
pub use intake::{
    intake_across_batches_moves_forward_only, intake_batch_applies_each_delivery_once, intake_failing_item_fails_alone,
};
pub use jobs::{
    job_list_filters, job_list_wanting_runner_is_fifo, job_observe_completed_before_queued,
    job_observe_keeps_creation_fields, job_observe_moves_forward_only, job_timeline_records_changes,
    job_wait_reason_logged_only_on_change, prune_forgets_old_deliveries_and_completed_jobs,
};
pub use leases::lease_has_one_holder_until_released_or_expired;
pub use pool::{
    pool_claim_takes_the_longest_ready_of_its_tier, pool_claims_and_deliveries_are_atomic, pool_machines_round_trip,
    pool_retired_machines_are_listed_on_request_and_pruned, pool_transitions_follow_the_lifecycle,
};
pub use reserve::{
    reserve_covers_demand_once, reserve_is_atomic_under_concurrency, reserve_is_dated_after_earlier_releases,
    reserve_limit_spans_tiers, reserve_refuses_inactive_tenants, reserve_refuses_unknown_tenant,
    reserve_respects_global_cap, reserve_scopes_user_tenants_by_repository,
};
pub use runners::{
    runner_bound_before_its_launch_is_recorded, runner_list_and_live_counts, runner_update_failure_and_field_updates,
    runner_update_follows_lifecycle, usage_clips_to_the_period,
};
pub use snapshot::{
    demand_snapshot_reads_the_tenants_asked_for, demand_snapshot_skips_reasoned_jobs_of_tenants_without_headroom,
    fleet_records_hold_what_the_reconciler_plans_from, job_set_wait_reasons_applies_each_change_once,
};
pub use tenants::{
    checkpoints_keep_the_last_value, delivery_record_deduplicates, tenant_create_is_idempotent,
    tenant_find_by_org_ignores_case, tenant_list_filters_by_status, tenant_org_name_is_unique_among_live_tenants,
    tenant_update_applies_given_fields,
};

use ghr_core::ports::Store;
use std::future::Future;
use std::sync::Arc;

/// Run one contract on a fresh store, naming it first so a failure is easy to place.
macro_rules! contracts {
    ($make_store:ident: $($contract:ident),+ $(,)?) => {
        $(
            eprintln!("conformance: {}", stringify!($contract));
            $contract($make_store().await).await;
        )+
    };
}

/// Run every `PoolStore` contract, each on a fresh empty store from `make_store` (backends that keep pool
/// machines).
pub async fn run_pool<F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn ghr_core::ports::PoolStore>>,
{
    contracts!(make_store:
        pool_machines_round_trip,
        pool_transitions_follow_the_lifecycle,
        pool_claim_takes_the_longest_ready_of_its_tier,
        pool_claims_and_deliveries_are_atomic,
        pool_retired_machines_are_listed_on_request_and_pruned,
    );
}

/// Run every contract, each on a fresh empty store from `make_store`.
pub async fn run_all<F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    contracts!(make_store:
        check_writable_repeats_without_side_effects,
        tenant_create_is_idempotent,
        tenant_update_applies_given_fields,
        tenant_list_filters_by_status,
        tenant_find_by_org_ignores_case,
        tenant_org_name_is_unique_among_live_tenants,
        delivery_record_deduplicates,
        checkpoints_keep_the_last_value,
        job_observe_moves_forward_only,
        job_observe_completed_before_queued,
        job_observe_keeps_creation_fields,
        job_timeline_records_changes,
        job_wait_reason_logged_only_on_change,
        job_list_wanting_runner_is_fifo,
        job_list_filters,
        prune_forgets_old_deliveries_and_completed_jobs,
        reserve_refuses_unknown_tenant,
        reserve_covers_demand_once,
        reserve_limit_spans_tiers,
        reserve_respects_global_cap,
        reserve_refuses_inactive_tenants,
        reserve_scopes_user_tenants_by_repository,
        reserve_is_dated_after_earlier_releases,
        reserve_is_atomic_under_concurrency,
        runner_update_follows_lifecycle,
        runner_update_failure_and_field_updates,
        runner_bound_before_its_launch_is_recorded,
        runner_list_and_live_counts,
        usage_clips_to_the_period,
        counts_match_a_recount_after_mixed_changes,
        intake_batch_applies_each_delivery_once,
        intake_across_batches_moves_forward_only,
        intake_failing_item_fails_alone,
        demand_snapshot_reads_the_tenants_asked_for,
        demand_snapshot_skips_reasoned_jobs_of_tenants_without_headroom,
        fleet_records_hold_what_the_reconciler_plans_from,
        job_set_wait_reasons_applies_each_change_once,
        lease_has_one_holder_until_released_or_expired,
    );
}
