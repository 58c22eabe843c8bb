//! The frame of every console page (navigation bar, sign-out form, stylesheet and script) and the small pieces
//! pages share: status badges, durations, instants, the live section and the error page.

use super::Operator;
use axum::http::StatusCode;
use chrono::Utc;
use ghr_core::Timestamp;
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Tenants,
    Jobs,
    Runners,
}

const NAV: [(Nav, &str, &str); 4] = [
    (Nav::Overview, "/ui", "Overview"),
    (Nav::Tenants, "/ui/tenants", "Tenants"),
    (Nav::Jobs, "/ui/jobs", "Jobs"),
    (Nav::Runners, "/ui/runners", "Runners"),
];

/// How often the live section of a page refreshes itself (milliseconds), when JavaScript runs.
const REFRESH_MS: u32 = 5000;

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · ghr console" }
            link rel="stylesheet" href="/ui/static/console.css";
            script src="/ui/static/console.js" defer {}
        }
    }
}

/// A whole page for a signed-in operator.
pub fn frame(operator: &Operator, nav: Nav, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.topbar {
                    a.brand href="/ui" { span.logo { "ghr" } " console" }
                    nav {
                        @for (entry, href, label) in NAV {
                            a href=(href) class=[(entry == nav).then_some("current")] { (label) }
                        }
                    }
                    form.signout method="post" action="/ui/logout" {
                        input type="hidden" name="csrf" value=(operator.csrf);
                        button.link type="submit" id="sign-out" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without the sign-out form (sign-in, errors); `links` adds the navigation links.
fn plain(title: &str, links: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                header.topbar {
                    a.brand href="/ui" { span.logo { "ghr" } " console" }
                    @if links { nav { @for (_, href, label) in NAV { a href=(href) { (label) } } } }
                }
                main.narrow { (body) }
            }
        }
    }
}

/// The sign-in page's frame.
pub fn bare(title: &str, body: Markup) -> Markup {
    plain(title, false, body)
}

/// An error page: what went wrong and what to do.
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    plain(
        title,
        true,
        html! {
            section.card.error {
                h1 { (status.as_u16()) " · " (title) }
                p id="error-message" { (message) }
                p { a href="/ui" { "Back to the overview" } }
            }
        },
    )
}

/// The live section of a page: refreshed in place by `console.js` from `?fragment=1`.
pub fn live(content: Markup) -> Markup {
    html! { div #live data-refresh=(REFRESH_MS) { (content) } }
}

/// A coloured badge for a status word.
pub fn badge(word: &str) -> Markup {
    let tone = match word {
        "active" | "idle" | "busy" | "in_progress" | "ok" | "success" => "good",
        "pending" | "requested" | "launching" | "queued" | "starting" | "finished" => "warn",
        "suspended" | "failed" | "tenant_at_limit" | "at limit" | "errors" => "bad",
        _ => "neutral",
    };
    html! { span class={ "badge " (tone) } { (word) } }
}

/// "3 m 20 s"-style duration.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s == 0.0 {
        "0 s".to_owned()
    } else if s < 1.0 {
        format!("{} ms", (s * 1000.0).round())
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} m {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else if s < 86_400.0 {
        format!("{} h {} m", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    } else {
        format!("{} d {} h", (s / 86_400.0) as u64, ((s % 86_400.0) / 3600.0) as u64)
    }
}

/// How long ago an instant was.
pub fn age(at: Timestamp) -> String {
    duration((Utc::now() - at).num_milliseconds() as f64 / 1000.0)
}

/// An instant as `2026-01-31 12:00:00 UTC`.
pub fn instant(at: Timestamp) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A `<time>` element with the instant and, as its title, how long ago.
pub fn time(at: Timestamp) -> Markup {
    html! { time datetime=(at.to_rfc3339()) title={ (age(at)) " ago" } { (instant(at)) } }
}

/// A line saying a page was rendered at this instant (visible proof of refreshes).
pub fn rendered_at() -> Markup {
    html! { p.muted.small { "Updated " (instant(Utc::now())) } }
}

/// An empty-state line.
pub fn empty(text: &str) -> Markup {
    html! { p.empty { (text) } }
}

/// A literal non-breaking space, for table cells with nothing in them.
pub fn dash() -> Markup {
    PreEscaped("&mdash;".to_owned())
}
