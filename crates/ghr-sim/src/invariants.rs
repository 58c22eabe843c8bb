//! The promises checked after every step, and what "settled" means once faults end.
//!
//! After every step:
//! - no busy runner was terminated (the provider records a violation when one is);
//! - no tenant has more instances running, or more live runner records, than its limit;
//! - a slot is held until its process is gone: every running instance has a live runner record.
//!
//! Settled (after the faults end): every job of a tier is completed on GitHub (none lost), no instance
//! runs, no runner record holds a slot, no launch is in flight.

use crate::world::World;
use ghr_core::job::JobStatus;

/// Labels that make a job ghr's (every tier's labels include it).
const SELF_HOSTED: &str = "self-hosted";

pub async fn check_step(world: &World) -> Result<(), String> {
    if let Some(violation) = world.provider.violations().first() {
        return Err(violation.clone());
    }
    let alive = world.provider.alive_per_installation();
    let live = world.inner_store.runner_live_counts().await.map_err(|e| format!("reading live counts: {e}"))?;
    for tenant in &world.tenants {
        let running = alive.get(&tenant.installation).copied().unwrap_or(0);
        if running > tenant.limit {
            return Err(format!("tenant {} runs {running} instances, limit {}", tenant.installation, tenant.limit));
        }
        let held = live.get(&tenant.installation).copied().unwrap_or(0);
        if held > tenant.limit {
            return Err(format!(
                "tenant {} holds {held} live runner records, limit {}",
                tenant.installation, tenant.limit
            ));
        }
    }
    for (instance, name) in world.provider.alive() {
        let record = world.inner_store.runner_get(&name).await.map_err(|e| format!("reading runner {name}: {e}"))?;
        match record {
            Some(runner) if runner.state.is_live() => {}
            Some(runner) => {
                return Err(format!(
                    "slot freed before its process was gone: {name} is {} while {instance} runs",
                    runner.state
                ));
            }
            None => return Err(format!("instance {instance} runs for {name}, which has no runner record")),
        }
    }
    Ok(())
}

pub async fn settled(world: &World) -> Result<(), String> {
    let tenants: Vec<_> = world.tenants.iter().map(|t| t.installation).collect();
    let unserved: Vec<String> = world
        .emulator
        .jobs()
        .into_iter()
        .filter(|job| tenants.contains(&job.installation_id) && job.labels.iter().any(|l| l == SELF_HOSTED))
        .filter(|job| job.status != JobStatus::Completed)
        .map(|job| format!("{} ({}, {})", job.id, job.status, job.labels.join(",")))
        .collect();
    if !unserved.is_empty() {
        return Err(format!("jobs lost (never served after the faults ended): {}", unserved.join("; ")));
    }
    let alive = world.provider.alive();
    if !alive.is_empty() {
        return Err(format!("instances left running: {alive:?}"));
    }
    let live = world.inner_store.runner_live_counts().await.map_err(|e| format!("reading live counts: {e}"))?;
    if live.values().any(|n| *n > 0) {
        return Err(format!("runner records still hold slots: {live:?}"));
    }
    if world.ghr.as_ref().is_some_and(|g| !g.launches.is_empty()) {
        return Err("launches still in flight".into());
    }
    Ok(())
}
