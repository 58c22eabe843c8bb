//! The runner's user data: the script that starts the Actions runner with its JIT config, then powers off.
//!
//! The JIT config is a credential: it only ever lives in [`SecretString`]s here and leaves this module
//! base64-encoded inside the user data, for RunInstances.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ghr_core::ids::RunnerName;
use secrecy::{ExposeSecret, SecretString};

/// Where the Actions runner is installed on the image.
pub const DEFAULT_RUNNER_DIR: &str = "/opt/actions-runner";
/// The user the runner runs as (the runner refuses root unless told otherwise).
pub const DEFAULT_RUNNER_USER: &str = "ec2-user";
/// Replaced by the runner's encoded JIT config. Required in every template.
pub const JIT_CONFIG_PLACEHOLDER: &str = "{{jit_config}}";
/// Replaced by [`crate::UserDataConfig::runner_dir`].
pub const RUNNER_DIR_PLACEHOLDER: &str = "{{runner_dir}}";
/// Replaced by [`crate::UserDataConfig::runner_user`].
pub const RUNNER_USER_PLACEHOLDER: &str = "{{runner_user}}";
/// Replaced by the runner name.
pub const RUNNER_NAME_PLACEHOLDER: &str = "{{runner_name}}";
/// EC2's limit on user data, before base64.
pub const USER_DATA_MAX_BYTES: usize = 16 * 1024;

/// The default script. It keeps the JIT config in a root-only file on tmpfs, runs one job, and powers
/// off on any exit; ghr launches with `InstanceInitiatedShutdownBehavior=terminate`, so the instance
/// terminates itself even when ghr is down.
pub const DEFAULT_USER_DATA_TEMPLATE: &str = r#"#!/bin/bash
# ghr: run one GitHub Actions job with a single-use (JIT) runner config, then power off.
# The instance was launched with InstanceInitiatedShutdownBehavior=terminate: powering off terminates it.
set -uo pipefail
jit_dir=/run/ghr-runner
jit_file="$jit_dir/jitconfig"
finish() {
  rm -f "$jit_file"
  shutdown -h now
}
trap finish EXIT
(
  umask 077
  mkdir -p "$jit_dir"
  cat >"$jit_file" <<'GHR_JIT_CONFIG_END'
{{jit_config}}
GHR_JIT_CONFIG_END
)
echo "ghr: starting runner {{runner_name}}"
cd {{runner_dir}} || exit 1
if [ "{{runner_user}}" = root ]; then
  RUNNER_ALLOW_RUNASROOT=1 ./run.sh --jitconfig "$(cat "$jit_file")"
else
  chown -R {{runner_user}} {{runner_dir}}
  runuser -u {{runner_user}} -- ./run.sh --jitconfig "$(cat "$jit_file")"
fi
echo "ghr: runner {{runner_name}} exited with status $?"
"#;

/// Why user data could not be built. Never carries the JIT config.
#[derive(Debug, thiserror::Error)]
pub enum UserDataError {
    #[error("user data template uses unknown placeholder {0}")]
    UnknownPlaceholder(String),
    #[error("user data template has an unclosed {{{{ placeholder")]
    Unclosed,
    #[error("user data template does not contain {JIT_CONFIG_PLACEHOLDER}")]
    NoJitConfig,
    #[error("the JIT config is not a single base64 string")]
    InvalidJitConfig,
    #[error("runner name {0:?} has characters that cannot go into a script")]
    InvalidRunnerName(String),
    #[error("user data is {size} bytes; EC2 accepts at most {USER_DATA_MAX_BYTES}")]
    TooLarge { size: usize },
}

/// Check a template without a credential: known placeholders only, and the JIT config among them.
pub fn check_template(template: &str) -> Result<(), UserDataError> {
    let probe = SecretString::from("cHJvYmU=");
    render_template(template, "/opt/actions-runner", "runner", "ghr-probe", &probe).map(|_| ())
}

/// The user data for one runner: the template with every placeholder filled in.
pub fn render_user_data(
    config: &crate::UserDataConfig,
    runner: &RunnerName,
    jit_config: &SecretString,
) -> Result<SecretString, UserDataError> {
    if !is_script_safe(runner.as_str()) {
        return Err(UserDataError::InvalidRunnerName(runner.to_string()));
    }
    if !is_base64_text(jit_config.expose_secret()) {
        return Err(UserDataError::InvalidJitConfig);
    }
    render_template(&config.template, &config.runner_dir, &config.runner_user, runner.as_str(), jit_config)
}

/// Base64, as RunInstances expects user data.
pub fn encode_user_data(script: &SecretString) -> SecretString {
    SecretString::from(BASE64.encode(script.expose_secret().as_bytes()))
}

/// Single pass over the template, so that a value can never introduce a placeholder of its own.
fn render_template(
    template: &str,
    runner_dir: &str,
    runner_user: &str,
    runner_name: &str,
    jit_config: &SecretString,
) -> Result<SecretString, UserDataError> {
    let mut out = String::with_capacity(template.len() + jit_config.expose_secret().len());
    let mut rest = template;
    let mut saw_jit_config = false;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after.find("}}").ok_or(UserDataError::Unclosed)? + 2;
        let placeholder = &after[..end];
        match placeholder {
            JIT_CONFIG_PLACEHOLDER => {
                saw_jit_config = true;
                out.push_str(jit_config.expose_secret());
            }
            RUNNER_DIR_PLACEHOLDER => out.push_str(runner_dir),
            RUNNER_USER_PLACEHOLDER => out.push_str(runner_user),
            RUNNER_NAME_PLACEHOLDER => out.push_str(runner_name),
            other => return Err(UserDataError::UnknownPlaceholder(other.to_owned())),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    if !saw_jit_config {
        return Err(UserDataError::NoJitConfig);
    }
    if out.len() > USER_DATA_MAX_BYTES {
        return Err(UserDataError::TooLarge { size: out.len() });
    }
    Ok(SecretString::from(out))
}

/// Letters, digits, `.`, `_`, `-`: safe anywhere in a shell script.
fn is_script_safe(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Standard or URL-safe base64 alphabet, no whitespace: cannot end the heredoc it is pasted into.
fn is_base64_text(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserDataConfig;

    const JIT: &str = "eyJzZWNyZXQiOiJzM2NyM3QifQ==";

    fn render(config: &UserDataConfig, runner: &str, jit: &str) -> Result<String, UserDataError> {
        render_user_data(config, &RunnerName::new(runner), &SecretString::from(jit))
            .map(|script| script.expose_secret().to_owned())
    }

    #[test]
    fn default_script_starts_the_runner_with_its_jit_config_then_powers_off() {
        let script = render(&UserDataConfig::default(), "ghr-prod-1-small-9", JIT).unwrap();
        assert!(script.starts_with("#!/bin/bash\n"));
        assert!(script.contains(&format!("\n{JIT}\nGHR_JIT_CONFIG_END\n")));
        assert!(script.contains("cd /opt/actions-runner || exit 1"));
        assert!(script.contains(r#"runuser -u ec2-user -- ./run.sh --jitconfig "$(cat "$jit_file")""#));
        assert!(script.contains("umask 077"));
        assert!(script.contains("shutdown -h now"));
        assert!(script.contains("trap finish EXIT"));
        assert!(script.contains("starting runner ghr-prod-1-small-9"));
        assert!(!script.contains("{{"), "every placeholder is filled: {script}");
    }

    #[test]
    fn custom_dir_user_and_template() {
        let config = UserDataConfig {
            template: "#!/bin/sh\ncd {{runner_dir}} && sudo -u {{runner_user}} ./run.sh --jitconfig {{jit_config}}\n"
                .into(),
            runner_dir: "/home/runner/actions".into(),
            runner_user: "runner".into(),
        };
        let script = render(&config, "r-1", "abc_-").unwrap();
        assert_eq!(script, "#!/bin/sh\ncd /home/runner/actions && sudo -u runner ./run.sh --jitconfig abc_-\n");
    }

    #[test]
    fn values_cannot_introduce_placeholders() {
        let config = UserDataConfig { template: "{{jit_config}} {{runner_name}}".into(), ..UserDataConfig::default() };
        // A runner name like this is rejected outright; the single pass would not expand it either.
        assert!(matches!(render(&config, "{{jit_config}}", JIT), Err(UserDataError::InvalidRunnerName(_))));
    }

    #[test]
    fn rejects_bad_inputs_without_echoing_the_credential() {
        let default = UserDataConfig::default();
        let cases: Vec<(&str, &UserDataConfig, &str, &str)> = vec![
            ("newline in jit", &default, "ghr-1", "abc\nGHR_JIT_CONFIG_END\nrm -rf /"),
            ("quote in jit", &default, "ghr-1", "abc'def"),
            ("empty jit", &default, "ghr-1", ""),
            ("runner name with space", &default, "ghr 1", JIT),
            ("runner name with semicolon", &default, "ghr;reboot", JIT),
        ];
        for (what, config, runner, jit) in cases {
            let err = render(config, runner, jit).expect_err(what);
            if !jit.is_empty() {
                assert!(!err.to_string().contains(jit), "{what}: error shows the JIT config");
            }
        }
    }

    #[test]
    fn checks_templates() {
        let cases = [
            ("#!/bin/sh\n./run.sh --jitconfig {{jit_config}}", true),
            ("{{jit_config}} {{runner_dir}} {{runner_user}} {{runner_name}}", true),
            ("#!/bin/sh\n./run.sh", false),
            ("{{jit_config}} {{runner_home}}", false),
            ("{{jit_config}} {{oops", false),
        ];
        for (template, ok) in cases {
            assert_eq!(check_template(template).is_ok(), ok, "{template}");
        }
    }

    #[test]
    fn refuses_oversized_user_data() {
        let config = UserDataConfig::default();
        let huge = "A".repeat(USER_DATA_MAX_BYTES);
        assert!(matches!(render(&config, "ghr-1", &huge), Err(UserDataError::TooLarge { .. })));
    }

    /// Runs the default script with stand-ins for `run.sh`, `runuser`, `chown` and `shutdown`.
    #[cfg(unix)]
    #[test]
    fn default_script_runs_the_runner_once_then_powers_off() {
        use std::os::unix::fs::PermissionsExt;
        let write_exe = |path: &std::path::Path, body: &str| {
            std::fs::write(path, body).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        for user in ["runner", "root"] {
            let tmp = tempfile::tempdir().unwrap();
            let (runner_dir, bin, out) = (tmp.path().join("runner"), tmp.path().join("bin"), tmp.path().join("out"));
            for dir in [&runner_dir, &bin, &out] {
                std::fs::create_dir(dir).unwrap();
            }
            let jit_dir = tmp.path().join("jit");
            write_exe(
                &runner_dir.join("run.sh"),
                "#!/bin/sh\nprintf '%s\\n' \"$@\" >\"$OUT/args\"\nstat -c %a \"$JIT_FILE\" >\"$OUT/mode\"\n\
                 printf '%s' \"${RUNNER_ALLOW_RUNASROOT:-}\" >\"$OUT/asroot\"\npwd >\"$OUT/cwd\"\n",
            );
            write_exe(&bin.join("runuser"), "#!/bin/sh\nprintf '%s' \"$2\" >\"$OUT/user\"\nshift 3\nexec \"$@\"\n");
            write_exe(&bin.join("chown"), "#!/bin/sh\nprintf '%s ' \"$@\" >\"$OUT/chown\"\n");
            write_exe(&bin.join("shutdown"), "#!/bin/sh\nprintf '%s ' \"$@\" >\"$OUT/shutdown\"\n");

            let config = crate::UserDataConfig {
                runner_dir: runner_dir.to_str().unwrap().to_owned(),
                runner_user: user.to_owned(),
                ..crate::UserDataConfig::default()
            };
            let script = render(&config, "ghr-prod-1-small-9", JIT).unwrap();
            let script = script.replace("jit_dir=/run/ghr-runner", &format!("jit_dir={}", jit_dir.display()));
            let script_path = tmp.path().join("user-data.sh");
            std::fs::write(&script_path, script).unwrap();
            let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
            let status = std::process::Command::new("bash")
                .arg(&script_path)
                .env("PATH", path)
                .env("OUT", &out)
                .env("JIT_FILE", jit_dir.join("jitconfig"))
                .status()
                .unwrap();
            assert!(status.success(), "{user}: {status}");

            let read =
                |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_else(|_| panic!("{user}: no {name}"));
            assert_eq!(read("args"), format!("--jitconfig\n{JIT}\n"), "{user}");
            assert_eq!(read("mode").trim(), "600", "{user}: the JIT config file is root-only");
            assert_eq!(read("cwd").trim(), runner_dir.to_str().unwrap(), "{user}");
            assert_eq!(read("shutdown").trim(), "-h now", "{user}");
            assert!(!jit_dir.join("jitconfig").exists(), "{user}: the JIT config file is removed");
            if user == "root" {
                assert_eq!(read("asroot"), "1");
                assert!(!out.join("user").exists(), "root runs run.sh directly");
            } else {
                assert_eq!(read("user"), "runner");
                assert_eq!(read("asroot"), "");
                assert!(read("chown").starts_with("-R runner "), "the runner owns its directory");
            }
        }
    }

    #[test]
    fn encodes_as_base64() {
        let encoded = encode_user_data(&SecretString::from("#!/bin/bash\necho hi"));
        assert_eq!(encoded.expose_secret(), "IyEvYmluL2Jhc2gKZWNobyBoaQ==");
    }
}
