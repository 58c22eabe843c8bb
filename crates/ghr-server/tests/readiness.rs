//! `/readyz` on a store that does not answer: a replica whose database is down, unreachable or out of
//! connections answers 503 within [`READINESS_TIMEOUT`], so a load balancer takes it out instead of timing
//! its health check out (or, worse, keeping it in).

mod support;

use ghr_config::Config;
use ghr_core::ports::Store;
use ghr_engine::Ports;
use ghr_engine::settings::EngineSettings;
use ghr_server::{READINESS_TIMEOUT, RunningServer, ServerConfig};
use ghr_store::{PgSettings, PgStore};
use ghr_testkit::github::{EmulatorConfig, GithubEmulator};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::github_client;
use support::provider::RecordingProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_503_in_time_when_the_store_does_not_answer() {
    let url = ghr_store::testing::fresh_postgres_url().await;
    // One pooled connection, which the test then holds: every store operation waits for it.
    let settings = PgSettings { max_connections: 1, min_connections: 0, acquire_timeout: Duration::from_secs(30) };
    let pg = PgStore::open(&url, &settings).await.expect("open");
    let store: Arc<dyn Store> = Arc::new(pg.clone());
    let github = GithubEmulator::start(EmulatorConfig::default()).await.expect("the GitHub emulator starts");
    let mut engine = EngineSettings::from_config(&Config::builtin());
    engine.dispatch_tick = Duration::from_secs(3600);
    engine.reconcile_interval = Duration::from_secs(3600);
    let server = RunningServer::start(ServerConfig {
        ports: Ports::new(store, Arc::new(github_client(&github)), Arc::new(RecordingProvider::default())),
        settings: Arc::new(engine),
        webhook_secret: SecretString::from("secret"),
        admin_token: None,
        webhook_path: "/webhook".into(),
        max_body_bytes: 1024 * 1024,
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
    })
    .await
    .expect("the server starts");
    let readyz = format!("http://{}/readyz", server.addr);
    let http = reqwest::Client::new();
    assert_eq!(http.get(&readyz).send().await.unwrap().status().as_u16(), 200, "ready while the store answers");

    let held = pg.pool().acquire().await.expect("the pool's only connection");
    let asked = Instant::now();
    let answer = http.get(&readyz).timeout(Duration::from_secs(20)).send().await.expect("/readyz answers");
    let waited = asked.elapsed();
    assert_eq!(answer.status().as_u16(), 503);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["reason"], "timeout", "{body}");
    assert!(waited < READINESS_TIMEOUT * 4, "/readyz took {waited:?} to give up");

    drop(held);
    assert_eq!(http.get(&readyz).send().await.unwrap().status().as_u16(), 200, "ready again");
    server.shutdown().await;
}
