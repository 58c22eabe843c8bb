//! Deterministic simulation of ghr.
//!
//! A seeded scheduler drives the real engine (dispatcher, launcher, teardown, reconciler, webhook intake
//! through the real HTTP router), the real store (SQLite, PostgreSQL with `GHR_SIM_STORE=postgres`, or DynamoDB
//! on moto with `GHR_SIM_STORE=dynamodb` and the `dynamodb` feature: see [`backend`]) and the real GitHub client against the GitHub
//! emulator, one [`world::Step`] at a time: GitHub queues jobs; the network hands deliveries over, drops,
//! delays, reorders and duplicates them; launches advance step by step; runners boot, take jobs and finish
//! them; ghr restarts, goes down, and its store and provider fail. After every step the invariants are
//! checked ([`invariants`]); at the end faults stop and the world must settle with every job served.
//!
//! A seed replays the same run: `GHR_SIM_STORE=sqlite cargo run -p ghr-sim -- --seed N` (add `--trace` to
//! print every step).
//! Timing outside the scheduler's control (the emulator's 5-second runner-offline rule, background
//! redeliveries) is kept out of the way by short runs and by waiting for redeliveries after each pass.

pub mod backend;
pub mod faulty_store;
pub mod ghr;
pub mod invariants;
pub mod provider;
pub mod receiver;
pub mod world;

use backend::{STORE_ENV, SimBackend};
use receiver::NetworkFaults;
use world::{Step, World, WorldError};

/// How many scheduled steps a seed runs before faults stop, by default.
pub const DEFAULT_STEPS: u32 = 120;
/// Rounds of the fault-free settling phase before unserved jobs count as lost.
const SETTLE_ROUNDS: u32 = 200;
/// Simulated time between two settling rounds.
const SETTLE_TICK: std::time::Duration = std::time::Duration::from_secs(150);
/// Network faults while the scheduler runs (percent of first deliveries).
const CHAOS_NETWORK: NetworkFaults = NetworkFaults { drop_percent: 10, delay_percent: 15, duplicate_percent: 5 };

/// What one seed did.
#[derive(Debug, Clone, Default)]
pub struct SeedReport {
    pub seed: u64,
    pub steps: u32,
    pub jobs: usize,
    pub restarts: u32,
    pub store_faults: u32,
    pub dropped_deliveries: u64,
    pub settle_rounds: u32,
}

/// A broken promise, with the trace that led to it.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(
        "seed {seed}: invariant violated after step {step} on {store}: {violation}\nreplay: {STORE_ENV}={store} cargo run -p ghr-sim{features} -- --seed {seed} --steps {steps} --trace",
        features = .store.cargo_flags()
    )]
    Violation { seed: u64, store: SimBackend, steps: u32, step: u32, violation: String, trace: Vec<String> },
    #[error("seed {seed}: the world could not be built or driven")]
    World {
        seed: u64,
        #[source]
        source: WorldError,
    },
}

/// Options of one run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub steps: u32,
    /// Print every step as it runs.
    pub trace: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { steps: DEFAULT_STEPS, trace: false }
    }
}

/// Steps the scheduler chooses from, with their weights.
const WEIGHTS: [(Step, u32); 15] = [
    (Step::QueueJob, 14),
    (Step::HandOver, 8),
    (Step::Dispatch, 12),
    (Step::AdvanceLaunch, 16),
    (Step::Boot, 8),
    (Step::Poll, 10),
    (Step::Finish, 8),
    (Step::PowerOff, 5),
    (Step::Teardown, 6),
    (Step::Reconcile, 5),
    (Step::Tick, 6),
    (Step::Restart, 1),
    (Step::StoreFault, 2),
    (Step::ProviderFault, 1),
    (Step::Outage, 1),
];

/// Run one seed: the chaotic phase, then the settling phase, checking invariants after every step.
pub async fn run_seed(seed: u64, options: RunOptions) -> Result<SeedReport, SimError> {
    let mut world = World::new(seed).await.map_err(|source| SimError::World { seed, source })?;
    let mut trace = Vec::new();
    let mut report = SeedReport { seed, ..SeedReport::default() };
    world.set_network(CHAOS_NETWORK);
    let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
    for step_no in 0..options.steps {
        let mut draw = rand::Rng::random_range(&mut world.rng, 0..total);
        let step = WEIGHTS
            .iter()
            .find(|(_, weight)| {
                let hit = draw < *weight;
                draw = draw.saturating_sub(*weight);
                hit
            })
            .map_or(Step::Tick, |(step, _)| *step);
        let text = world.run(step).await;
        record(&mut trace, options.trace, step_no, &text);
        if let Err(violation) = invariants::check_step(&world).await {
            return Err(SimError::Violation {
                seed,
                store: world.backend,
                steps: options.steps,
                step: step_no,
                violation,
                trace,
            });
        }
        report.steps += 1;
    }
    report.restarts = world.restarts;
    report.store_faults = world.store.injected();
    report.dropped_deliveries = world.receiver.dropped();

    // Faults end: the world must settle with every job served.
    world.set_network(NetworkFaults::NONE);
    world.store.heal();
    world.provider.fail_next_launches(0);
    if world.ghr.is_none() {
        world.down_for = 0;
        world.start_ghr();
    }
    for round in 0..SETTLE_ROUNDS {
        report.settle_rounds = round + 1;
        for text in world.drain_round(SETTLE_TICK).await {
            record(&mut trace, options.trace, options.steps + round, &text);
        }
        if let Err(violation) = invariants::check_step(&world).await {
            return Err(SimError::Violation {
                seed,
                store: world.backend,
                steps: options.steps,
                step: options.steps + round,
                violation,
                trace,
            });
        }
        if invariants::settled(&world).await.is_ok() {
            break;
        }
    }
    report.jobs = world.emulator.jobs().len();
    if let Err(violation) = invariants::settled(&world).await {
        let step = options.steps + report.settle_rounds;
        return Err(SimError::Violation { seed, store: world.backend, steps: options.steps, step, violation, trace });
    }
    Ok(report)
}

fn record(trace: &mut Vec<String>, print: bool, step: u32, text: &str) {
    let line = format!("{step:4} {text}");
    if print {
        println!("{line}");
    }
    trace.push(line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_command_names_the_store() {
        let violation = |store| SimError::Violation {
            seed: 7,
            store,
            steps: 120,
            step: 3,
            violation: "two runners for one slot".to_owned(),
            trace: Vec::new(),
        };
        let text = violation(SimBackend::Postgres).to_string();
        assert!(text.contains("replay: GHR_SIM_STORE=postgres cargo run -p ghr-sim -- --seed 7 --steps 120"), "{text}");
        let text = violation(SimBackend::Sqlite).to_string();
        assert!(text.contains("replay: GHR_SIM_STORE=sqlite cargo run"), "{text}");
        let text = violation(SimBackend::DynamoDb).to_string();
        assert!(
            text.contains("replay: GHR_SIM_STORE=dynamodb cargo run -p ghr-sim --features dynamodb -- --seed 7"),
            "{text}"
        );
    }
}
