//! `X-Hub-Signature-256`: HMAC-SHA256 of the raw request body under the App's webhook secret.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The header GitHub puts the signature in.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// The scheme prefix of the header value.
pub const SIGNATURE_PREFIX: &str = "sha256=";
/// Length of a hex-encoded SHA-256 MAC.
const SIGNATURE_HEX_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("webhook signature header {SIGNATURE_HEADER} is missing")]
    Missing,
    #[error("webhook signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("webhook signature does not match the body")]
    Mismatch,
}

/// Check `header` (the value of `X-Hub-Signature-256`) against the HMAC-SHA256 of `body`.
///
/// The comparison is constant-time. `body` must be the raw bytes as received, before any parsing.
pub fn verify_signature(secret: &SecretString, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex_mac = header.strip_prefix(SIGNATURE_PREFIX).ok_or(SignatureError::Malformed("expected sha256=<hex>"))?;
    if hex_mac.len() != SIGNATURE_HEX_LEN {
        return Err(SignatureError::Malformed("expected 64 hex digits"));
    }
    let expected = hex::decode(hex_mac).map_err(|_| SignatureError::Malformed("not hexadecimal"))?;
    // HMAC takes keys of any length, so this cannot fail; refusing is the safe answer if it ever did.
    let mut mac =
        HmacSha256::new_from_slice(secret.expose_secret().as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

/// The header value GitHub would send for `body` (`sha256=<hex>`); for tests and emulators.
pub fn sign(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = match HmacSha256::new_from_slice(secret.expose_secret().as_bytes()) {
        Ok(mac) => mac,
        // Unreachable for HMAC (any key length is valid); an empty MAC never verifies.
        Err(_) => return SIGNATURE_PREFIX.to_owned(),
    };
    mac.update(body);
    format!("{SIGNATURE_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented example ("Validating webhook deliveries").
    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_BODY: &[u8] = b"Hello, World!";
    const DOC_SIGNATURE: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn accepts_githubs_documented_vector() {
        assert_eq!(verify_signature(&secret(DOC_SECRET), DOC_BODY, Some(DOC_SIGNATURE)), Ok(()));
        assert_eq!(sign(&secret(DOC_SECRET), DOC_BODY), DOC_SIGNATURE);
    }

    #[test]
    fn accepts_uppercase_hex_and_surrounding_whitespace() {
        let upper = format!("sha256={}", DOC_SIGNATURE.trim_start_matches("sha256=").to_uppercase());
        assert_eq!(verify_signature(&secret(DOC_SECRET), DOC_BODY, Some(&format!(" {upper} "))), Ok(()));
    }

    #[test]
    fn refuses_bad_signatures() {
        let flipped = DOC_SIGNATURE.replace("757107", "757108");
        let cases: &[(&str, &[u8], Option<&str>, SignatureError)] = &[
            (DOC_SECRET, DOC_BODY, None, SignatureError::Missing),
            (DOC_SECRET, DOC_BODY, Some(""), SignatureError::Malformed("expected sha256=<hex>")),
            (
                DOC_SECRET,
                DOC_BODY,
                Some("sha1=757107ea0eb2509fc211221cce984b8a37570b6d"),
                SignatureError::Malformed("expected sha256=<hex>"),
            ),
            (DOC_SECRET, DOC_BODY, Some("sha256=abcd"), SignatureError::Malformed("expected 64 hex digits")),
            (
                DOC_SECRET,
                DOC_BODY,
                Some("sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
                SignatureError::Malformed("not hexadecimal"),
            ),
            (DOC_SECRET, DOC_BODY, Some(&flipped), SignatureError::Mismatch),
            ("another secret", DOC_BODY, Some(DOC_SIGNATURE), SignatureError::Mismatch),
            (DOC_SECRET, b"Hello, World?", Some(DOC_SIGNATURE), SignatureError::Mismatch),
            (DOC_SECRET, b"", Some(DOC_SIGNATURE), SignatureError::Mismatch),
        ];
        for (key, body, header, want) in cases {
            assert_eq!(verify_signature(&secret(key), body, *header), Err(want.clone()), "header {header:?}");
        }
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let key = secret("s3cr3t");
        let body = br#"{"action":"queued"}"#;
        assert_eq!(verify_signature(&key, body, Some(&sign(&key, body))), Ok(()));
    }
}
