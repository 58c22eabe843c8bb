//! One Lambda function: the real `ghr-lambda` binary as its `bootstrap`, with the environment Lambda gives a
//! custom runtime (`AWS_LAMBDA_RUNTIME_API` pointing at its own [`RuntimeApi`], the function's name, memory,
//! version and log stream) plus the function's own variables. Its stdout and stderr go to a log file whose tail
//! is printed when the test fails; the process is killed when the `Function` is dropped.

use super::runtime_api::{InvokeError, RuntimeApi};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The binary under test.
const BINARY: &str = env!("CARGO_BIN_EXE_ghr-lambda");
/// What Lambda sets for every function (lambda_runtime refuses to start without the first three).
const MEMORY_SIZE: &str = "256";
const FUNCTION_VERSION: &str = "$LATEST";
/// How many lines of a function's log a failing test shows.
const LOG_TAIL_LINES: usize = 60;
/// Variables of the test process a function inherits (nothing else: a function sees only its own environment).
const INHERITED: [&str; 3] = ["PATH", "HOME", "RUST_BACKTRACE"];

/// A running function.
pub struct Function {
    pub name: String,
    api: Arc<RuntimeApi>,
    log: PathBuf,
    process: JoinHandle<()>,
}

impl Function {
    /// Start the binary as the function `name` with `env` (its `GHR_*`, AWS and secret variables), logging to a
    /// file in `log_dir`.
    pub async fn start(name: &str, env: &BTreeMap<String, String>, log_dir: &Path) -> Function {
        let api = Arc::new(RuntimeApi::start(name).await);
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("creating the function's log file");
        let stderr = file.try_clone().expect("sharing the log file");
        let mut command = tokio::process::Command::new(BINARY);
        command.env_clear();
        for variable in INHERITED {
            if let Ok(value) = std::env::var(variable) {
                command.env(variable, value);
            }
        }
        command
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_SIZE)
            .env("AWS_LAMBDA_FUNCTION_VERSION", FUNCTION_VERSION)
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("2026/01/01/[$LATEST]{:016x}", std::process::id()))
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("starting {BINARY} as {name}: {e}"));
        let watched = api.clone();
        // The task owns the child: aborting it (on drop) or the runtime ending drops the child, which kills it.
        let process = tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(error) => format!("wait failed: {error}"),
            };
            watched.process_exited(status);
        });
        Function { name: name.to_owned(), api, log, process }
    }

    /// Invoke the function with `event`; its answer, or why there is none.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Value, InvokeError> {
        self.api.invoke(event, timeout).await
    }

    /// How many invocations the function has taken.
    pub fn invocations(&self) -> usize {
        self.api.taken()
    }

    /// Whether the process has ended.
    pub fn exited(&self) -> bool {
        self.process.is_finished()
    }

    /// The function's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the function's log.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        self.process.abort();
        if std::thread::panicking() {
            eprintln!("---- last lines of the log of function {} ----\n{}\n----", self.name, self.log_tail());
        }
    }
}
