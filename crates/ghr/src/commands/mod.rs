//! Operator commands: pick the admin backend (a server or a database), run, print a table or JSON.

pub mod config;
pub mod context;
pub mod jobs;
pub mod output;
pub mod runners;
pub mod store;
pub mod tenants;
pub mod usage;

use crate::cli::Target;
use anyhow::bail;
use ghr_api::{Admin, Client};
use ghr_config::Config;
use ghr_engine::EngineSettings;
use ghr_server::admin::LocalAdmin;
use secrecy::SecretString;
use std::sync::Arc;

/// Environment variable with the admin token for `--server`.
pub const ADMIN_TOKEN_ENV: &str = "GHR_ADMIN_TOKEN";

/// Load `--config`, else `GHR_CONFIG`, else `./ghr.toml` when the current directory has one, else the
/// built-in defaults (see [`config::ConfigOrigin`]).
pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    config::ConfigOrigin::of_process(path).load()
}

/// The admin backend a command talks to: `--server` (token from GHR_ADMIN_TOKEN); else the database of
/// `--db`/`--config` (or GHR_DB/GHR_CONFIG); else a context (`--context`, or the current one); else the database
/// of `./ghr.toml` or of the built-in defaults. A database is opened only if it exists, and never migrated.
pub async fn admin_for(target: &Target) -> anyhow::Result<Arc<dyn Admin>> {
    let env_token = std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.is_empty());
    if target.token.is_some() {
        eprintln!(
            "warning: --token puts the admin token in `ps` and in shell history; prefer {ADMIN_TOKEN_ENV} or `ghr \
             context set`"
        );
    }
    let flag_token = target.token.clone().filter(|t| !t.is_empty());
    if let Some(server) = &target.server {
        let Some(token) = flag_token.or(env_token) else {
            bail!("--server needs the admin token: set {ADMIN_TOKEN_ENV}, or save the server with `ghr context set`");
        };
        return Ok(Arc::new(Client::new(server, SecretString::from(token))?));
    }
    let database_mode = target.db.is_some() || target.config.is_some();
    if !database_mode && let Some(context) = crate::commands::context::resolve(target.context.as_deref())? {
        let token = flag_token.or(env_token).map(SecretString::from).unwrap_or(context.token);
        return Ok(Arc::new(Client::new(&context.server, token)?));
    }
    let config = load_config(target.config.as_deref())?;
    let url = target.db.clone().unwrap_or_else(|| config.raw.store.url.clone());
    let store = crate::wiring::existing_store_at(&config, &url).await?;
    Ok(Arc::new(LocalAdmin::new(store, Arc::new(EngineSettings::from_config(&config)))))
}
