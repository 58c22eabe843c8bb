//! The emulated runner as an operating-system process: JIT config from stdin (never from the
//! command line), log lines on stderr, SIGTERM/SIGINT end it at once. The `ghr-emulated-runner`
//! binary is a thin `main` around [`run_process`]; other binaries (the `ghr` CLI) can offer the
//! same behaviour as a subcommand.

use super::{EmulatedRunner, RunEnd, RunnerOptions};
use ghr_core::error::error_chain;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{SignalKind, signal};

/// The runner name the provider may set, used in log lines.
pub const ENV_RUNNER_NAME: &str = "GHR_RUNNER_NAME";
/// Give up when no job came within this many seconds (default: wait until killed).
pub const ENV_IDLE_TIMEOUT_SECS: &str = "GHR_RUNNER_IDLE_TIMEOUT_SECS";
/// The binary's file name.
pub const BINARY_NAME: &str = "ghr-emulated-runner";
/// Exit statuses for "ended by SIGTERM/SIGINT" (128 + signal number, the shell convention).
pub const EXIT_SIGTERM: u8 = 143;
pub const EXIT_SIGINT: u8 = 130;

/// Read the JIT config from stdin, run one job, and return the process's exit status:
/// 0 when the runner ended normally (job done, idle timeout, registration removed), 1 on error
/// (with a message on stderr), 143/130 on SIGTERM/SIGINT.
pub async fn run_process() -> ExitCode {
    let label = std::env::var(ENV_RUNNER_NAME).unwrap_or_else(|_| "runner".to_owned());
    let (mut terminate, mut interrupt) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("{BINARY_NAME} {label}: installing signal handlers failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let work = async {
        let mut config = String::new();
        tokio::io::stdin()
            .read_to_string(&mut config)
            .await
            .map_err(|error| format!("reading the JIT config from stdin failed: {error}"))?;
        let options = RunnerOptions { idle_timeout: idle_timeout()?, ..RunnerOptions::default() };
        let runner = EmulatedRunner::connect(&config, options).await.map_err(|error| error_chain(&error))?;
        eprintln!(
            "{BINARY_NAME} {label}: connected as runner {} ({}); listening for jobs",
            runner.runner_id(),
            runner.runner_name()
        );
        runner.run().await.map_err(|error| error_chain(&error))
    };
    tokio::select! {
        outcome = work => match outcome {
            Ok(outcome) => {
                match outcome.end {
                    RunEnd::Completed { job, conclusion } => {
                        eprintln!("{BINARY_NAME} {label}: job {} of {} done ({conclusion})", job.job_id, job.repository);
                    }
                    RunEnd::IdleTimeout => eprintln!("{BINARY_NAME} {label}: no job came; exiting"),
                    RunEnd::Deregistered => eprintln!("{BINARY_NAME} {label}: registration removed; exiting"),
                }
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("{BINARY_NAME} {label}: {message}");
                ExitCode::FAILURE
            }
        },
        _ = terminate.recv() => {
            eprintln!("{BINARY_NAME} {label}: terminated (SIGTERM)");
            ExitCode::from(EXIT_SIGTERM)
        }
        _ = interrupt.recv() => {
            eprintln!("{BINARY_NAME} {label}: interrupted (SIGINT)");
            ExitCode::from(EXIT_SIGINT)
        }
    }
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

/// Where cargo put the `ghr-emulated-runner` binary, found next to the running executable (a test
/// binary lives in `target/<profile>/deps`, the runner in `target/<profile>`). None when it has
/// not been built: `cargo build -p ghr-testkit --bin ghr-emulated-runner` builds it.
pub fn emulated_runner_binary() -> Option<PathBuf> {
    let executable = std::env::current_exe().ok()?;
    let mut directory = executable.parent()?;
    for _ in 0..2 {
        let candidate = directory.join(BINARY_NAME);
        if candidate.is_file() {
            return Some(candidate);
        }
        directory = directory.parent()?;
    }
    None
}
