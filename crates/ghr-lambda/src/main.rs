//! `ghr-lambda`: the `bootstrap` of every ghr function; `GHR_FUNCTION` says which one this is.
//!
//! Cold start reads and checks the environment, loads the secrets and builds the engine; a failure there is
//! reported to Lambda as an init error naming the variable or key and the fix, and the process exits without
//! taking an event.

use aws_lambda_events::event::sqs::SqsEvent;
use ghr_lambda::env::{Function, LambdaEnv};
use ghr_lambda::handlers::budget::Budget;
use ghr_lambda::handlers::{scale_down, scale_up, tenant_manager, webhook};
use ghr_lambda::wiring::{self, Cold, EngineParts, Role};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::process::ExitCode;
use std::sync::Arc;

/// The Lambda variable naming the runtime API's address.
const ENV_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let cold = match start().await {
        Ok(cold) => cold,
        Err(error) => {
            let message = format!("{error:#}");
            tracing::error!(error = %message, "cold start failed");
            report_init_error(&message).await;
            return ExitCode::FAILURE;
        }
    };
    let served = serve(Arc::new(cold)).await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

async fn start() -> anyhow::Result<Cold> {
    let env = LambdaEnv::from_process()?;
    tracing::info!(function = env.function.as_str(), environment = %env.config.raw.environment, "cold start");
    wiring::cold_start(env).await
}

async fn serve(cold: Arc<Cold>) -> Result<(), Error> {
    match &cold.role {
        Role::Webhook(parts) => {
            let router = webhook::router(&cold, parts);
            let handler = lambda_http::service_fn(|request| {
                let cold = cold.clone();
                let router = router.clone();
                async move {
                    let Role::Webhook(parts) = &cold.role else { unreachable!("the role is fixed at cold start") };
                    webhook::handle(&cold, parts, router, request).await
                }
            });
            lambda_http::run(handler).await
        }
        Role::Engine(_) => {
            let handler = service_fn(|event: LambdaEvent<Value>| {
                let cold = cold.clone();
                async move {
                    let Role::Engine(parts) = &cold.role else { unreachable!("the role is fixed at cold start") };
                    let budget = Budget::from_deadline_ms(event.context.deadline);
                    invoke(&cold, parts, event.payload, budget).await
                }
            });
            lambda_runtime::run(handler).await
        }
    }
}

/// One invocation of an engine function.
async fn invoke(cold: &Cold, parts: &EngineParts, payload: Value, budget: Budget) -> Result<Value, Error> {
    let function = cold.env.function;
    if payload.get("Records").is_some() {
        let event: SqsEvent = serde_json::from_value(payload).map_err(|e| format!("not an SQS event: {e}"))?;
        let response = match function {
            Function::ScaleUp => scale_up::handle(cold, parts, event, budget).await,
            Function::TenantManager => tenant_manager::handle(cold, parts, event, budget).await,
            Function::ScaleDown => scale_down::handle_batch(cold, parts, event, budget).await,
            Function::Webhook => return Err("the webhook function takes HTTP events".into()),
        };
        return Ok(serde_json::to_value(response)?);
    }
    if function == Function::ScaleDown && payload.get("detail-type").is_some() {
        return Ok(scale_down::scheduled(cold, parts, budget).await);
    }
    Err(format!(
        "{} takes SQS events{}",
        function.as_str(),
        if function == Function::ScaleDown { " and its schedule" } else { "" }
    )
    .into())
}

/// Tell Lambda why the function could not start (the runtime API's init error), so the error shows on the
/// invocation and in the function's log.
async fn report_init_error(message: &str) {
    let Ok(api) = std::env::var(ENV_RUNTIME_API) else { return };
    let url = format!("http://{api}/2018-06-01/runtime/init/error");
    let body = serde_json::json!({ "errorMessage": message, "errorType": "Runtime.ConfigError" });
    let result = reqwest::Client::new()
        .post(url)
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
        .json(&body)
        .send()
        .await;
    if let Err(error) = result {
        tracing::warn!(error = %error, "could not report the init error to the runtime API");
    }
}
