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

/// Where a command's target came from, the more explicit first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    CommandLine,
    Environment,
}

/// The kinds of target a command may name.
#[derive(Debug, Clone, Copy)]
enum Named<'a> {
    Server(&'a str),
    Context(&'a str),
    Database,
}

impl Named<'_> {
    fn describe(&self, origin: Origin) -> &'static str {
        match (self, origin) {
            (Named::Server(_), Origin::CommandLine) => "--server",
            (Named::Server(_), Origin::Environment) => "GHR_SERVER",
            (Named::Context(_), Origin::CommandLine) => "--context",
            (Named::Context(_), Origin::Environment) => "GHR_CONTEXT",
            (Named::Database, Origin::CommandLine) => "--db/--config",
            (Named::Database, Origin::Environment) => "GHR_DB/GHR_CONFIG",
        }
    }
}

/// Whether `value` came from the environment variable `name` rather than the command line.
fn origin(name: &str, value: &str) -> Origin {
    match std::env::var(name) {
        Ok(from_env) if from_env == value => Origin::Environment,
        _ => Origin::CommandLine,
    }
}

/// The one target a command names: command-line flags before the environment; two kinds at the same level
/// (a server and a database, say) are refused rather than one silently ignored.
fn named_target(target: &Target) -> anyhow::Result<Option<Named<'_>>> {
    // `--db` and `--config` both name the database: at the more explicit of their two origins.
    let database = [
        target.db.as_deref().map(|db| origin("GHR_DB", db)),
        target.config.as_deref().map(|c| origin("GHR_CONFIG", &c.to_string_lossy())),
    ]
    .into_iter()
    .flatten()
    .min();
    let named: Vec<(Named<'_>, Origin)> = [
        target.server.as_deref().map(|s| (Named::Server(s), origin("GHR_SERVER", s))),
        target.context.as_deref().map(|c| (Named::Context(c), origin("GHR_CONTEXT", c))),
        database.map(|from| (Named::Database, from)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let Some(level) = named.iter().map(|(_, from)| *from).min() else {
        return Ok(None);
    };
    let at_level: Vec<(Named<'_>, Origin)> = named.into_iter().filter(|(_, from)| *from == level).collect();
    if let [(kind, _)] = at_level.as_slice() {
        return Ok(Some(*kind));
    }
    let names: Vec<&str> = at_level.iter().map(|(kind, from)| kind.describe(*from)).collect();
    bail!(
        "{} name different targets: use one (a server, a context, or a database), so a change cannot land \
         somewhere you did not mean",
        names.join(" and ")
    )
}

/// The admin backend a command talks to: the one target the command line names (`--server`, `--context`, or
/// `--db`/`--config`), else the one the environment names (GHR_SERVER, GHR_CONTEXT, GHR_DB/GHR_CONFIG), else
/// the current context, else the database of `./ghr.toml` or of the built-in defaults. `--server` takes its
/// token from GHR_ADMIN_TOKEN (or `--token`); a context always uses its own token. A database is opened only if
/// it exists, and never migrated.
pub async fn admin_for(target: &Target) -> anyhow::Result<Arc<dyn Admin>> {
    if target.token.is_some() {
        note!(
            "warning: --token puts the admin token in `ps` and in shell history; prefer {ADMIN_TOKEN_ENV} or `ghr \
             context set`"
        );
    }
    let named = named_target(target)?;
    if let Some(Named::Server(server)) = named {
        let env_token = std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.is_empty());
        let Some(token) = target.token.clone().filter(|t| !t.is_empty()).or(env_token) else {
            bail!("--server needs the admin token: set {ADMIN_TOKEN_ENV}, or save the server with `ghr context set`");
        };
        return Ok(Arc::new(Client::new(server, SecretString::from(token))?));
    }
    let context = match named {
        Some(Named::Context(name)) => crate::commands::context::resolve(Some(name))?,
        None => crate::commands::context::resolve(None)?,
        _ => None,
    };
    if let Some(context) = context {
        if target.token.is_some() {
            bail!("--token goes with --server; the context {} has its own token", context.name);
        }
        return Ok(Arc::new(Client::new(&context.server, context.token)?));
    }
    let config = load_config(target.config.as_deref())?;
    let url = target.db.clone().unwrap_or_else(|| config.raw.store.url.clone());
    let store = crate::wiring::existing_store_at(&config, &url).await?;
    Ok(Arc::new(LocalAdmin::new(store, Arc::new(EngineSettings::from_config(&config)))))
}
