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

fn stderr_of_failure(output: &Output, args: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "ghr {args:?} should fail; stdout: {}", String::from_utf8_lossy(&output.stdout));
    assert!(!stderr.contains("panicked"), "ghr {args:?} panicked: {stderr}");
    stderr
}

// ---------------------------------------------------------------------------------------------------------
// ghr config check

const EFFECTIVE_HEADER: &str = "# The effective settings, as ghr.toml";

/// The TOML fragment `config check` ends with.
fn effective_toml(stdout: &str) -> &str {
    let (_, rest) = stdout.split_once(EFFECTIVE_HEADER).unwrap_or_else(|| panic!("no effective settings:\n{stdout}"));
    rest.split_once('\n').map(|(_, toml)| toml).unwrap_or_default()
}

#[test]
fn config_check_reads_the_flag_then_ghr_config_then_the_working_directory_then_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let check = ["config", "check"];
    let builtin = stdout_of(&ghr_in(dir.path(), &check, &[]), &check);
    assert!(
        builtin.starts_with("# <built-in>: OK") && builtin.contains("the built-in defaults (no --config"),
        "{builtin}"
    );

    std::fs::write(dir.path().join("ghr.toml"), "environment = \"from-cwd\"\n").unwrap();
    let cwd = stdout_of(&ghr_in(dir.path(), &check, &[]), &check);
    assert!(cwd.starts_with("# ghr.toml: OK") && cwd.contains("found in the current directory"), "{cwd}");
    assert!(cwd.contains("environment = \"from-cwd\""), "{cwd}");

    let env_file = dir.path().join("env.toml");
    std::fs::write(&env_file, "environment = \"from-env\"\n").unwrap();
    let env = [("GHR_CONFIG", env_file.to_str().unwrap())];
    let from_env = stdout_of(&ghr_in(dir.path(), &check, &env), &check);
    assert!(from_env.contains("(GHR_CONFIG)") && from_env.contains("environment = \"from-env\""), "{from_env}");

    let flag_file = dir.path().join("flag.toml");
    std::fs::write(&flag_file, "environment = \"from-flag\"\n").unwrap();
    let args = ["config", "check", "--config", flag_file.to_str().unwrap()];
    let from_flag = stdout_of(&ghr_in(dir.path(), &args, &env), &args);
    assert!(from_flag.contains("(--config)") && from_flag.contains("environment = \"from-flag\""), "{from_flag}");

    // A broken ./ghr.toml is read, so it is reported, not silently replaced by the defaults.
    std::fs::write(dir.path().join("ghr.toml"), "[tenants]\nonboarding = \"Automatic\"\n").unwrap();
    let message = stderr_of_failure(&ghr_in(dir.path(), &check, &[]), &check);
    assert!(message.contains("ghr.toml") && message.contains("automatic"), "{message}");
}

#[test]
fn config_check_prints_valid_toml_that_reads_back_to_the_same_settings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ghr.toml");
    std::fs::write(
        &file,
        "[tenants]\ndefault_tier = \"solo\"\nonboarding = \"approval\"\ntier_access = \"any\"\nglobal_max_runners = 12\n\
         [store]\nurl = \"sqlite://state/ghr.db\"\n[[tiers]]\nname = \"solo\"\nlabels = [\"self-hosted\", \"solo\"]\n\
         instance_types = [\"t3.small\"]\nmax_runners = 1\nprice_per_hour = 0.02\n",
    )
    .unwrap();
    let check = ["config", "check"];
    let first = stdout_of(&ghr_in(dir.path(), &check, &[]), &check);
    for spelling in ["onboarding = \"approval\"", "tier_access = \"any\"", "kind = \"process\"", "name = \"solo\""] {
        assert!(first.contains(spelling), "values as the file spells them ({spelling}):\n{first}");
    }
    for debug_name in ["Approval", "Any", "Process", "UpToPlan"] {
        assert!(!first.contains(debug_name), "no Rust debug name ({debug_name}):\n{first}");
    }

    // The whole output is a valid ghr.toml (the summary is comments), and reading it gives the same settings back.
    let printed = dir.path().join("printed.toml");
    std::fs::write(&printed, &first).unwrap();
    let args = ["config", "check", "--config", printed.to_str().unwrap()];
    let second = stdout_of(&ghr_in(dir.path(), &args, &[]), &args);
    assert_eq!(effective_toml(&second), effective_toml(&first));
}

#[test]
fn config_check_json_is_one_document_with_the_effective_config_and_tiers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ghr.toml"), "[tenants]\nonboarding = \"approval\"\n").unwrap();
    let args = ["config", "check", "--json"];
    let stdout = stdout_of(&ghr_in(dir.path(), &args, &[]), &args);
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{stdout}"));
    assert_eq!(report["origin"], "working_dir", "{report}");
    assert_eq!(report["path"], "ghr.toml", "{report}");
    assert_eq!(report["config"]["tenants"]["onboarding"], "approval", "{report}");
    assert_eq!(report["config"]["provider"]["kind"], "process", "{report}");
    assert_eq!(report["store"]["kind"], "sqlite", "{report}");
    let tiers: Vec<&str> = report["tiers"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(tiers, ["small", "medium", "large"]);
    assert_eq!(report["config"]["tiers"].as_array().map(Vec::len), Some(3), "the catalog written out: {report}");
    assert_eq!(
        (report["webhook_secret_set"].as_bool(), report["admin_token_set"].as_bool()),
        (Some(false), Some(false))
    );

    let env = [("GHR_WEBHOOK_SECRET", "s3cret-value")];
    let args = ["config", "check", "--json", "--config", "ghr.toml"];
    let stdout = stdout_of(&ghr_in(dir.path(), &args, &env), &args);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((report["origin"].as_str(), report["webhook_secret_set"].as_bool()), (Some("flag"), Some(true)));
    assert!(!stdout.contains("s3cret-value"), "secrets are never printed: {stdout}");
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

// ---------------------------------------------------------------------------------------------------------
// Commands on a database: existing stores only, never created, never migrated

/// A SQLite store at the schema of an earlier ghr: every migration but the last applied.
async fn sqlite_one_version_behind(url: &str) -> i64 {
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ghr-store/migrations/sqlite");
    let migrator = sqlx::migrate::Migrator::new(migrations).await.unwrap();
    let previous = migrator.iter().map(|m| m.version).max().unwrap() - 1;
    let options = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    migrator.run_to(previous, &pool).await.unwrap();
    pool.close().await;
    previous
}

async fn applied_version(url: &str) -> Option<i64> {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let version = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    pool.close().await;
    version
}

#[test]
fn commands_on_a_mistyped_database_path_fail_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gh.db");
    let url = format!("sqlite://{}", path.display());
    for args in [
        &["tenants", "list", "--db", &url][..],
        &["tenants", "add", "1001", "--org", "acme", "--db", &url],
        &["runners", "list", "--db", &url],
        &["jobs", "list", "--db", &url],
        &["usage", "--db", &url],
    ] {
        let message = stderr_of_failure(&ghr_in(dir.path(), args, &[]), args);
        assert!(message.contains(&path.display().to_string()), "the message names the path: {message}");
        assert!(message.contains(&format!("ghr store migrate --db {url}")), "and what creates it: {message}");
        assert!(!path.exists(), "ghr {args:?} created {}", path.display());
    }

    // The store of a configuration file is opened the same way.
    let config = dir.path().join("ghr.toml");
    std::fs::write(&config, format!("[store]\nurl = \"{url}\"\n")).unwrap();
    let args = ["tenants", "list", "--config", config.to_str().unwrap()];
    let message = stderr_of_failure(&ghr_in(dir.path(), &args, &[]), &args);
    assert!(message.contains("does not exist") && message.contains("ghr store migrate"), "{message}");
    assert!(!path.exists());

    // `ghr store migrate` creates it; then the commands work on it.
    let args = ["store", "migrate", "--db", &url];
    assert!(stdout_of(&ghr_in(dir.path(), &args, &[]), &args).contains("(created)"));
    let args = ["tenants", "add", "1001", "--org", "acme", "--db", &url];
    stdout_of(&ghr_in(dir.path(), &args, &[]), &args);
    let args = ["tenants", "list", "--json", "--db", &url];
    let listed: Value = serde_json::from_str(&stdout_of(&ghr_in(dir.path(), &args, &[]), &args)).unwrap();
    assert_eq!(listed["items"][0]["org_name"], "acme", "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_refuse_a_database_without_ghrs_current_schema_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();

    // A SQLite file that is not a ghr store.
    let foreign = dir.path().join("notes.db");
    let foreign_url = format!("sqlite://{}", foreign.display());
    let options = foreign_url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("CREATE TABLE notes (body TEXT)").execute(&pool).await.unwrap();
    pool.close().await;
    let args = ["tenants", "list", "--db", &foreign_url];
    let message = stderr_of_failure(&ghr_in(dir.path(), &args, &[]), &args);
    assert!(message.contains("no ghr schema") && message.contains("ghr store migrate"), "{message}");
    let pool = sqlx::SqlitePool::connect(&foreign_url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'").fetch_all(&pool).await.unwrap();
    pool.close().await;
    assert_eq!(tables, ["notes"], "no ghr table was created in it");

    // An earlier ghr's store: refused, not migrated, until `ghr store migrate`.
    let older = format!("sqlite://{}", dir.path().join("older.db").display());
    let previous = sqlite_one_version_behind(&older).await;
    let args = ["tenants", "list", "--db", &older];
    let message = stderr_of_failure(&ghr_in(dir.path(), &args, &[]), &args);
    assert!(message.contains(&format!("schema version {previous}")) && message.contains("older"), "{message}");
    assert!(message.contains("ghr store migrate"), "{message}");
    assert_eq!(applied_version(&older).await, Some(previous), "ghr tenants list did not migrate it");
    let args = ["store", "migrate", "--db", &older];
    let migrated = stdout_of(&ghr_in(dir.path(), &args, &[]), &args);
    assert!(migrated.contains(&format!("schema version {previous} → {}", previous + 1)), "{migrated}");
    let args = ["tenants", "list", "--db", &older];
    assert!(stdout_of(&ghr_in(dir.path(), &args, &[]), &args).starts_with("INSTALLATION"));
}
