//! One job: its details, the answer to "why is my job waiting?", and its timeline.

use crate::ui::data::JobDetail;
use crate::ui::layout::{Nav, badge, dash, frame, live, rendered_at, time};
use crate::ui::{Console, Fragment, Operator, UiError, UiQuery};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

pub async fn page(
    operator: Operator,
    State(console): State<Console>,
    Path(id): Path<String>,
    UiQuery(fragment): UiQuery<Fragment>,
) -> Result<Response, UiError> {
    let job_id = id
        .trim()
        .parse::<u64>()
        .map_err(|_| UiError::bad_request(format!("job id {id:?} is not a number: use the job's numeric id")))?;
    let detail = console.job(job_id).await?;
    let login = console.tenant_names().await?.remove(&detail.job.installation_id);
    let section = content(&detail, login.as_deref());
    if fragment.wanted() {
        return Ok(section.into_response());
    }
    Ok(frame(&operator, Nav::Jobs, &format!("Job {job_id}"), live(section)).into_response())
}

fn optional(at: Option<ghr_core::Timestamp>) -> Markup {
    match at {
        Some(at) => time(at),
        None => dash(),
    }
}

fn content(d: &JobDetail, login: Option<&str>) -> Markup {
    let j = &d.job;
    html! {
        section.card.explain {
            h2 { "Why is this job waiting?" }
            p #explanation data-status=(j.status.as_str()) { (d.explanation) }
        }
        div.cards {
            section.card.stat #job-summary {
                h2 { "Job" }
                div.kv { span { "Status" } span { (badge(j.status.as_str())) } }
                div.kv { span { "Repository" } span { (j.repository) } }
                div.kv { span { "Labels" } span { (j.labels.join(", ")) } }
                div.kv { span { "Tier" } span { @match &j.tier { Some(t) => (t), None => (dash()) } } }
                div.kv { span { "Tenant" } span { @match login {
                    Some(login) => a href={ "/ui/tenants/" (login) } { (login) },
                    None => a href={ "/ui/tenants/" (j.installation_id) } { (j.installation_id) },
                } } }
                div.kv { span { "Runner" } span { @match &j.runner_name { Some(r) => (r), None => (dash()) } } }
                div.kv { span { "Conclusion" } span { @match &j.conclusion { Some(c) => (c), None => (dash()) } } }
            }
            section.card.stat {
                h2 { "Times" }
                div.kv { span { "Received" } span { (time(j.received_at)) } }
                div.kv { span { "Queued on GitHub" } span { (optional(j.queued_at)) } }
                div.kv { span { "Started" } span { (optional(j.started_at)) } }
                div.kv { span { "Completed" } span { (optional(j.completed_at)) } }
            }
        }
        section.card {
            h2 { "Timeline" }
            ol.timeline #timeline {
                @for e in &d.timeline {
                    li data-kind=(e.kind) {
                        span.when { (time(e.at)) }
                        span.what { (badge(&e.kind)) }
                        span.detail { (e.detail) }
                    }
                }
            }
        }
        (rendered_at())
    }
}
