//! Loading the functions' secrets from SSM on the moto emulator (`GHR_TEST_MOTO_ENDPOINT`): SecureString
//! parameters holding the App key as PEM or as the seed's base64, the webhook secret, the environment as the
//! fallback, and errors that name the parameter without its value.

use base64::Engine as _;
use ghr_lambda::env::SecretSources;
use ghr_lambda::secrets::{self, SecretsError};
use ghr_lambda::testing::{moto_endpoint, ssm_client, unique_prefix};
use secrecy::{ExposeSecret, SecretString};

/// A PEM-shaped value (the loader checks the shape; GitHub's client checks the key itself).
const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----";
const WEBHOOK_SECRET: &str = "a webhook secret with spaces";

/// A fresh SecureString parameter holding `value`: its name.
async fn put(ssm: &aws_sdk_ssm::Client, what: &str, value: &str) -> String {
    let name = format!("/{}/{what}", unique_prefix());
    ssm.put_parameter()
        .name(&name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap_or_else(|e| panic!("putting {name}: {}", aws_sdk_ssm::error::DisplayErrorContext(e)));
    name
}

#[tokio::test]
async fn secure_string_parameters_give_the_pem_and_the_webhook_secret() {
    let ssm = ssm_client(&moto_endpoint()).await;
    let base64_pem = base64::engine::general_purpose::STANDARD.encode(PEM);
    for stored in [PEM.to_owned(), base64_pem] {
        let sources = SecretSources {
            app_key_parameter: Some(put(&ssm, "app-key", &stored).await),
            webhook_secret_parameter: Some(put(&ssm, "webhook-secret", WEBHOOK_SECRET).await),
            // A parameter wins over the environment.
            app_key_env: Some(SecretString::from("ignored")),
            webhook_secret_env: Some(SecretString::from("ignored")),
        };
        let loaded = secrets::load(&ssm, &sources).await.unwrap();
        assert_eq!(loaded.app_private_key.unwrap().expose_secret(), PEM, "stored as {stored:.20}...");
        assert_eq!(loaded.webhook_secret.unwrap().expose_secret(), WEBHOOK_SECRET);
    }
}

#[tokio::test]
async fn without_parameters_the_environment_gives_the_secrets() {
    let ssm = ssm_client(&moto_endpoint()).await;
    let sources = SecretSources {
        app_key_env: Some(SecretString::from(PEM)),
        webhook_secret_env: Some(SecretString::from(WEBHOOK_SECRET)),
        ..SecretSources::default()
    };
    let loaded = secrets::load(&ssm, &sources).await.unwrap();
    assert_eq!(loaded.app_private_key.unwrap().expose_secret(), PEM);
    assert_eq!(loaded.webhook_secret.unwrap().expose_secret(), WEBHOOK_SECRET);
    let none = secrets::load(&ssm, &SecretSources::default()).await.unwrap();
    assert!(none.app_private_key.is_none() && none.webhook_secret.is_none());
}

#[tokio::test]
async fn a_missing_parameter_is_named_with_what_to_do() {
    let ssm = ssm_client(&moto_endpoint()).await;
    let name = format!("/{}/nowhere", unique_prefix());
    let sources = SecretSources { webhook_secret_parameter: Some(name.clone()), ..SecretSources::default() };
    let error = secrets::load(&ssm, &sources).await.err().expect("a missing parameter fails");
    assert!(matches!(&error, SecretsError::NotFound { parameter, .. } if *parameter == name), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&name) && message.contains("GHR_WEBHOOK_SECRET_PARAMETER"), "{message}");
    assert!(message.contains("put-parameter --type SecureString"), "{message}");
}

#[tokio::test]
async fn a_parameter_that_holds_no_key_is_an_error_naming_it_not_its_value() {
    let ssm = ssm_client(&moto_endpoint()).await;
    let value = "definitely-not-a-key";
    let name = put(&ssm, "app-key", value).await;
    let sources = SecretSources { app_key_parameter: Some(name.clone()), ..SecretSources::default() };
    let error = secrets::load(&ssm, &sources).await.err().expect("a value that is no key fails");
    assert!(matches!(&error, SecretsError::NotPem { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&name) && message.contains("GHR_APP_KEY_PARAMETER"), "{message}");
    assert!(!message.contains(value), "the value leaked: {message}");
}
