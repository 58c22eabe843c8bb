//! The `ghr` CLI end to end: on a SQLite file, and against a running server; `behaviour` (configuration lookup,
//! database mode, the demo's output) and `operator` (output formats, pages, enum flags, completions, contexts)
//! are modules of this one test binary, so the suite links ghr once for all of them.

#[path = "cli/behaviour.rs"]
mod behaviour;
mod common;
#[path = "cli/operator.rs"]
mod operator;

use serde_json::Value;
use std::process::{Command, Output};

fn ghr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ghr"))
        .args(args)
        .env_remove("GHR_SERVER")
        .env_remove("GHR_ADMIN_TOKEN")
        .env_remove("GHR_DB")
        .env_remove("GHR_CONFIG")
        .output()
        .expect("ghr runs")
}

fn ok(args: &[&str]) -> String {
    let out = ghr(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ghr {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn fails(args: &[&str]) -> String {
    let out = ghr(args);
    assert!(!out.status.success(), "ghr {args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "ghr {args:?} panicked: {stderr}");
    stderr
}

#[test]
fn tenants_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ghr.db").display());
    let db = db.as_str();

    // Commands on a database open an existing store only: `ghr store migrate` creates it.
    ok(&["store", "migrate", "--db", db]);
    ok(&["tenants", "add", "1001", "--org", "acme", "--db", db]);
    ok(&["tenants", "add", "1002", "--org", "globex", "--tier", "large", "--db", db]);
    ok(&["tenants", "add", "1003", "--org", "jane", "--user", "--db", db]);
    ok(&["tenants", "suspend", "globex", "--db", db]);

    let active = ok(&["tenants", "list", "--status", "active", "--db", db]);
    assert!(active.contains("acme") && active.contains("jane") && !active.contains("globex"), "{active}");
    assert!(active.starts_with("INSTALLATION"), "a table with a header: {active}");

    let upgraded: Value =
        serde_json::from_str(&ok(&["tenants", "set-tier", "1001", "medium", "--json", "--db", db])).unwrap();
    assert_eq!(upgraded["tier"], "medium");
    assert_eq!(upgraded["max_runners"], 5);
    let shown: Value = serde_json::from_str(&ok(&["tenants", "show", "ACME", "--json", "--db", db])).unwrap();
    assert_eq!(shown["max_runners"], 5);
    assert_eq!(shown["live_runners"], 0);
    let explicit: Value = serde_json::from_str(&ok(&[
        "tenants",
        "set-tier",
        "acme",
        "small",
        "--max-runners",
        "7",
        "--json",
        "--db",
        db,
    ]))
    .unwrap();
    assert_eq!((explicit["tier"].as_str(), explicit["max_runners"].as_u64()), (Some("small"), Some(7)));
    let jane: Value = serde_json::from_str(&ok(&["tenants", "show", "jane", "--json", "--db", db])).unwrap();
    assert_eq!(jane["org_type"], "User");

    // Bad input: a clear message and a non-zero exit, never a panic, nothing changed.
    assert!(fails(&["tenants", "show", "nobody", "--db", db]).contains("no tenant"));
    assert!(fails(&["tenants", "set-tier", "acme", "huge", "--db", db]).contains("known tiers: small, medium, large"));
    assert!(
        fails(&["tenants", "set-tier", "acme", "small", "--max-runners", "0", "--db", db])
            .contains("expected 1 to 10000")
    );
    assert!(
        fails(&["tenants", "set-tier", "acme", "small", "--max-runners", "4294967295", "--db", db])
            .contains("expected 1 to 10000")
    );
    assert!(fails(&["tenants", "add", "1001", "--org", "acme", "--db", db]).contains("already exists"));
    assert!(
        fails(&["tenants", "list", "--status", "gone", "--db", db])
            .contains("possible values: pending, active, suspended, deleted")
    );
    let unchanged: Value = serde_json::from_str(&ok(&["tenants", "show", "acme", "--json", "--db", db])).unwrap();
    assert_eq!(unchanged["max_runners"], 7);
}

#[test]
fn config_check_validates_and_explains() {
    let out = ok(&["config", "check"]);
    assert!(out.contains("small") && out.contains("t3.xlarge,m5.xlarge") && out.contains("<built-in>: OK"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ghr.toml");
    std::fs::write(&bad, "[tenants]\ndefault_tier = \"huge\"\n").unwrap();
    let message = fails(&["config", "check", "--config", bad.to_str().unwrap()]);
    assert!(
        message.contains("ghr.toml")
            && message.contains("tenants.default_tier")
            && message.contains("small, medium, large"),
        "{message}"
    );
    let missing = fails(&["config", "check", "--config", dir.path().join("nope.toml").to_str().unwrap()]);
    assert!(missing.contains("cannot read config file"), "{missing}");
    let example = ok(&["config", "check", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/../../ghr.example.toml")]);
    assert!(example.contains("OK"), "{example}");
}

#[test]
fn serve_refuses_to_start_without_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ghr.toml");
    std::fs::write(&config, "[github]\napp_id = 1\n").unwrap();
    let message = fails(&["serve", "--config", config.to_str().unwrap()]);
    assert!(message.contains("GHR_WEBHOOK_SECRET"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_against_a_running_server_shows_why_a_job_waits() {
    let stack = ghr::stack::LocalStack::start(common::options()).await.expect("stack starts");
    let acme = stack.emulator.install_org("acme").await.unwrap();
    let job = stack
        .emulator
        .queue_job(ghr_testkit::github::JobSpec::new(acme, "web", &["self-hosted", "linux", "x64", "large"]))
        .await
        .unwrap();
    let url = stack.url();
    let token = stack.admin_token.clone();
    stack
        .wait_for(std::time::Duration::from_secs(10), || async {
            stack.store.job_get(job).await.ok().flatten().is_some_and(|j| j.wait_reason.is_some())
        })
        .await;
    let (url2, token2) = (url.clone(), token.clone());
    let shown = tokio::task::spawn_blocking(move || {
        ok(&["jobs", "show", &job.to_string(), "--server", &url2, "--token", &token2])
    })
    .await
    .unwrap();
    assert!(shown.contains("tier_not_entitled") && shown.contains("upgrade the tenant's tier"), "{shown}");
    let wrong = tokio::task::spawn_blocking(move || fails(&["tenants", "list", "--server", &url, "--token", "nope"]))
        .await
        .unwrap();
    assert!(wrong.contains("admin token"), "{wrong}");
    stack.stop().await.unwrap();
}
