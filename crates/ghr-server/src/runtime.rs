//! Starting and stopping a whole ghr server: listeners plus the dispatcher, reconciler and teardown loops.
//! Shutdown stops accepting requests, lets launches in flight finish, then returns (the reconciler lease is given
//! up last). With a store shared by replicas, the store's wake feed marks the tenants other replicas changed.

use crate::admin::LocalAdmin;
use crate::{AppState, metrics_router, router_with_console};
use ghr_engine::Ports;
use ghr_engine::assembly::Engine;
use ghr_engine::dispatcher::Dispatcher;
use ghr_engine::pool::agent::AgentService;
use ghr_engine::pool::keeper::PoolKeeper;
use ghr_engine::reconciler::Reconciler;
use ghr_engine::settings::EngineSettings;
use ghr_engine::teardown::Teardown;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often store-derived gauges are refreshed.
const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// `http://` + the listener's address, loopback when it listens on every interface: where agents on this
/// host reach the server (pools of local processes). EC2 pools need `[agent] url`.
fn own_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        ip if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Everything needed to run a server.
pub struct ServerConfig {
    pub ports: Ports,
    pub settings: Arc<EngineSettings>,
    pub webhook_secret: SecretString,
    pub admin_token: Option<SecretString>,
    pub webhook_path: String,
    pub max_body_bytes: usize,
    pub listen: SocketAddr,
    /// Prometheus listener; None to serve no metrics.
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
}

/// A started server. Drop does not stop it: call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub dispatcher: Arc<Dispatcher>,
    pub reconciler: Arc<Reconciler>,
    pub teardown: Teardown,
    pub dispatcher_wake: Arc<ghr_engine::wake::DispatchWake>,
    /// The warm pools' keeper, when a tier has a pool (its loop runs while this replica leads).
    pub pool_keeper: Option<Arc<PoolKeeper>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl RunningServer {
    pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
        let ServerConfig {
            ports,
            settings,
            webhook_secret,
            admin_token,
            webhook_path,
            max_body_bytes,
            listen,
            metrics_listen,
        } = config;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let Engine { dispatcher, reconciler, teardown, teardown_queue, intake, dispatcher_wake } =
            Engine::assemble(&ports, settings.clone());
        let state = AppState {
            intake,
            webhook_secret,
            max_body_bytes,
            admin_token,
            admin: Arc::new(
                LocalAdmin::new(ports.store.clone(), settings.clone())
                    .with_clock(ports.clock.clone())
                    .with_pool(ports.pool.clone()),
            ),
            store: ports.store.clone(),
            dispatcher_wake: dispatcher_wake.clone(),
            reconciler: Some(reconciler.clone()),
        };

        let metrics = metrics_listen.map(|_| crate::metrics::prometheus().map_err(ServerError::Metrics)).transpose()?;
        let console = crate::ui::ConsoleConfig {
            catalog: settings.catalog.clone(),
            global_max_runners: settings.global_max_runners,
            metrics: metrics.clone(),
        };

        let listener = TcpListener::bind(listen).await.map_err(|source| ServerError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: listen, source })?;
        let mut app = router_with_console(state, &webhook_path, console);
        let pool_keeper = match (&ports.pool, settings.pools.is_empty()) {
            (Some(pool), false) => {
                let signals = dispatcher.pool_signals();
                let agents =
                    AgentService::new(ports.clone(), pool.clone(), settings.clone(), teardown.clone(), signals.clone());
                app = app.merge(crate::agent::router(agents));
                let agent_url = settings.agent_url.clone().unwrap_or_else(|| own_url(addr));
                tracing::info!(%agent_url, "warm pools on: agents reach ghr at this URL");
                Some(Arc::new(PoolKeeper::new(
                    ports.clone(),
                    pool.clone(),
                    teardown.clone(),
                    settings.clone(),
                    agent_url,
                    signals.refill,
                )))
            }
            _ => None,
        };
        let http_stop = stop.clone();
        tasks.spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move { http_stop.cancelled().await });
            if let Err(error) = serve.await {
                tracing::error!(%error, "HTTP server failed");
            }
        });

        let metrics_addr = match metrics_listen.zip(metrics) {
            None => None,
            Some((metrics_listen, handle)) => {
                let listener = TcpListener::bind(metrics_listen)
                    .await
                    .map_err(|source| ServerError::Bind { addr: metrics_listen, source })?;
                let bound =
                    listener.local_addr().map_err(|source| ServerError::Bind { addr: metrics_listen, source })?;
                let metrics_stop = stop.clone();
                tasks.spawn(async move {
                    let serve = axum::serve(listener, metrics_router(handle))
                        .with_graceful_shutdown(async move { metrics_stop.cancelled().await });
                    if let Err(error) = serve.await {
                        tracing::error!(%error, "metrics server failed");
                    }
                });
                Some(bound)
            }
        };

        tasks.spawn(teardown.clone().run(teardown_queue, stop.clone()));
        tasks.spawn(dispatcher.clone().run(stop.clone()));
        tasks.spawn(reconciler.clone().run(stop.clone()));
        if let Some(keeper) = &pool_keeper {
            tasks.spawn(keeper.clone().run(reconciler.lease().watch(), stop.clone()));
        }
        let first_feed = match ports.store.wake_feed().await {
            Ok(None) => None,
            Ok(Some(feed)) => Some(Some(feed)),
            Err(error) => {
                tracing::warn!(error = %ghr_engine::error::ErrorChain(&error), "could not open the store's wake feed; retrying");
                Some(None)
            }
        };
        if let Some(feed) = first_feed {
            let store = ports.store.clone();
            let reopen = move || {
                let store = store.clone();
                async move { store.wake_feed().await }
            };
            tasks.spawn(crate::wake_feed::follow(feed, reopen, dispatcher_wake.clone(), stop.clone()));
        }
        let store = ports.store.clone();
        let github = ports.github.clone();
        let gauge_stop = stop.clone();
        tasks.spawn(async move {
            let mut series = crate::metrics::RunnerSeries::new();
            loop {
                crate::metrics::refresh_github(github.as_ref());
                if let Err(error) = crate::metrics::refresh_gauges(store.as_ref(), &mut series).await {
                    tracing::warn!(error = %ghr_engine::error::ErrorChain(&error), "could not refresh gauges");
                }
                tokio::select! {
                    () = tokio::time::sleep(GAUGE_REFRESH) => {}
                    () = gauge_stop.cancelled() => break,
                }
            }
        });
        tasks.close();
        tracing::info!(%addr, ?metrics_addr, "ghr serving");
        Ok(RunningServer {
            addr,
            metrics_addr,
            dispatcher,
            reconciler,
            teardown,
            dispatcher_wake,
            pool_keeper,
            stop,
            tasks,
        })
    }

    /// Stop accepting requests, let launches in flight finish, stop every loop.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.wait().await;
        tracing::info!("ghr stopped");
    }

    /// A token that stops the server when cancelled (for signal handlers).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Wait until the server stops (after the stop token is cancelled).
    pub async fn wait(self) {
        self.stop.cancelled().await;
        self.shutdown().await;
    }
}
