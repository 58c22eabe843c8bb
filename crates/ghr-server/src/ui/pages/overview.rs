//! The overview: tenants by status, live runners per tier and per tenant against their limits, waiting jobs by
//! reason, the hourly queued → running waits chart, and webhook and GitHub API health.

use crate::ui::chart::{Series, bars};
use crate::ui::data::TenantStatus;
use crate::ui::data::{Health, Overview, TenantDetail, WAIT_CHART_HOURS, WAITS_TTL};
use crate::ui::layout::{Nav, badge, dash, duration, empty, frame, live, rendered_at, time};
use crate::ui::{Console, Fragment, Operator, UiError, UiQuery};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

pub async fn page(
    operator: Operator,
    State(console): State<Console>,
    UiQuery(fragment): UiQuery<Fragment>,
) -> Result<Response, UiError> {
    let overview = console.overview().await?;
    let section = content(&overview);
    if fragment.wanted() {
        return Ok(section.into_response());
    }
    Ok(page_markup(&operator, section).into_response())
}

fn page_markup(operator: &Operator, section: Markup) -> Markup {
    frame(operator, Nav::Overview, "Overview", live(section))
}

/// Whether a tenant runs as many runners as it may.
pub fn at_limit(detail: &TenantDetail) -> bool {
    detail.live_runners >= detail.tenant.max_runners
}

pub fn waiting_total(detail: &TenantDetail) -> u32 {
    detail.waiting_jobs.values().sum()
}

/// The per-tenant table of live runners against limits (shared with the tenants page).
pub fn tenant_table(details: &[TenantDetail]) -> Markup {
    html! {
        @if details.is_empty() {
            (empty("No tenants yet: they appear when the GitHub App is installed."))
        } @else {
            table.data #tenant-table {
                thead { tr { th { "Tenant" } th { "Status" } th { "Plan" } th.num { "Live / max" } th { "" } th.num { "Waiting" } } }
                tbody {
                    @for d in details {
                        @let full = at_limit(d);
                        tr id={ "tenant-" (d.tenant.org_name) } class=[full.then_some("at-limit")]
                            data-live=(d.live_runners) data-max=(d.tenant.max_runners) data-waiting=(waiting_total(d)) {
                            td { a href={ "/ui/tenants/" (d.tenant.org_name) } { (d.tenant.org_name) } }
                            td { (badge(d.tenant.status.as_str())) }
                            td { (d.tenant.tier) }
                            td.num { (d.live_runners) " / " (d.tenant.max_runners) }
                            td { meter min="0" max=(d.tenant.max_runners) value=(d.live_runners) {} @if full { " " (badge("at limit")) } }
                            td.num { (waiting_total(d)) }
                        }
                    }
                }
            }
        }
    }
}

fn content(o: &Overview) -> Markup {
    let labels: Vec<String> = o.waits.iter().map(|h| h.hour.format("%H:00").to_string()).collect();
    let series = [
        Series { name: "p50", values: o.waits.iter().map(|h| h.p50_seconds).collect() },
        Series { name: "p95", values: o.waits.iter().map(|h| h.p95_seconds).collect() },
    ];
    let started: usize = o.waits.iter().map(|h| h.jobs).sum();
    html! {
        div.cards {
            section.card.stat #tenant-counts {
                h2 { "Tenants" }
                @for status in TenantStatus::ALL {
                    div.kv data-status=(status.as_str()) {
                        span { (badge(status.as_str())) }
                        strong { (o.tenants_by_status.get(status).copied().unwrap_or(0)) }
                    }
                }
            }
            section.card.stat #runner-totals {
                h2 { "Live runners" }
                div.big { (o.live_total) @if let Some(cap) = o.global_max_runners { span.muted { " / " (cap) } } }
                p.muted.small { @if o.global_max_runners.is_some() { "against the deployment cap" } @else { "no deployment cap" } }
            }
            section.card.stat #waiting-by-reason {
                h2 { "Waiting jobs" }
                @if o.waiting.is_empty() { (empty("Nothing waits.")) }
                @for (reason, n) in &o.waiting {
                    div.kv data-reason=(reason) { span { (badge(reason)) } strong { (n) } }
                }
            }
            (health(&o.health))
        }
        section.card {
            h2 { "Tenants against their limits" }
            (tenant_table(&o.tenants))
            @if o.tenants_truncated { p.muted.small { "Only the first tenants are shown; the tenants page lists all." } }
        }
        section.card {
            h2 { "Queued → running, last " (WAIT_CHART_HOURS) " hours" }
            p.muted.small { "Wait from ghr hearing of a job to the job starting, p50 and p95 per hour in which jobs started (UTC); " span #jobs-started data-jobs=(started) { (started) } " jobs started; recomputed every " (WAITS_TTL.as_secs()) " s." }
            (bars("wait-chart", "Queued to running wait per hour", &labels, &series, &|v| duration(v)))
        }
        section.card {
            h2 { "Runners per tier" }
            table.data #tier-table {
                thead { tr { th { "Tier" } th.num { "Live runners" } th.num { "Tenants on plan" } th.num { "Plan limit per tenant" } th.num { "Price / runner-hour" } } }
                tbody {
                    @for t in &o.tiers {
                        tr id={ "tier-" (t.name) } data-live=(t.live) {
                            td { (t.name) } td.num { (t.live) } td.num { (t.tenants) } td.num { (t.plan_max_runners) }
                            td.num { (format!("{:.3}", t.price_per_hour)) }
                        }
                    }
                }
            }
        }
        (rendered_at())
    }
}

fn health(h: &Health) -> Markup {
    html! {
        section.card.stat #health {
            h2 { "Health" }
            @match &h.counters {
                None => { div.kv { span { "Webhooks, GitHub API" } span.muted #metrics-none { "no data (metrics are off)" } } }
                Some(c) => {
                    div.kv #webhooks { span { "Webhooks received" } strong { (c.webhooks_received) } }
                    div.kv { span { "Webhooks rejected" } strong { (c.webhooks_rejected) } }
                    div.kv #github { span { "GitHub API calls" } strong { (c.github_calls) } }
                    div.kv { span { "Rate-limited answers" } strong { (c.github_rate_limited) } }
                    div.kv { span { "Least rate limit left" } strong { @match c.github_remaining_min { Some(v) => (v), None => (dash()) } } }
                }
            }
            @match &h.reconciler {
                None => { div.kv #reconciler { span { "Reconciler" } span.muted { "no pass yet" } } }
                Some((at, errors)) => {
                    div.kv #reconciler {
                        span { "Reconciler" }
                        span { @if errors.is_empty() { (badge("ok")) } @else { (badge("errors")) } " " (time(*at)) }
                    }
                    @for e in errors { p.small.bad { (e) } }
                }
            }
        }
    }
}
