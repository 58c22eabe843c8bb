//! `ghr emulated-runner` (hidden): the runner process of `ghr demo` and the end-to-end tests. Reads its JIT
//! config from stdin, runs one job against the GitHub emulator, exits. SIGTERM ends it (default action).

use ghr_testkit::runner::{RunEnd, RunnerOptions, run_emulated_runner};
use std::io::Read;
use std::process::ExitCode;

const ENV_RUNNER_NAME: &str = "GHR_RUNNER_NAME";

/// Synchronous entry (its own small runtime: it is a separate process).
pub fn main() -> ExitCode {
    let label = std::env::var(ENV_RUNNER_NAME).unwrap_or_else(|_| "runner".to_owned());
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("emulated runner {label}: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("emulated runner {label}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

pub async fn run() -> anyhow::Result<()> {
    let mut config = String::new();
    std::io::stdin().read_to_string(&mut config)?;
    let outcome = run_emulated_runner(config.trim(), RunnerOptions::default()).await?;
    match outcome.end {
        RunEnd::Completed { job, conclusion } => {
            eprintln!("emulated runner {}: job {} done ({conclusion})", outcome.runner_name, job.job_id)
        }
        RunEnd::IdleTimeout => eprintln!("emulated runner {}: no job came", outcome.runner_name),
        RunEnd::Deregistered => eprintln!("emulated runner {}: registration removed", outcome.runner_name),
    }
    Ok(())
}
