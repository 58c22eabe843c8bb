//! Installation access tokens: cached per installation, refreshed before expiry, one refresh at a time.

use super::jwt::delta;
use chrono::Utc;
use ghr_core::Timestamp;
use ghr_core::ids::InstallationId;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A cached token is replaced once it has less than this left to live (GitHub's tokens live one hour).
pub const DEFAULT_TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// An installation access token (`POST /app/installations/{id}/access_tokens`).
#[derive(Debug, Clone, Deserialize)]
pub struct InstallationToken {
    pub token: SecretString,
    pub expires_at: Timestamp,
}

type Slot = Arc<tokio::sync::Mutex<Option<InstallationToken>>>;

/// Per-installation token cache. Each installation has its own async lock around its entry, so
/// concurrent callers for one installation share a single refresh while other installations proceed.
#[derive(Debug)]
pub struct TokenCache {
    refresh_margin: Duration,
    slots: Mutex<HashMap<InstallationId, Slot>>,
}

impl TokenCache {
    pub fn new(refresh_margin: Duration) -> Self {
        Self { refresh_margin, slots: Mutex::new(HashMap::new()) }
    }

    /// The cached token of `installation` if it is fresh, else the one `fetch` obtains (which is then cached).
    /// Only one `fetch` runs per installation at a time; callers arriving meanwhile wait and reuse its result.
    pub async fn get<F, Fut, E>(&self, installation: InstallationId, fetch: F) -> Result<InstallationToken, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<InstallationToken, E>>,
    {
        let slot = self.slot(installation);
        let mut entry = slot.lock().await;
        if let Some(token) = entry.as_ref()
            && self.is_fresh(token, Utc::now())
        {
            return Ok(token.clone());
        }
        let token = fetch().await?;
        *entry = Some(token.clone());
        Ok(token)
    }

    /// Drop the cached token of `installation` if it is still `rejected` (GitHub refused it with a 401).
    /// A token another caller has refreshed meanwhile is kept.
    pub async fn invalidate(&self, installation: InstallationId, rejected: &SecretString) {
        let slot = self.slot(installation);
        let mut entry = slot.lock().await;
        if entry.as_ref().is_some_and(|token| token.token.expose_secret() == rejected.expose_secret()) {
            *entry = None;
        }
    }

    /// Forget an installation entirely (it was deleted).
    pub fn forget(&self, installation: InstallationId) {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).remove(&installation);
    }

    fn is_fresh(&self, token: &InstallationToken, now: Timestamp) -> bool {
        token.expires_at.checked_sub_signed(delta(self.refresh_margin)).is_some_and(|refresh_at| refresh_at > now)
    }

    fn slot(&self, installation: InstallationId) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(installation).or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn token(value: &str, lives: TimeDelta) -> InstallationToken {
        InstallationToken { token: SecretString::from(value.to_owned()), expires_at: Utc::now() + lives }
    }

    #[tokio::test]
    async fn fresh_tokens_are_reused_and_stale_ones_refreshed() {
        let cache = TokenCache::new(Duration::from_secs(300));
        let fetches = AtomicU32::new(0);
        let fetch = |lives| {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, ()>(token(&format!("t{n}"), lives)) }
        };
        let id = InstallationId(1);
        let a = cache.get(id, || fetch(TimeDelta::hours(1))).await.unwrap();
        let b = cache.get(id, || fetch(TimeDelta::hours(1))).await.unwrap();
        assert_eq!(a.token.expose_secret(), "t0");
        assert_eq!(b.token.expose_secret(), "t0");
        // Another installation has its own entry.
        let other = cache.get(InstallationId(2), || fetch(TimeDelta::minutes(4))).await.unwrap();
        assert_eq!(other.token.expose_secret(), "t1");
        // Inside the refresh margin (4 min < 5 min): refreshed on next use.
        let again = cache.get(InstallationId(2), || fetch(TimeDelta::hours(1))).await.unwrap();
        assert_eq!(again.token.expose_secret(), "t2");
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(300)));
        let fetches = Arc::new(AtomicU32::new(0));
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, fetches, mut release) = (cache.clone(), fetches.clone(), release_rx.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(InstallationId(9), || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        // Hold the refresh open until every caller is queued behind it.
                        release.wait_for(|go| *go).await.map_err(|_| ())?;
                        Ok::<_, ()>(token("shared", TimeDelta::hours(1)))
                    })
                    .await
            }));
        }
        tokio::task::yield_now().await;
        release_tx.send(true).unwrap();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().token.expose_secret(), "shared");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn invalidate_drops_only_the_rejected_token() {
        let cache = TokenCache::new(Duration::from_secs(1));
        let id = InstallationId(3);
        cache.get(id, || async { Ok::<_, ()>(token("current", TimeDelta::hours(1))) }).await.unwrap();
        cache.invalidate(id, &SecretString::from("older".to_owned())).await;
        let kept = cache.get(id, || async { Ok::<_, ()>(token("new", TimeDelta::hours(1))) }).await.unwrap();
        assert_eq!(kept.token.expose_secret(), "current");
        cache.invalidate(id, &SecretString::from("current".to_owned())).await;
        let replaced = cache.get(id, || async { Ok::<_, ()>(token("new", TimeDelta::hours(1))) }).await.unwrap();
        assert_eq!(replaced.token.expose_secret(), "new");
    }

    #[tokio::test]
    async fn failed_refresh_is_reported_and_not_cached() {
        let cache = TokenCache::new(Duration::from_secs(1));
        let id = InstallationId(4);
        let err = cache.get(id, || async { Err::<InstallationToken, _>("boom") }).await.unwrap_err();
        assert_eq!(err, "boom");
        let ok = cache.get(id, || async { Ok::<_, &str>(token("later", TimeDelta::hours(1))) }).await.unwrap();
        assert_eq!(ok.token.expose_secret(), "later");
    }

    #[test]
    fn huge_margin_never_counts_as_fresh_and_does_not_panic() {
        let cache = TokenCache::new(Duration::MAX);
        assert!(!cache.is_fresh(&token("x", TimeDelta::hours(1)), Utc::now()));
    }
}
