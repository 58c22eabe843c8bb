//! The operator console over HTTP, without a browser: sign-in, session cookies, CSRF and cross-site refusals,
//! security headers, and error pages. Every refused action is checked to have changed nothing in the store.

mod support;

use ghr_core::ids::InstallationId;
use ghr_server::ui::auth::SessionKey;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use secrecy::SecretString;
use support::{ADMIN_TOKEN, Harness};

const FORM: &str = "application/x-www-form-urlencoded";

/// A form body (`application/x-www-form-urlencoded`).
fn encode<K: AsRef<str>, V: AsRef<str>>(fields: &[(K, V)]) -> String {
    let escape = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    fields.iter().map(|(k, v)| format!("{}={}", escape(k.as_ref()), escape(v.as_ref()))).collect::<Vec<_>>().join("&")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("an HTTP client")
}

/// Sign in; the session cookie (`ghr_session=...`).
async fn sign_in(h: &Harness) -> String {
    let answer = client()
        .post(format!("{}/ui/login", h.base))
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("token", ADMIN_TOKEN)]))
        .send()
        .await
        .expect("sign-in answers");
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()[LOCATION], "/ui");
    let set = answer.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: no Secure flag: {set}");
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token the console put into a page's forms.
async fn csrf_of(h: &Harness, cookie: &str, path: &str) -> String {
    let page = client().get(format!("{}{path}", h.base)).header(COOKIE, cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[at..at + 64].to_owned()
}

async fn max_runners(h: &Harness, id: InstallationId) -> u32 {
    h.store.tenant_get(id).await.unwrap().expect("the tenant exists").max_runners
}

#[tokio::test]
async fn signing_in_sets_a_strict_session_cookie_and_a_wrong_token_sets_none() {
    let h = Harness::start().await;
    let wrong = client()
        .post(format!("{}/ui/login", h.base))
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("token", "nope")]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(wrong.text().await.unwrap().contains("That is not the admin token"));

    let anonymous = client().get(format!("{}/ui", h.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()[LOCATION], "/ui/login");

    let cookie = sign_in(&h).await;
    let overview = client().get(format!("{}/ui", h.base)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(overview.status(), 200);
    let headers = overview.headers().clone();
    assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(overview.text().await.unwrap().contains("Queued → running"));
    let fragment = client().get(format!("{}/ui?fragment=1", h.base)).header(COOKIE, &cookie).send().await.unwrap();
    let fragment = fragment.text().await.unwrap();
    assert!(fragment.contains("Queued → running") && !fragment.contains("<html"), "only the live section: {fragment}");
    for (asset, kind) in [("console.css", "text/css"), ("console.js", "text/javascript")] {
        let answer = client().get(format!("{}/ui/static/{asset}", h.base)).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        assert!(answer.headers()[CONTENT_TYPE].to_str().unwrap().starts_with(kind));
    }

    let https = client()
        .post(format!("{}/ui/login", h.base))
        .header("x-forwarded-proto", "https")
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("token", ADMIN_TOKEN)]))
        .send()
        .await
        .unwrap();
    assert!(https.headers()[SET_COOKIE].to_str().unwrap().contains("; Secure"));
}

#[tokio::test]
async fn forged_expired_and_rotated_sessions_are_refused() {
    let h = Harness::start().await;
    let now = chrono::Utc::now().timestamp();
    let other_key = SessionKey::derive(&SecretString::from("another token".to_owned()));
    let right_key = SessionKey::derive(&SecretString::from(ADMIN_TOKEN.to_owned()));
    let (_, rotated) = other_key.issue(now);
    let (_, expired) = right_key.issue(now - 13 * 3600);
    let (_, valid) = right_key.issue(now);
    for (cookie, status) in [(rotated, 303), (expired, 303), ("forged.1.abc".to_owned(), 303), (valid, 200)] {
        let answer = client()
            .get(format!("{}/ui", h.base))
            .header(COOKIE, format!("ghr_session={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "cookie {cookie}");
    }
}

#[tokio::test]
async fn actions_without_a_session_a_right_csrf_token_or_from_another_site_change_nothing() {
    let h = Harness::start().await;
    let acme = h.install("acme").await;
    let before = max_runners(&h, acme).await;
    let url = format!("{}/ui/tenants/acme/tier", h.base);
    let form =
        |csrf: &str| vec![("csrf", csrf.to_owned()), ("tier", "small".to_owned()), ("max_runners", "7".to_owned())];

    let anonymous =
        client().post(&url).header(CONTENT_TYPE, FORM).body(encode(&form("whatever"))).send().await.unwrap();
    assert_eq!(anonymous.status(), 403);

    let cookie = sign_in(&h).await;
    let csrf = csrf_of(&h, &cookie, "/ui/tenants/acme").await;
    let wrong = client()
        .post(&url)
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, FORM)
        .body(encode(&form(&"0".repeat(64))))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(wrong.text().await.unwrap().contains("CSRF"));
    let missing = client()
        .post(&url)
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("tier", "small")]))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 403);
    let cross = client()
        .post(&url)
        .header(COOKIE, &cookie)
        .header(ORIGIN, "https://evil.example")
        .header(CONTENT_TYPE, FORM)
        .body(encode(&form(&csrf)))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let fetch_site = client()
        .post(&url)
        .header(COOKIE, &cookie)
        .header("sec-fetch-site", "cross-site")
        .header(CONTENT_TYPE, FORM)
        .body(encode(&form(&csrf)))
        .send();
    assert_eq!(fetch_site.await.unwrap().status(), 403);
    let suspend = client()
        .post(format!("{}/ui/tenants/acme/suspend", h.base))
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("csrf", &csrf)]))
        .send();
    assert_eq!(suspend.await.unwrap().status(), 403, "no session");
    let tenant = h.store.tenant_get(acme).await.unwrap().unwrap();
    assert_eq!((tenant.max_runners, tenant.status.as_str()), (before, "active"), "nothing changed");

    let origin = h.base.clone();
    let done = client()
        .post(&url)
        .header(COOKIE, &cookie)
        .header(ORIGIN, origin)
        .header(CONTENT_TYPE, FORM)
        .body(encode(&form(&csrf)))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()[LOCATION], "/ui/tenants/acme?done=tier");
    assert_eq!(max_runners(&h, acme).await, 7);
}

#[tokio::test]
async fn bad_input_gets_an_error_page_saying_what_to_fix() {
    let h = Harness::start().await;
    h.install("acme").await;
    let cookie = sign_in(&h).await;
    let csrf = csrf_of(&h, &cookie, "/ui/tenants/acme").await;
    let get = async |path: &str| {
        let answer = client().get(format!("{}{path}", h.base)).header(COOKIE, &cookie).send().await.unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    };
    let table: [(&str, u16, &str); 9] = [
        ("/ui/jobs?limit=2&limit=3", 400, "give each filter once"),
        ("/ui/runners?state=gone", 400, "live, all"),
        ("/ui/tenants/acme?from=2026-01-01&to=2026-12-31", 400, "at most 92 days"),
        ("/ui/tenants/nobody", 404, "nobody"),
        ("/ui/jobs/abc", 400, "not a number"),
        ("/ui/jobs/424242", 404, "424242"),
        ("/ui/jobs?status=sleeping", 400, "queued, in_progress, completed"),
        ("/ui/tenants/acme?from=2026-02-30", 400, "2026-01-31"),
        ("/ui/nowhere", 404, "no such page"),
    ];
    for (path, status, fragment) in table {
        let (got, body) = get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(fragment) && body.contains("id=\"error-message\""), "{path}: {body}");
    }
    let post = async |path: &str, fields: &[(&str, &str)]| {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        form.extend_from_slice(fields);
        let answer = client()
            .post(format!("{}{path}", h.base))
            .header(COOKIE, &cookie)
            .header(CONTENT_TYPE, FORM)
            .body(encode(&form))
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    };
    let (status, body) = post("/ui/tenants/acme/tier", &[("tier", "huge"), ("max_runners", "")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("huge"), "{body}");
    let (status, body) = post("/ui/tenants/acme/tier", &[("tier", "small"), ("max_runners", "0")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("max_runners"), "{body}");
    let (status, body) = post("/ui/tenants/acme/explode", &[]).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("suspend, resume or approve"), "{body}");
    let (status, body) = post("/ui/tenants/acme/tier", &[("tier", "small"), ("max_runners", "-1")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("from 1 to 10000"), "{body}");
    let padding = "x".repeat(3 * 1024 * 1024);
    let (status, body) = post("/ui/tenants/acme/suspend", &[("pad", padding.as_str())]).await;
    assert_eq!(status, 413, "an oversized form is named as such: {body}");
    assert!(body.contains("larger than the server accepts"), "{body}");
}

#[tokio::test]
async fn failed_sign_ins_are_rate_limited() {
    let h = Harness::start().await;
    let mut last = 0;
    for _ in 0..10 {
        let answer = client()
            .post(format!("{}/ui/login", h.base))
            .header(CONTENT_TYPE, FORM)
            .body(encode(&[("token", "guess")]))
            .send()
            .await
            .unwrap();
        last = answer.status().as_u16();
        if last == 429 {
            let wait: u64 = answer.headers()["retry-after"].to_str().unwrap().parse().expect("Retry-After seconds");
            assert!((1..=60).contains(&wait), "{wait}");
            assert!(answer.text().await.unwrap().contains("Too many failed sign-ins"));
            break;
        }
    }
    assert_eq!(last, 429, "failed sign-ins are throttled");
    // Whoever sends wrong tokens cannot lock the operator out: the right one still signs in at once.
    sign_in(&h).await;
}

#[tokio::test]
async fn a_signed_out_session_is_refused_even_when_its_cookie_is_replayed() {
    let h = Harness::start().await;
    let acme = h.install("acme").await;
    let before = max_runners(&h, acme).await;
    let cookie = sign_in(&h).await;
    let csrf = csrf_of(&h, &cookie, "/ui/tenants/acme").await;
    let other = sign_in(&h).await;
    let out = client()
        .post(format!("{}/ui/logout", h.base))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));

    let page = client().get(format!("{}/ui", h.base)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!((page.status().as_u16(), page.headers()[LOCATION].to_str().unwrap()), (303, "/ui/login"));
    let action = client()
        .post(format!("{}/ui/tenants/acme/tier", h.base))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("csrf", csrf.as_str()), ("tier", "small"), ("max_runners", "7")]))
        .send()
        .await
        .unwrap();
    assert_eq!(action.status(), 403, "the old cookie and its CSRF token change nothing");
    assert_eq!(max_runners(&h, acme).await, before);
    // Another session of the same operator is untouched.
    let page = client().get(format!("{}/ui", h.base)).header(COOKIE, &other).send().await.unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn the_console_is_off_without_an_admin_token() {
    use ghr_engine::Ports;
    use ghr_server::{RunningServer, ServerConfig};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ghr_core::ports::Store> = Arc::new(
        ghr_store::SqliteStore::open(&dir.path().join("ghr.db").display().to_string()).await.expect("a store"),
    );
    let github = ghr_testkit::github::GithubEmulator::start(ghr_testkit::github::EmulatorConfig::default())
        .await
        .expect("the GitHub emulator starts");
    let settings = ghr_engine::settings::EngineSettings::from_config(&ghr_config::Config::builtin());
    let server = RunningServer::start(ServerConfig {
        ports: Ports::new(
            store,
            Arc::new(support::github_client(&github)),
            Arc::new(support::provider::RecordingProvider::default()),
        ),
        settings: Arc::new(settings),
        webhook_secret: SecretString::from("s3cret"),
        admin_token: None,
        webhook_path: "/webhook".into(),
        max_body_bytes: 1024,
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
    })
    .await
    .expect("the server starts");
    let base = format!("http://{}", server.addr);
    for path in ["/ui", "/ui/login", "/ui/tenants"] {
        let answer = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 503, "{path}");
        assert!(answer.text().await.unwrap().contains("no admin token is configured"), "{path}");
    }
    let login = client()
        .post(format!("{base}/ui/login"))
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("token", "")]))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 503);
    assert!(login.headers().get(SET_COOKIE).is_none());
    server.shutdown().await;
}
