//! The jobs list, filterable by tenant, status and wait reason, newest first.

use crate::ui::data::Reason;
use crate::ui::data::{Job, JobStatus};
use crate::ui::layout::{Nav, badge, dash, duration, empty, frame, live, rendered_at, time};
use crate::ui::{Console, Operator, UiError, UiQuery};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Jobs per page when no limit is given, and the most a page shows.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Default, Deserialize)]
pub struct JobsParams {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    /// The `next_cursor` of the page before (the admin API's cursor, passed through unchanged).
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    fragment: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A table of jobs; `names` maps installations to logins when the table spans tenants.
pub fn job_table(jobs: &[Job], names: Option<&BTreeMap<u64, String>>) -> Markup {
    let now = Utc::now();
    html! {
        @if jobs.is_empty() { (empty("No jobs match.")) } @else {
            table.data #job-table {
                thead { tr {
                    th { "Job" } @if names.is_some() { th { "Tenant" } } th { "Repository" } th { "Tier" } th { "Status" }
                    th { "Waiting because" } th { "Received" } th.num { "Waited" }
                } }
                tbody {
                    @for job in jobs {
                        @let waited = job.started_at.unwrap_or(now) - job.received_at;
                        tr id={ "job-" (job.job_id) } data-status=(job.status.as_str()) {
                            td { a href={ "/ui/jobs/" (job.job_id) } { (job.job_id) } }
                            @if let Some(names) = names {
                                td { @match names.get(&job.installation_id) {
                                    Some(login) => a href={ "/ui/tenants/" (login) } { (login) },
                                    None => (job.installation_id),
                                } }
                            }
                            td { (job.repository) }
                            td { @match &job.tier { Some(t) => (t), None => (dash()) } }
                            td { (badge(job.status.as_str())) }
                            td { @match job.wait_reason { Some(r) => (badge(r.as_str())), None => (dash()) } }
                            td { (time(job.received_at)) }
                            td.num { (duration(waited.num_milliseconds() as f64 / 1000.0)) }
                        }
                    }
                }
            }
        }
    }
}

pub async fn page(
    operator: Operator,
    State(console): State<Console>,
    UiQuery(params): UiQuery<JobsParams>,
) -> Result<Response, UiError> {
    let status = non_empty(&params.status)
        .map(|s| s.parse::<JobStatus>().map_err(|e| UiError::bad_request(format!("status filter: {e}"))))
        .transpose()?;
    let reason = non_empty(&params.reason)
        .map(|r| r.parse::<Reason>().map_err(|e| UiError::bad_request(format!("reason filter: {e}"))))
        .transpose()?;
    let limit =
        match non_empty(&params.limit) {
            None => DEFAULT_LIMIT,
            Some(l) => l.parse::<u32>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                UiError::bad_request(format!("limit must be a number from 1 to {MAX_LIMIT}, not {l:?}"))
            })?,
        };
    let tenant = non_empty(&params.tenant).map(str::to_owned);
    let cursor = non_empty(&params.cursor).map(str::to_owned);
    let first_page = cursor.is_none();
    let jobs = console.jobs(tenant.clone(), status, reason, limit, cursor).await?;
    let names = console.tenant_names().await?;
    let filters = format!(
        "limit={limit}&tenant={}&status={}&reason={}",
        encode(tenant.as_deref().unwrap_or("")),
        status.map_or("", |s| s.as_str()),
        reason.map_or("", |r| r.as_str())
    );
    let section = html! {
        section.card { (job_table(&jobs.items, Some(&names))) }
        p.pager {
            @if !first_page { a #first href={ "/ui/jobs?" (filters) } { "Newest" } " " }
            @if let Some(next) = &jobs.next_cursor {
                a #more href={ "/ui/jobs?" (filters) "&cursor=" (encode(next)) } { "Older jobs" }
            }
        }
        (rendered_at())
    };
    if params.fragment.as_deref() == Some("1") {
        return Ok(section.into_response());
    }
    let body = html! {
        form.filters method="get" action="/ui/jobs" {
            label for="tenant" { "Tenant" }
            input type="text" id="tenant" name="tenant" placeholder="login or installation id" value=(tenant.as_deref().unwrap_or(""));
            label for="status" { "Status" }
            select name="status" id="status" {
                option value="" { "any" }
                @for s in JobStatus::ALL { option value=(s.as_str()) selected[status == Some(*s)] { (s.as_str()) } }
            }
            label for="reason" { "Reason" }
            select name="reason" id="reason" {
                option value="" { "any" }
                @for r in Reason::ALL { option value=(r.as_str()) selected[reason == Some(*r)] { (r.as_str()) } }
            }
            input type="hidden" name="limit" value=(limit);
            button type="submit" { "Filter" }
        }
        (live(section))
    };
    Ok(frame(&operator, Nav::Jobs, "Jobs", body).into_response())
}

/// A query-string value, percent-encoded.
fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
