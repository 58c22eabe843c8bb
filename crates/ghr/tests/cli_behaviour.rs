//! The `ghr` binary as a new operator meets it: `config check` finds and names the configuration it reads
//! and prints valid TOML, commands on a database never create or migrate one, and `ghr demo` keeps stdout
//! for its report (one JSON document with `--json`) and prints a progress line only when it changed.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// `ghr ARGS` in `dir`, with none of the operator's environment leaking in.
fn ghr_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ghr"));
    command.current_dir(dir).args(args);
    for name in ["GHR_SERVER", "GHR_ADMIN_TOKEN", "GHR_DB", "GHR_CONFIG", "GHR_WEBHOOK_SECRET"] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied()).output().expect("ghr runs")
}

fn stdout_of(output: &Output, args: &[&str]) -> String {
    assert!(output.status.success(), "ghr {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

// ---------------------------------------------------------------------------------------------------------
// ghr demo

/// The progress lines of a demo's stderr (`[  1.2s] acme(active) 2/2 runners | ...`), without their time.
fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|line| line.split_once("] ").map(|(_, rest)| rest))
        .filter(|rest| rest.contains(" runners") && rest.contains(" | "))
        .collect()
}

fn assert_progress_never_repeats(stderr: &str) {
    let lines = progress_lines(stderr);
    assert!(!lines.is_empty(), "the demo shows its progress on stderr:\n{stderr}");
    for pair in lines.windows(2) {
        assert_ne!(pair[0], pair[1], "a progress line is printed only when it changed:\n{stderr}");
    }
}

#[test]
fn demo_json_is_one_document_on_stdout_and_progress_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["demo", "--json"];
    let output = ghr_in(dir.path(), &args, &[]);
    let stdout = stdout_of(&output, &args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `serde_json::from_str` refuses anything after the document: stdout is exactly one JSON value.
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{stdout}"));
    assert_eq!(report["violations"], Value::Array(Vec::new()), "{report}");
    let orgs: Vec<&str> = report["tenants"].as_array().unwrap().iter().filter_map(|t| t["org"].as_str()).collect();
    assert_eq!(orgs, ["acme", "globex", "initech", "jane"]);
    assert!(stderr.contains("ghr demo: server http://"), "the banner is on stderr:\n{stderr}");
    assert!(stderr.contains("initech uninstalls the App"), "the story is on stderr:\n{stderr}");
    assert_progress_never_repeats(&stderr);
}

#[test]
fn demo_text_report_on_stdout_and_progress_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["demo", "--burst", "2"];
    let output = ghr_in(dir.path(), &args, &[]);
    let stdout = stdout_of(&output, &args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.starts_with("TENANT"), "stdout is the report, from its header on:\n{stdout}");
    assert!(stdout.contains("invariants: PASS"), "{stdout}");
    assert!(!stdout.contains("ghr demo: server") && !stdout.contains("runners |"), "no progress on stdout:\n{stdout}");
    assert_progress_never_repeats(&stderr);
}
