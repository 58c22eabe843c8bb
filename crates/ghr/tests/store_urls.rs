//! `dynamodb://` store URLs at the CLI, with and without the `dynamodb` feature: `ghr config check` runs them
//! through the DynamoDB store's URL parser (or names the feature), `ghr store init` on a SQL store migrates it,
//! and the commands a DynamoDB store has no use for (`migrate`, `copy`) say what to do instead. None of these
//! reach DynamoDB: the ones that need the emulator are in `dynamodb_seed_cli.rs`.

use std::path::Path;
use std::process::{Command, Output};

fn ghr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ghr"))
        .args(args)
        .env_remove("GHR_DB")
        .env_remove("GHR_CONFIG")
        .output()
        .expect("ghr runs")
}

fn ok(args: &[&str]) -> String {
    let out = ghr(args);
    assert!(out.status.success(), "ghr {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn fails(args: &[&str]) -> String {
    let out = ghr(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "ghr {args:?} should fail; it printed {}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr.contains("panicked"), "ghr {args:?} panicked: {stderr}");
    stderr
}

/// A config file whose only setting is `store.url = url`.
fn config_with_store(dir: &Path, url: &str) -> String {
    let path = dir.join("ghr.toml");
    std::fs::write(&path, format!("[store]\nurl = \"{url}\"\nretention_days = 30\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

#[cfg(feature = "dynamodb")]
#[test]
fn config_check_accepts_a_dynamodb_url_and_states_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_store(dir.path(), "dynamodb://ghr-prod?region=eu-west-1");
    let out = ok(&["config", "check", "--config", &config]);
    // 30 days of retention + the 7-day margin.
    assert!(
        out.contains("store: dynamodb dynamodb://ghr-prod?region=eu-west-1")
            && out.contains("37 days")
            && out.contains("ghr store init"),
        "{out}"
    );
}

#[cfg(feature = "dynamodb")]
#[test]
fn config_check_refuses_a_bad_dynamodb_url_with_the_parsers_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (url, reason) in [
        ("dynamodb://ghr-prod?regoin=eu-west-1", "unknown parameter \"regoin\""),
        ("dynamodb://", "name the table prefix"),
        ("dynamodb://ghr prod", "DynamoDB's table-name alphabet"),
        ("dynamodb://p?endpoint=localhost:4566", "must be an http:// or https:// URL"),
    ] {
        let config = config_with_store(dir.path(), url);
        let message = fails(&["config", "check", "--config", &config]);
        assert!(
            message.contains("ghr.toml") && message.contains("store.url") && message.contains(reason),
            "{url}: {message}"
        );
    }
}

#[cfg(not(feature = "dynamodb"))]
#[test]
fn without_the_feature_a_dynamodb_url_names_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_store(dir.path(), "dynamodb://ghr-prod?region=eu-west-1");
    let check = fails(&["config", "check", "--config", &config]);
    assert!(check.contains("store.url") && check.contains("--features dynamodb"), "{check}");
    let init = fails(&["store", "init", "--db", "dynamodb://ghr-prod"]);
    assert!(init.contains("--features dynamodb"), "{init}");
    let list = fails(&["tenants", "list", "--db", "dynamodb://ghr-prod"]);
    assert!(list.contains("--features dynamodb"), "{list}");
}

#[test]
fn store_init_on_a_sql_store_migrates_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ghr.db").display());
    let first = ok(&["store", "init", "--db", &db]);
    assert!(first.starts_with("sqlite store") && first.contains("(created)"), "{first}");
    let again = ok(&["store", "init", "--db", &db]);
    assert!(again.contains("(already current)"), "{again}");
    let help = ok(&["store", "init", "--help"]);
    assert!(help.contains("ghr store migrate") && help.contains("DynamoDB"), "{help}");
}

#[test]
fn migrate_and_copy_of_a_dynamodb_store_say_what_to_do_instead() {
    let migrate = fails(&["store", "migrate", "--db", "dynamodb://ghr-prod?region=eu-west-1"]);
    assert!(migrate.contains("ghr store init") && migrate.contains("no schema version"), "{migrate}");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("ghr.db").display());
    let copy = fails(&["store", "copy", "--from", "dynamodb://ghr-prod", "--to", &sqlite]);
    assert!(copy.contains("SQLite and PostgreSQL") && copy.contains("dynamodb://ghr-prod"), "{copy}");
    assert!(!dir.path().join("ghr.db").exists(), "a refused copy creates no target");
}
