//! Pool machine identities: random machine ids and one-time bootstrap secrets, of which ghr keeps only the
//! SHA-256.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ghr_core::ids::{MachineId, TierName};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Random bytes in a bootstrap secret (256 bits).
pub const SECRET_BYTES: usize = 32;
/// Random bytes in a machine id's suffix.
const MACHINE_ID_BYTES: usize = 8;

/// `pool-<tier>-<16 hex digits>`.
pub fn new_machine_id(tier: &TierName) -> MachineId {
    let suffix: [u8; MACHINE_ID_BYTES] = rand::rng().random();
    MachineId::new(format!("pool-{tier}-{}", hex::encode(suffix)))
}

/// A fresh bootstrap secret (URL-safe base64) and the hash ghr stores.
pub fn new_secret() -> (SecretString, String) {
    let bytes: [u8; SECRET_BYTES] = rand::rng().random();
    let secret = SecretString::from(URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_secret(secret.expose_secret());
    (secret, hash)
}

/// Lower-case hex SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` is the one whose hash is `stored`. Compares the hashes in constant time.
pub fn secret_matches(secret: &str, stored: &str) -> bool {
    let given = hash_secret(secret);
    given.len() == stored.len() && given.bytes().zip(stored.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_and_only_their_own_hash_matches() {
        let (a, hash_a) = new_secret();
        let (b, hash_b) = new_secret();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 43, "256 bits in unpadded base64");
        assert!(secret_matches(a.expose_secret(), &hash_a));
        assert!(!secret_matches(a.expose_secret(), &hash_b));
        assert!(!secret_matches("", &hash_a));
        assert!(!secret_matches(a.expose_secret(), ""));
        let id = new_machine_id(&TierName::from("small"));
        assert!(id.as_str().starts_with("pool-small-") && id.as_str().len() == "pool-small-".len() + 16);
    }
}
