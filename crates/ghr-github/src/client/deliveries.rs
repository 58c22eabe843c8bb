//! The App's webhook deliveries (App JWT): one page at a time with GitHub's cursor and status filter,
//! and redelivery of a past attempt.

use super::GithubClient;
use super::http::{Auth, Call};
use super::pages::{PER_PAGE, query_value};
use ghr_core::Timestamp;
use ghr_core::ids::{DeliveryId, InstallationId};
use ghr_core::ports::{DeliveriesPage, DeliveriesRequest, GithubError, HookDelivery};
use reqwest::Method;
use serde::Deserialize;

/// The query parameter GitHub's `Link` header carries the next page's position in.
const CURSOR_PARAM: &str = "cursor";

#[derive(Deserialize)]
pub(crate) struct RawDelivery {
    id: u64,
    guid: String,
    delivered_at: Timestamp,
    redelivery: bool,
    status_code: u16,
    event: String,
    action: Option<String>,
    installation_id: Option<u64>,
}

impl From<RawDelivery> for HookDelivery {
    fn from(raw: RawDelivery) -> Self {
        HookDelivery {
            id: raw.id,
            guid: DeliveryId::new(raw.guid),
            delivered_at: raw.delivered_at,
            redelivery: raw.redelivery,
            status_code: raw.status_code,
            event: raw.event,
            action: raw.action,
            installation_id: raw.installation_id.map(InstallationId),
        }
    }
}

impl GithubClient {
    /// `GET /app/hook/deliveries?per_page&status&cursor`: one page, newest first, and the cursor of the
    /// next page from the `Link` header. `per_page` is clamped to 1..=100.
    pub(crate) async fn deliveries_page(&self, request: &DeliveriesRequest) -> Result<DeliveriesPage, GithubError> {
        let mut url = self.url(&["app", "hook", "deliveries"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("per_page", &request.per_page.clamp(1, PER_PAGE).to_string());
            if let Some(status) = request.status {
                query.append_pair("status", status.as_str());
            }
            if let Some(cursor) = request.cursor.as_deref().filter(|cursor| !cursor.is_empty()) {
                query.append_pair(CURSOR_PARAM, cursor);
            }
        }
        let answer = self.execute(&Call::new(Method::GET, url, Auth::App)).await?;
        let deliveries = answer.json::<Vec<RawDelivery>>()?.into_iter().map(HookDelivery::from).collect();
        let next_cursor = match answer.next_page() {
            None => None,
            Some(next) => {
                Some(query_value(next, CURSOR_PARAM).filter(|cursor| !cursor.is_empty()).ok_or_else(|| {
                    GithubError::decode_message(format!("{}: the next-page link carries no cursor", answer.what()))
                })?)
            }
        };
        Ok(DeliveriesPage { deliveries, next_cursor })
    }

    /// `POST /app/hook/deliveries/{id}/attempts`.
    pub(crate) async fn redeliver_delivery(&self, delivery: u64) -> Result<(), GithubError> {
        let url = self.url(&["app", "hook", "deliveries", &delivery.to_string(), "attempts"]);
        self.execute(&Call::new(Method::POST, url, Auth::App)).await?;
        tracing::info!(delivery, "webhook redelivery requested");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_decode_githubs_shape() {
        let raw: Vec<RawDelivery> = serde_json::from_str(
            r#"[{"id":12345678,"guid":"0b989ba4-242f-11e5-81e1-c7b6966d2516","delivered_at":"2019-06-03T00:57:16Z",
                 "redelivery":false,"duration":0.27,"status":"OK","status_code":200,"event":"workflow_job",
                 "action":"queued","installation_id":123,"repository_id":456,"throttled_at":null},
                {"id":12345679,"guid":"1b989ba4-242f-11e5-81e1-c7b6966d2516","delivered_at":"2019-06-03T00:58:16Z",
                 "redelivery":true,"duration":0.1,"status":"Invalid HTTP Response: 503","status_code":503,
                 "event":"ping","action":null,"installation_id":null,"repository_id":null}]"#,
        )
        .unwrap();
        let deliveries: Vec<HookDelivery> = raw.into_iter().map(HookDelivery::from).collect();
        assert_eq!(deliveries[0].id, 12345678);
        assert_eq!(deliveries[0].guid.as_str(), "0b989ba4-242f-11e5-81e1-c7b6966d2516");
        assert_eq!(deliveries[0].installation_id, Some(InstallationId(123)));
        assert_eq!(deliveries[0].action.as_deref(), Some("queued"));
        assert!(deliveries[1].redelivery);
        assert_eq!(deliveries[1].status_code, 503);
        assert_eq!(deliveries[1].installation_id, None);
    }
}
