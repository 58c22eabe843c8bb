//! One tenant: plan, limit, live runners, waiting jobs with reasons, usage and cost per day over a chosen range
//! (a chart), and the operator's actions (set tier / max runners, suspend, resume, approve).

use super::jobs::job_table;
use crate::ui::chart::{Series, bars, significant};
use crate::ui::data::{Job, JobStatus, TenantStatus};
use crate::ui::data::{MAX_USAGE_DAYS, TenantAction, TenantDetail};
use crate::ui::layout::{Nav, badge, empty, frame, live, rendered_at, time};
use crate::ui::{Console, Operator, UiError, UiQuery};
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use ghr_core::tenant::{MAX_RUNNERS_LIMIT, check_max_runners};
use maud::{Markup, html};
use serde::Deserialize;

/// Days of usage shown when no range is chosen.
const DEFAULT_USAGE_DAYS: i64 = 14;
/// Waiting jobs listed on the page.
const WAITING_JOBS_SHOWN: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct TenantParams {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    fragment: Option<String>,
}

fn day(name: &str, value: Option<&str>) -> Result<Option<NaiveDate>, UiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| UiError::bad_request(format!("`{name}` must be a date such as 2026-01-31, not {v:?}")))
        })
        .transpose()
}

/// The message shown after an action (fixed texts: nothing from the URL is echoed).
fn flash(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "tier" => Some("Plan and limit saved; waiting jobs are being planned again."),
        "suspend" => Some("Tenant suspended: no new runners start for it."),
        "resume" => Some("Tenant resumed."),
        "approve" => Some("Tenant approved: its jobs can get runners now."),
        _ => None,
    }
}

pub async fn page(
    operator: Operator,
    State(console): State<Console>,
    Path(reference): Path<String>,
    UiQuery(params): UiQuery<TenantParams>,
) -> Result<Response, UiError> {
    let detail = console.tenant(&reference).await?;
    let today = Utc::now().date_naive();
    let to = day("to", params.to.as_deref())?.unwrap_or(today);
    let from = day("from", params.from.as_deref())?.unwrap_or(to - Duration::days(DEFAULT_USAGE_DAYS - 1));
    if from > to {
        return Err(UiError::bad_request("`from` must be on or before `to`: pick an earlier start date"));
    }
    if (to - from).num_days() >= MAX_USAGE_DAYS {
        return Err(UiError::bad_request(format!("the usage range is at most {MAX_USAGE_DAYS} days: narrow it")));
    }
    let login = detail.tenant.org_name.to_string();
    let tenant_id = Some(detail.tenant.installation_id.to_string());
    let waiting = console.jobs(tenant_id, Some(JobStatus::Queued), None, WAITING_JOBS_SHOWN, None).await?.items;
    let section = live_section(&detail, &waiting);
    if params.fragment.as_deref() == Some("1") {
        return Ok(section.into_response());
    }
    let start = Utc.from_utc_datetime(&from.and_hms_opt(0, 0, 0).unwrap_or_default());
    let end = Utc.from_utc_datetime(&(to + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap_or_default());
    let usage = console.daily_usage(&login, start, end).await?;
    let labels: Vec<String> = usage.iter().map(|d| d.day.format("%m-%d").to_string()).collect();
    let hours = [Series { name: "runner-hours", values: usage.iter().map(|d| Some(d.runner_hours)).collect() }];
    let cost = [Series { name: "cost", values: usage.iter().map(|d| Some(d.cost)).collect() }];
    let total_cost: f64 = usage.iter().map(|d| d.cost).sum();
    let total_hours: f64 = usage.iter().map(|d| d.runner_hours).sum();
    let body = html! {
        @if let Some(message) = flash(params.done.as_deref()) { p.alert.good #flash role="status" { (message) } }
        (live(section))
        div.cards {
            (actions(&operator, &detail, &console.tier_names()))
        }
        section.card #usage {
            h2 { "Usage and cost" }
            form.filters method="get" action={ "/ui/tenants/" (login) } {
                label for="from" { "From" } input type="date" id="from" name="from" value=(from);
                label for="to" { "To" } input type="date" id="to" name="to" value=(to);
                button type="submit" { "Show" }
            }
            p.muted.small #usage-total data-runner-hours=(total_hours) data-cost=(total_cost) {
                (significant(total_hours)) " runner-hours, cost " (significant(total_cost)) " from " (from) " to " (to) " (UTC days)."
            }
            (bars("usage-chart", "Runner-hours per day", &labels, &hours, &|v| format!("{} h", significant(v))))
            (bars("cost-chart", "Cost per day", &labels, &cost, &|v| significant(v)))
        }
    };
    Ok(frame(&operator, Nav::Tenants, &format!("Tenant {login}"), body).into_response())
}

fn live_section(d: &TenantDetail, waiting: &[Job]) -> Markup {
    let t = &d.tenant;
    let total: u32 = d.waiting_jobs.values().sum();
    html! {
        div.cards {
            section.card.stat #tenant-summary data-live=(d.live_runners) data-max=(t.max_runners) data-waiting=(total) data-tier=(t.tier) data-status=(t.status.as_str()) {
                h2 { "Plan" }
                div.kv { span { "Status" } span #status { (badge(t.status.as_str())) } }
                div.kv { span { "Plan (tier)" } strong #plan { (t.tier) } }
                div.kv { span { "Max runners" } strong #max-runners { (t.max_runners) } }
                div.kv { span { "Live runners" } strong #live-runners { (d.live_runners) } }
                meter min="0" max=(t.max_runners) value=(d.live_runners) {}
                @if d.live_runners >= t.max_runners { p { (badge("at limit")) } }
                div.kv { span { "Installation" } span { (t.installation_id) } }
                div.kv { span { "Since" } span { (time(t.created_at)) } }
            }
            section.card.stat #live-by-tier {
                h2 { "Live by tier" }
                @if d.live_by_tier.is_empty() { (empty("No live runners.")) }
                @for (tier, n) in &d.live_by_tier { div.kv { span { (tier) } strong { (n) } } }
            }
            section.card.stat #waiting-reasons {
                h2 { "Waiting jobs" }
                @if d.waiting_jobs.is_empty() { (empty("Nothing waits.")) }
                @for (reason, n) in &d.waiting_jobs { div.kv data-reason=(reason) { span { (badge(reason)) } strong { (n) } } }
            }
        }
        section.card {
            h2 { "Queued jobs" }
            (job_table(waiting, None))
            p.small {
                a href={ "/ui/jobs?tenant=" (t.org_name) } { "All jobs of " (t.org_name) }
                " · "
                a href={ "/ui/runners?tenant=" (t.org_name) } { "Live runners of " (t.org_name) }
            }
        }
        (rendered_at())
    }
}

fn actions(operator: &Operator, d: &TenantDetail, tiers: &[String]) -> Markup {
    let t = &d.tenant;
    let base = format!("/ui/tenants/{}", t.org_name);
    html! {
        section.card #actions {
            h2 { "Plan and limit" }
            form.stack method="post" action={ (base) "/tier" } id="tier-form" {
                input type="hidden" name="csrf" value=(operator.csrf);
                label for="tier" { "Tier" }
                select name="tier" id="tier" {
                    @for name in tiers { option value=(name) selected[name.as_str() == t.tier.as_str()] { (name) } }
                }
                label for="max_runners" { "Max runners " span.muted { "(empty: the tier's limit)" } }
                input type="number" id="max_runners" name="max_runners" min="1" value=(t.max_runners);
                button.primary type="submit" id="save-tier" { "Save plan" }
            }
        }
        section.card #status-actions {
            h2 { "Status" }
            @let choices: &[(&str, &str, &str)] = match t.status {
                TenantStatus::Pending => &[("approve", "Approve", "primary"), ("suspend", "Suspend", "danger")],
                TenantStatus::Active => &[("suspend", "Suspend", "danger")],
                TenantStatus::Suspended => &[("resume", "Resume", "primary")],
                TenantStatus::Deleted => &[],
            };
            @if choices.is_empty() { (empty("The App was uninstalled: nothing to do until it is installed again.")) }
            @for (action, label, tone) in choices {
                form.inline method="post" action={ (base) "/" (action) } {
                    input type="hidden" name="csrf" value=(operator.csrf);
                    button class=(tone) type="submit" id={ "action-" (action) } { (label) }
                }
            }
            p.muted.small { "Suspending stops new runners; running jobs finish. Approving lets a pending tenant's jobs get runners." }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct TierForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    max_runners: String,
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn bad_form(rejection: FormRejection) -> UiError {
    UiError::bad_request(format!("the form could not be read: {}", rejection.body_text()))
}

/// A form body over the server's limit is answered as such (413), before the CSRF check would call its token
/// missing; nothing is changed either way.
fn refuse_oversized<T>(form: &Result<Form<T>, FormRejection>) -> Result<(), UiError> {
    match form {
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(UiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the form is larger than the server accepts: send only the form's own fields",
        )),
        _ => Ok(()),
    }
}

pub async fn set_tier(
    operator: Operator,
    State(console): State<Console>,
    Path(reference): Path<String>,
    headers: HeaderMap,
    form: Result<Form<TierForm>, FormRejection>,
) -> Result<Response, UiError> {
    refuse_oversized(&form)?;
    let csrf = form.as_ref().map(|Form(f)| f.csrf.clone()).unwrap_or_default();
    operator.check_post(&headers, &csrf)?;
    let Form(form) = form.map_err(bad_form)?;
    let tier = form.tier.trim();
    if tier.is_empty() {
        return Err(UiError::bad_request("choose a tier"));
    }
    let max_runners = match form.max_runners.trim() {
        "" => None,
        value => {
            let n = value.parse::<u32>().map_err(|_| {
                UiError::bad_request(format!(
                    "max runners must be a whole number from 1 to {MAX_RUNNERS_LIMIT}, not {value:?}"
                ))
            })?;
            Some(check_max_runners(n).map_err(|e| UiError::bad_request(e.to_string()))?)
        }
    };
    let tenant = console.set_tier(&reference, tier.to_owned(), max_runners).await?;
    Ok(Redirect::to(&format!("/ui/tenants/{}?done=tier", tenant.org_name)).into_response())
}

pub async fn action(
    operator: Operator,
    State(console): State<Console>,
    Path((reference, action)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, UiError> {
    refuse_oversized(&form)?;
    let csrf = form.as_ref().map(|Form(f)| f.csrf.clone()).unwrap_or_default();
    operator.check_post(&headers, &csrf)?;
    let action = match action.as_str() {
        "suspend" => TenantAction::Suspend,
        "resume" => TenantAction::Resume,
        "approve" => TenantAction::Approve,
        other => {
            return Err(UiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?}: use tier, suspend, resume or approve"),
            ));
        }
    };
    let tenant = console.tenant_action(&reference, action).await?;
    Ok(Redirect::to(&format!("/ui/tenants/{}?done={}", tenant.org_name, action.as_str())).into_response())
}
