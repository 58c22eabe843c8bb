//! `ghr-emulated-runner`: an emulated ephemeral runner process. It reads the JIT config from stdin
//! (never from the command line), runs one job against the GitHub emulator and exits 0.
//!
//! Environment: `GHR_RUNNER_NAME` (the name the provider gave it, for log lines) and
//! `GHR_RUNNER_IDLE_TIMEOUT_SECS` (give up when no job came within this many seconds; default: wait).
//! SIGTERM or SIGINT end it at once with status 143 or 130.

use std::process::ExitCode;

fn main() -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(ghr_testkit::runner::process::run_process()),
        Err(error) => {
            eprintln!("ghr-emulated-runner: starting the async runtime failed: {error}");
            ExitCode::FAILURE
        }
    }
}
