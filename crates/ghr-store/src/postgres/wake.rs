//! Wake-ups across replicas: `LISTEN` on the schema's channel, which the triggers of the first migration
//! notify when a change commits that may let a waiting job start. Payloads are `<origin>:<installation>`;
//! a store skips its own (its engine already woke itself).

use crate::codec::backend;
use async_trait::async_trait;
use ghr_core::ids::InstallationId;
use ghr_core::ports::{StoreError, StoreWake, WakeFeed};
use sqlx::PgPool;
use sqlx::postgres::PgListener;

const OP_LISTEN: &str = "wake_feed";
/// The channel of a schema's wake-ups (the triggers build the same name from `current_schema()`).
pub(super) const CHANNEL_PREFIX: &str = "ghr_wake_";
/// Notifications already received are handed out together, up to this many tenants at a time.
const MAX_TENANTS_PER_WAKE: usize = 256;

/// A listening connection of one store.
pub(super) struct PgWakeFeed {
    listener: PgListener,
    origin: String,
    /// A connection was lost since the last wake-up: changes may have been missed.
    reconnected: bool,
}

impl PgWakeFeed {
    pub(super) async fn listen(pool: &PgPool, schema: &str, origin: &str) -> Result<Self, StoreError> {
        let mut listener = PgListener::connect_with(pool).await.map_err(backend(OP_LISTEN))?;
        listener.listen(&format!("{CHANNEL_PREFIX}{schema}")).await.map_err(backend(OP_LISTEN))?;
        Ok(Self { listener, origin: origin.to_owned(), reconnected: false })
    }

    /// The tenant a payload names, unless this store wrote it (or it does not parse).
    fn tenant(&self, payload: &str) -> Option<InstallationId> {
        let (origin, id) = payload.rsplit_once(':')?;
        if origin == self.origin {
            return None;
        }
        id.parse().ok().map(InstallationId)
    }
}

#[async_trait]
impl WakeFeed for PgWakeFeed {
    async fn next(&mut self) -> Result<StoreWake, StoreError> {
        loop {
            if std::mem::take(&mut self.reconnected) {
                return Ok(StoreWake::All);
            }
            // `try_recv` answers `None` when the connection was lost (it reconnects on the next call):
            // whatever was notified meanwhile is gone, so the caller looks at everything.
            let Some(first) = self.listener.try_recv().await.map_err(backend(OP_LISTEN))? else {
                self.reconnected = true;
                continue;
            };
            let mut tenants: Vec<InstallationId> = self.tenant(first.payload()).into_iter().collect();
            // Gather what already arrived, without waiting for more.
            while tenants.len() < MAX_TENANTS_PER_WAKE {
                match self.listener.next_buffered() {
                    Some(notification) => tenants.extend(self.tenant(notification.payload())),
                    None => break,
                }
            }
            if !tenants.is_empty() {
                tenants.sort_unstable();
                tenants.dedup();
                return Ok(StoreWake::Tenants(tenants));
            }
        }
    }
}
