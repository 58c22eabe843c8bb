//! Webhook deliveries: each one is sent by its own background task, signed, recorded with the
//! receiver's answer, and can be redelivered with the same GUID.

use super::state::DeliveryRecord;
use super::{EmulatorError, Shared};
use crate::github::info::DeliveryInfo;
use crate::webhook::{SignedDelivery, new_guid};
use chrono::Utc;
use ghr_core::ids::InstallationId;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

/// The status code recorded when nothing answered (unreachable, timed out, dropped, no target): GitHub
/// records an unreachable receiver as 502 `failed to connect to host`, in the `failure` range of its filter.
pub(crate) const STATUS_CODE_UNDELIVERED: u16 = 502;
/// GitHub's `status` text for a receiver it could not reach.
const STATUS_UNREACHABLE: &str = "failed to connect to host";
/// GitHub's `status` text for a receiver that did not answer in time.
const STATUS_TIMED_OUT: &str = "timed out";

/// A delivery about to be attempted.
pub(crate) struct Outgoing {
    pub(crate) event: String,
    pub(crate) action: Option<String>,
    pub(crate) installation_id: Option<u64>,
    pub(crate) repository_id: Option<u64>,
    pub(crate) payload: Arc<Vec<u8>>,
    pub(crate) guid: String,
    pub(crate) redelivery: bool,
}

impl Outgoing {
    /// A first delivery of `payload` (its `action` is read from the payload).
    pub(crate) fn new(event: &str, payload: &Value, installation_id: Option<u64>, repository_id: Option<u64>) -> Self {
        Self {
            event: event.to_owned(),
            action: payload.get("action").and_then(Value::as_str).map(str::to_owned),
            installation_id,
            repository_id,
            payload: Arc::new(payload.to_string().into_bytes()),
            guid: new_guid(),
            redelivery: false,
        }
    }
}

/// Send a delivery from a background task; the handle yields its record once answered or dropped.
pub(crate) fn dispatch(shared: &Arc<Shared>, outgoing: Outgoing) -> JoinHandle<DeliveryInfo> {
    let shared = shared.clone();
    tokio::spawn(async move { deliver(&shared, outgoing).await })
}

/// Wait for a dispatched delivery.
pub(crate) async fn finish(handle: JoinHandle<DeliveryInfo>) -> Result<DeliveryInfo, EmulatorError> {
    handle.await.map_err(|source| EmulatorError::DeliveryTask { source })
}

/// Attempt a recorded delivery again, with the same GUID and payload. None when it is unknown.
pub(crate) fn redeliver(shared: &Arc<Shared>, delivery_id: u64) -> Option<JoinHandle<DeliveryInfo>> {
    let outgoing = {
        let state = shared.lock();
        let record = state.deliveries.get(&delivery_id)?;
        Outgoing {
            event: record.event.clone(),
            action: record.action.clone(),
            installation_id: record.installation_id,
            repository_id: record.repository_id,
            payload: record.payload.clone(),
            guid: record.guid.clone(),
            redelivery: true,
        }
    };
    Some(dispatch(shared, outgoing))
}

async fn deliver(shared: &Shared, outgoing: Outgoing) -> DeliveryInfo {
    let (id, dropped, target) = {
        let mut state = shared.lock();
        let id = state.next_id();
        let turn = state.webhook_turn % (state.webhook_alternates.len() + 1);
        state.webhook_turn = state.webhook_turn.wrapping_add(1);
        let target = state.webhook_target.clone().map(|mut target| {
            if turn > 0 {
                target.url = state.webhook_alternates[turn - 1].clone();
            }
            target
        });
        (id, state.faults.take_webhook_drop(), target)
    };
    let delivered_at = Utc::now();
    let started = Instant::now();
    let (status_code, status, sent) = match (&target, dropped) {
        (_, true) => (STATUS_CODE_UNDELIVERED, STATUS_UNREACHABLE.to_owned(), false),
        (None, false) => (STATUS_CODE_UNDELIVERED, STATUS_UNREACHABLE.to_owned(), false),
        (Some(target), false) => {
            let request = SignedDelivery::from_body(
                &outgoing.event,
                outgoing.payload.as_ref().clone(),
                target.secret.expose_secret().as_bytes(),
            )
            .with_guid(outgoing.guid.clone())
            .with_target_id(shared.config.app_id);
            match request.send(&shared.http, &target.url).await {
                Ok(response) => {
                    let code = response.status();
                    // Read the body so the connection can be reused; its content does not matter.
                    let _ = response.bytes().await;
                    let status = if code.is_success() {
                        "OK".to_owned()
                    } else {
                        format!("Invalid HTTP Response: {}", code.as_u16())
                    };
                    (code.as_u16(), status, true)
                }
                Err(error) if error.is_timeout() => (STATUS_CODE_UNDELIVERED, STATUS_TIMED_OUT.to_owned(), true),
                Err(_) => (STATUS_CODE_UNDELIVERED, STATUS_UNREACHABLE.to_owned(), true),
            }
        }
    };
    let record = DeliveryRecord {
        id,
        guid: outgoing.guid,
        event: outgoing.event,
        action: outgoing.action,
        installation_id: outgoing.installation_id,
        repository_id: outgoing.repository_id,
        delivered_at,
        duration: started.elapsed(),
        status,
        status_code,
        redelivery: outgoing.redelivery,
        dropped: !sent,
        payload: outgoing.payload,
    };
    let info = info(&record);
    tracing::debug!(delivery = id, event = %info.event, status_code, "webhook delivery attempted");
    let mut state = shared.lock();
    if sent {
        state.counters.webhooks_sent += 1;
        if !info.succeeded() {
            state.counters.webhooks_failed += 1;
        }
    } else {
        state.counters.webhooks_dropped += 1;
    }
    state.deliveries.insert(id, record);
    while state.deliveries.len() > shared.config.delivery_log_limit.max(1) {
        state.deliveries.pop_first();
    }
    info
}

/// The public view of a delivery record.
pub(crate) fn info(record: &DeliveryRecord) -> DeliveryInfo {
    DeliveryInfo {
        id: record.id,
        guid: record.guid.clone(),
        event: record.event.clone(),
        action: record.action.clone(),
        installation_id: record.installation_id.map(InstallationId),
        repository_id: record.repository_id,
        delivered_at: record.delivered_at,
        status_code: record.status_code,
        redelivery: record.redelivery,
        dropped: record.dropped,
    }
}
