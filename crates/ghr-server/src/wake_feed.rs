//! Wake-ups across replicas: the store's wake feed ([`ghr_core::ports::Store::wake_feed`]) tells this replica
//! which tenants other replicas changed (a job queued, a slot freed), so its dispatcher starts a waiting job at
//! once instead of at its next full pass.
//!
//! A broken feed (the store restarting, a dropped connection) is reopened with a doubling backoff; the first
//! wake-up after a reopen is a full pass, since changes made while it was down were missed. Meanwhile the
//! dispatcher's periodic full pass still covers every tenant.

use ghr_core::ports::{StoreError, StoreWake, WakeFeed};
use ghr_engine::wake::DispatchWake;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// First wait before reopening a broken wake feed.
pub const REOPEN_BASE: Duration = Duration::from_secs(1);
/// Longest wait between attempts to reopen a broken wake feed.
pub const REOPEN_MAX: Duration = Duration::from_secs(30);

/// Mark the tenants the feed names on `wake` until `stop`. `feed` is the feed opened at start (`None` when that
/// failed); `reopen` opens a new one. Ends when `reopen` says the store has no feed.
pub async fn follow<F, Fut>(
    mut feed: Option<Box<dyn WakeFeed>>,
    mut reopen: F,
    wake: Arc<DispatchWake>,
    stop: CancellationToken,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<Box<dyn WakeFeed>>, StoreError>>,
{
    let mut backoff = REOPEN_BASE;
    loop {
        if let Some(mut current) = feed.take() {
            loop {
                tokio::select! {
                    next = current.next() => match next {
                        Ok(StoreWake::Tenants(tenants)) => {
                            backoff = REOPEN_BASE;
                            tenants.into_iter().for_each(|tenant| wake.tenant(tenant));
                        }
                        Ok(StoreWake::All) => {
                            backoff = REOPEN_BASE;
                            wake.notify_one();
                        }
                        Err(error) => {
                            tracing::warn!(
                                error = %ghr_engine::error::ErrorChain(&error),
                                "the store's wake feed broke; reopening it (periodic passes cover the gap)"
                            );
                            break;
                        }
                    },
                    () = stop.cancelled() => return,
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(REOPEN_MAX);
        match reopen().await {
            Ok(Some(reopened)) => {
                // Whatever other replicas changed while the feed was down was missed: plan for everyone.
                wake.notify_one();
                feed = Some(reopened);
            }
            Ok(None) => {
                tracing::warn!("the store no longer offers a wake feed; relying on periodic passes");
                return;
            }
            Err(error) => tracing::warn!(
                error = %ghr_engine::error::ErrorChain(&error),
                ?backoff,
                "could not reopen the store's wake feed; retrying"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use ghr_core::ids::InstallationId;
    use std::sync::Mutex;
    use tokio::sync::mpsc;

    /// A feed that yields what the test sends; a closed channel is a broken feed.
    struct ChannelFeed(mpsc::UnboundedReceiver<StoreWake>);

    #[async_trait]
    impl WakeFeed for ChannelFeed {
        async fn next(&mut self) -> Result<StoreWake, StoreError> {
            self.0.recv().await.ok_or_else(|| StoreError::Backend { op: "wake_feed", source: "connection lost".into() })
        }
    }

    fn feed() -> (mpsc::UnboundedSender<StoreWake>, Box<dyn WakeFeed>) {
        let (send, receive) = mpsc::unbounded_channel();
        (send, Box::new(ChannelFeed(receive)))
    }

    /// Wait until the wake has marks, and take them.
    async fn marks(wake: &DispatchWake) -> ghr_engine::wake::Dirty {
        tokio::time::timeout(REOPEN_BASE * 10, async {
            loop {
                let dirty = wake.take();
                if !dirty.is_empty() {
                    return dirty;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("a wake-up")
    }

    #[tokio::test]
    async fn tenants_are_marked_and_a_broken_feed_is_reopened_with_a_full_pass() {
        let wake = DispatchWake::new();
        let stop = CancellationToken::new();
        let (first, first_feed) = feed();
        // The first reopen fails (the store is restarting), the second gives a new feed.
        let (second, second_feed) = feed();
        let reopens = Arc::new(Mutex::new(vec![Ok(Some(second_feed)), Err("the store is restarting")]));
        let reopen = {
            let reopens = reopens.clone();
            move || {
                let next = reopens.lock().expect("reopens").pop().expect("no more reopens expected");
                std::future::ready(next.map_err(|e| StoreError::Backend { op: "wake_feed", source: e.into() }))
            }
        };
        let task = tokio::spawn(follow(Some(first_feed), reopen, wake.clone(), stop.clone()));

        first.send(StoreWake::Tenants(vec![InstallationId(7), InstallationId(9)])).expect("send");
        let dirty = marks(&wake).await;
        assert!(!dirty.all);
        assert_eq!(dirty.tenants.into_iter().collect::<Vec<_>>(), vec![InstallationId(7), InstallationId(9)]);

        drop(first);
        let dirty = marks(&wake).await;
        assert!(dirty.all, "a reopened feed plans for everyone: {dirty:?}");
        assert!(reopens.lock().expect("reopens").is_empty(), "reopened after one failed attempt");

        second.send(StoreWake::Tenants(vec![InstallationId(3)])).expect("send");
        assert_eq!(marks(&wake).await.tenants.into_iter().collect::<Vec<_>>(), vec![InstallationId(3)]);
        second.send(StoreWake::All).expect("send");
        assert!(marks(&wake).await.all);

        stop.cancel();
        task.await.expect("the follower stops");
    }
}
