//! Test kit: a stateful GitHub emulator over HTTP, an emulated runner, signed webhook helpers.
//!
//! - [`github::GithubEmulator`] serves GitHub's REST API (App JWT, installation tokens, JIT runner
//!   configs, runners, jobs, hook deliveries) on `127.0.0.1`, sends signed webhooks and assigns
//!   queued jobs to connected emulated runners like GitHub does.
//! - [`runner::run_emulated_runner`] (and the `ghr-emulated-runner` binary) plays an ephemeral
//!   self-hosted runner: it consumes a JIT config, takes one job, "runs" it and reports back.
//! - [`webhook`] signs deliveries and builds the payloads, for tests of ghr's webhook endpoint.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ghr_core::job::JobStatus;
//! use ghr_testkit::github::{EmulatorConfig, GithubEmulator, JobSpec};
//! use std::time::Duration;
//!
//! let github = GithubEmulator::start(EmulatorConfig::default()).await?;
//! // Point the code under test at `github.base_url()` with App id `github.app_id()` and
//! // `TEST_APP_PRIVATE_KEY_PEM`; send webhooks to it with `github.set_webhook_target(url, secret)`.
//! let acme = github.install_org("acme").await?;
//! let job = github.queue_job(JobSpec::new(acme, "app", &["self-hosted", "ghr-small"])).await?;
//! // ... the code under test mints a JIT config; a runner started with it takes the job ...
//! github.cancel_job(job).await?;
//! let done = github.wait_for_job(job, JobStatus::Completed, Duration::from_secs(5)).await?;
//! assert_eq!(done.conclusion.as_deref(), Some("cancelled"));
//! # Ok(())
//! # }
//! ```

pub mod github;
pub mod protocol;
pub mod runner;
pub mod webhook;

/// The test GitHub App's private key (PKCS#1 PEM). Never use it for anything real.
pub const TEST_APP_PRIVATE_KEY_PEM: &str = include_str!("../keys/test-app-private-key.pem");

/// The public half of [`TEST_APP_PRIVATE_KEY_PEM`] (SPKI PEM); the emulator verifies App JWTs with it.
pub const TEST_APP_PUBLIC_KEY_PEM: &str = include_str!("../keys/test-app-public-key.pem");
