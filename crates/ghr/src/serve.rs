//! `ghr serve`: start everything from the config, stop gracefully on SIGTERM or Ctrl-C.

use crate::cli::ServeArgs;
use crate::wiring;
use anyhow::Context;
use ghr_config::Config;
use ghr_core::ports::Store;
use ghr_engine::{EngineSettings, Ports};
use ghr_server::{RunningServer, ServerConfig};
use std::net::SocketAddr;
use std::sync::Arc;

fn addr(config: &Config, key: &str, value: &str) -> anyhow::Result<SocketAddr> {
    value
        .parse()
        .with_context(|| format!("{}: key `{key}`: {value:?} is not an address such as 127.0.0.1:8080", config.source))
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let secret = config.require_webhook_secret()?.clone();
    if config.admin_token.is_none() {
        tracing::warn!("no admin token configured: the admin API answers 401 to every request (set GHR_ADMIN_TOKEN)");
    }
    let listen = addr(&config, "server.listen", &config.raw.server.listen)?;
    let metrics_listen = addr(&config, "server.metrics_listen", &config.raw.server.metrics_listen)?;
    let (store, pool) = wiring::store_with_pool(&config).await?;
    if ghr_store::is_postgres_url(&config.raw.store.url)
        && config.raw.provider.kind == ghr_config::ProviderKind::Process
    {
        tracing::warn!(
            state_dir = %config.raw.provider.process.state_dir.display(),
            "the process provider keeps its runners on this host: every replica sharing this PostgreSQL store must \
             run on this host with the same provider.process.state_dir, or replicas take each other's runners for \
             vanished instances and free their slots while they still run"
        );
    }
    require_writable(&config, store.as_ref()).await?;
    let github = wiring::github(&config)?;
    let provider = wiring::provider(&config).await?;
    wiring::check_pool_support(&config, provider.as_ref())?;
    let mut ports = Ports::new(store, wiring::github_port(github), provider);
    if let Some(pool) = pool {
        ports = ports.with_pool(pool);
    }
    let server = RunningServer::start(ServerConfig {
        ports,
        settings: Arc::new(EngineSettings::from_config(&config)),
        webhook_secret: secret,
        admin_token: config.admin_token.clone(),
        webhook_path: config.raw.server.webhook_path.clone(),
        max_body_bytes: config.raw.server.max_body_bytes,
        listen,
        metrics_listen: Some(metrics_listen),
    })
    .await?;
    outln!(
        "ghr serving on http://{} (webhook {}), metrics on http://{}/metrics",
        server.addr,
        config.raw.server.webhook_path,
        server.metrics_addr.map(|a| a.to_string()).unwrap_or_default()
    );
    let stop = server.stop_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: no new requests; finishing launches in flight");
        stop.cancel();
    });
    server.wait().await;
    Ok(())
}

/// Refuse to serve on a store that cannot make a delivery durable: every webhook would fail (or, worse,
/// be acknowledged and lost) while `/readyz` looked healthy.
async fn require_writable(config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    let url = &config.raw.store.url;
    store.check_writable().await.with_context(|| {
        format!(
            "{}: store.url {url} does not accept writes, and ghr serve needs a writable database (fix the cause \
             that follows, or point store.url at a writable file)",
            config.source
        )
    })
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
