//! Names of every metric the engine emits, in one place. The server installs the Prometheus recorder.
//!
//! Labels are bounded: `tier`, `reason`, `state`, `action`, `kind` come from configuration or enums.
//! `tenant` appears only on gauges refreshed from the store (one series per configured tenant).

/// Counter: webhook deliveries applied, by `event` and `outcome` (`applied`, `duplicate`).
pub const WEBHOOK_EVENTS: &str = "ghr_webhook_events_total";
/// Counter: jobs newly seen, by `tier` (`none` when no tier matches).
pub const JOBS_RECEIVED: &str = "ghr_jobs_received_total";
/// Counter: job status transitions, by `status`.
pub const JOB_TRANSITIONS: &str = "ghr_job_transitions_total";
/// Gauge: jobs matched to a tier waiting for a runner, by `reason` (`starting` when a runner is on its way); read
/// from the store by the server's gauges every few seconds. Jobs no tier matches (`no_matching_tier`: not ghr's to
/// serve) and jobs of deleted tenants are not waiting for a runner and are not counted.
pub const JOBS_WAITING: &str = "ghr_jobs_waiting";
/// Counter: admission refusals, by `reason`.
pub const ADMISSION_REFUSED: &str = "ghr_admission_refused_total";
/// Counter: runners launched, by `tier`.
pub const RUNNERS_LAUNCHED: &str = "ghr_runners_launched_total";
/// Counter: launch failures, by `stage` (`jit`, `provider`, `store`).
pub const LAUNCH_FAILURES: &str = "ghr_launch_failures_total";
/// Histogram (seconds): job received → provider launch call returned.
pub const QUEUED_TO_LAUNCHED: &str = "ghr_job_queued_to_launched_seconds";
/// Histogram (seconds): job `queued` → `in_progress` (as GitHub timestamps it, else as ghr saw it).
pub const QUEUED_TO_IN_PROGRESS: &str = "ghr_job_queued_to_in_progress_seconds";
/// Histogram (seconds): webhook received → provider launch call started (control-plane overhead).
pub const DISPATCH_OVERHEAD: &str = "ghr_dispatch_overhead_seconds";
/// Gauge: live runners, by `tenant`, `tier` and `state`.
pub const RUNNERS: &str = "ghr_runners";
/// Counter: provider calls, by `provider`, `call` and `outcome`.
pub const PROVIDER_CALLS: &str = "ghr_provider_calls_total";
/// Counter: reconciler actions, by `action`.
pub const RECONCILER_ACTIONS: &str = "ghr_reconciler_actions_total";
/// Counter: runners terminated, by `cause`.
pub const RUNNERS_TERMINATED: &str = "ghr_runners_terminated_total";
/// Gauge: 1 while this replica holds the reconciler lease (runs the singleton work), else 0.
pub const RECONCILER_LEADER: &str = "ghr_reconciler_leader";
/// Counter: times this replica took the reconciler lease (at start, or from a replica that died or stepped down).
pub const LEASE_TAKEOVERS: &str = "ghr_reconciler_lease_takeovers_total";
/// Counter: launches served from a warm pool (`outcome` = `hit`) or started cold because none was ready
/// (`miss`), by `tier`.
pub const POOL_CLAIMS: &str = "ghr_pool_claims_total";
/// Counter: pool machines launched, by `tier` and `outcome` (`ok`, `error`).
pub const POOL_LAUNCHES: &str = "ghr_pool_launches_total";
/// Counter: pool machines retired, by `tier` and `reason`.
pub const POOL_RETIRED: &str = "ghr_pool_retired_total";
/// Gauge: pool machines by `tier` and `state` (starting, ready, bound, delivered).
pub const POOL_MACHINES: &str = "ghr_pool_machines";
/// Histogram (seconds): job received → JIT config handed to a pool machine's agent (ghr's share of a pooled
/// start).
pub const QUEUED_TO_CONFIG: &str = "ghr_job_queued_to_config_delivered_seconds";
/// Histogram (seconds): config delivered → the agent reported its runner started (the machine's share).
pub const CONFIG_TO_RUNNER_STARTED: &str = "ghr_pool_config_to_runner_started_seconds";
/// Counter: agent requests refused, by `why` (`unauthorized`, `gone`).
pub const AGENT_REFUSED: &str = "ghr_agent_requests_refused_total";
