//! The operator console in a real browser: headless Chromium, driven through chromedriver, against a running
//! local stack (GitHub emulator, signed webhooks, emulated runners). An operator signs in (a wrong token first),
//! sees a tenant at its limit with waiting jobs, raises its limit through the tenant page's form, watches the
//! waiting jobs start on the self-refreshing page, and opens a job's timeline. Requests without a session, with
//! a wrong CSRF token or from another site change nothing. A screenshot of each page is written to
//! `$GHR_SCREENSHOT_DIR` (default `target/console-screenshots/`).

use fantoccini::{Client, ClientBuilder, Locator};
use ghr::stack::{LocalStack, StackOptions};
use ghr_core::ids::InstallationId;
use ghr_core::job::JobStatus;
use ghr_testkit::github::JobSpec;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where Debian's `chromium-driver` and `chromium` put their programs.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long the test waits for anything the system or the browser does.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long each emulated job runs once a runner takes it: far longer than the test needs them busy.
const LONG_JOB: Duration = Duration::from_secs(120);
/// Jobs queued, and the small plan's limit (the built-in catalog's `small` tier).
const JOBS: u32 = 4;
const SMALL_LIMIT: u32 = 2;
const SMALL: [&str; 4] = ["self-hosted", "linux", "x64", "small"];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// chromedriver as a child process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "the console's browser test needs {CHROMEDRIVER} and {CHROMIUM}: install them with \
             `apt-get install chromium chromium-driver`"
        );
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        Driver { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"],
        }),
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let connected = ClientBuilder::rustls()
            .expect("a WebDriver client")
            .capabilities(capabilities.clone())
            .connect(&driver.url)
            .await;
        match connected {
            Ok(client) => return client,
            Err(error) if tokio::time::Instant::now() < deadline => {
                eprintln!("chromedriver not ready yet: {error}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => panic!("cannot open a Chromium session through chromedriver: {error}"),
        }
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("GHR_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots"));
    std::fs::create_dir_all(&dir).expect("creating the screenshot directory");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "chromedriver answers PNG screenshots");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("writing a screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Poll `check` (which reads the page) until it answers true; fail saying what did not happen.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {PATIENCE:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An attribute of the first element matching `css`, if the element is there now.
async fn attr(client: &Client, css: &str, name: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.attr(name).await.ok()?
}

async fn number(client: &Client, css: &str, name: &str) -> Option<u32> {
    attr(client, css, name).await?.parse().ok()
}

/// A form body (`application/x-www-form-urlencoded`) of plain ASCII fields.
fn encode(fields: &[(&str, &str)]) -> String {
    let escape = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    fields.iter().map(|(k, v)| format!("{}={}", escape(k), escape(v))).collect::<Vec<_>>().join("&")
}

/// POST a form without a browser; the answer's status.
async fn post(url: &str, cookie: Option<&str>, origin: Option<&str>, fields: &[(&str, &str)]) -> u16 {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut request = client.post(url).header("content-type", "application/x-www-form-urlencoded").body(encode(fields));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.expect("the console answers").status().as_u16()
}

async fn limit_of(stack: &LocalStack, id: InstallationId) -> u32 {
    stack.store.tenant_get(id).await.expect("reading a tenant").expect("the tenant exists").max_runners
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_upgrades_a_tenant_at_its_limit_and_watches_its_jobs_start() {
    let driver = Driver::start();
    let mut options = StackOptions::new(env!("CARGO_BIN_EXE_ghr"));
    options.metrics = true;
    let stack = LocalStack::start(options).await.expect("the local stack starts");
    let base = stack.url();
    let acme = stack.emulator.install_org("acme").await.expect("installing the App");
    for _ in 0..JOBS {
        stack.emulator.queue_job(JobSpec::new(acme, "app", &SMALL).duration(LONG_JOB)).await.expect("queueing");
    }
    let client = browser(&driver).await;

    // Signed out, the console sends the operator to the sign-in page; a wrong token is refused, no cookie set.
    client.goto(&format!("{base}/ui")).await.unwrap();
    until("the sign-in page shows", || async { client.find(Locator::Id("login-form")).await.is_ok() }).await;
    screenshot(&client, "login").await;
    client.find(Locator::Id("token")).await.unwrap().send_keys("not-the-token").await.unwrap();
    client.find(Locator::Id("sign-in")).await.unwrap().click().await.unwrap();
    until("the wrong token is refused", || async { client.find(Locator::Id("login-error")).await.is_ok() }).await;
    assert!(client.get_all_cookies().await.unwrap().iter().all(|c| c.name() != "ghr_session"));
    screenshot(&client, "login-refused").await;
    client.find(Locator::Id("token")).await.unwrap().send_keys(&stack.admin_token).await.unwrap();
    client.find(Locator::Id("sign-in")).await.unwrap().click().await.unwrap();
    until("the overview shows", || async { client.find(Locator::Id("tier-table")).await.is_ok() }).await;
    let cookie = client.get_all_cookies().await.unwrap().into_iter().find(|c| c.name() == "ghr_session");
    let cookie = format!("ghr_session={}", cookie.expect("signed in: a session cookie").value());

    // The overview (refreshing itself) shows acme at its limit with jobs waiting.
    until("the overview shows acme at its limit with jobs waiting", || async {
        let row = "#tenant-acme";
        number(&client, row, "data-live").await == Some(SMALL_LIMIT)
            && number(&client, row, "data-max").await == Some(SMALL_LIMIT)
            && number(&client, row, "data-waiting").await == Some(JOBS - SMALL_LIMIT)
            && attr(&client, row, "class").await.is_some_and(|c| c.contains("at-limit"))
    })
    .await;
    until("the wait chart has the started jobs", || async {
        client.find(Locator::Css("#wait-chart rect[data-series='p95']")).await.is_ok()
    })
    .await;
    screenshot(&client, "overview").await;

    // Requests that are not the signed-in operator's own forms change nothing.
    let tier_url = format!("{base}/ui/tenants/acme/tier");
    let upgrade = [("tier", "small"), ("max_runners", "9")];
    assert_eq!(post(&tier_url, None, None, &upgrade).await, 403, "no session");
    let wrong_csrf = [("csrf", "0000"), ("tier", "small"), ("max_runners", "9")];
    assert_eq!(post(&tier_url, Some(&cookie), None, &wrong_csrf).await, 403, "wrong CSRF token");
    client.find(Locator::Css("#tenant-acme a")).await.unwrap().click().await.unwrap();
    until("the tenant page shows", || async { client.find(Locator::Id("tier-form")).await.is_ok() }).await;
    let csrf = attr(&client, "#tier-form input[name='csrf']", "value").await.expect("the form's CSRF token");
    let with_csrf = [("csrf", csrf.as_str()), ("tier", "small"), ("max_runners", "9")];
    assert_eq!(post(&tier_url, Some(&cookie), Some("https://evil.example"), &with_csrf).await, 403, "cross-site");
    assert_eq!(limit_of(&stack, acme).await, SMALL_LIMIT, "refused requests changed nothing");
    screenshot(&client, "tenant").await;

    // A waiting job's page says why it waits.
    let waiting = attr(&client, "#job-table tbody tr a", "href").await.expect("a queued job on the tenant page");
    client.goto(&format!("{base}{waiting}")).await.unwrap();
    let explanation = client.find(Locator::Id("explanation")).await.unwrap().text().await.unwrap();
    assert!(explanation.starts_with("waiting: tenant_at_limit"), "{explanation}");
    screenshot(&client, "job-waiting").await;
    client.goto(&format!("{base}/ui/tenants/acme")).await.unwrap();
    until("the tenant page shows again", || async { client.find(Locator::Id("tier-form")).await.is_ok() }).await;

    // Raise the limit through the form; the page comes back with a confirmation and the waiting jobs start.
    let field = client.find(Locator::Id("max_runners")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(&JOBS.to_string()).await.unwrap();
    client.find(Locator::Id("save-tier")).await.unwrap().click().await.unwrap();
    until("the change is confirmed", || async { client.find(Locator::Id("flash")).await.is_ok() }).await;
    assert_eq!(limit_of(&stack, acme).await, JOBS);
    until("every job of acme runs and none waits", || async {
        number(&client, "#tenant-summary", "data-live").await == Some(JOBS)
            && number(&client, "#tenant-summary", "data-waiting").await == Some(0)
            && stack.emulator.jobs().iter().filter(|j| j.status == JobStatus::InProgress).count() == JOBS as usize
    })
    .await;
    screenshot(&client, "tenant-upgraded").await;

    // The jobs list, a job's timeline, the runners and the tenants.
    client.goto(&format!("{base}/ui/jobs")).await.unwrap();
    until("the jobs list shows acme's jobs running", || async {
        client
            .find_all(Locator::Css("#job-table tr[data-status='in_progress']"))
            .await
            .is_ok_and(|r| r.len() == JOBS as usize)
    })
    .await;
    screenshot(&client, "jobs").await;
    client.find(Locator::Css("#job-table tbody tr a")).await.unwrap().click().await.unwrap();
    until("the job's timeline shows it queued and running", || async {
        let kinds = match client.find_all(Locator::Css("#timeline li")).await {
            Ok(items) => items,
            Err(_) => return false,
        };
        let mut seen = Vec::new();
        for item in kinds {
            seen.push(item.attr("data-kind").await.ok().flatten().unwrap_or_default());
        }
        seen.iter().any(|k| k == "queued") && seen.iter().any(|k| k == "in_progress")
    })
    .await;
    let explanation = client.find(Locator::Id("explanation")).await.unwrap().text().await.unwrap();
    assert!(explanation.starts_with("running"), "{explanation}");
    screenshot(&client, "job").await;
    client.goto(&format!("{base}/ui/runners")).await.unwrap();
    until("the runners page lists acme's busy runners", || async {
        client
            .find_all(Locator::Css("#runner-table tr[data-state='busy']"))
            .await
            .is_ok_and(|r| r.len() == JOBS as usize)
    })
    .await;
    screenshot(&client, "runners").await;
    client.goto(&format!("{base}/ui/tenants")).await.unwrap();
    until("the tenants page lists acme", || async { client.find(Locator::Id("tenant-acme")).await.is_ok() }).await;
    screenshot(&client, "tenants").await;

    client.goto(&format!("{base}/ui")).await.unwrap();
    until("the overview shows acme's raised limit and every job's wait", || async {
        number(&client, "#tenant-acme", "data-live").await == Some(JOBS)
            && number(&client, "#tenant-acme", "data-waiting").await == Some(0)
            && number(&client, "#jobs-started", "data-jobs").await == Some(JOBS)
    })
    .await;
    screenshot(&client, "overview-busy").await;

    // Bad input gets a page saying what to fix.
    client.goto(&format!("{base}/ui/jobs/not-a-job")).await.unwrap();
    let message = client.find(Locator::Id("error-message")).await.expect("an error page").text().await.unwrap();
    assert!(message.contains("not a number"), "{message}");
    screenshot(&client, "error").await;
    client.goto(&format!("{base}/ui")).await.unwrap();

    // Signing out ends the session in the browser.
    client.find(Locator::Id("sign-out")).await.unwrap().click().await.unwrap();
    until("the sign-in page shows again", || async { client.find(Locator::Id("login-form")).await.is_ok() }).await;
    client.close().await.expect("closing the browser");
    stack.stop().await.expect("the stack stops");
}
