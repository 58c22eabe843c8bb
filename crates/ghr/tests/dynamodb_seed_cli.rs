//! The seed README's `aws dynamodb` commands ("Monitoring Tenants"), verbatim, against the tables of a
//! `ghr serve` on DynamoDB (moto): `ghr serve` refuses to start before `ghr store init`; after it, two tenants
//! onboard through signed `installation` webhooks; the seed's `scan` lists them, its `get-item` shows the seed's
//! attributes, and its `update-item` raising `max_runners` takes effect on the tenant's very next jobs (the
//! other tenant stays under its old limit).
//!
//! Needs the moto emulator and the AWS CLI from PyPI: `eval "$(scripts/moto.sh start)"` exports
//! `GHR_TEST_MOTO_ENDPOINT` and `GHR_TEST_AWS_CLI` (scripts/test.sh does it). Without them the test fails.
#![cfg(feature = "dynamodb")]

use ghr_core::ids::InstallationId;
use ghr_core::job::JobStatus;
use ghr_core::ports::{RunnerFilter, Store};
use ghr_core::runner::RunnerState;
use ghr_core::tenant::TenantStatus;
use ghr_store_dynamodb::{DynamoOptions, DynamoStore, testing};
use ghr_testkit::github::{EmulatorConfig, GithubEmulator, JobSpec};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming the AWS CLI (`scripts/moto.sh start` exports it).
const AWS_CLI_ENV: &str = "GHR_TEST_AWS_CLI";
/// The empty file given as the AWS config and credentials files.
const EMPTY_AWS_FILE: &str = "empty-aws-config";
const WEBHOOK_SECRET: &str = "seed-cli-secret";
const ADMIN_TOKEN: &str = "seed-cli-token";
/// The plan new tenants get (`small`) and its limit in this test's catalog (the seed's TIER_LIMITS).
const SMALL_LIMIT: usize = 2;
/// The limit the seed's `update-item` sets (`:max`).
const UPGRADED_LIMIT: usize = 5;
/// Jobs per tenant after the upgrade: more than either limit, so both limits are reached.
const JOBS_PER_TENANT: usize = 8;
/// Long enough for the runners of one limit to be live at the same time.
const JOB_DURATION: Duration = Duration::from_secs(4);
/// How long ghr may take to answer, onboard, or serve the burst (moto answers slowly).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const BURST_TIMEOUT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(50);
/// Lines of `ghr serve`'s log a failure shows.
const LOG_TAIL_LINES: usize = 60;

/// The seed README's commands, as printed: `my-saas` is the table prefix, `12345678` the installation id.
const SEED_SCAN: &str = r##"aws dynamodb scan \
  --table-name my-saas-tenants \
  --filter-expression "#s = :active" \
  --expression-attribute-names '{"#s": "status"}' \
  --expression-attribute-values '{":active": {"S": "active"}}'"##;
const SEED_GET_ITEM: &str = r##"aws dynamodb get-item \
  --table-name my-saas-tenants \
  --key '{"installation_id": {"N": "12345678"}}'"##;
const SEED_UPDATE_ITEM: &str = r##"aws dynamodb update-item \
  --table-name my-saas-tenants \
  --key '{"installation_id": {"N": "12345678"}}' \
  --update-expression "SET tier = :tier, max_runners = :max, updated_at = :now" \
  --expression-attribute-values '{
    ":tier": {"S": "medium"},
    ":max": {"N": "5"},
    ":now": {"S": "2024-01-15T12:00:00Z"}
  }'"##;
const SEED_PREFIX: &str = "my-saas";
const SEED_INSTALLATION: &str = "12345678";

/// The AWS CLI and the emulator, with a shell environment that points the CLI (and ghr) at it.
struct Aws {
    cli: PathBuf,
    endpoint: String,
    home: tempfile::TempDir,
}

impl Aws {
    fn new() -> Self {
        let cli = std::env::var(AWS_CLI_ENV).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
            panic!(
                "{AWS_CLI_ENV} is not set: this test runs the seed's AWS CLI commands. Run scripts/test.sh, or \
                 `eval \"$(scripts/moto.sh start)\"` first (it installs the AWS CLI and exports {AWS_CLI_ENV})"
            )
        });
        let cli = PathBuf::from(cli);
        assert!(cli.is_file(), "{AWS_CLI_ENV}={} is not a file: run scripts/moto.sh start", cli.display());
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(EMPTY_AWS_FILE), "").unwrap();
        Self { cli, endpoint: testing::endpoint(), home }
    }

    /// The environment of every process of the test: the emulator as `AWS_ENDPOINT_URL`, throwaway
    /// credentials, no profile or config file of the machine's (an empty one instead).
    fn env(&self, command: &mut Command) {
        let nowhere = self.home.path().join(EMPTY_AWS_FILE);
        command
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", testing::TEST_REGION)
            .env("AWS_DEFAULT_REGION", testing::TEST_REGION)
            .env("AWS_DEFAULT_OUTPUT", "json")
            .env("AWS_CONFIG_FILE", &nowhere)
            .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL_DYNAMODB");
    }

    /// Run one of the seed's commands through `sh`, with `aws` on the PATH, and parse its JSON answer.
    fn seed(&self, command: &str, prefix: &str, installation: InstallationId) -> Value {
        let text = command.replace(SEED_PREFIX, prefix).replace(SEED_INSTALLATION, &installation.0.to_string());
        let bin = self.cli.parent().expect("the CLI is in a directory");
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut sh = Command::new("sh");
        sh.args(["-c", &text]).env("PATH", path);
        self.env(&mut sh);
        let out = sh.output().expect("sh runs");
        assert!(
            out.status.success(),
            "{text}\nfailed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{text}\nprinted no JSON ({e}): {stdout}"))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A `ghr serve` process, killed when dropped.
struct Server {
    port: u16,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The deployment's config: the store on `dynamodb://<prefix>` (endpoint from `AWS_ENDPOINT_URL`), the seed's
/// small and medium plans, emulated runners.
fn write_config(dir: &Path, prefix: &str, port: u16, emulator: &GithubEmulator) -> String {
    let key = dir.join("app.pem");
    std::fs::write(&key, ghr_testkit::TEST_APP_PRIVATE_KEY_PEM).unwrap();
    let path = dir.join("ghr.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\nlog_format = \"json\"\n\
             [store]\nurl = \"dynamodb://{prefix}?region={region}\"\n\
             [github]\napp_id = {app_id}\nprivate_key_path = \"{key}\"\napi_url = \"{api}\"\n\
             [dispatcher]\ntick_seconds = 1\nretry_base_seconds = 1\nretry_max_seconds = 2\n\
             [reconciler]\ninterval_seconds = 2\norphan_grace_seconds = 5\nstale_job_seconds = 10\n\
             [provider.process]\ncommand = [\"{ghr}\", \"emulated-runner\"]\nstate_dir = \"{state}\"\n\
             terminate_grace_seconds = 2\n\
             [[tiers]]\nname = \"small\"\nlabels = [\"self-hosted\", \"linux\", \"x64\", \"small\"]\n\
             instance_types = [\"t3.small\"]\nmax_runners = {SMALL_LIMIT}\n\
             [[tiers]]\nname = \"medium\"\nlabels = [\"self-hosted\", \"linux\", \"x64\", \"medium\"]\n\
             instance_types = [\"t3.medium\"]\nmax_runners = {UPGRADED_LIMIT}\n",
            metrics = free_port(),
            region = testing::TEST_REGION,
            app_id = emulator.app_id(),
            key = key.display(),
            api = emulator.base_url(),
            ghr = env!("CARGO_BIN_EXE_ghr"),
            state = dir.join("runners").display(),
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn ghr_command(aws: &Aws, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ghr"));
    command
        .args(args)
        .env("GHR_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("GHR_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("GHR_GITHUB_PRIVATE_KEY")
        .env_remove("GHR_DB")
        .env_remove("GHR_CONFIG");
    aws.env(&mut command);
    command
}

fn ghr_ok(aws: &Aws, args: &[&str]) -> String {
    let out: Output = ghr_command(aws, args).output().expect("ghr runs");
    assert!(out.status.success(), "ghr {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `ghr serve` on tables that do not exist must stop at once, naming `ghr store init`.
fn serve_refuses_missing_tables(aws: &Aws, dir: &Path, config: &str) {
    let log = dir.join("refused.log");
    let mut child = ghr_command(aws, &["serve", "--config", config])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("ghr serve starts");
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ghr serve kept running without its tables: {}", std::fs::read_to_string(&log).unwrap());
        }
        std::thread::sleep(POLL);
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("are missing") && stderr.contains("run `ghr store init`") && stderr.contains("-tenants"),
        "{stderr}"
    );
}

async fn wait_until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

async fn live_runners(store: &DynamoStore, tenant: InstallationId) -> usize {
    let filter = RunnerFilter {
        installation_id: Some(tenant),
        tier: None,
        states: RunnerState::LIVE.to_vec(),
        ..RunnerFilter::default()
    };
    store.runner_list(filter).await.expect("listing runners").len()
}

fn completed_jobs(emulator: &GithubEmulator, tenant: InstallationId) -> usize {
    emulator.jobs().iter().filter(|j| j.installation_id == tenant && j.status == JobStatus::Completed).count()
}

/// The last lines of a log, for a failure message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn attribute<'a>(item: &'a Value, name: &str, kind: &str) -> &'a str {
    item[name][kind].as_str().unwrap_or_else(|| panic!("attribute {name} ({kind}) in {item}"))
}

fn assert_iso8601(item: &Value, name: &str) {
    let text = attribute(item, name, "S");
    assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{name} = {text:?} is not ISO-8601");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seeds_aws_cli_commands_work_on_ghrs_tables() {
    let aws = Aws::new();
    let dir = tempfile::tempdir().unwrap();
    let prefix = testing::unique_prefix();
    let emulator = GithubEmulator::start(EmulatorConfig { rate_limit_per_hour: u32::MAX, ..EmulatorConfig::default() })
        .await
        .expect("the GitHub emulator starts");
    let port = free_port();
    let config = write_config(dir.path(), &prefix, port, &emulator);

    // No tables yet: serve refuses; `ghr store init` creates all five, and a second run finds them.
    serve_refuses_missing_tables(&aws, dir.path(), &config);
    let tables = ["tenants", "jobs", "runners", "deliveries", "state"].map(|t| format!("{prefix}-{t}")).join(", ");
    let created = ghr_ok(&aws, &["store", "init", "--config", &config]);
    assert!(created.contains(&format!("created: {tables}\n")) && created.contains("existing: none"), "{created}");
    let again = ghr_ok(&aws, &["store", "init", "--config", &config]);
    assert!(again.contains("created: none") && again.contains(&format!("existing: {tables}\n")), "{again}");

    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let child = ghr_command(&aws, &["serve", "--config", &config])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("ghr serve starts");
    let server = Server { port, child };
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", server.port);
    wait_until(START_TIMEOUT, "ghr serve to answer /readyz", || async {
        http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    emulator.set_webhook_target(format!("{base}/webhook"), WEBHOOK_SECRET);

    // Two tenants onboard through signed installation webhooks.
    let store = DynamoStore::with_client(testing::client().await, &prefix, DynamoOptions::default());
    let upgraded = emulator.install_org("acme").await.expect("install acme");
    let unchanged = emulator.install_org("globex").await.expect("install globex");
    wait_until(START_TIMEOUT, "both tenants onboarded", || async {
        store.tenant_list(Some(TenantStatus::Active)).await.is_ok_and(|t| t.len() == 2)
    })
    .await;

    // scan: the active tenants.
    let scan = aws.seed(SEED_SCAN, &prefix, upgraded);
    let listed: BTreeSet<u64> = scan["Items"]
        .as_array()
        .unwrap_or_else(|| panic!("scan answered {scan}"))
        .iter()
        .map(|item| {
            assert_eq!(attribute(item, "status", "S"), "active", "{item}");
            attribute(item, "installation_id", "N").parse().expect("a number")
        })
        .collect();
    assert_eq!(listed, BTreeSet::from([upgraded.0, unchanged.0]), "{scan}");

    // get-item: the seed's attributes.
    let got = aws.seed(SEED_GET_ITEM, &prefix, upgraded);
    let item = &got["Item"];
    assert_eq!(attribute(item, "installation_id", "N"), upgraded.0.to_string(), "{got}");
    assert_eq!(attribute(item, "org_name", "S"), "acme", "{got}");
    assert_eq!(attribute(item, "org_type", "S"), "Organization", "{got}");
    assert_eq!(attribute(item, "status", "S"), "active", "{got}");
    assert_eq!(attribute(item, "tier", "S"), "small", "{got}");
    assert_eq!(attribute(item, "max_runners", "N"), SMALL_LIMIT.to_string(), "{got}");
    assert_iso8601(item, "created_at");
    assert_iso8601(item, "updated_at");
    assert!(item["metadata"]["M"]["github_account_id"]["N"].is_string(), "metadata: {got}");

    // update-item: the seed's tier upgrade, by hand, while ghr runs.
    aws.seed(SEED_UPDATE_ITEM, &prefix, upgraded);
    let after = aws.seed(SEED_GET_ITEM, &prefix, upgraded);
    assert_eq!(attribute(&after["Item"], "max_runners", "N"), UPGRADED_LIMIT.to_string(), "{after}");
    assert_eq!(attribute(&after["Item"], "updated_at", "S"), "2024-01-15T12:00:00Z", "{after}");
    let tenant = store.tenant_get(upgraded).await.unwrap().expect("the tenant");
    assert_eq!((tenant.tier.as_str(), tenant.max_runners), ("medium", 5), "ghr reads the seed's update");

    // The very next jobs: the upgraded tenant reaches its new limit and never passes it; the other stays at 2.
    let small = ["self-hosted", "linux", "x64", "small"];
    for tenant in [upgraded, unchanged] {
        for i in 0..JOBS_PER_TENANT {
            let mut job = JobSpec::new(tenant, &format!("repo-{i}"), &small);
            job.duration = JOB_DURATION;
            emulator.queue_job(job).await.expect("queue a job");
        }
    }
    let (mut peak_upgraded, mut peak_unchanged) = (0, 0);
    let deadline = Instant::now() + BURST_TIMEOUT;
    while completed_jobs(&emulator, upgraded) + completed_jobs(&emulator, unchanged) < 2 * JOBS_PER_TENANT {
        assert!(
            Instant::now() < deadline,
            "the burst was not served within {BURST_TIMEOUT:?}: {} and {} of {JOBS_PER_TENANT} jobs completed, peaks \
             {peak_upgraded} and {peak_unchanged}; ghr serve's log ends with:\n{}",
            completed_jobs(&emulator, upgraded),
            completed_jobs(&emulator, unchanged),
            log_tail(&dir.path().join("serve.log")),
        );
        peak_upgraded = peak_upgraded.max(live_runners(&store, upgraded).await);
        peak_unchanged = peak_unchanged.max(live_runners(&store, unchanged).await);
        assert!(peak_upgraded <= UPGRADED_LIMIT, "acme ran {peak_upgraded} runners, above its new limit");
        assert!(peak_unchanged <= SMALL_LIMIT, "globex ran {peak_unchanged} runners, above its limit");
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(peak_upgraded, UPGRADED_LIMIT, "acme's next jobs ran under max_runners = {UPGRADED_LIMIT}");
    assert_eq!(peak_unchanged, SMALL_LIMIT, "globex kept max_runners = {SMALL_LIMIT}");
    drop(server);
}
