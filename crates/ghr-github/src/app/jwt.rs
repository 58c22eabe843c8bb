//! The App JWT (RS256, `iss` = App id) that authenticates calls made as the App itself.

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// `iat` is set this far in the past to tolerate clock skew between ghr and GitHub.
pub const JWT_BACKDATE: Duration = Duration::from_secs(60);
/// `exp` is set this far after now; GitHub refuses JWTs that live longer than 10 minutes.
pub const JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);
/// A cached JWT is replaced once it has less than this left to live.
pub const JWT_REMINT_MARGIN: Duration = Duration::from_secs(60);

/// What identifies the GitHub App: its id and its private key (PEM, PKCS#1 or PKCS#8).
#[derive(Clone)]
pub struct AppCredentials {
    pub app_id: u64,
    pub private_key_pem: SecretString,
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials").field("app_id", &self.app_id).field("private_key_pem", &"[REDACTED]").finish()
    }
}

/// The App's key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AppKeyError {
    #[error("GitHub App id must not be 0")]
    MissingAppId,
    #[error("GitHub App private key is not a readable RSA private key in PEM form (PKCS#1 or PKCS#8)")]
    UnreadableKey {
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    #[error("signing a JWT with the GitHub App private key failed")]
    Signing {
        #[source]
        source: jsonwebtoken::errors::Error,
    },
}

#[derive(Serialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: String,
}

struct CachedJwt {
    token: SecretString,
    expires_at: DateTime<Utc>,
}

/// Mints and caches the App JWT.
pub struct AppJwtSigner {
    app_id: u64,
    key: EncodingKey,
    cached: Mutex<Option<CachedJwt>>,
}

impl fmt::Debug for AppJwtSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppJwtSigner").field("app_id", &self.app_id).finish_non_exhaustive()
    }
}

impl AppJwtSigner {
    /// Read the key and sign one JWT with it, so that a key that parses but cannot sign is refused
    /// here rather than on the first API call.
    pub fn new(credentials: &AppCredentials) -> Result<Self, AppKeyError> {
        if credentials.app_id == 0 {
            return Err(AppKeyError::MissingAppId);
        }
        let key = EncodingKey::from_rsa_pem(credentials.private_key_pem.expose_secret().as_bytes())
            .map_err(|source| AppKeyError::UnreadableKey { source })?;
        let signer = Self { app_id: credentials.app_id, key, cached: Mutex::new(None) };
        let (token, expires_at) = signer.mint(Utc::now()).map_err(|err| match err {
            AppKeyError::Signing { source } => AppKeyError::UnreadableKey { source },
            other => other,
        })?;
        *signer.lock() = Some(CachedJwt { token, expires_at });
        Ok(signer)
    }

    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    /// A JWT valid for at least [`JWT_REMINT_MARGIN`]; cached, re-minted shortly before expiry.
    pub fn jwt(&self) -> Result<SecretString, AppKeyError> {
        let now = Utc::now();
        let mut cached = self.lock();
        if let Some(jwt) = cached.as_ref()
            && jwt.expires_at - delta(JWT_REMINT_MARGIN) > now
        {
            return Ok(jwt.token.clone());
        }
        let (token, expires_at) = self.mint(now)?;
        *cached = Some(CachedJwt { token: token.clone(), expires_at });
        Ok(token)
    }

    /// Drop the cached JWT (GitHub refused it); the next [`Self::jwt`] mints a new one.
    pub fn invalidate(&self) {
        *self.lock() = None;
    }

    /// Drop the cached JWT if it is still `rejected` (GitHub refused it with a 401); a JWT another caller
    /// minted meanwhile is kept.
    pub fn invalidate_if(&self, rejected: &SecretString) {
        let mut cached = self.lock();
        if cached.as_ref().is_some_and(|jwt| jwt.token.expose_secret() == rejected.expose_secret()) {
            *cached = None;
        }
    }

    fn mint(&self, now: DateTime<Utc>) -> Result<(SecretString, DateTime<Utc>), AppKeyError> {
        let expires_at = now + delta(JWT_LIFETIME);
        let claims = Claims {
            iat: (now - delta(JWT_BACKDATE)).timestamp(),
            exp: expires_at.timestamp(),
            iss: self.app_id.to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|source| AppKeyError::Signing { source })?;
        Ok((SecretString::from(token), expires_at))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CachedJwt>> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A `Duration` constant as a chrono delta (the constants here are far below the overflow limit).
pub(crate) fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use serde::Deserialize;

    const PKCS1: &str = include_str!("../../tests/data/test-only-app-key-pkcs1.pem");
    const PKCS8: &str = include_str!("../../tests/data/test-only-app-key-pkcs8.pem");
    const PUBLIC: &str = include_str!("../../tests/data/test-only-app-key-public.pem");

    #[derive(Debug, Deserialize)]
    struct Decoded {
        iat: i64,
        exp: i64,
        iss: String,
    }

    fn credentials(pem: &str) -> AppCredentials {
        AppCredentials { app_id: 4242, private_key_pem: SecretString::from(pem.to_owned()) }
    }

    fn decode(token: &SecretString) -> Decoded {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&["4242"]);
        let key = DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap();
        jsonwebtoken::decode::<Decoded>(token.expose_secret(), &key, &validation).unwrap().claims
    }

    #[test]
    fn signs_with_pkcs1_and_pkcs8_keys() {
        for pem in [PKCS1, PKCS8] {
            let signer = AppJwtSigner::new(&credentials(pem)).unwrap();
            let before = Utc::now().timestamp();
            let claims = decode(&signer.jwt().unwrap());
            assert_eq!(claims.iss, "4242");
            assert!((claims.iat - (before - 60)).abs() <= 2, "iat backdated by 60 s: {claims:?}");
            assert!((claims.exp - (before + 9 * 60)).abs() <= 2, "exp 9 min ahead: {claims:?}");
            assert!(claims.exp - claims.iat <= 10 * 60, "GitHub allows at most 10 minutes");
        }
    }

    #[test]
    fn jwt_is_cached_until_invalidated() {
        let signer = AppJwtSigner::new(&credentials(PKCS1)).unwrap();
        let first = signer.jwt().unwrap();
        assert_eq!(first.expose_secret(), signer.jwt().unwrap().expose_secret());
        signer.invalidate();
        let second = signer.jwt().unwrap();
        decode(&second);
    }

    #[test]
    fn only_the_refused_jwt_is_dropped() {
        let signer = AppJwtSigner::new(&credentials(PKCS1)).unwrap();
        let current = signer.jwt().unwrap();
        signer.invalidate_if(&SecretString::from("an older one".to_owned()));
        assert_eq!(signer.jwt().unwrap().expose_secret(), current.expose_secret());
        // Minted in the same second, a new JWT can equal the old one byte for byte; the cache must be empty.
        signer.invalidate_if(&current);
        assert!(signer.lock().is_none());
    }

    #[test]
    fn jwt_near_expiry_is_reminted() {
        let signer = AppJwtSigner::new(&credentials(PKCS1)).unwrap();
        let stale = SecretString::from("stale".to_owned());
        *signer.lock() = Some(CachedJwt { token: stale, expires_at: Utc::now() + TimeDelta::seconds(30) });
        let fresh = signer.jwt().unwrap();
        assert_ne!(fresh.expose_secret(), "stale");
        decode(&fresh);
    }

    #[test]
    fn unreadable_keys_are_refused_with_a_typed_error() {
        let garbage_pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        for pem in ["", "not a key", garbage_pkcs1, PUBLIC] {
            let err = AppJwtSigner::new(&credentials(pem)).unwrap_err();
            assert!(matches!(err, AppKeyError::UnreadableKey { .. }), "{pem:?}: {err:?}");
            assert!(err.to_string().contains("not a readable RSA private key"));
        }
        let err = AppJwtSigner::new(&AppCredentials { app_id: 0, ..credentials(PKCS1) }).unwrap_err();
        assert!(matches!(err, AppKeyError::MissingAppId));
    }

    #[test]
    fn debug_output_redacts_the_key() {
        let creds = credentials(PKCS1);
        let text = format!("{creds:?} {:?}", AppJwtSigner::new(&creds).unwrap());
        assert!(!text.contains("PRIVATE KEY") && !text.contains("MII"), "{text}");
        assert!(text.contains("4242"));
    }
}
