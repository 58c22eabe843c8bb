//! The agent against a scripted ghr served over real HTTP on 127.0.0.1: retries, the three ways of handing
//! the config to the runner, the refusals and the exit codes.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ghr_agent::{AgentError, AgentOptions, EXIT_GAVE_UP, EXIT_REFUSED, JitconfigTo, Outcome, run};
use ghr_api::agent::{AGENT_PREFIX, AgentEvent, AgentEventKind, AgentWelcome, Assignment, bearer};
use secrecy::SecretString;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MACHINE: &str = "pool-small-00000000000000aa";
const SECRET: &str = "one-time-secret-of-the-test";
const JIT: &str = "eyJqaXQiOiJjb25maWcifQ==";

/// What the fake answers, in order; the last answer repeats.
#[derive(Default)]
struct Script {
    hello: Mutex<VecDeque<StatusCode>>,
    assignment: Mutex<VecDeque<StatusCode>>,
    events: Mutex<Vec<AgentEvent>>,
    requests: Mutex<Vec<String>>,
}

fn next(queue: &Mutex<VecDeque<StatusCode>>) -> StatusCode {
    let mut queue = queue.lock().unwrap();
    if queue.len() > 1 { queue.pop_front().unwrap() } else { *queue.front().expect("a scripted answer") }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(bearer(MACHINE, SECRET).as_str())
}

async fn hello(State(script): State<Arc<Script>>, headers: HeaderMap) -> Response {
    script.requests.lock().unwrap().push("hello".into());
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match next(&script.hello) {
        StatusCode::OK => {
            Json(AgentWelcome { machine_id: MACHINE.into(), tier: "small".into(), wait_seconds: 1 }).into_response()
        }
        other => other.into_response(),
    }
}

async fn assignment(State(script): State<Arc<Script>>, headers: HeaderMap) -> Response {
    script.requests.lock().unwrap().push("assignment".into());
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match next(&script.assignment) {
        StatusCode::OK => Json(Assignment {
            runner_name: "ghr-small-7".into(),
            labels: vec!["self-hosted".into(), "small".into()],
            jit_config: JIT.into(),
        })
        .into_response(),
        other => other.into_response(),
    }
}

async fn events(State(script): State<Arc<Script>>, headers: HeaderMap, Json(event): Json<AgentEvent>) -> StatusCode {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED;
    }
    script.events.lock().unwrap().push(event);
    StatusCode::NO_CONTENT
}

async fn serve(hello_answers: &[StatusCode], assignment_answers: &[StatusCode]) -> (String, Arc<Script>) {
    let script = Arc::new(Script {
        hello: Mutex::new(hello_answers.iter().copied().collect()),
        assignment: Mutex::new(assignment_answers.iter().copied().collect()),
        ..Script::default()
    });
    let app = axum::Router::new()
        .route(&format!("{AGENT_PREFIX}/hello"), post(hello))
        .route(&format!("{AGENT_PREFIX}/assignment"), get(assignment))
        .route(&format!("{AGENT_PREFIX}/events"), post(events))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, script)
}

/// A runner that records its arguments, environment and standard input in `dir`, then exits with `code`.
fn recording_runner(dir: &Path, code: i32) -> Vec<String> {
    let d = dir.display();
    let script = format!("printf '%s\\n' \"$@\" > {d}/args; env > {d}/env; cat > {d}/stdin; exit {code}");
    vec!["/bin/sh".into(), "-c".into(), script, "runner".into()]
}

fn options(server: &str, secret: &str, runner_command: Vec<String>, to: JitconfigTo) -> AgentOptions {
    AgentOptions {
        server: server.to_owned(),
        machine: MACHINE.into(),
        secret: SecretString::from(secret.to_owned()),
        runner_command,
        jitconfig_to: to,
        poweroff_command: None,
        give_up_after: None,
    }
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

#[tokio::test]
async fn retries_until_ready_waits_for_its_assignment_and_runs_one_runner_with_the_config_in_its_environment() {
    let (url, script) = serve(
        &[StatusCode::SERVICE_UNAVAILABLE, StatusCode::SERVICE_UNAVAILABLE, StatusCode::OK],
        &[StatusCode::NO_CONTENT, StatusCode::NO_CONTENT, StatusCode::OK],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(options(&url, SECRET, recording_runner(dir.path(), 3), JitconfigTo::Env)).await.unwrap();

    assert_eq!(outcome, Outcome::RunnerExited(Some(3)), "the agent ends with the runner's own exit code");
    assert_eq!(outcome.exit_code(), 3);
    let env = read(dir.path(), "env");
    assert!(env.contains(&format!("ACTIONS_RUNNER_INPUT_JITCONFIG={JIT}")), "{env}");
    assert!(env.contains("GHR_RUNNER_NAME=ghr-small-7"), "{env}");
    assert!(!env.contains(SECRET), "the bootstrap secret never reaches the runner: {env}");
    // The test runner sets CARGO_* variables in this process: the runner starts from a cleared environment.
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some() && !env.contains("CARGO_PKG_NAME"), "{env}");
    assert!(!read(dir.path(), "args").contains(JIT), "with `env` the config is not on the command line");
    let requests = script.requests.lock().unwrap().clone();
    assert_eq!(requests, ["hello", "hello", "hello", "assignment", "assignment", "assignment"]);
    let events = script.events.lock().unwrap().clone();
    let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.exit_code)).collect();
    assert_eq!(kinds, [(AgentEventKind::RunnerStarted, None), (AgentEventKind::RunnerExited, Some(3))]);
}

#[tokio::test]
async fn hands_the_config_over_as_run_sh_expects_or_on_standard_input() {
    let (url, _) = serve(&[StatusCode::OK], &[StatusCode::OK]).await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(options(&url, SECRET, recording_runner(dir.path(), 0), JitconfigTo::Arg)).await.unwrap();
    assert_eq!(outcome, Outcome::RunnerExited(Some(0)));
    assert_eq!(read(dir.path(), "args"), format!("--jitconfig\n{JIT}\n"));
    assert!(!read(dir.path(), "env").contains(JIT), "with `arg` the config is not in the environment");

    let (url, _) = serve(&[StatusCode::OK], &[StatusCode::OK]).await;
    let dir = tempfile::tempdir().unwrap();
    run(options(&url, SECRET, recording_runner(dir.path(), 0), JitconfigTo::Stdin)).await.unwrap();
    assert_eq!(read(dir.path(), "stdin"), JIT);
    assert_eq!(read(dir.path(), "args").trim(), "", "with `stdin` the command line carries nothing");
}

#[tokio::test]
async fn a_machine_with_nothing_more_to_get_exits_zero_without_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = serve(&[StatusCode::GONE], &[StatusCode::OK]).await;
    let at_hello = run(options(&url, SECRET, recording_runner(dir.path(), 9), JitconfigTo::Arg)).await.unwrap();
    assert_eq!((at_hello.clone(), at_hello.exit_code()), (Outcome::NothingToDo, 0));

    let (url, script) = serve(&[StatusCode::OK], &[StatusCode::NO_CONTENT, StatusCode::GONE]).await;
    let while_waiting = run(options(&url, SECRET, recording_runner(dir.path(), 9), JitconfigTo::Arg)).await.unwrap();
    assert_eq!(while_waiting, Outcome::NothingToDo, "retired while waiting");
    assert!(!dir.path().join("args").exists(), "no runner was started");
    assert!(script.events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_credential_stops_the_agent_with_its_own_exit_code() {
    let (url, script) = serve(&[StatusCode::OK], &[StatusCode::OK]).await;
    let dir = tempfile::tempdir().unwrap();
    let error = run(options(&url, "not-the-secret", recording_runner(dir.path(), 0), JitconfigTo::Arg)).await;
    let error = error.expect_err("refused");
    assert!(matches!(error, AgentError::Refused(_)), "{error}");
    assert_eq!(error.exit_code(), EXIT_REFUSED);
    assert_eq!(script.requests.lock().unwrap().len(), 1, "a refusal is final: no retry");
    assert!(!dir.path().join("args").exists());
}

#[tokio::test]
async fn an_agent_never_assigned_gives_up_when_told_to() {
    let (url, _) = serve(&[StatusCode::OK], &[StatusCode::NO_CONTENT]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(&url, SECRET, recording_runner(dir.path(), 0), JitconfigTo::Arg);
    options.give_up_after = Some(Duration::from_millis(300));
    let error = run(options).await.expect_err("gave up");
    assert!(matches!(error, AgentError::GaveUp(_)), "{error}");
    assert_eq!(error.exit_code(), EXIT_GAVE_UP);
}

#[tokio::test]
async fn a_runner_that_cannot_start_is_an_error_not_a_hang() {
    let (url, _) = serve(&[StatusCode::OK], &[StatusCode::OK]).await;
    let missing = vec!["/nonexistent/run.sh".to_owned()];
    let error = run(options(&url, SECRET, missing, JitconfigTo::Arg)).await.expect_err("cannot spawn");
    assert!(matches!(error, AgentError::Spawn { .. }), "{error}");
    assert_eq!(error.exit_code(), ghr_agent::EXIT_FAILED);
    let empty = run(options(&url, SECRET, Vec::new(), JitconfigTo::Arg)).await.expect_err("no command");
    assert!(matches!(empty, AgentError::NoRunnerCommand), "{empty}");
}
