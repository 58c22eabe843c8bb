//! `ghr serve` as a process: it starts from a config file, answers health, readiness and metrics, and stops
//! cleanly on SIGTERM; it refuses to start, with a message naming what to fix, on an unreadable App key or an
//! unusable or read-only store; when its database is removed while it runs, webhooks fail (so GitHub keeps
//! the delivery for redelivery) and readiness fails, instead of acknowledging writes that would be lost.

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

/// Read-only is simulated by opening the database with `?mode=ro`: the tests may run as root, whom file
/// permissions (chmod 0444 on the file and its directory) do not stop.
#[test]
fn serve_refuses_a_read_only_store() {
    let writable = setup(None, ghr_testkit::TEST_APP_PRIVATE_KEY_PEM);
    let db = writable.dir.path().join("ghr.db");
    // A migrated database first: opening it read-only then succeeds, and only the write check fails.
    let first = serve(&writable).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("ghr serve starts");
    let ready = wait_ready(&writable, first);
    stop(ready);
    let read_only = format!("sqlite://{}?mode=ro", db.display());
    let message = refused(&setup(Some(&read_only), ghr_testkit::TEST_APP_PRIVATE_KEY_PEM));
    assert!(message.contains("store.url") && message.contains(&db.display().to_string()), "{message}");
    assert!(message.contains("read-only") && message.contains("writable"), "{message}");
}

/// The database's directory removed under a running `ghr serve`: a webhook that needs a write answers 5xx
/// and `/readyz` answers 503 naming why; before the removal the same kind of webhook was applied (202).
#[test]
fn serve_stops_acknowledging_when_its_database_is_removed() {
    let data_root = tempfile::tempdir().unwrap();
    let data = data_root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let running =
        setup(Some(&format!("sqlite://{}", data.join("ghr.db").display())), ghr_testkit::TEST_APP_PRIVATE_KEY_PEM);
    let child = serve(&running).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("ghr serve starts");
    let child = wait_ready(&running, child);
    let base = format!("http://127.0.0.1:{}", running.listen);

    assert_eq!(install(&base, 1), 202, "a delivery is applied while the database is there");
    std::fs::remove_dir_all(&data).unwrap();
    let status = install(&base, 2);
    assert!((500..600).contains(&status), "a delivery into a removed database must fail, got {status}");
    let (status, body) = get(&format!("{base}/readyz")).expect("readyz answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("removed"), "{body}");
    assert!(!body.contains(&data.display().to_string()), "the public answer does not name paths: {body}");
    stop(child);
}

/// Wait until `/readyz` answers 200, or fail with the server's output.
fn wait_ready(setup: &Setup, mut child: Child) -> Child {
    let url = format!("http://127.0.0.1:{}/readyz", setup.listen);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&url).map(|(status, _)| status) != Some(200) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ghr serve exited early ({status})");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ghr serve never became ready");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// SIGTERM, and insist on a clean exit.
fn stop(mut child: Child) {
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "exit {status}");
}

/// The App id in the test config (deliveries name it as their target).
const APP_ID: u64 = 4242;

/// POST a signed `installation.created` for installation `id` (a tenant write); the answer's status.
fn install(base: &str, id: u64) -> u16 {
    use ghr_core::event::Account;
    use ghr_core::ids::{AccountId, InstallationId, OrgName};
    use ghr_core::tenant::OrgType;
    use ghr_testkit::webhook::{SignedDelivery, default_sender, installation_payload};
    let account =
        Account { login: OrgName::new(format!("org-{id}")), id: AccountId(id + 1_000), kind: OrgType::Organization };
    let payload = installation_payload("created", InstallationId(id), &account, APP_ID, None, &default_sender());
    let delivery = SignedDelivery::new("installation", &payload, "s3cret").with_target_id(APP_ID);
    let mut request = reqwest::blocking::Client::new().post(format!("{base}/webhook"));
    for (name, value) in delivery.headers() {
        request = request.header(name, value);
    }
    request.body(delivery.body).send().expect("the webhook answers").status().as_u16()
}
