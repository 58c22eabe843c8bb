//! Secrets at cold start: the App private key and the webhook secret, from SSM SecureString parameters named by
//! the environment (or, for tests and simple setups, from the environment itself). Held in `SecretString`s,
//! never logged.

use crate::env::SecretSources;
use secrecy::SecretString;

/// The secrets a function was given (which ones it needs is checked by [`crate::env::LambdaEnv`]: the webhook
/// needs the webhook secret only, the others the App key only).
pub struct Secrets {
    /// The App private key PEM (the parameter may hold the PEM or its base64, as the seed's `key_base64`).
    pub app_private_key: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
}

/// Why the secrets could not be loaded (the parameter and what to do; never the value).
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{0}")]
    Missing(String),
}

/// Read the secrets from SSM (`GetParameter` with decryption) or the environment.
pub async fn load(ssm: &aws_sdk_ssm::Client, sources: &SecretSources) -> Result<Secrets, SecretsError> {
    let _ = (ssm, sources);
    Err(SecretsError::Missing("unimplemented (H1)".into()))
}
