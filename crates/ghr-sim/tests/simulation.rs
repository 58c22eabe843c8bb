//! The randomized simulation as a test: `GHR_SIM_SEEDS` seeds (default [`DEFAULT_SEEDS`]) starting at
//! `GHR_SIM_FIRST_SEED` (default 0), spread over [`SHARDS`] test functions so they run in parallel.
//! Two more shards run `GHR_SIM_LONG_SEEDS` long seeds each (default [`LONG_SEEDS_PER_SHARD`], [`LONG_STEPS`]
//! steps each). A failure names its seed and the command that replays it. `GHR_SIM_STORE=postgres` runs them
//! on PostgreSQL, `GHR_SIM_STORE=dynamodb` on DynamoDB (see `ghr_sim::backend`).

use ghr_sim::backend::SimBackend;
use ghr_sim::{RunOptions, run_seed};

/// Seeds run by default (CI).
const DEFAULT_SEEDS: u64 = 1000;
/// Test functions the seeds are spread over (seed `s` runs in shard `s % SHARDS`).
const SHARDS: u64 = 10;
/// Long runs: seeds of many more steps, where restarts, outages and slow launches pile up. Per long shard, by
/// default; `GHR_SIM_LONG_SEEDS` changes it (a slower store runs fewer).
const LONG_SEEDS_PER_SHARD: u64 = 12;
const LONG_STEPS: u32 = 600;
/// Long-run seeds start here, apart from the short ones.
const LONG_FIRST_SEED: u64 = 1_000_000;

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
        Err(_) => default,
    }
}

/// The store the seeds run on (`GHR_SIM_STORE`), for the summary lines.
fn store() -> SimBackend {
    SimBackend::from_env().unwrap_or_else(|e| panic!("{e}"))
}

async fn shard(index: u64) {
    let first = env_number("GHR_SIM_FIRST_SEED", 0);
    let count = env_number("GHR_SIM_SEEDS", DEFAULT_SEEDS);
    let mut ran = 0;
    for seed in (first..first + count).filter(|seed| seed % SHARDS == index) {
        if let Err(error) = run_seed(seed, RunOptions::default()).await {
            panic!("{error}");
        }
        ran += 1;
    }
    println!(
        "simulation shard {index}/{SHARDS} on {}: {ran} seeds passed (seeds {first}..{} in all)",
        store(),
        first + count
    );
}

async fn long_shard(index: u64) {
    // Shards keep their default ranges, so a seed runs in the same shard whatever the count.
    let first = env_number("GHR_SIM_FIRST_SEED", 0) + LONG_FIRST_SEED + index * LONG_SEEDS_PER_SHARD;
    let count = env_number("GHR_SIM_LONG_SEEDS", LONG_SEEDS_PER_SHARD);
    for seed in first..first + count {
        if let Err(error) = run_seed(seed, RunOptions { steps: LONG_STEPS, trace: false }).await {
            panic!("{error}");
        }
    }
    println!("simulation long shard {index} on {}: {count} seeds of {LONG_STEPS} steps passed", store());
}

#[tokio::test]
async fn long_shard_0() {
    long_shard(0).await;
}

#[tokio::test]
async fn long_shard_1() {
    long_shard(1).await;
}

macro_rules! shards {
    ($($name:ident = $index:expr),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                shard($index).await;
            }
        )+
    };
}

shards!(
    shard_0 = 0,
    shard_1 = 1,
    shard_2 = 2,
    shard_3 = 3,
    shard_4 = 4,
    shard_5 = 5,
    shard_6 = 6,
    shard_7 = 7,
    shard_8 = 8,
    shard_9 = 9,
);
