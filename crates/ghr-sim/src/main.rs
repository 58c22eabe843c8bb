//! `ghr-sim`: replay one seed of the deterministic simulation, or run a range of seeds.
//!
//! `cargo run -p ghr-sim -- --seed 42 --trace` replays seed 42 and prints every step;
//! `cargo run -p ghr-sim -- --from 0 --count 500` runs seeds 0..500 and stops at the first failure.
//! `GHR_SIM_STORE=postgres` runs them on PostgreSQL (a fresh schema per seed) instead of SQLite;
//! `GHR_SIM_STORE=dynamodb` on DynamoDB (fresh tables per seed on moto; build with `--features dynamodb`).

use ghr_sim::{DEFAULT_STEPS, RunOptions, SimError, run_seed};
use std::process::ExitCode;

const USAGE: &str = "usage: ghr-sim [--seed N | --from N --count K] [--steps S] [--trace]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut from, mut count, mut steps, mut trace) = (0u64, 1u64, DEFAULT_STEPS, false);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Option<u64> {
            let value = args.next().and_then(|v| v.parse().ok());
            if value.is_none() {
                eprintln!("{name} needs a whole number\n{USAGE}");
            }
            value
        };
        match arg.as_str() {
            "--seed" | "--from" => match number(&arg) {
                Some(n) => from = n,
                None => return ExitCode::from(2),
            },
            "--count" => match number(&arg) {
                Some(n) => count = n.max(1),
                None => return ExitCode::from(2),
            },
            "--steps" => match number(&arg).and_then(|n| u32::try_from(n).ok()) {
                Some(n) => steps = n,
                None => return ExitCode::from(2),
            },
            "--trace" => trace = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        for seed in from..from + count {
            match run_seed(seed, RunOptions { steps, trace }).await {
                Ok(report) => println!("seed {seed}: ok {report:?}"),
                Err(error @ SimError::Violation { .. }) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
                Err(error) => {
                    eprintln!("{}", ghr_core::error::ErrorChain(&error));
                    return ExitCode::FAILURE;
                }
            }
        }
        ExitCode::SUCCESS
    })
}
