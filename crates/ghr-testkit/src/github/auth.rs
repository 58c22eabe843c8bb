//! Authentication like GitHub's: App JWTs (RS256, `iss`, lifetime) for `/app/...`, installation
//! tokens for everything else, and the 404 GitHub gives for another installation's resources.

use super::Shared;
use super::http::{ApiError, ApiResult};
use super::state::{RateBucket, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation, decode};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// GitHub refuses App JWTs that expire more than ten minutes from now.
pub(crate) const JWT_MAX_FUTURE_SECS: i64 = 600;
/// GitHub's documentation has Apps backdate `iat` by 60 s against clock drift; the lifetime
/// `exp - iat` may exceed ten minutes by that much.
pub(crate) const JWT_IAT_BACKDATE_ALLOWANCE_SECS: i64 = 60;
/// Tolerance for `iat` and `exp` lying slightly in the future (same clock here, so small).
pub(crate) const JWT_CLOCK_LEEWAY_SECS: i64 = 5;
/// Installation tokens look like GitHub's: `ghs_` and 36 alphanumerics.
const INSTALLATION_TOKEN_PREFIX: &str = "ghs_";
const INSTALLATION_TOKEN_RANDOM_CHARS: usize = 36;

const MESSAGE_BAD_CREDENTIALS: &str = "Bad credentials";
const MESSAGE_JWT_UNDECODABLE: &str = "A JSON web token could not be decoded";
const MESSAGE_SUSPENDED: &str = "This installation has been suspended";

#[derive(Deserialize)]
struct AppClaims {
    iss: Value,
    iat: i64,
    exp: i64,
}

/// A random alphanumeric secret with a prefix (tokens, credentials, sessions).
pub(crate) fn random_secret(prefix: &str, length: usize) -> String {
    let random: String = rand::rng().sample_iter(Alphanumeric).take(length).map(char::from).collect();
    format!("{prefix}{random}")
}

/// The credential of `Authorization: Bearer <x>` or `Authorization: token <x>`.
fn credential(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credential) = value.split_once(' ')?;
    let known = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    known.then_some(credential.trim()).filter(|credential| !credential.is_empty())
}

fn looks_like_jwt(credential: &str) -> bool {
    credential.split('.').count() == 3
}

/// Check the App JWT of a `/app/...` request.
pub(crate) fn verify_app_jwt(shared: &Shared, headers: &HeaderMap) -> ApiResult<()> {
    let Some(token) = credential(headers) else {
        return Err(ApiError::unauthorized(MESSAGE_JWT_UNDECODABLE));
    };
    {
        let mut state = shared.lock();
        if state.faults.jwt_refusals_remaining > 0 {
            state.faults.jwt_refusals_remaining -= 1;
            state.counters.refused_jwts += 1;
            return Err(ApiError::unauthorized(MESSAGE_JWT_UNDECODABLE));
        }
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 0;
    validation.validate_aud = false;
    let claims = decode::<AppClaims>(token, &shared.decoding_key, &validation)
        .map_err(|error| match error.kind() {
            ErrorKind::ExpiredSignature => ApiError::unauthorized(
                "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
            ),
            _ => ApiError::unauthorized(MESSAGE_JWT_UNDECODABLE),
        })?
        .claims;
    let issuer = match &claims.iss {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    if issuer != Some(shared.config.app_id) {
        return Err(ApiError::unauthorized("'Issuer' claim ('iss') does not name this App"));
    }
    let now = Utc::now().timestamp();
    if claims.iat > now + JWT_CLOCK_LEEWAY_SECS {
        return Err(ApiError::unauthorized(
            "'Issued at' claim ('iat') must be an Integer representing a time in the past",
        ));
    }
    let too_far = claims.exp > now + JWT_MAX_FUTURE_SECS + JWT_CLOCK_LEEWAY_SECS
        || claims.exp - claims.iat > JWT_MAX_FUTURE_SECS + JWT_IAT_BACKDATE_ALLOWANCE_SECS + JWT_CLOCK_LEEWAY_SECS;
    if too_far {
        return Err(ApiError::unauthorized("'Expiration time' claim ('exp') is too far in the future"));
    }
    Ok(())
}

/// The installation whose token authorises this request.
pub(crate) fn installation_from_token(state: &State, headers: &HeaderMap) -> ApiResult<u64> {
    let Some(token) = credential(headers) else {
        return Err(ApiError::unauthorized("Requires authentication"));
    };
    let Some(record) = state.tokens.get(token) else {
        return Err(ApiError::unauthorized(MESSAGE_BAD_CREDENTIALS));
    };
    if Utc::now() >= record.expires_at {
        return Err(ApiError::unauthorized(MESSAGE_BAD_CREDENTIALS));
    }
    let Some(installation) = state.installations.get(&record.installation_id) else {
        return Err(ApiError::unauthorized(MESSAGE_BAD_CREDENTIALS));
    };
    if installation.suspended_at.is_some() {
        return Err(ApiError::forbidden(MESSAGE_SUSPENDED));
    }
    Ok(installation.id)
}

/// The organisation account `org`, if this installation may see it (GitHub answers 404 otherwise).
pub(crate) fn org_account(state: &State, installation_id: u64, org: &str) -> ApiResult<u64> {
    let installation = state.installations.get(&installation_id).ok_or_else(ApiError::not_found)?;
    match state.account_by_login(org) {
        Some(account)
            if account.id == installation.account_id && account.kind == ghr_core::tenant::OrgType::Organization =>
        {
            Ok(account.id)
        }
        _ => Err(ApiError::not_found()),
    }
}

/// The repository `owner/repo`, if this installation may see it (GitHub answers 404 otherwise).
pub(crate) fn repo_of(state: &State, installation_id: u64, owner: &str, repo: &str) -> ApiResult<u64> {
    let installation = state.installations.get(&installation_id).ok_or_else(ApiError::not_found)?;
    let account = state.account_by_login(owner).filter(|account| account.id == installation.account_id);
    let repo = account.and_then(|account| state.repo_by_name(account.id, repo));
    repo.map(|repo| repo.id).ok_or_else(ApiError::not_found)
}

/// Mint an installation token valid for `ttl`.
pub(crate) fn issue_token(state: &mut State, installation_id: u64, ttl: Duration) -> (String, DateTime<Utc>) {
    let now = Utc::now();
    // Expired tokens answer 401 whether they are remembered or not; forget them.
    state.tokens.retain(|_, token| token.expires_at > now);
    let token = random_secret(INSTALLATION_TOKEN_PREFIX, INSTALLATION_TOKEN_RANDOM_CHARS);
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let expires_at = now.checked_add_signed(ttl).unwrap_or(DateTime::<Utc>::MAX_UTC);
    state.tokens.insert(token.clone(), super::state::TokenRecord { installation_id, expires_at });
    (token, expires_at)
}

/// Which rate-limit window a request counts against.
pub(crate) fn rate_bucket(state: &State, headers: &HeaderMap) -> RateBucket {
    match credential(headers) {
        Some(token) => match state.tokens.get(token) {
            Some(record) => RateBucket::Installation(record.installation_id),
            None if looks_like_jwt(token) => RateBucket::App,
            None => RateBucket::Anonymous,
        },
        None => RateBucket::Anonymous,
    }
}
