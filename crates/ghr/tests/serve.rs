//! `ghr serve` as a process: it starts from a config file, answers health, readiness and metrics, and stops
//! cleanly on SIGTERM; it refuses to start, with a message naming what to fix, on an unreadable App key or an
//! unusable store.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

struct Setup {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    listen: u16,
    metrics: u16,
}

fn setup(store_url: Option<&str>, key: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("app.pem");
    std::fs::write(&key_path, key).unwrap();
    let (listen, metrics) = (free_port(), free_port());
    let store =
        store_url.map(str::to_owned).unwrap_or_else(|| format!("sqlite://{}", dir.path().join("ghr.db").display()));
    let config = dir.path().join("ghr.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{listen}\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\nlog_format = \"json\"\n\
             [store]\nurl = \"{store}\"\n\
             [github]\napp_id = 4242\nprivate_key_path = \"{key}\"\napi_url = \"http://127.0.0.1:9\"\n\
             [provider.process]\ncommand = [\"{ghr}\", \"emulated-runner\"]\nstate_dir = \"{state}\"\n",
            key = key_path.display(),
            ghr = env!("CARGO_BIN_EXE_ghr"),
            state = dir.path().join("runners").display(),
        ),
    )
    .unwrap();
    Setup { dir, config, listen, metrics }
}

fn serve(setup: &Setup) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ghr"));
    command
        .args(["serve", "--config", setup.config.to_str().unwrap()])
        .env("GHR_WEBHOOK_SECRET", "s3cret")
        .env("GHR_ADMIN_TOKEN", "t0ken")
        .env_remove("GHR_GITHUB_PRIVATE_KEY")
        .current_dir(setup.dir.path());
    command
}

fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::blocking::get(url).ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().ok()?))
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ghr serve did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_answers_health_readiness_and_metrics_and_stops_on_sigterm() {
    let setup = setup(None, ghr_testkit::TEST_APP_PRIVATE_KEY_PEM);
    let mut child = serve(&setup).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("ghr serve starts");
    let base = format!("http://127.0.0.1:{}", setup.listen);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&format!("{base}/healthz")).is_none() {
        assert!(Instant::now() < deadline, "ghr serve never answered /healthz");
        assert!(child.try_wait().unwrap().is_none(), "ghr serve exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(&format!("{base}/readyz")).map(|(s, _)| s), Some(200));
    let unauthorised = get(&format!("{base}/api/v1/tenants")).expect("the admin API answers");
    assert_eq!(unauthorised.0, 401);
    let (status, metrics) = get(&format!("http://127.0.0.1:{}/metrics", setup.metrics)).expect("metrics answer");
    assert_eq!(status, 200);
    assert!(metrics.contains("ghr_tenants"), "{metrics}");

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let mut logs = String::new();
    use std::io::Read;
    child.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    assert!(status.success(), "exit {status}: {logs}");
    // JSON logs, and never the secrets.
    assert!(logs.lines().any(|l| l.starts_with('{') && l.contains("ghr serving")), "{logs}");
    assert!(!logs.contains("s3cret") && !logs.contains("t0ken") && !logs.contains("PRIVATE KEY"), "{logs}");
}

fn refused(setup: &Setup) -> String {
    let out = serve(setup).output().expect("ghr serve runs");
    assert!(!out.status.success(), "ghr serve should refuse to start");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn serve_refuses_an_unreadable_app_key() {
    let message = refused(&setup(None, "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n"));
    assert!(message.contains("private key") || message.contains("credentials"), "{message}");
}

#[test]
fn serve_refuses_an_unusable_store() {
    let message = refused(&setup(Some("sqlite:///nonexistent-dir/ghr.db"), ghr_testkit::TEST_APP_PRIVATE_KEY_PEM));
    assert!(message.contains("store.url"), "{message}");
}
