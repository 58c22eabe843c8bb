//! Test kit: a stateful GitHub emulator over HTTP, an emulated runner, signed webhook helpers.
//!
//! - [`github::GithubEmulator`] serves GitHub's REST API (App JWT, installation tokens, JIT runner
//!   configs, runners, jobs, hook deliveries) on `127.0.0.1`, sends signed webhooks and assigns
//!   queued jobs to connected emulated runners like GitHub does.
//! - [`runner::run_emulated_runner`] (and the `ghr-emulated-runner` binary) plays an ephemeral
//!   self-hosted runner: it consumes a JIT config, takes one job, "runs" it and reports back.
//! - [`webhook`] signs deliveries and builds the payloads, for tests of ghr's webhook endpoint.

pub mod github;
pub mod protocol;
pub mod runner;
pub mod webhook;

/// The test GitHub App's private key (PKCS#1 PEM). Never use it for anything real.
pub const TEST_APP_PRIVATE_KEY_PEM: &str = include_str!("../keys/test-app-private-key.pem");

/// The public half of [`TEST_APP_PRIVATE_KEY_PEM`] (SPKI PEM); the emulator verifies App JWTs with it.
pub const TEST_APP_PUBLIC_KEY_PEM: &str = include_str!("../keys/test-app-public-key.pem");
