//! The operator CLI as a user meets it: value enums that list their values, `-o table|wide|json|yaml`,
//! `--no-headers`, pages with `--limit`/`--cursor`/`--all`, shell completions, and contexts that keep the
//! server and its token out of the command line.

use crate::common;

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `ghr` with a clean environment: no server, token, database, configuration or context from the caller.
fn ghr_in(contexts: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghr"))
        .args(args)
        .env_remove("GHR_SERVER")
        .env_remove("GHR_ADMIN_TOKEN")
        .env_remove("GHR_DB")
        .env_remove("GHR_CONFIG")
        .env_remove("GHR_CONTEXT")
        .env("GHR_CONTEXTS", contexts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ghr runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("ghr finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn ok(out: Output, what: &str) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{what} failed: {stderr}");
    (stdout, stderr)
}

/// A migrated SQLite store with three tenants.
fn store_with_tenants(dir: &Path, contexts: &Path) -> String {
    let db = format!("sqlite://{}", dir.join("ghr.db").display());
    ok(ghr_in(contexts, &["store", "migrate", "--db", &db], None), "store migrate");
    for (id, org) in [("1001", "acme"), ("1002", "globex"), ("1003", "initech")] {
        ok(ghr_in(contexts, &["tenants", "add", id, "--org", org, "--db", &db], None), "tenants add");
    }
    db
}

#[test]
fn enum_flags_list_their_values_and_refuse_others() {
    let dir = tempfile::tempdir().unwrap();
    let contexts = dir.path().join("contexts.toml");
    for (args, values) in [
        (&["jobs", "list", "--status", "running"][..], "queued, in_progress, completed"),
        (&["jobs", "list", "--reason", "busy"], "no_matching_tier, tier_not_entitled, tenant_at_limit"),
        (&["runners", "list", "--state", "gone"], "live, all, requested, launching, idle, busy"),
        (&["tenants", "list", "--status", "gone"], "pending, active, suspended, deleted"),
        (&["tenants", "list", "-o", "xml"], "table, wide, json, yaml"),
    ] {
        let out = ghr_in(&contexts, args, None);
        assert_eq!(out.status.code(), Some(2), "a usage error: {args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!("[possible values: {values}")), "{args:?}: {stderr}");
    }
    let (help, _) = ok(ghr_in(&contexts, &["jobs", "list", "--help"], None), "help");
    assert!(help.contains("Possible values:") && help.contains("- in_progress:"), "{help}");
    assert!(help.contains("- tenant_at_limit:   The tenant runs max_runners runners already"), "{help}");
    let (short, _) = ok(ghr_in(&contexts, &["jobs", "list", "-h"], None), "help");
    assert!(short.contains("[possible values: queued, in_progress, completed]"), "{short}");
    let out = ghr_in(&contexts, &["jobs", "list", "--limit", "0"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn output_formats_headers_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let contexts = dir.path().join("contexts.toml");
    let db = store_with_tenants(dir.path(), &contexts);
    let run = |args: &[&str]| ok(ghr_in(&contexts, &[args, &["--db", &db]].concat(), None), &args.join(" "));

    let (table, _) = run(&["tenants", "list"]);
    assert!(table.starts_with("INSTALLATION  ORG"), "{table}");
    let (bare, _) = run(&["tenants", "list", "--no-headers"]);
    assert_eq!(bare.lines().count(), 3, "{bare}");
    assert_eq!(bare.split_whitespace().take(2).collect::<Vec<_>>(), ["1001", "acme"], "{bare}");
    let (wide, _) = run(&["tenants", "list", "-o", "wide"]);
    assert!(wide.lines().next().is_some_and(|h| h.contains("CREATED") && h.contains("INSTALLED BY")), "{wide}");

    let (json, _) = run(&["tenants", "list", "-o", "json"]);
    let page: Value = serde_json::from_str(&json).expect("one JSON document");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(3));
    let (yaml, _) = run(&["tenants", "list", "-o", "yaml"]);
    let from_yaml: Value = serde_norway::from_str(&yaml).expect("valid YAML");
    assert_eq!(from_yaml, page, "YAML carries the same fields as JSON");
    let (legacy, _) = run(&["tenants", "list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&legacy).unwrap(), page, "--json is -o json");

    // One page of two, then the rest from the cursor the table printed on stderr.
    let (first, hint) = run(&["tenants", "list", "--limit", "2", "--no-headers"]);
    assert_eq!(first.lines().count(), 2, "{first}");
    let cursor = hint.split_whitespace().skip_while(|w| *w != "--cursor").nth(1).expect("a cursor hint");
    let (rest, hint) = run(&["tenants", "list", "--limit", "2", "--no-headers", "--cursor", cursor]);
    assert_eq!(rest.split_whitespace().take(2).collect::<Vec<_>>(), ["1003", "initech"], "{rest}");
    assert_eq!(rest.lines().count(), 1, "{rest}");
    assert!(!hint.contains("--cursor"), "the last page has no next one: {hint}");
    let (every, _) = run(&["tenants", "list", "--limit", "1", "--all", "-o", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&every).unwrap(), page, "--all follows every cursor");
    let (json_page, _) = run(&["tenants", "list", "--limit", "1", "-o", "json"]);
    let json_page: Value = serde_json::from_str(&json_page).unwrap();
    assert!(json_page["next_cursor"].is_string(), "{json_page}");
    let bad = ghr_in(&contexts, &["tenants", "list", "--cursor", "not-a-cursor", "--db", &db], None);
    assert!(!bad.status.success() && text(&bad.stderr).contains("next_cursor"), "{}", text(&bad.stderr));

    let (shown, _) = run(&["tenants", "show", "acme", "-o", "yaml"]);
    let shown: Value = serde_norway::from_str(&shown).expect("valid YAML");
    assert_eq!((shown["org_name"].as_str(), shown["live_runners"].as_u64()), (Some("acme"), Some(0)));
}

#[test]
fn completions_are_printed_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    let contexts = dir.path().join("contexts.toml");
    for (shell, marker) in [("bash", "_ghr()"), ("zsh", "#compdef ghr"), ("fish", "complete -c ghr")] {
        let (script, _) = ok(ghr_in(&contexts, &["completions", shell], None), shell);
        assert!(script.contains(marker), "{shell}: {}", &script[..script.len().min(300)]);
        assert!(script.contains("tenant_at_limit"), "{shell} completes enum values");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_keep_the_server_and_token_off_the_command_line() {
    let stack = ghr::stack::LocalStack::start(common::options()).await.expect("stack starts");
    stack.emulator.install_org("acme").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let contexts = dir.path().join("ghr").join("contexts.toml");
    let (url, token) = (stack.url(), stack.admin_token.clone());
    let file = contexts.clone();
    tokio::task::spawn_blocking(move || {
        let contexts = file.as_path();
        let token_line = format!("{token}\n");
        let (_, said) = ok(ghr_in(contexts, &["context", "set", "local", "--server", &url], Some(&token_line)), "set");
        assert!(said.contains("context local saved") && said.contains("(current)"), "{said}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(contexts).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "only its owner reads the tokens");
        }
        // No --server, no token: the current context answers.
        let mut listed = Value::Null;
        for _ in 0..100 {
            let (json, _) = ok(ghr_in(contexts, &["tenants", "list", "-o", "json"], None), "tenants list");
            listed = serde_json::from_str(&json).unwrap();
            if listed["items"].as_array().is_some_and(|t| !t.is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(listed["items"][0]["org_name"], "acme", "{listed}");
        // A token in the environment (meant for some --server) is never sent to the context's server.
        let with_env_token = Command::new(env!("CARGO_BIN_EXE_ghr"))
            .args(["tenants", "list", "-o", "json"])
            .env("GHR_CONTEXTS", contexts)
            .env("GHR_ADMIN_TOKEN", "a-token-for-another-server")
            .output()
            .expect("ghr runs");
        assert!(with_env_token.status.success(), "the context's own token: {}", text(&with_env_token.stderr));
        let (shown, _) = ok(ghr_in(contexts, &["context", "show"], None), "show");
        assert!(shown.contains(&url) && !shown.contains(&token), "the token is never printed: {shown}");
        let (list, _) = ok(ghr_in(contexts, &["context", "list"], None), "list");
        assert!(list.lines().any(|l| l.starts_with('*') && l.contains("local")), "{list}");

        // A wrong token in a second context is refused with the server's answer, not a panic.
        ok(ghr_in(contexts, &["context", "set", "wrong", "--server", &url, "--no-use"], Some("nope\n")), "set");
        let out = ghr_in(contexts, &["tenants", "list", "--context", "wrong"], None);
        assert!(!out.status.success() && text(&out.stderr).contains("admin token"), "{}", text(&out.stderr));
        let out = ghr_in(contexts, &["tenants", "list", "--context", "nowhere"], None);
        assert!(text(&out.stderr).contains("no context named \"nowhere\""), "{}", text(&out.stderr));
        // An empty token and a bad URL are refused before anything is saved.
        let out = ghr_in(contexts, &["context", "set", "empty", "--server", &url], Some("\n"));
        assert!(!out.status.success() && text(&out.stderr).contains("token is empty"), "{}", text(&out.stderr));
        let out = ghr_in(contexts, &["context", "set", "bad", "--server", "ftp://x"], Some("t\n"));
        assert!(!out.status.success(), "{}", text(&out.stderr));
        let (list, _) = ok(ghr_in(contexts, &["context", "list"], None), "list");
        assert!(!list.contains("empty") && !list.contains("bad"), "{list}");

        // --token still works for scripts that pass it, with a warning.
        let out = ghr_in(contexts, &["tenants", "list", "--server", &url, "--token", &token], None);
        assert!(out.status.success() && text(&out.stderr).contains("warning: --token"), "{}", text(&out.stderr));
        ok(ghr_in(contexts, &["context", "remove", "local"], None), "remove");
        let (list, _) = ok(ghr_in(contexts, &["context", "list"], None), "list");
        assert!(!list.contains("local") && list.contains("wrong"), "{list}");
    })
    .await
    .unwrap();
    stack.stop().await.unwrap();
}

#[test]
fn a_closed_or_full_stdout_is_an_exit_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let contexts = dir.path().join("contexts.toml");
    // The bash script is larger than a pipe's buffer, so `head` closes the pipe while ghr still writes.
    let script = format!(
        "set -o pipefail; GHR_CONTEXTS={} {} completions bash | head -c 1 > /dev/null",
        contexts.display(),
        env!("CARGO_BIN_EXE_ghr")
    );
    let out = Command::new("bash").args(["-c", &script]).output().expect("bash runs");
    assert!(out.status.success(), "a reader that stops early is not an error: {}", text(&out.stderr));
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));

    let db = store_with_tenants(dir.path(), &contexts);
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let out = Command::new(env!("CARGO_BIN_EXE_ghr"))
        .args(["tenants", "list", "-o", "json", "--db", &db])
        .env("GHR_CONTEXTS", &contexts)
        .stdout(full)
        .output()
        .expect("ghr runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: cannot write to standard output: No space left"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_command_line_target_beats_the_environment_and_two_on_one_level_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let contexts = dir.path().join("contexts.toml");
    let db = store_with_tenants(dir.path(), &contexts);
    // GHR_SERVER names a server nobody runs; the --db on the command line is what the operator meant.
    let out = Command::new(env!("CARGO_BIN_EXE_ghr"))
        .args(["tenants", "list", "--no-headers", "--db", &db])
        .env("GHR_CONTEXTS", &contexts)
        .env("GHR_SERVER", "http://127.0.0.1:1")
        .env("GHR_ADMIN_TOKEN", "t")
        .output()
        .expect("ghr runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 3);
    // Two targets on the command line: refused, and nothing is written anywhere.
    let out = ghr_in(&contexts, &["tenants", "suspend", "acme", "--server", "http://127.0.0.1:1", "--db", &db], None);
    let stderr = text(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--server and --db/--config name different targets"), "{stderr}");
    let (shown, _) = ok(ghr_in(&contexts, &["tenants", "show", "acme", "-o", "json", "--db", &db], None), "show");
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap()["status"], "active", "nothing was suspended");
    let out = ghr_in(&contexts, &["tenants", "list", "--db", "mysql://db/ghr"], None);
    assert!(text(&out.stderr).contains("unknown store scheme `mysql://`"), "{}", text(&out.stderr));
}

#[test]
fn contexts_saved_at_once_all_land_and_bad_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let contexts = dir.path().join("contexts.toml");
    let children: Vec<_> = (0..12)
        .map(|i| {
            let mut child = Command::new(env!("CARGO_BIN_EXE_ghr"))
                .args(["context", "set", &format!("c{i}"), "--server", "http://127.0.0.1:1", "--no-use"])
                .env("GHR_CONTEXTS", &contexts)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("ghr runs");
            child.stdin.take().expect("stdin").write_all(format!("token{i}\n").as_bytes()).expect("write");
            child
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("ghr finishes");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let (list, _) = ok(ghr_in(&contexts, &["context", "list"], None), "list");
    assert_eq!(list.lines().count(), 13, "a header and all twelve contexts:\n{list}");

    for (input, complaint) in
        [("tok1\ntok2\n", "'\\n'"), ("\u{feff}token\n", "byte-order mark"), (&"x".repeat(5000), "longer than 1024")]
    {
        let out = ghr_in(&contexts, &["context", "set", "bad", "--server", "http://127.0.0.1:1"], Some(input));
        let stderr = text(&out.stderr);
        assert!(!out.status.success() && stderr.contains(complaint), "{input:?}: {stderr}");
    }
    let out = ghr_in(&contexts, &["context", "set", "creds", "--server", "http://u:pw@127.0.0.1:1"], Some("t\n"));
    assert!(text(&out.stderr).contains("must not carry a user name or password"), "{}", text(&out.stderr));
    let (list, _) = ok(ghr_in(&contexts, &["context", "list"], None), "list");
    assert!(!list.contains("bad") && !list.contains("creds"), "{list}");
}
