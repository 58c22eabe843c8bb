//! Operator commands: pick the admin backend (a server or a database), run, print a table or JSON.

pub mod config;
pub mod jobs;
pub mod runners;
pub mod store;
pub mod tenants;
pub mod usage;

use crate::cli::Target;
use anyhow::bail;
use ghr_config::Config;
use ghr_engine::EngineSettings;
use ghr_server::admin::{Admin, LocalAdmin, RemoteAdmin};
use secrecy::SecretString;
use serde::Serialize;
use std::sync::Arc;

/// Load `--config`, else `GHR_CONFIG`, else `./ghr.toml` when the current directory has one, else the
/// built-in defaults (see [`config::ConfigOrigin`]).
pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    config::ConfigOrigin::of_process(path).load()
}

/// The admin backend a command talks to.
pub async fn admin_for(target: &Target) -> anyhow::Result<Arc<dyn Admin>> {
    if let Some(server) = &target.server {
        let Some(token) = target.token.clone().filter(|t| !t.is_empty()) else {
            bail!("--server needs the admin token: pass --token or set GHR_ADMIN_TOKEN");
        };
        let remote = RemoteAdmin::new(server, SecretString::from(token))?;
        return Ok(Arc::new(remote));
    }
    let config = load_config(target.config.as_deref())?;
    let url = target.db.clone().unwrap_or_else(|| config.raw.store.url.clone());
    let store = crate::wiring::existing_store_at(&config, &url).await?;
    Ok(Arc::new(LocalAdmin::new(store, Arc::new(EngineSettings::from_config(&config)))))
}

/// Print JSON when asked, else the table.
pub fn print<T: Serialize>(json: bool, value: &T, table: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", table());
    }
    Ok(())
}

pub fn time(t: Option<ghr_core::Timestamp>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".into())
}
