//! Secrets at cold start: the App private key and the webhook secret, from SSM SecureString parameters named by
//! the environment (or, for tests and simple setups, from the environment itself). Held in `SecretString`s,
//! never logged: every error names the parameter or variable and what to do, never the value.

use crate::env::{ENV_APP_KEY_PARAMETER, ENV_WEBHOOK_SECRET_PARAMETER, SecretSources};
use aws_sdk_ssm::config::timeout::TimeoutConfig;
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use base64::Engine as _;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::Duration;

/// How a PEM document starts; an App key value that does not is taken as the base64 of one.
pub const PEM_PREFIX: &str = "-----BEGIN";
/// Upper bound on one SSM call including the SDK's own retries (a cold start has the function's timeout).
pub const SDK_OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound on one HTTP attempt of an SSM call.
pub const SDK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// SSM's error code when the caller may not read a parameter (or decrypt it).
const ACCESS_DENIED_CODES: &[&str] = &["AccessDeniedException", "AccessDenied"];

/// An SSM client for the functions: the SDK configuration `sdk` with bounded call times.
pub fn client(sdk: &aws_config::SdkConfig) -> aws_sdk_ssm::Client {
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(SDK_OPERATION_TIMEOUT)
        .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
        .build();
    aws_sdk_ssm::Client::from_conf(aws_sdk_ssm::config::Builder::from(sdk).timeout_config(timeouts).build())
}

/// The secrets a function was given (which ones it needs is checked by [`crate::env::LambdaEnv`]: the webhook
/// needs the webhook secret only, the others the App key only).
pub struct Secrets {
    /// The App private key PEM (the parameter may hold the PEM or its base64, as the seed's `key_base64`).
    pub app_private_key: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
}

/// Where a secret was read from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    /// An SSM parameter, and the variable that named it.
    Parameter { name: String, variable: &'static str },
    /// An environment variable holding the value itself.
    Variable(&'static str),
}

impl fmt::Display for SecretOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretOrigin::Parameter { name, variable } => write!(f, "SSM parameter {name:?} (named by {variable})"),
            SecretOrigin::Variable(variable) => write!(f, "environment variable {variable}"),
        }
    }
}

/// Why the secrets could not be loaded (the parameter and what to do; never the value).
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "SSM parameter {parameter:?} (named by {variable}) does not exist: create it as a SecureString \
         (aws ssm put-parameter --type SecureString --name {parameter} --value ...), or name the right one in {variable}"
    )]
    NotFound { parameter: String, variable: &'static str },
    #[error(
        "SSM parameter {parameter:?} (named by {variable}) may not be read by this function: grant its role \
         ssm:GetParameter on the parameter and kms:Decrypt on the parameter's key ({detail})"
    )]
    AccessDenied { parameter: String, variable: &'static str, detail: String },
    #[error("SSM parameter {parameter:?} (named by {variable}) could not be read: {detail}")]
    Unreadable { parameter: String, variable: &'static str, detail: String },
    #[error("{origin} is empty: store the secret in it")]
    Empty { origin: SecretOrigin },
    #[error(
        "{origin} holds no App private key: its value is neither a PEM (starting {PEM_PREFIX}) nor the base64 of \
         one ({why}); store the key the GitHub App settings gave you, as PEM or base64 of the PEM"
    )]
    NotPem { origin: SecretOrigin, why: &'static str },
}

/// Read the secrets from SSM (`GetParameter` with decryption) or the environment: for each secret, the
/// parameter when one is named, else the environment's value.
pub async fn load(ssm: &aws_sdk_ssm::Client, sources: &SecretSources) -> Result<Secrets, SecretsError> {
    let app_key = async {
        let (value, origin) = match &sources.app_key_parameter {
            Some(name) => {
                (parameter(ssm, name, ENV_APP_KEY_PARAMETER).await?, parameter_origin(name, ENV_APP_KEY_PARAMETER))
            }
            None => match &sources.app_key_env {
                Some(value) => (value.clone(), SecretOrigin::Variable(ghr_config::ENV_PRIVATE_KEY)),
                None => return Ok(None),
            },
        };
        app_key_pem(&value, &origin).map(Some)
    };
    let webhook_secret = async {
        let (value, origin) = match &sources.webhook_secret_parameter {
            Some(name) => (
                parameter(ssm, name, ENV_WEBHOOK_SECRET_PARAMETER).await?,
                parameter_origin(name, ENV_WEBHOOK_SECRET_PARAMETER),
            ),
            None => match &sources.webhook_secret_env {
                Some(value) => (value.clone(), SecretOrigin::Variable(ghr_config::ENV_WEBHOOK_SECRET)),
                None => return Ok(None),
            },
        };
        if value.expose_secret().is_empty() {
            return Err(SecretsError::Empty { origin });
        }
        Ok(Some(value))
    };
    let (app_private_key, webhook_secret) = tokio::try_join!(app_key, webhook_secret)?;
    Ok(Secrets { app_private_key, webhook_secret })
}

fn parameter_origin(name: &str, variable: &'static str) -> SecretOrigin {
    SecretOrigin::Parameter { name: name.to_owned(), variable }
}

/// The decrypted value of the SSM parameter `name` (named by the environment variable `variable`).
async fn parameter(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    variable: &'static str,
) -> Result<SecretString, SecretsError> {
    let output = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|error| parameter_error(name, variable, &error))?;
    let value = output.parameter.and_then(|parameter| parameter.value).map(SecretString::from);
    value.ok_or_else(|| SecretsError::Empty { origin: parameter_origin(name, variable) })
}

fn parameter_error(
    name: &str,
    variable: &'static str,
    error: &SdkError<GetParameterError, aws_sdk_ssm::config::http::HttpResponse>,
) -> SecretsError {
    let parameter = name.to_owned();
    // The SDK's error messages name the parameter at most, never a value.
    let detail = DisplayErrorContext(error).to_string();
    match error.as_service_error() {
        Some(service) if service.is_parameter_not_found() => SecretsError::NotFound { parameter, variable },
        Some(service) if service.code().is_some_and(|code| ACCESS_DENIED_CODES.contains(&code)) => {
            SecretsError::AccessDenied { parameter, variable, detail }
        }
        _ => SecretsError::Unreadable { parameter, variable, detail },
    }
}

/// The App key PEM `value` holds: the value itself when it is a PEM, else the PEM its base64 decodes to (line
/// breaks and spaces in the base64 are ignored).
pub fn app_key_pem(value: &SecretString, origin: &SecretOrigin) -> Result<SecretString, SecretsError> {
    let text = value.expose_secret().trim();
    if text.is_empty() {
        return Err(SecretsError::Empty { origin: origin.clone() });
    }
    if text.starts_with(PEM_PREFIX) {
        return Ok(SecretString::from(text));
    }
    let not_pem = |why| SecretsError::NotPem { origin: origin.clone(), why };
    let compact: Zeroizing<String> = Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()).map_err(|_| not_pem("not base64"))?,
    );
    let decoded = std::str::from_utf8(&bytes).map_err(|_| not_pem("its base64 does not decode to text"))?;
    let pem = decoded.trim();
    if !pem.starts_with(PEM_PREFIX) {
        return Err(not_pem("its base64 decodes to something else than a PEM"));
    }
    Ok(SecretString::from(pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----\n";

    fn origin() -> SecretOrigin {
        parameter_origin("/ghr/app-key", ENV_APP_KEY_PARAMETER)
    }

    fn base64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn a_pem_or_its_base64_gives_the_pem() {
        let encoded = base64(PEM);
        let wrapped = encoded.as_bytes().chunks(20).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>();
        let cases = [PEM.to_owned(), format!("\n  {PEM}"), base64(PEM), format!("{}\n", wrapped.join("\n"))];
        for value in cases {
            let pem = app_key_pem(&SecretString::from(value.as_str()), &origin()).unwrap();
            assert_eq!(pem.expose_secret(), PEM.trim(), "{value:?}");
        }
    }

    #[test]
    fn anything_else_is_an_error_naming_the_parameter_never_the_value() {
        let cases = [
            ("", "is empty"),
            ("   ", "is empty"),
            ("not-a-key!!", "not base64"),
            (&*base64("just some text"), "decodes to something else than a PEM"),
            ("//79", "does not decode to text"),
        ];
        for (value, why) in cases {
            let error = app_key_pem(&SecretString::from(value), &origin()).unwrap_err().to_string();
            assert!(error.contains(why), "{value:?}: {error}");
            assert!(error.contains("\"/ghr/app-key\" (named by GHR_APP_KEY_PARAMETER)"), "{error}");
            if !value.trim().is_empty() {
                assert!(!error.contains(value), "the value leaked: {error}");
            }
        }
        let from_env = SecretOrigin::Variable(ghr_config::ENV_PRIVATE_KEY);
        let error = app_key_pem(&SecretString::from("nope"), &from_env).unwrap_err().to_string();
        assert!(error.starts_with("environment variable GHR_GITHUB_PRIVATE_KEY holds no App private key"), "{error}");
    }

    #[test]
    fn missing_and_forbidden_parameters_say_what_to_do() {
        let missing = SecretsError::NotFound { parameter: "/ghr/key".into(), variable: ENV_APP_KEY_PARAMETER };
        let message = missing.to_string();
        assert!(message.contains("\"/ghr/key\" (named by GHR_APP_KEY_PARAMETER) does not exist"), "{message}");
        assert!(message.contains("put-parameter --type SecureString --name /ghr/key"), "{message}");
        let denied = SecretsError::AccessDenied {
            parameter: "/ghr/secret".into(),
            variable: ENV_WEBHOOK_SECRET_PARAMETER,
            detail: "AccessDeniedException".into(),
        };
        assert!(denied.to_string().contains("grant its role ssm:GetParameter"), "{denied}");
    }
}
