//! Sign-in with the admin token (into a signed session cookie) and sign-out.

use crate::ui::auth::{SESSION_LIFETIME, SessionKey};
use crate::ui::layout::bare;
use crate::ui::{Console, Operator, UiError, disabled, now_unix, same_origin, session_set_cookie};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use std::time::Instant;

fn login_page(error: Option<&str>) -> Markup {
    bare(
        "Sign in",
        html! {
            section.card.signin {
                h1 { "Sign in" }
                p.muted { "Operators sign in with the admin token of this ghr deployment." }
                @if let Some(error) = error {
                    p.alert.bad id="login-error" role="alert" { (error) }
                }
                form method="post" action="/ui/login" id="login-form" {
                    label for="token" { "Admin token" }
                    input type="password" id="token" name="token" autocomplete="current-password" required autofocus;
                    button.primary type="submit" id="sign-in" { "Sign in" }
                }
            }
        },
    )
}

pub async fn form(State(console): State<Console>) -> Response {
    if console.app.admin_token.is_none() {
        return disabled();
    }
    login_page(None).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

pub async fn submit(
    State(console): State<Console>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(admin_token) = console.app.admin_token.as_ref() else {
        return disabled();
    };
    if let Err(refused) = same_origin(&headers) {
        return refused.into_response();
    }
    let token = form.map(|Form(f)| f.token).unwrap_or_default();
    let now = Instant::now();
    // The right token always signs in: a stranger sending wrong ones must not lock the operator out. Wrong ones
    // are throttled (the token itself is a long random secret, as for the admin API).
    if !SessionKey::token_matches(admin_token, token.trim()) {
        if let Err(wait) = console.limiter.check(now) {
            let seconds = wait.as_secs().max(1);
            let message = format!("Too many failed sign-ins: try again in {seconds} seconds.");
            tracing::warn!("console sign-in with a wrong admin token, throttled");
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, seconds.to_string())],
                login_page(Some(&message)),
            )
                .into_response();
        }
        console.limiter.failed(now);
        tracing::warn!("console sign-in with a wrong admin token");
        return (StatusCode::UNAUTHORIZED, login_page(Some("That is not the admin token. Check it and try again.")))
            .into_response();
    }
    let (_, cookie) = SessionKey::derive(admin_token).issue(now_unix());
    let set_cookie = session_set_cookie(&cookie, SESSION_LIFETIME.as_secs(), &headers);
    ([(header::SET_COOKIE, set_cookie)], Redirect::to("/ui")).into_response()
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    operator: Operator,
    State(console): State<Console>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, UiError> {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    operator.check_post(&headers, &csrf)?;
    // The cookie is signed, not stored: signing out records the session as ended, so a copy of the cookie is
    // refused from now on, not only cleared from this browser.
    let marker = crate::ui::revoked_checkpoint(&operator.session);
    console
        .app
        .store
        .checkpoint_set(&marker, &operator.session.expires.to_string(), chrono::Utc::now())
        .await
        .map_err(|error| {
            tracing::error!(error = %ghr_engine::error::ErrorChain(&error), "console: cannot record a sign-out");
            UiError::new(StatusCode::SERVICE_UNAVAILABLE, "the sign-out could not be recorded: try again")
        })?;
    let clear = session_set_cookie("", 0, &headers);
    Ok(([(header::SET_COOKIE, clear)], Redirect::to("/ui/login")).into_response())
}
