//! `ghr-agent`: the program every warm-pool machine runs (EC2 user data starts it; the process provider runs
//! `ghr agent`, the same code).
//!
//! 1. Says hello to ghr with its machine id and one-time bootstrap secret (`POST /agent/v1/hello`), retrying
//!    while ghr is unreachable or answers 5xx (right after a launch ghr answers 503 until it recorded the
//!    machine).
//! 2. Long-polls `GET /agent/v1/assignment` until ghr binds the machine to a tenant's runner; the answer
//!    carries that runner's JIT config, once.
//! 3. Starts the runner command with the config (as `--jitconfig <cfg>`, in `ACTIONS_RUNNER_INPUT_JITCONFIG`,
//!    or on stdin) and a clean environment, reports `runner_started`, waits, reports `runner_exited`, runs the
//!    power-off command if any and exits with the runner's code.
//!
//! The secret and the config live in memory only: never logged, never written to disk. `booted_at` in the
//! hello is when the agent process started.
//!
//! Exit codes: [`EXIT_NOTHING_TO_DO`] (0: ghr says the machine has nothing more to get), the runner's own
//! code after a job, [`EXIT_REFUSED`] (the credential was refused), [`EXIT_GAVE_UP`] (never assigned within
//! `--give-up-after-seconds`), [`EXIT_FAILED`] (bad options, the runner could not start).

use chrono::{DateTime, Utc};
use ghr_api::agent::{
    AGENT_PREFIX, AgentEvent, AgentEventKind, AgentHello, AgentWelcome, Assignment, MAX_ASSIGNMENT_WAIT_SECONDS, bearer,
};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// ghr said the machine has nothing more to get (already served, retired): nothing ran.
pub const EXIT_NOTHING_TO_DO: i32 = 0;
/// Options were wrong or the runner could not be started.
pub const EXIT_FAILED: i32 = 70;
/// ghr refused the machine's credential.
pub const EXIT_REFUSED: i32 = 77;
/// No assignment came within `--give-up-after-seconds`.
pub const EXIT_GAVE_UP: i32 = 75;

/// The environment variable the Actions runner reads its `--jitconfig` from.
pub const ENV_RUNNER_JITCONFIG: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG";
/// Variables of the agent's own environment the runner inherits; nothing else (not the secret).
pub const INHERITED_ENV_VARS: [&str; 7] = ["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"];
/// First and longest pause between retries of a failed request.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Longest a single request may take (the long-poll adds its wait).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How the runner receives its JIT config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JitconfigTo {
    /// `<runner command> --jitconfig <config>` (what `run.sh` expects).
    Arg,
    /// The `ACTIONS_RUNNER_INPUT_JITCONFIG` variable.
    Env,
    /// Written to the runner's standard input, which is then closed.
    Stdin,
}

/// Everything the agent needs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub server: String,
    pub machine: String,
    pub secret: SecretString,
    /// Program and arguments of the runner.
    pub runner_command: Vec<String>,
    pub jitconfig_to: JitconfigTo,
    /// Run after the runner ended (e.g. `shutdown -h now`).
    pub poweroff_command: Option<Vec<String>>,
    /// Stop asking and exit when no assignment came this long after the hello.
    pub give_up_after: Option<Duration>,
}

/// Why the agent stopped without running a job to its end.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("ghr refused this machine's credential ({0}): the machine id or bootstrap secret is wrong")]
    Refused(String),
    #[error("no assignment within {0:?}; giving up")]
    GaveUp(Duration),
    #[error("ghr answered {status} to {what}: {body}")]
    Unexpected { what: &'static str, status: StatusCode, body: String },
    #[error("the runner command {program:?} could not be started")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the runner command is empty: give at least the program")]
    NoRunnerCommand,
    #[error("cannot build an HTTP client")]
    Client(#[source] reqwest::Error),
}

impl AgentError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AgentError::Refused(_) => EXIT_REFUSED,
            AgentError::GaveUp(_) => EXIT_GAVE_UP,
            _ => EXIT_FAILED,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// ghr had nothing for this machine (410).
    NothingToDo,
    /// The runner ran; its exit code (None: ended by a signal).
    RunnerExited(Option<i32>),
}

impl Outcome {
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::NothingToDo => EXIT_NOTHING_TO_DO,
            Outcome::RunnerExited(code) => code.unwrap_or(EXIT_FAILED),
        }
    }
}

struct Agent {
    http: reqwest::Client,
    base: String,
    credential: SecretString,
}

enum Answer<T> {
    Ok(T),
    NoContent,
    Gone,
}

impl Agent {
    fn url(&self, path: &str) -> String {
        format!("{}{AGENT_PREFIX}/{path}", self.base)
    }

    /// Send until ghr answers something other than a transport error or 5xx.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answer<T>, AgentError> {
        let mut pause = RETRY_FIRST;
        loop {
            let request = build().header(reqwest::header::AUTHORIZATION, self.credential.expose_secret());
            match request.send().await {
                Ok(answer) if answer.status().is_server_error() => {
                    tracing::debug!(what, status = %answer.status(), "ghr not ready; retrying");
                }
                Ok(answer) => return decode(what, answer).await,
                Err(error) => tracing::debug!(what, %error, "ghr unreachable; retrying"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    answer: reqwest::Response,
) -> Result<Answer<T>, AgentError> {
    let status = answer.status();
    match status {
        StatusCode::NO_CONTENT => Ok(Answer::NoContent),
        StatusCode::GONE => Ok(Answer::Gone),
        StatusCode::UNAUTHORIZED => Err(AgentError::Refused(what.to_owned())),
        s if s.is_success() => {
            let bytes = answer.bytes().await.map_err(|_| unexpected(what, status, "unreadable body"))?;
            serde_json::from_slice(&bytes).map(Answer::Ok).map_err(|e| unexpected(what, status, &e.to_string()))
        }
        _ => {
            let body = answer.text().await.unwrap_or_default();
            Err(unexpected(what, status, &body))
        }
    }
}

fn unexpected(what: &'static str, status: StatusCode, body: &str) -> AgentError {
    AgentError::Unexpected { what, status, body: body.chars().take(300).collect() }
}

/// Run the agent to its end: one job at most.
pub async fn run(options: AgentOptions) -> Result<Outcome, AgentError> {
    if options.runner_command.is_empty() {
        return Err(AgentError::NoRunnerCommand);
    }
    let booted_at = Utc::now();
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT + Duration::from_secs(MAX_ASSIGNMENT_WAIT_SECONDS))
        .build()
        .map_err(AgentError::Client)?;
    let credential = SecretString::from(bearer(&options.machine, options.secret.expose_secret()));
    let agent = Agent { http, base: options.server.trim_end_matches('/').to_owned(), credential };

    let hello = AgentHello { agent_version: env!("CARGO_PKG_VERSION").to_owned(), booted_at: Some(booted_at) };
    let welcome: AgentWelcome = match agent.send("hello", || agent.http.post(agent.url("hello")).json(&hello)).await? {
        Answer::Ok(welcome) => welcome,
        Answer::Gone | Answer::NoContent => return Ok(Outcome::NothingToDo),
    };
    tracing::info!(machine = %welcome.machine_id, tier = %welcome.tier, "ready; waiting for an assignment");
    let wait = welcome.wait_seconds.clamp(1, MAX_ASSIGNMENT_WAIT_SECONDS);
    let deadline = options.give_up_after.map(|d| tokio::time::Instant::now() + d);
    let assignment: Assignment = loop {
        if let Some(deadline) = deadline
            && tokio::time::Instant::now() >= deadline
        {
            return Err(AgentError::GaveUp(options.give_up_after.unwrap_or_default()));
        }
        let url = agent.url(&format!("assignment?wait_seconds={wait}"));
        match agent.send("assignment", || agent.http.get(&url)).await? {
            Answer::Ok(assignment) => break assignment,
            Answer::NoContent => continue,
            Answer::Gone => return Ok(Outcome::NothingToDo),
        }
    };
    let jit = SecretString::from(assignment.jit_config);
    tracing::info!(runner = %assignment.runner_name, "assigned; starting the runner");
    let mut child = spawn_runner(&options, &assignment.runner_name, &assignment.labels, &jit).await?;
    drop(jit);
    report(&agent, AgentEventKind::RunnerStarted, None).await;
    let status = child
        .wait()
        .await
        .map_err(|source| AgentError::Spawn { program: options.runner_command[0].clone(), source })?;
    let code = status.code();
    tracing::info!(?code, "the runner ended");
    report(&agent, AgentEventKind::RunnerExited, code).await;
    if let Some(poweroff) = &options.poweroff_command
        && let Some((program, args)) = poweroff.split_first()
        && let Err(error) = tokio::process::Command::new(program).args(args).status().await
    {
        tracing::warn!(%error, "the power-off command failed");
    }
    Ok(Outcome::RunnerExited(code))
}

async fn spawn_runner(
    options: &AgentOptions,
    runner_name: &str,
    labels: &[String],
    jit: &SecretString,
) -> Result<tokio::process::Child, AgentError> {
    let (program, args) = options.runner_command.split_first().ok_or(AgentError::NoRunnerCommand)?;
    let mut command = tokio::process::Command::new(program);
    command.args(args).env_clear();
    for name in INHERITED_ENV_VARS {
        if let Ok(value) = std::env::var(name) {
            command.env(name, value);
        }
    }
    command.env("GHR_RUNNER_NAME", runner_name).env("GHR_RUNNER_LABELS", labels.join(","));
    match options.jitconfig_to {
        JitconfigTo::Arg => {
            command.arg("--jitconfig").arg(jit.expose_secret());
        }
        JitconfigTo::Env => {
            command.env(ENV_RUNNER_JITCONFIG, jit.expose_secret());
        }
        JitconfigTo::Stdin => {
            command.stdin(Stdio::piped());
        }
    }
    let mut child = command.spawn().map_err(|source| AgentError::Spawn { program: program.clone(), source })?;
    if options.jitconfig_to == JitconfigTo::Stdin
        && let Some(mut stdin) = child.stdin.take()
    {
        // A runner that exits without reading is its own failure; the wait reports it.
        let _ = stdin.write_all(jit.expose_secret().as_bytes()).await;
        let _ = stdin.shutdown().await;
    }
    Ok(child)
}

/// Report a timing; a lost report costs a metric, never the job.
async fn report(agent: &Agent, kind: AgentEventKind, exit_code: Option<i32>) {
    let event = AgentEvent { kind, at: now(), exit_code };
    let url = agent.url("events");
    let send =
        agent.http.post(&url).header(reqwest::header::AUTHORIZATION, agent.credential.expose_secret()).json(&event);
    match send.send().await {
        Ok(answer) if answer.status().is_success() => {}
        Ok(answer) => tracing::warn!(status = %answer.status(), ?kind, "ghr did not take a report"),
        Err(error) => tracing::warn!(%error, ?kind, "could not report to ghr"),
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// The agent's command line (the `ghr-agent` binary and `ghr agent`). Every option also reads an
/// environment variable, which is how the providers configure it.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// ghr's base URL.
    #[arg(long, env = ghr_api::agent::ENV_AGENT_URL)]
    pub server: String,
    /// This machine's id.
    #[arg(long, env = ghr_api::agent::ENV_AGENT_MACHINE)]
    pub machine: String,
    /// Read the bootstrap secret from the first line of standard input (otherwise from GHR_AGENT_SECRET).
    #[arg(long, env = ghr_api::agent::ENV_AGENT_SECRET_STDIN)]
    pub secret_stdin: bool,
    /// The runner command as a JSON array of program and arguments.
    #[arg(long, env = ghr_api::agent::ENV_AGENT_RUNNER_COMMAND, default_value = r#"["/opt/actions-runner/run.sh"]"#)]
    pub runner_command: String,
    /// How the runner receives its JIT config.
    #[arg(long, env = ghr_api::agent::ENV_AGENT_JITCONFIG_TO, value_enum, default_value = "arg")]
    pub jitconfig_to: JitconfigTo,
    /// Run after the runner ended, as a JSON array (e.g. ["shutdown","-h","now"]).
    #[arg(long, env = "GHR_AGENT_POWEROFF_COMMAND")]
    pub poweroff_command: Option<String>,
    /// Exit when no assignment came this many seconds after the hello.
    #[arg(long, env = "GHR_AGENT_GIVE_UP_AFTER_SECONDS")]
    pub give_up_after_seconds: Option<u64>,
}

/// A command given as a JSON array of strings.
fn command(option: &str, text: &str) -> anyhow::Result<Vec<String>> {
    let parsed: Vec<String> = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{option}: {text:?} is not a JSON array of strings ({e})"))?;
    anyhow::ensure!(!parsed.is_empty(), "{option}: give at least the program");
    Ok(parsed)
}

impl AgentArgs {
    /// Checked options; the secret from stdin or the environment (never the command line).
    pub fn into_options(self) -> anyhow::Result<AgentOptions> {
        let secret = if self.secret_stdin {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim().to_owned()
        } else {
            std::env::var(ghr_api::agent::ENV_AGENT_SECRET).unwrap_or_default()
        };
        anyhow::ensure!(
            !secret.is_empty(),
            "no bootstrap secret: pass it on stdin with --secret-stdin, or in {}",
            ghr_api::agent::ENV_AGENT_SECRET
        );
        Ok(AgentOptions {
            server: self.server,
            machine: self.machine,
            secret: SecretString::from(secret),
            runner_command: command("--runner-command", &self.runner_command)?,
            jitconfig_to: self.jitconfig_to,
            poweroff_command: self.poweroff_command.as_deref().map(|c| command("--poweroff-command", c)).transpose()?,
            give_up_after: self.give_up_after_seconds.map(Duration::from_secs),
        })
    }
}

/// Run the agent from its command line; the process exit code.
pub async fn main_with(args: AgentArgs) -> i32 {
    let options = match args.into_options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("ghr-agent: {error:#}");
            return EXIT_FAILED;
        }
    };
    match run(options).await {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            eprintln!("ghr-agent: {error}");
            error.exit_code()
        }
    }
}
