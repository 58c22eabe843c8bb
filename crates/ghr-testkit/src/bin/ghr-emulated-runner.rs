//! `ghr-emulated-runner`: an emulated ephemeral runner process. It reads the JIT config from stdin
//! (never from the command line), runs one job against the GitHub emulator and exits 0.
//!
//! Environment: `GHR_RUNNER_NAME` (the name the provider gave it, for log lines) and
//! `GHR_RUNNER_IDLE_TIMEOUT_SECS` (give up when no job came within this many seconds; default: wait).
//! SIGTERM or SIGINT end it at once with status 143 or 130.

use ghr_testkit::runner::{EmulatedRunner, RunEnd, RunnerOptions};
use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

const ENV_RUNNER_NAME: &str = "GHR_RUNNER_NAME";
const ENV_IDLE_TIMEOUT_SECS: &str = "GHR_RUNNER_IDLE_TIMEOUT_SECS";
/// Exit statuses for "ended by SIGTERM/SIGINT" (128 + signal number, the shell convention).
const EXIT_SIGTERM: u8 = 143;
const EXIT_SIGINT: u8 = 130;

fn main() -> ExitCode {
    let label = std::env::var(ENV_RUNNER_NAME).unwrap_or_else(|_| "runner".to_owned());
    let mut config = String::new();
    if let Err(error) = std::io::stdin().read_to_string(&mut config) {
        eprintln!("ghr-emulated-runner {label}: reading the JIT config from stdin failed: {error}");
        return ExitCode::FAILURE;
    }
    let options = match idle_timeout() {
        Ok(idle_timeout) => RunnerOptions { idle_timeout, ..RunnerOptions::default() },
        Err(message) => {
            eprintln!("ghr-emulated-runner {label}: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ghr-emulated-runner {label}: starting the async runtime failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(label, config, options))
}

fn idle_timeout() -> Result<Option<Duration>, String> {
    match std::env::var(ENV_IDLE_TIMEOUT_SECS) {
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .map(|secs| Some(Duration::from_secs(secs)))
            .map_err(|_| format!("{ENV_IDLE_TIMEOUT_SECS} must be a whole number of seconds, got {value:?}")),
        Err(_) => Ok(None),
    }
}

async fn run(label: String, config: String, options: RunnerOptions) -> ExitCode {
    let (mut terminate, mut interrupt) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("ghr-emulated-runner {label}: installing signal handlers failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let work = async {
        let runner = EmulatedRunner::connect(&config, options).await?;
        eprintln!(
            "ghr-emulated-runner {label}: connected as runner {} ({}); listening for jobs",
            runner.runner_id(),
            runner.runner_name()
        );
        runner.run().await
    };
    tokio::select! {
        outcome = work => match outcome {
            Ok(outcome) => {
                match outcome.end {
                    RunEnd::Completed { job, conclusion } => {
                        eprintln!("ghr-emulated-runner {label}: job {} of {} done ({conclusion})", job.job_id, job.repository);
                    }
                    RunEnd::IdleTimeout => eprintln!("ghr-emulated-runner {label}: no job came; exiting"),
                    RunEnd::Deregistered => eprintln!("ghr-emulated-runner {label}: registration removed; exiting"),
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("ghr-emulated-runner {label}: {}", error_chain(&error));
                ExitCode::FAILURE
            }
        },
        _ = terminate.recv() => {
            eprintln!("ghr-emulated-runner {label}: terminated (SIGTERM)");
            ExitCode::from(EXIT_SIGTERM)
        }
        _ = interrupt.recv() => {
            eprintln!("ghr-emulated-runner {label}: interrupted (SIGINT)");
            ExitCode::from(EXIT_SIGINT)
        }
    }
}

/// `outer: cause: root cause`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
