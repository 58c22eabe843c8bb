//! The randomized simulation as a test: `GHR_SIM_SEEDS` seeds (default [`DEFAULT_SEEDS`]) starting at
//! `GHR_SIM_FIRST_SEED` (default 0), spread over [`SHARDS`] test functions so they run in parallel.
//! A failure names its seed and the command that replays it.

use ghr_sim::{RunOptions, run_seed};

/// Seeds run by default (CI).
const DEFAULT_SEEDS: u64 = 1000;
/// Test functions the seeds are spread over (seed `s` runs in shard `s % SHARDS`).
const SHARDS: u64 = 10;

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
        Err(_) => default,
    }
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
    println!("simulation shard {index}/{SHARDS}: {ran} seeds passed (seeds {first}..{} in all)", first + count);
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
