//! Between the GitHub emulator and ghr: the network, as the simulation's scheduler wants it.
//!
//! The emulator posts every webhook here. A first delivery is, by a seeded draw, handed to ghr at once (its
//! answer is the emulator's record of the delivery), dropped (GitHub records a failed delivery: only ghr's
//! recovery can bring it back), delayed (parked; handed over later, in any order) or duplicated (handed over
//! now and again later). While ghr is down every delivery fails. A redelivery — which the emulator sends in
//! the background when ghr asks for it — is always parked, so that nothing happens between the scheduler's
//! steps. Parked deliveries are answered 202 to the emulator and are therefore never lost: one that ghr fails
//! when it is handed over is parked again (the sender retries an in-flight request).

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tower::ServiceExt;

/// Mixed into the seed so the network draws differ from the scheduler's.
const NETWORK_SEED_SALT: u64 = 0x0005_eed0_f0e7;
/// The largest webhook body the receiver accepts (GitHub's cap).
const MAX_BODY: usize = 25 * 1024 * 1024;

/// How first deliveries are treated, in percent (the rest are handed over at once).
#[derive(Debug, Clone, Copy)]
pub struct NetworkFaults {
    pub drop_percent: u32,
    pub delay_percent: u32,
    pub duplicate_percent: u32,
}

impl NetworkFaults {
    pub const NONE: NetworkFaults = NetworkFaults { drop_percent: 0, delay_percent: 0, duplicate_percent: 0 };
}

/// A delivery held back.
#[derive(Clone)]
pub struct Parked {
    /// Stable order key (event, action, job or installation id, arrival number), independent of timing.
    pub key: (String, String, u64, u64),
    headers: HeaderMap,
    body: axum::body::Bytes,
}

struct State {
    /// ghr's webhook router; None while ghr is down.
    ghr: Option<Router>,
    faults: NetworkFaults,
    rng: StdRng,
    seen: BTreeSet<String>,
    parked: Vec<Parked>,
    arrivals: u64,
    redeliveries: u64,
    dropped: u64,
}

/// The receiver. Cheap to clone.
#[derive(Clone)]
pub struct Receiver {
    state: Arc<Mutex<State>>,
    pub addr: SocketAddr,
}

impl Receiver {
    pub async fn start(seed: u64) -> std::io::Result<Receiver> {
        let state = Arc::new(Mutex::new(State {
            ghr: None,
            faults: NetworkFaults::NONE,
            rng: StdRng::seed_from_u64(seed ^ NETWORK_SEED_SALT),
            seen: BTreeSet::new(),
            parked: Vec::new(),
            arrivals: 0,
            redeliveries: 0,
            dropped: 0,
        }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let receiver = Receiver { state, addr };
        let handler = receiver.clone();
        let app = Router::new().fallback(move |request: Request<Body>| {
            let handler = handler.clone();
            async move { handler.receive(request).await }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(receiver)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }

    /// Route deliveries to this ghr (None: ghr is down, deliveries fail).
    pub fn set_ghr(&self, router: Option<Router>) {
        self.lock().ghr = router;
    }

    pub fn set_faults(&self, faults: NetworkFaults) {
        self.lock().faults = faults;
    }

    /// Redeliveries received so far.
    pub fn redeliveries(&self) -> u64 {
        self.lock().redeliveries
    }

    /// First deliveries dropped so far.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    pub fn parked_count(&self) -> usize {
        self.lock().parked.len()
    }

    /// Take the parked delivery at `index` of the stable order.
    pub fn unpark(&self, index: usize) -> Option<Parked> {
        let mut state = self.lock();
        state.parked.sort_by(|a, b| a.key.cmp(&b.key));
        (index < state.parked.len()).then(|| state.parked.remove(index))
    }

    /// Hand a parked delivery to ghr; if ghr is down or fails it, it is parked again. Returns ghr's status.
    pub async fn hand_over(&self, parked: Parked) -> Option<StatusCode> {
        let ghr = self.lock().ghr.clone();
        let status = match ghr {
            Some(router) => Some(forward(router, &parked.headers, parked.body.clone()).await),
            None => None,
        };
        if !status.is_some_and(|s| s.is_success()) {
            self.lock().parked.push(parked);
        }
        status
    }

    async fn receive(&self, request: Request<Body>) -> Response {
        let (parts, body) = request.into_parts();
        let Ok(body) = to_bytes(body, MAX_BODY).await else {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let guid = header(&parts.headers, "x-github-delivery");
        let (ghr, decision) = {
            let mut state = self.lock();
            state.arrivals += 1;
            let key = order_key(&parts.headers, &body, state.arrivals);
            let parked = Parked { key, headers: parts.headers.clone(), body: body.clone() };
            if !state.seen.insert(guid) {
                // A redelivery: arrives in the background; parked so that it is handed over by a step.
                state.redeliveries += 1;
                state.parked.push(parked);
                return StatusCode::ACCEPTED.into_response();
            }
            let Some(ghr) = state.ghr.clone() else {
                state.dropped += 1;
                return (StatusCode::BAD_GATEWAY, "ghr is down").into_response();
            };
            let faults = state.faults;
            let draw = state.rng.random_range(0..100u32);
            let decision = if draw < faults.drop_percent {
                state.dropped += 1;
                return (StatusCode::BAD_GATEWAY, "dropped by the simulated network").into_response();
            } else if draw < faults.drop_percent + faults.delay_percent {
                state.parked.push(parked);
                return StatusCode::ACCEPTED.into_response();
            } else if draw < faults.drop_percent + faults.delay_percent + faults.duplicate_percent {
                state.parked.push(parked);
                "duplicate"
            } else {
                "now"
            };
            (ghr, decision)
        };
        let status = forward(ghr, &parts.headers, body).await;
        tracing::trace!(decision, %status, "delivery handed to ghr");
        status.into_response()
    }
}

async fn forward(router: Router, headers: &HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let mut request = Request::post("/webhook").body(Body::from(body)).unwrap_or_default();
    *request.headers_mut() = headers.clone();
    match router.oneshot(request).await {
        Ok(response) => response.status(),
        Err(never) => match never {},
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// (event, action, job or installation id, arrival): orders parked deliveries without depending on timing
/// (arrival only breaks ties between identical deliveries).
fn order_key(headers: &HeaderMap, body: &[u8], arrival: u64) -> (String, String, u64, u64) {
    let event = header(headers, "x-github-event");
    let payload: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let action = payload["action"].as_str().unwrap_or_default().to_owned();
    let id = payload["workflow_job"]["id"].as_u64().or_else(|| payload["installation"]["id"].as_u64()).unwrap_or(0);
    (event, action, id, arrival)
}
