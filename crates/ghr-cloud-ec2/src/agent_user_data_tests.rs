//! Tests of the pool machine's user data: its content, its quoting (by running it), its limits.

use super::*;
use ghr_core::ids::MachineId;

const SECRET: &str = "b00tstrap-s3cret";

fn bootstrap(url: &str, machine: &str, secret: &str) -> AgentBootstrap {
    AgentBootstrap {
        server_url: url.to_owned(),
        machine: MachineId::new(machine),
        secret: SecretString::from(secret.to_owned()),
    }
}

fn render(config: &PoolAgentConfig, agent: &AgentBootstrap) -> Result<String, AgentUserDataError> {
    render_agent_user_data(config, agent).map(|script| script.expose_secret().to_owned())
}

#[test]
fn default_script_exports_the_agent_settings_then_execs_the_agent() {
    let script =
        render(&PoolAgentConfig::default(), &bootstrap("https://ghr.example.com", "pool-small-a1", SECRET)).unwrap();
    let expected_lines = [
        "#!/bin/bash",
        "export GHR_AGENT_URL='https://ghr.example.com'",
        "export GHR_AGENT_MACHINE='pool-small-a1'",
        "export GHR_AGENT_SECRET='b00tstrap-s3cret'",
        r#"export GHR_AGENT_RUNNER_COMMAND='["/opt/actions-runner/run.sh"]'"#,
        "export GHR_AGENT_JITCONFIG_TO='arg'",
        "shopt -s execfail",
        r#"exec '/opt/ghr/ghr-agent' --poweroff-command '["shutdown","-h","now"]'"#,
        "shutdown -h now",
    ];
    let lines: Vec<&str> = script.lines().collect();
    for line in expected_lines {
        assert!(lines.contains(&line), "missing {line:?} in:\n{script}");
    }
    assert!(script.starts_with("#!/bin/bash\n"));
    assert!(!script.to_lowercase().contains("jitconfig="), "no JIT config: {script}");
}

#[test]
fn errors_blame_the_operator_or_ghr_and_never_show_the_secret() {
    let config = PoolAgentConfig::default();
    let cases: [(&str, AgentBootstrap, bool); 6] = [
        ("empty url", bootstrap("", "pool-1", SECRET), true),
        ("not http", bootstrap("ftp://ghr", "pool-1", SECRET), true),
        ("url with a newline", bootstrap("https://ghr\nreboot", "pool-1", SECRET), true),
        ("empty machine", bootstrap("https://ghr", " ", SECRET), false),
        ("empty secret", bootstrap("https://ghr", "pool-1", ""), false),
        ("secret with NUL", bootstrap("https://ghr", "pool-1", "s3cret\0x"), false),
    ];
    for (what, agent, is_config) in cases {
        let err = render(&config, &agent).expect_err(what);
        assert_eq!(err.is_config(), is_config, "{what}: {err}");
        assert!(!err.to_string().contains("s3cret"), "{what}: the error shows the secret: {err}");
    }
}

#[test]
fn refuses_oversized_user_data() {
    let config = PoolAgentConfig {
        runner_command: vec![DEFAULT_RUNNER_COMMAND.to_owned(), "x".repeat(USER_DATA_MAX_BYTES)],
        ..PoolAgentConfig::default()
    };
    let err = render(&config, &bootstrap("https://ghr", "pool-1", SECRET)).unwrap_err();
    assert!(matches!(err, AgentUserDataError::TooLarge { .. }) && err.is_config(), "{err}");
}

#[test]
fn checks_the_operators_settings() {
    assert!(check_config(&PoolAgentConfig::default()).is_ok());
    let bad = [
        PoolAgentConfig { path: "ghr-agent".into(), ..PoolAgentConfig::default() },
        PoolAgentConfig { path: String::new(), ..PoolAgentConfig::default() },
        PoolAgentConfig { runner_command: Vec::new(), ..PoolAgentConfig::default() },
        PoolAgentConfig { runner_command: vec!["run.sh".into(), "a\0b".into()], ..PoolAgentConfig::default() },
    ];
    for config in bad {
        assert!(check_config(&config).is_err(), "{config:?}");
    }
}

#[test]
fn quotes_any_value_into_one_shell_word() {
    assert_eq!(shell_quote("plain"), "'plain'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
}

/// Runs the script with a stand-in agent (which records its environment and arguments) and values that a
/// shell would expand or split if they were not quoted; then with a missing agent, which powers off.
#[cfg(unix)]
#[test]
fn the_script_hands_every_value_to_the_agent_verbatim() {
    use std::os::unix::fs::PermissionsExt;
    let write_exe = |path: &std::path::Path, body: &str| {
        std::fs::write(path, body).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let tmp = tempfile::tempdir().unwrap();
    let (bin, out) = (tmp.path().join("bin dir"), tmp.path().join("out"));
    for dir in [&bin, &out] {
        std::fs::create_dir(dir).unwrap();
    }
    let agent = bin.join("ghr agent's");
    write_exe(
        &agent,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" >\"$OUT/args\"\n\
         for v in GHR_AGENT_URL GHR_AGENT_MACHINE GHR_AGENT_SECRET GHR_AGENT_RUNNER_COMMAND GHR_AGENT_JITCONFIG_TO; do\n\
         printenv \"$v\" >\"$OUT/$v\"\ndone\n",
    );
    write_exe(&bin.join("shutdown"), "#!/bin/sh\nprintf '%s ' \"$@\" >\"$OUT/shutdown\"\n");
    let secret = r#"s3cret'$(touch pwned)`id`"$HOME"*"#;
    let config = PoolAgentConfig {
        path: agent.to_str().unwrap().to_owned(),
        runner_command: vec!["/opt/runner dir/run.sh".into(), "--once's".into()],
    };
    let url = "https://ghr.example.com/a path?x=$y&z='1'";
    let run = |config: &PoolAgentConfig| {
        let script = render(config, &bootstrap(url, "pool-small-a1", secret)).unwrap();
        let script_path = tmp.path().join("user-data.sh");
        std::fs::write(&script_path, script).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        std::process::Command::new("bash")
            .arg(&script_path)
            .current_dir(tmp.path())
            .env("PATH", path)
            .env("OUT", &out)
            .status()
            .unwrap()
    };
    assert!(run(&config).success());
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_else(|_| panic!("no {name}"));
    assert_eq!(read("GHR_AGENT_URL"), format!("{url}\n"));
    assert_eq!(read("GHR_AGENT_MACHINE"), "pool-small-a1\n");
    assert_eq!(read("GHR_AGENT_SECRET"), format!("{secret}\n"));
    let command: Vec<String> = serde_json::from_str(read("GHR_AGENT_RUNNER_COMMAND").trim()).unwrap();
    assert_eq!(command, config.runner_command);
    assert_eq!(read("GHR_AGENT_JITCONFIG_TO"), "arg\n");
    assert_eq!(read("args"), "--poweroff-command\n[\"shutdown\",\"-h\",\"now\"]\n");
    assert!(!out.join("shutdown").exists(), "exec replaced the script: nothing ran after the agent");
    assert!(!tmp.path().join("pwned").exists(), "a value was run as a command");

    let missing = PoolAgentConfig { path: "/nonexistent/ghr-agent".into(), ..config };
    run(&missing);
    assert_eq!(read("shutdown").trim(), "-h now", "a machine whose agent cannot start powers off");
}
