//! API Gateway's HTTP API in front of the webhook function: the payload format 2.0 event of a `POST /webhook`
//! (GitHub's headers, the raw body as text, `isBase64Encoded: false`), the function's answer read back as an
//! HTTP response, and a tiny HTTP server doing both, so the GitHub emulator delivers its signed webhooks to
//! the webhook function exactly as GitHub delivers them to the seed's endpoint.

use super::function::Function;
use super::runtime_api::ACCOUNT_ID;
use super::{REGION, event_source};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// The route of the seed's webhook endpoint.
pub const WEBHOOK_PATH: &str = "/webhook";
/// The API id in the events' request context.
const API_ID: &str = "ghrtestapi";
/// The address GitHub's hooks come from, as API Gateway reports the source.
const SOURCE_IP: &str = "192.30.252.1";
/// How long API Gateway waits for the function (its integration timeout).
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The payload 2.0 event of a `POST {WEBHOOK_PATH}` with `headers` and `body`.
pub fn webhook_event(headers: &[(String, String)], body: &[u8]) -> Value {
    let mut map = Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        // API Gateway joins repeated headers with commas.
        let joined = match map.get(&name).and_then(Value::as_str) {
            Some(previous) => format!("{previous},{value}"),
            None => value.clone(),
        };
        map.insert(name, Value::from(joined));
    }
    let user_agent = map.get("user-agent").cloned().unwrap_or(Value::from(""));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    json!({
        "version": "2.0",
        "routeKey": format!("POST {WEBHOOK_PATH}"),
        "rawPath": WEBHOOK_PATH,
        "rawQueryString": "",
        "headers": map,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": format!("{API_ID}.execute-api.{REGION}.amazonaws.com"),
            "domainPrefix": API_ID,
            "http": {
                "method": "POST",
                "path": WEBHOOK_PATH,
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": user_agent,
            },
            "requestId": format!("{:x}", now.as_nanos()),
            "routeKey": format!("POST {WEBHOOK_PATH}"),
            "stage": "$default",
            "time": event_source::rfc3339(now.as_secs()),
            "timeEpoch": now.as_millis() as u64,
        },
        "body": body,
        "isBase64Encoded": encoded,
    })
}

/// The function's answer as API Gateway turns it into an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Read a payload 2.0 answer (`statusCode`, `headers`, `body`, `isBase64Encoded`).
pub fn read_answer(answer: &Value) -> HttpAnswer {
    let status = answer.get("statusCode").and_then(Value::as_u64).unwrap_or(200) as u16;
    let headers = answer
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| h.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default();
    let text = answer.get("body").and_then(Value::as_str).unwrap_or_default();
    let body = if answer.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        base64::engine::general_purpose::STANDARD.decode(text).expect("a base64 body")
    } else {
        text.as_bytes().to_vec()
    };
    HttpAnswer { status, headers, body }
}

/// The HTTP API in front of the webhook function, on `127.0.0.1`: every `POST {WEBHOOK_PATH}` becomes one
/// invocation.
pub struct HttpApi {
    pub addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for HttpApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl HttpApi {
    pub async fn start(webhook: Arc<Function>) -> HttpApi {
        let router = Router::new().route(WEBHOOK_PATH, post(forward)).with_state(webhook);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("binding the HTTP API");
        let addr = listener.local_addr().expect("the HTTP API's address");
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("the HTTP API serves");
        });
        HttpApi { addr, server }
    }

    /// The endpoint GitHub delivers to (the seed's `webhook_endpoint` output).
    pub fn webhook_url(&self) -> String {
        format!("http://{}{WEBHOOK_PATH}", self.addr)
    }
}

async fn forward(State(webhook): State<Arc<Function>>, headers: HeaderMap, body: Bytes) -> Response {
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    match webhook.invoke(webhook_event(&headers, &body), INTEGRATION_TIMEOUT).await {
        Ok(answer) => {
            let answer = read_answer(&answer);
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = (status, answer.body).into_response();
            for (name, value) in answer.headers {
                if let (Ok(name), Ok(value)) =
                    (name.parse::<axum::http::HeaderName>(), value.parse::<axum::http::HeaderValue>())
                {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        // API Gateway answers 500 `Internal Server Error` when the integration fails.
        Err(error) => {
            eprintln!("the webhook function failed: {error}");
            (StatusCode::INTERNAL_SERVER_ERROR, r#"{"message":"Internal Server Error"}"#).into_response()
        }
    }
}
