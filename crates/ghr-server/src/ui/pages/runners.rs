//! Runners by state, with their age, tenant, tier and the job they run.

use crate::ui::layout::{Nav, age, badge, dash, empty, frame, live, rendered_at};
use crate::ui::{Console, Operator, UiError, UiQuery};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use ghr_api::RunnerStates;
use maud::html;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct RunnersParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    fragment: Option<String>,
}

pub async fn page(
    operator: Operator,
    State(console): State<Console>,
    UiQuery(params): UiQuery<RunnersParams>,
) -> Result<Response, UiError> {
    let state = match params.state.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => RunnerStates::Live,
        Some(text) => text.parse::<RunnerStates>().map_err(|e| UiError::bad_request(format!("state filter: {e}")))?,
    };
    let tenant = params.tenant.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    let mut runners = console.runners(state, tenant.clone()).await?;
    runners.sort_by_key(|r| (r.state, std::cmp::Reverse(r.created_at)));
    let names = console.tenant_names().await?;
    let section = html! {
        section.card {
            @if runners.is_empty() { (empty("No runners in this state.")) } @else {
                table.data #runner-table {
                    thead { tr { th { "Runner" } th { "State" } th { "Tenant" } th { "Tier" } th.num { "Age" } th { "Job" } th { "Last error" } } }
                    tbody {
                        @for r in &runners {
                            tr id={ "runner-" (r.name) } data-state=(r.state.as_str()) {
                                td.mono { (r.name) }
                                td { (badge(r.state.as_str())) }
                                td { @match names.get(&r.installation_id) {
                                    Some(login) => a href={ "/ui/tenants/" (login) } { (login) },
                                    None => (r.installation_id),
                                } }
                                td { (r.tier) }
                                td.num { (age(r.created_at)) }
                                td { @match r.job_id.or(r.intended_job) {
                                    Some(job) => { a href={ "/ui/jobs/" (job) } { (job) } @if r.job_id.is_none() { span.muted { " (intended)" } } },
                                    None => (dash()),
                                } }
                                td.small { @match &r.last_error { Some(e) => (e), None => (dash()) } }
                            }
                        }
                    }
                }
            }
        }
        (rendered_at())
    };
    if params.fragment.as_deref() == Some("1") {
        return Ok(section.into_response());
    }
    let body = html! {
        form.filters method="get" action="/ui/runners" {
            label for="tenant" { "Tenant" }
            input type="text" id="tenant" name="tenant" placeholder="login or installation id" value=(tenant.as_deref().unwrap_or(""));
            label for="state" { "State" }
            select name="state" id="state" {
                @for s in RunnerStates::ALL { option value=(s.as_str()) selected[*s == state] { (s.as_str()) } }
            }
            button type="submit" { "Filter" }
        }
        (live(section))
    };
    Ok(frame(&operator, Nav::Runners, "Runners", body).into_response())
}
