//! `ghr config check`, and which configuration a command reads: `--config`, else `GHR_CONFIG`, else
//! `./ghr.toml` when the current directory has one, else the built-in defaults.

use crate::table;
use anyhow::Context;
use ghr_config::{Config, StoreKind, StoreSection, redact_url};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The file a command reads when neither `--config` nor `GHR_CONFIG` names one (and `ghr serve`'s default).
pub const DEFAULT_CONFIG_FILE: &str = "ghr.toml";
/// The environment variable that names the configuration file.
pub const ENV_CONFIG: &str = "GHR_CONFIG";

/// Where the configuration came from, in the order it is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// `--config PATH`.
    Flag(PathBuf),
    /// `GHR_CONFIG=PATH`.
    Env(PathBuf),
    /// `./ghr.toml`, found in the current directory.
    WorkingDir(PathBuf),
    /// None of those: the built-in defaults.
    Builtin,
}

impl ConfigOrigin {
    /// Pick the configuration: `--config`, else `GHR_CONFIG` (when set and not empty), else `./ghr.toml` when
    /// `working_dir_has_default` says it exists, else the built-in defaults.
    pub fn locate(flag: Option<&Path>, env: Option<PathBuf>, working_dir_has_default: bool) -> Self {
        if let Some(path) = flag {
            return ConfigOrigin::Flag(path.to_path_buf());
        }
        if let Some(path) = env.filter(|path| !path.as_os_str().is_empty()) {
            return ConfigOrigin::Env(path);
        }
        if working_dir_has_default {
            return ConfigOrigin::WorkingDir(PathBuf::from(DEFAULT_CONFIG_FILE));
        }
        ConfigOrigin::Builtin
    }

    /// [`ConfigOrigin::locate`] with this process's environment and current directory.
    pub fn of_process(flag: Option<&Path>) -> Self {
        let env = std::env::var_os(ENV_CONFIG).map(PathBuf::from);
        Self::locate(flag, env, Path::new(DEFAULT_CONFIG_FILE).is_file())
    }

    /// The file to read; `None` for the built-in defaults.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigOrigin::Flag(path) | ConfigOrigin::Env(path) | ConfigOrigin::WorkingDir(path) => Some(path),
            ConfigOrigin::Builtin => None,
        }
    }

    /// `flag`, `env`, `working_dir` or `builtin` (the JSON of `config check`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ConfigOrigin::Flag(_) => "flag",
            ConfigOrigin::Env(_) => "env",
            ConfigOrigin::WorkingDir(_) => "working_dir",
            ConfigOrigin::Builtin => "builtin",
        }
    }

    /// One sentence for people.
    pub fn describe(&self) -> String {
        match self {
            ConfigOrigin::Flag(path) => format!("read from {} (--config)", path.display()),
            ConfigOrigin::Env(path) => format!("read from {} ({ENV_CONFIG})", path.display()),
            ConfigOrigin::WorkingDir(path) => {
                format!("read from {} (found in the current directory; no --config or {ENV_CONFIG})", path.display())
            }
            ConfigOrigin::Builtin => format!(
                "the built-in defaults (no --config, no {ENV_CONFIG}, no ./{DEFAULT_CONFIG_FILE} in the current \
                 directory)"
            ),
        }
    }

    /// Read and validate the configuration this origin names.
    pub fn load(&self) -> anyhow::Result<Config> {
        match self.path() {
            Some(path) => Config::load(path).map_err(anyhow::Error::from),
            None => Ok(Config::builtin()),
        }
    }
}

/// `ghr config check [--config PATH] [--json]`.
pub fn run(flag: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let origin = ConfigOrigin::of_process(flag);
    let config = origin.load()?;
    crate::wiring::check_store_url(&config)?;
    if json {
        let report = CheckReport::new(&config, &origin);
        outln!("{}", serde_json::to_string_pretty(&report).context("rendering the configuration as JSON")?);
    } else {
        out!("{}", check(&config, &origin)?);
    }
    Ok(())
}

/// `config check --json`: the effective configuration and tiers, and where they came from.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// The file name, or `<built-in>`.
    pub source: String,
    /// `flag`, `env`, `working_dir` or `builtin`.
    pub origin: &'static str,
    pub path: Option<PathBuf>,
    /// Every key of `ghr.toml` with its effective value (secrets never; the store URL's password hidden).
    pub config: ghr_config::RawConfig,
    /// The tier catalog in plan order.
    pub tiers: Vec<ghr_core::tier::Tier>,
    pub store: StoreReport,
    pub webhook_secret_set: bool,
    pub admin_token_set: bool,
}

#[derive(Debug, Serialize)]
pub struct StoreReport {
    pub kind: &'static str,
    /// Its password, if any, hidden.
    pub url: String,
}

impl CheckReport {
    pub fn new(config: &Config, origin: &ConfigOrigin) -> Self {
        Self {
            source: config.source.clone(),
            origin: origin.as_str(),
            path: origin.path().map(Path::to_path_buf),
            config: config.effective(),
            tiers: config.catalog.tiers().to_vec(),
            store: StoreReport { kind: config.raw.store.kind().as_str(), url: redact_url(&config.raw.store.url) },
            webhook_secret_set: config.webhook_secret.is_some(),
            admin_token_set: config.admin_token.is_some(),
        }
    }
}

/// The text of `config check`: where the settings came from, the tiers, the store, the secrets, and the
/// effective settings as a `ghr.toml` that parses back to them.
pub fn check(config: &Config, origin: &ConfigOrigin) -> anyhow::Result<String> {
    let rows: Vec<Vec<String>> = config
        .catalog
        .tiers()
        .iter()
        .map(|t| {
            vec![
                t.name.to_string(),
                t.labels.join(","),
                t.instance_types.join(","),
                t.max_runners.to_string(),
                format!("{}/{}", t.runner_os, t.runner_architecture),
                format!("{:.4}", t.price_per_hour),
                t.priority.to_string(),
            ]
        })
        .collect();
    let raw = &config.raw;
    let mut out = format!("{}: OK\nconfiguration: {}\n\n", config.source, origin.describe());
    out.push_str(&table::render(
        &["TIER", "LABELS", "INSTANCE TYPES", "MAX RUNNERS", "OS/ARCH", "PRICE/H", "PRIORITY"],
        &rows,
    ));
    out.push('\n');
    out.push_str(&store_line(&raw.store));
    out.push_str(&format!(
        "webhook secret: {}   admin token: {}\n",
        if config.webhook_secret.is_some() { "set" } else { "NOT SET (ghr serve refuses to start)" },
        if config.admin_token.is_some() { "set" } else { "not set (admin API answers 401)" },
    ));
    let effective = toml::to_string(&config.effective()).context("rendering the effective settings as TOML")?;
    // The summary is TOML comments, so the whole output is a ghr.toml: `ghr config check > ghr.toml` works.
    let mut text: String =
        out.lines().map(|line| if line.is_empty() { "#\n".to_owned() } else { format!("# {line}\n") }).collect();
    text.push_str(
        "#\n# The effective settings, as ghr.toml: every default filled in; secrets are never printed (give them in \
         the environment).\n",
    );
    text.push_str(&effective);
    Ok(text)
}

/// `store: postgres postgres://ghr:***@db/ghr  pool: max 10, min 1, acquire timeout 30s`.
fn store_line(store: &StoreSection) -> String {
    let url = redact_url(&store.url);
    match store.kind() {
        StoreKind::Sqlite => {
            format!("store: sqlite {url} (created and migrated by ghr serve at start; one ghr serve)\n")
        }
        StoreKind::Postgres => format!(
            "store: postgres {url}  pool: max_connections={} min_connections={} acquire_timeout={}s (schema: ghr store \
             migrate)\n",
            store.pool.max_connections, store.pool.min_connections, store.pool.acquire_timeout_seconds
        ),
        StoreKind::DynamoDb => {
            let ttl = match store.retention_days {
                0 => "none (retention_days = 0 keeps everything)".to_owned(),
                days => format!("{} days", crate::wiring::dynamodb_ttl(days).as_secs() / 86_400),
            };
            format!("store: dynamodb {url}  TTL of completed jobs and deliveries: {ttl} (tables: ghr store init)\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_environment_then_the_working_directory_then_the_defaults() {
        let flag = Path::new("flag.toml");
        let env = || Some(PathBuf::from("env.toml"));
        assert_eq!(ConfigOrigin::locate(Some(flag), env(), true), ConfigOrigin::Flag(flag.into()));
        assert_eq!(ConfigOrigin::locate(None, env(), true), ConfigOrigin::Env("env.toml".into()));
        assert_eq!(ConfigOrigin::locate(None, Some(PathBuf::new()), true), ConfigOrigin::WorkingDir("ghr.toml".into()));
        assert_eq!(ConfigOrigin::locate(None, None, true), ConfigOrigin::WorkingDir("ghr.toml".into()));
        assert_eq!(ConfigOrigin::locate(None, None, false), ConfigOrigin::Builtin);
        assert_eq!(ConfigOrigin::Builtin.path(), None);
    }

    #[test]
    fn the_summary_spells_values_as_the_file_does() {
        let config = Config::parse("[tenants]\nonboarding = \"approval\"\n", "ghr.toml", &|_| None).unwrap();
        let text = check(&config, &ConfigOrigin::Flag("ghr.toml".into())).unwrap();
        assert!(text.contains("onboarding = \"approval\"") && text.contains("kind = \"process\""), "{text}");
        assert!(!text.contains("Approval") && !text.contains("Process"), "no Rust debug names: {text}");
        let (_, toml) = text.split_once("# The effective settings").unwrap();
        let (_, toml) = toml.split_once('\n').unwrap();
        let again = Config::parse(toml, "printed", &|_| None).unwrap();
        assert_eq!(again.raw.tenants.onboarding, ghr_config::Onboarding::Approval);
    }
}
