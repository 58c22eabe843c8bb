//! The tenants list: every tenant with its plan, live runners against its limit and waiting jobs.

use super::overview::tenant_table;
use crate::ui::data::TenantStatus;
use crate::ui::layout::{Nav, badge, frame, live, rendered_at};
use crate::ui::{Console, Operator, UiError, UiQuery};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct TenantsParams {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    fragment: Option<String>,
}

pub async fn page(
    operator: Operator,
    State(console): State<Console>,
    UiQuery(params): UiQuery<TenantsParams>,
) -> Result<Response, UiError> {
    let status = match params.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<TenantStatus>().map_err(|e| UiError::bad_request(format!("status filter: {e}")))?),
    };
    let (all, details) = console.tenants(status).await?;
    let deleted: Vec<_> = all.iter().filter(|t| t.status == TenantStatus::Deleted).collect();
    let section = html! {
        section.card {
            (tenant_table(&details))
            @if details.len() < all.len() - deleted.len() { p.muted.small { "Only the first tenants are detailed." } }
        }
        @if !deleted.is_empty() {
            section.card {
                h2 { "Deleted (uninstalled)" }
                table.data { tbody { @for t in &deleted { tr { td { (t.org_name) } td { (badge("deleted")) } td { (t.installation_id) } } } } }
            }
        }
        (rendered_at())
    };
    if params.fragment.as_deref() == Some("1") {
        return Ok(section.into_response());
    }
    let body = html! {
        form.filters method="get" action="/ui/tenants" {
            label for="status" { "Status" }
            select name="status" id="status" {
                option value="" { "any" }
                @for s in TenantStatus::ALL {
                    option value=(s.as_str()) selected[status == Some(*s)] { (s.as_str()) }
                }
            }
            button type="submit" { "Filter" }
        }
        (live(section))
    };
    Ok(frame(&operator, Nav::Tenants, "Tenants", body).into_response())
}
