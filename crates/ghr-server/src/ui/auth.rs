//! Console sign-in: stateless signed session cookies, CSRF tokens bound to the session, and a limit on failed
//! sign-ins. Every secret is derived from the admin token, so rotating the token signs everyone out.

use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "ghr_session";
/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Domain separation of the session key derived from the admin token.
const SESSION_KEY_CONTEXT: &[u8] = b"ghr console session v1";
/// Domain separation of CSRF tokens from session signatures.
const CSRF_CONTEXT: &[u8] = b"csrf";
/// Random bytes of a session id.
const SESSION_ID_BYTES: usize = 16;

/// The key that signs sessions and CSRF tokens: HMAC-SHA256(admin token, [`SESSION_KEY_CONTEXT`]).
pub struct SessionKey([u8; 32]);

/// A signed-in operator's session, as read back from a valid cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Random hex id (not secret on its own: the signature is what cannot be forged).
    pub id: String,
    /// Expiry, Unix seconds.
    pub expires: i64,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // RFC 2104: a key longer than the block is hashed, a shorter one zero-padded; building the block-sized key
    // here makes the constructor infallible.
    let mut block = hmac::digest::Key::<Hmac<Sha256>>::default();
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl SessionKey {
    /// The key of the console for this admin token.
    pub fn derive(admin_token: &SecretString) -> SessionKey {
        SessionKey(hmac(admin_token.expose_secret().as_bytes(), &[SESSION_KEY_CONTEXT]))
    }

    fn sign(&self, id: &str, expires: i64) -> String {
        hex::encode(hmac(&self.0, &[id.as_bytes(), b".", expires.to_string().as_bytes()]))
    }

    /// A new session expiring [`SESSION_LIFETIME`] after `now` (Unix seconds), and its cookie value
    /// `<id>.<expiry>.<signature>`.
    pub fn issue(&self, now: i64) -> (Session, String) {
        let bytes: [u8; SESSION_ID_BYTES] = rand::rng().random();
        let id = hex::encode(bytes);
        let expires = now + SESSION_LIFETIME.as_secs() as i64;
        let cookie = format!("{id}.{expires}.{}", self.sign(&id, expires));
        (Session { id, expires }, cookie)
    }

    /// The session of a cookie value, when its signature is this key's and it has not expired at `now`.
    pub fn verify(&self, cookie: &str, now: i64) -> Option<Session> {
        let mut parts = cookie.split('.');
        let (id, expires, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || id.len() != SESSION_ID_BYTES * 2 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let expires: i64 = expires.parse().ok()?;
        let expected = self.sign(id, expires);
        if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) || expires <= now {
            return None;
        }
        Some(Session { id: id.to_owned(), expires })
    }

    /// The CSRF token of a session: HMAC(key, "csrf" + session id), hex.
    pub fn csrf(&self, session: &Session) -> String {
        hex::encode(hmac(&self.0, &[CSRF_CONTEXT, session.id.as_bytes()]))
    }

    /// Whether `given` is the session's CSRF token (constant time).
    pub fn csrf_matches(&self, session: &Session, given: &str) -> bool {
        bool::from(self.csrf(session).as_bytes().ct_eq(given.as_bytes()))
    }

    /// Whether `given` is the admin token (constant time, whatever the lengths: digests are compared).
    pub fn token_matches(admin_token: &SecretString, given: &str) -> bool {
        let expected = Sha256::digest(admin_token.expose_secret().as_bytes());
        let given = Sha256::digest(given.as_bytes());
        bool::from(expected.as_slice().ct_eq(given.as_slice()))
    }
}

/// The value of the session cookie in a `Cookie` header, if any.
pub fn session_cookie(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == SESSION_COOKIE).then_some(value))
}

/// Failed sign-ins allowed in a burst.
pub const SIGN_IN_BURST: f64 = 5.0;
/// One more failed sign-in is allowed after this long.
pub const SIGN_IN_REFILL: Duration = Duration::from_secs(12);

/// A token bucket of failed sign-ins, shared by every client: guessing the admin token is throttled to one try
/// per [`SIGN_IN_REFILL`] after a burst. Sessions already signed in are unaffected.
pub struct SignInLimiter {
    bucket: Mutex<(f64, Instant)>,
}

impl Default for SignInLimiter {
    fn default() -> Self {
        Self { bucket: Mutex::new((SIGN_IN_BURST, Instant::now())) }
    }
}

impl SignInLimiter {
    fn refilled(bucket: &mut (f64, Instant), now: Instant) {
        let earned = now.duration_since(bucket.1).as_secs_f64() / SIGN_IN_REFILL.as_secs_f64();
        *bucket = ((bucket.0 + earned).min(SIGN_IN_BURST), now);
    }

    /// Whether a sign-in may be tried now; when not, how long until one may.
    pub fn check(&self, now: Instant) -> Result<(), Duration> {
        let mut bucket = self.bucket.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::refilled(&mut bucket, now);
        if bucket.0 >= 1.0 { Ok(()) } else { Err(SIGN_IN_REFILL.mul_f64(1.0 - bucket.0)) }
    }

    /// Count one failed sign-in.
    pub fn failed(&self, now: Instant) {
        let mut bucket = self.bucket.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::refilled(&mut bucket, now);
        bucket.0 = (bucket.0 - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(token: &str) -> SessionKey {
        SessionKey::derive(&SecretString::from(token.to_owned()))
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_fresh_session_verifies_until_it_expires() {
        let key = key("t0ken");
        let (session, cookie) = key.issue(NOW);
        assert_eq!(key.verify(&cookie, NOW), Some(session.clone()));
        assert_eq!(session.expires, NOW + SESSION_LIFETIME.as_secs() as i64);
        assert_eq!(key.verify(&cookie, session.expires - 1), Some(session.clone()));
        assert_eq!(key.verify(&cookie, session.expires), None, "expired");
    }

    #[test]
    fn forged_or_mangled_cookies_are_refused() {
        let key = key("t0ken");
        let (session, cookie) = key.issue(NOW);
        let signature = cookie.rsplit('.').next().unwrap().to_owned();
        let later = session.expires + 3600;
        let cases = [
            // Extending the expiry breaks the signature.
            format!("{}.{later}.{signature}", session.id),
            // Another id with the same signature.
            format!("{}.{}.{signature}", "0".repeat(32), session.expires),
            // Signed with another key.
            self::key("other").issue(NOW).1,
            String::new(),
            "garbage".to_owned(),
            format!("{cookie}.extra"),
            format!("{}.{}.", session.id, session.expires),
            format!("{}.notanumber.{signature}", session.id),
        ];
        for forged in cases {
            assert_eq!(key.verify(&forged, NOW), None, "{forged:?} must not verify");
        }
    }

    #[test]
    fn rotating_the_admin_token_signs_everyone_out() {
        let (session, cookie) = key("old token").issue(NOW);
        let rotated = key("new token");
        assert_eq!(rotated.verify(&cookie, NOW), None);
        let csrf = key("old token").csrf(&session);
        assert!(!rotated.csrf_matches(&session, &csrf));
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let key = key("t0ken");
        let (first, _) = key.issue(NOW);
        let (second, _) = key.issue(NOW);
        assert_ne!(first.id, second.id);
        let token = key.csrf(&first);
        assert!(key.csrf_matches(&first, &token));
        assert!(!key.csrf_matches(&second, &token));
        assert!(!key.csrf_matches(&first, ""));
        assert!(!key.csrf_matches(&first, &token[..10]));
    }

    #[test]
    fn the_admin_token_comparison() {
        let token = SecretString::from("t0ken".to_owned());
        let table = [("t0ken", true), ("t0ke", false), ("t0kenn", false), ("", false), ("T0KEN", false)];
        for (given, expected) in table {
            assert_eq!(SessionKey::token_matches(&token, given), expected, "{given:?}");
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let table = [
            ("ghr_session=abc", Some("abc")),
            ("a=1; ghr_session=abc; b=2", Some("abc")),
            ("xghr_session=abc", None),
            ("a=1", None),
            ("", None),
        ];
        for (header, expected) in table {
            assert_eq!(session_cookie(header), expected, "{header:?}");
        }
    }

    #[test]
    fn failed_sign_ins_are_throttled_after_a_burst() {
        let limiter = SignInLimiter::default();
        let start = Instant::now();
        for _ in 0..SIGN_IN_BURST as usize {
            assert!(limiter.check(start).is_ok());
            limiter.failed(start);
        }
        let wait = limiter.check(start).expect_err("the burst is spent");
        assert!(wait <= SIGN_IN_REFILL && wait > Duration::ZERO, "{wait:?}");
        assert!(limiter.check(start + SIGN_IN_REFILL).is_ok(), "one more try after the refill time");
    }
}
