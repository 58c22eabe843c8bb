//! GitHub App integration: webhook signature and parsing, App JWT and installation tokens, REST client.
//!
//! - [`webhook`]: verify `X-Hub-Signature-256` and parse deliveries into [`ghr_core::event::WebhookEvent`] (pure).
//! - [`app`]: the App's credentials, its JWT, and the per-installation token cache.
//! - [`client`]: [`GithubClient`], the [`ghr_core::ports::GitHubApi`] implementation over GitHub's REST API.

pub mod app;
pub mod client;
pub mod webhook;

pub use app::{AppCredentials, AppKeyError, InstallationToken};
pub use client::{ClientConfigError, ClientStats, GithubClient, GithubClientConfig, RateLimit};
