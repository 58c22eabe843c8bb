//! A TCP proxy in front of an AWS endpoint that holds back each answer for an adjustable delay: the request
//! reaches the service at once (so its effect happens), the caller hears of it only later. Lets a test kill a
//! function after EC2 started an instance and before the function learned its id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The size of one forwarded read.
const CHUNK: usize = 16 * 1024;

/// The proxy; stops when dropped.
pub struct SlowProxy {
    pub addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    refusing: Arc<AtomicBool>,
    server: JoinHandle<()>,
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl SlowProxy {
    /// A proxy to `upstream` (`http://host:port`), without delay until [`SlowProxy::set_delay`].
    pub async fn start(upstream: &str) -> SlowProxy {
        let target = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("binding the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let delay_ms = Arc::new(AtomicU64::new(0));
        let refusing = Arc::new(AtomicBool::new(false));
        let delay = delay_ms.clone();
        let refuse = refusing.clone();
        let server = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if refuse.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let delay = delay.clone();
                let refuse = refuse.clone();
                tokio::spawn(async move {
                    if let Ok(upstream) = TcpStream::connect(&target).await {
                        relay(client, upstream, delay, refuse).await;
                    }
                });
            }
        });
        SlowProxy { addr, delay_ms, refusing, server }
    }

    /// The endpoint URL to give a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drop every connection, new and open (the service is unreachable), or forward again.
    pub fn set_refusing(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Hold each answer back by `delay` (zero: forward at once).
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

/// Forward both ways; the first bytes of the answer to each request wait for the delay.
async fn relay(client: TcpStream, upstream: TcpStream, delay_ms: Arc<AtomicU64>, refusing: Arc<AtomicBool>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let fresh = Arc::new(AtomicBool::new(false));
    // Once the client side is closed (or refused), the answer side stops too.
    let refused = Arc::new(AtomicBool::new(false));
    let closed = refused.clone();
    let asked = fresh.clone();
    let up = async move {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if refusing.load(Ordering::SeqCst) {
                break;
            }
            asked.store(true, Ordering::SeqCst);
            if upstream_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = upstream_write.shutdown().await;
        refused.store(true, Ordering::SeqCst);
    };
    let down = async move {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = match upstream_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if closed.load(Ordering::SeqCst) {
                break;
            }
            if fresh.swap(false, Ordering::SeqCst) {
                let delay = delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}
