//! Cold start: the one place that picks the functions' adapters (the DynamoDB store, the GitHub client, the EC2
//! provider, SQS as the work queue) from the checked environment, and assembles the engine `ghr serve` runs.

use crate::env::{Function, LambdaEnv};
use crate::secrets::{self, Secrets};
use crate::sqs::SqsQueue;
use anyhow::{Context, anyhow};
use ghr_cloud_ec2::{Ec2Provider, Ec2ProviderConfig};
use ghr_core::ports::{GitHubApi, Provider, Store};
use ghr_engine::assembly::Engine;
use ghr_engine::dispatcher::Dispatcher;
use ghr_engine::intake::Intake;
use ghr_engine::queue::{WorkQueue, take_outbox};
use ghr_engine::reconciler::Reconciler;
use ghr_engine::teardown::Teardown;
use ghr_engine::teardown::{self, TeardownQueue};
use ghr_engine::wake::DispatchWake;
use ghr_engine::{EngineSettings, Ports};
use ghr_github::{AppCredentials, GithubClient, GithubClientConfig};
use ghr_store_dynamodb::{DynamoOptions, DynamoStore};
use secrecy::SecretString;
use std::sync::Arc;
use tokio::sync::Mutex;

/// The Lambda variable naming this container's log stream: unique per container, so it names the holder of
/// the reconciler lease.
pub const ENV_LOG_STREAM: &str = "AWS_LAMBDA_LOG_STREAM_NAME";
/// The Lambda variable naming the function.
pub const ENV_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// A function after its cold start.
pub struct Cold {
    pub env: LambdaEnv,
    pub settings: Arc<EngineSettings>,
    pub queue: Arc<dyn WorkQueue>,
    pub role: Role,
}

/// What the function holds besides the queue: the webhook needs intake only; the others the whole engine.
pub enum Role {
    Webhook(WebhookParts),
    Engine(Box<EngineParts>),
}

/// Intake and what it marks, for the webhook function.
pub struct WebhookParts {
    pub store: Arc<dyn Store>,
    pub intake: Intake,
    pub webhook_secret: SecretString,
    /// What intake marks; the outbox takes the marks after each delivery.
    pub wake: Arc<DispatchWake>,
    pub outbox: Outbox,
}

/// The engine for the functions that launch and terminate runners.
pub struct EngineParts {
    pub ports: Ports,
    pub dispatcher: Arc<Dispatcher>,
    pub reconciler: Arc<Reconciler>,
    pub teardown: Teardown,
    /// The dispatcher's wake-up: a batch marks the tenants its messages name.
    pub wake: Arc<DispatchWake>,
    pub outbox: Outbox,
}

/// What an engine step asked of other functions: the dispatcher's marks and the queued teardowns.
pub struct Outbox {
    wake: Arc<DispatchWake>,
    teardowns: Mutex<TeardownQueue>,
}

impl Outbox {
    pub fn new(wake: Arc<DispatchWake>, teardowns: TeardownQueue) -> Self {
        Self { wake, teardowns: Mutex::new(teardowns) }
    }

    /// Take everything marked since the last take.
    pub async fn take(&self) -> Vec<ghr_engine::queue::Work> {
        let mut teardowns = self.teardowns.lock().await;
        take_outbox(&self.wake, &mut teardowns)
    }
}

/// Build the function `env` describes: secrets from SSM, clients, the store (whose tables must exist: the
/// Terraform module creates them), the engine.
pub async fn cold_start(env: LambdaEnv) -> anyhow::Result<Cold> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let ssm = secrets::client(&sdk);
    let Secrets { app_private_key, webhook_secret } =
        secrets::load(&ssm, &env.secrets).await.context("loading the function's secrets")?;
    let queue: Arc<dyn WorkQueue> = Arc::new(SqsQueue::new(crate::sqs::client(&sdk), env.queues.clone()));
    let config = &env.config;
    let store_url = config.raw.store.url.trim();
    let store: Arc<dyn Store> = Arc::new(
        DynamoStore::open(store_url, DynamoOptions { ttl: config.raw.store.dynamodb_ttl() })
            .await
            .map_err(|error| anyhow!("{}: store.url: {error}", config.source))?,
    );
    let mut settings = EngineSettings::from_config(config);
    settings.replica_id = replica_id(&env);
    // A pass cannot outlive the invocation that runs it: the lease lasts as long as the function may run.
    settings.lease_ttl = env.timeout;
    let settings = Arc::new(settings);
    let role = match env.function {
        Function::Webhook => {
            let webhook_secret = webhook_secret.context("the webhook function has no webhook secret")?;
            let wake = DispatchWake::new();
            let (handle, teardowns) = teardown::channel();
            let intake = Intake::new(
                store.clone(),
                Arc::new(ghr_core::clock::SystemClock),
                settings.clone(),
                wake.clone(),
                Arc::new(tokio::sync::Notify::new()),
                handle,
            );
            let outbox = Outbox::new(wake.clone(), teardowns);
            Role::Webhook(WebhookParts { store, intake, webhook_secret, wake, outbox })
        }
        Function::TenantManager | Function::ScaleUp | Function::ScaleDown => {
            let key = app_private_key.context("this function has no App private key")?;
            let github = github(&env, key)?;
            let provider = provider(&env).await?;
            let ports = Ports::new(store, github, provider);
            // The engine `ghr serve` runs, without its loops: each invocation steps it, and what a step asks of
            // the other functions leaves through the outbox.
            let Engine { dispatcher, reconciler, teardown, teardown_queue, dispatcher_wake, .. } =
                Engine::assemble(&ports, settings.clone());
            let outbox = Outbox::new(dispatcher_wake.clone(), teardown_queue);
            let wake = dispatcher_wake;
            Role::Engine(Box::new(EngineParts { ports, dispatcher, reconciler, teardown, wake, outbox }))
        }
    };
    Ok(Cold { env, settings, queue, role })
}

/// The holder name of this container: the function and its log stream (unique per container).
fn replica_id(env: &LambdaEnv) -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let function = var(ENV_FUNCTION_NAME).unwrap_or_else(|| env.function.as_str().to_owned());
    match var(ENV_LOG_STREAM) {
        Some(stream) => format!("{function}/{stream}"),
        None => format!("{function}/{}", ghr_engine::settings::default_replica_id()),
    }
}

fn github(env: &LambdaEnv, private_key_pem: SecretString) -> anyhow::Result<Arc<dyn GitHubApi>> {
    let config = &env.config;
    let app_id =
        config.raw.github.app_id.ok_or_else(|| anyhow!("{}: key `github.app_id`: set the App id", config.source))?;
    let mut client = GithubClientConfig::new(AppCredentials { app_id, private_key_pem });
    client.api_base_url = config.raw.github.api_url.clone();
    let client = GithubClient::new(client).with_context(|| {
        format!(
            "{}: the GitHub App settings are unusable (github.app_id, the private key, github.api_url)",
            config.source
        )
    })?;
    Ok(Arc::new(client))
}

async fn provider(env: &LambdaEnv) -> anyhow::Result<Arc<dyn Provider>> {
    let config = &env.config;
    let ec2 = Ec2ProviderConfig::from_section(&config.raw.provider.ec2, &config.raw.environment);
    let provider =
        Ec2Provider::new(ec2).await.with_context(|| format!("{}: [provider.ec2] is unusable", config.source))?;
    Ok(Arc::new(provider))
}
