//! `ghr context ...`: named ghr servers (a URL and its admin token) so operator commands need neither
//! `--server` nor a token on the command line. Kept in one TOML file readable by its owner only (0600):
//! `$GHR_CONTEXTS`, else `$XDG_CONFIG_HOME/ghr/contexts.toml`, else `~/.config/ghr/contexts.toml`. A file
//! that others can read is refused until `chmod 600` fixes it.

use crate::cli::ContextCommand;
use crate::table;
use anyhow::{Context as _, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Environment variable naming the contexts file.
pub const CONTEXTS_ENV: &str = "GHR_CONTEXTS";
/// File name under the configuration directory.
const CONTEXTS_FILE: &str = "ghr/contexts.toml";
/// Longest admin token accepted.
const MAX_TOKEN_CHARS: usize = 1024;
/// Longest context name.
const MAX_NAME_CHARS: usize = 64;

/// A server to talk to.
pub struct ServerContext {
    pub name: String,
    pub server: String,
    pub token: SecretString,
}

/// The file's layout.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextsFile {
    current: Option<String>,
    #[serde(default)]
    contexts: BTreeMap<String, StoredContext>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredContext {
    server: String,
    token: String,
}

/// Where the contexts live.
pub fn contexts_path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(CONTEXTS_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(dir).join(CONTEXTS_FILE));
    }
    match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config").join(CONTEXTS_FILE)),
        None => bail!("cannot place the contexts file: set {CONTEXTS_ENV} (or HOME)"),
    }
}

fn load(path: &Path) -> anyhow::Result<ContextsFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(ContextsFile::default()),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    check_private(path)?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid contexts file", path.display()))
}

#[cfg(unix)]
fn check_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} holds admin tokens but others can read it (mode {:o}): run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Write the whole file: a private temporary file beside it, then a rename (never half a file).
fn save(path: &Path, file: &ContextsFile) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = toml::to_string(file).context("cannot encode the contexts")?;
    let mut temp =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    // NamedTempFile is created 0600 on unix.
    temp.write_all(text.as_bytes()).context("cannot write the contexts")?;
    temp.as_file().sync_all().context("cannot write the contexts")?;
    temp.persist(path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// The context named `name`, or the current one; None when there is none to use.
pub fn resolve(name: Option<&str>) -> anyhow::Result<Option<ServerContext>> {
    let path = contexts_path()?;
    let file = load(&path)?;
    let Some(name) = name.map(str::to_owned).or(file.current.clone()) else {
        return Ok(None);
    };
    match file.contexts.get(&name) {
        Some(stored) => Ok(Some(ServerContext {
            name,
            server: stored.server.clone(),
            token: SecretString::from(stored.token.clone()),
        })),
        None => bail!("no context named {name:?} in {} (`ghr context list` shows them)", path.display()),
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        bail!("context name {name:?}: use 1 to {MAX_NAME_CHARS} letters, digits, '-', '_' or '.'");
    }
    Ok(())
}

/// The token for `ghr context set`: from `--token-env`, else standard input (without echo on a terminal).
fn read_token(token_env: Option<&str>) -> anyhow::Result<SecretString> {
    let token = match token_env {
        Some(var) => std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?,
        None if std::io::stdin().is_terminal() => {
            rpassword::prompt_password("admin token: ").context("cannot read the token from the terminal")?
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .lock()
                .take(MAX_TOKEN_CHARS as u64 * 4 + 2)
                .read_to_string(&mut text)
                .context("cannot read the token from standard input (it must be UTF-8 text)")?;
            text
        }
    };
    let token = token.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&token).trim();
    check_token(token)?;
    Ok(SecretString::from(token.to_owned()))
}

/// A token as an HTTP header can carry it: one line of visible ASCII, not absurdly long.
fn check_token(token: &str) -> anyhow::Result<()> {
    if token.is_empty() {
        bail!("the admin token is empty: pipe it on standard input or name a variable with --token-env");
    }
    if token.chars().count() > MAX_TOKEN_CHARS {
        bail!("the admin token is longer than {MAX_TOKEN_CHARS} characters: give the token alone, not a file of them");
    }
    if let Some(bad) = token.chars().find(|c| !c.is_ascii_graphic()) {
        bail!(
            "the admin token holds {:?}, which a token never does (one line of visible ASCII; check for a second line, \
             a byte-order mark or spaces)",
            bad
        );
    }
    Ok(())
}

/// An exclusive lock on the contexts file (a `.lock` file beside it), held while a command reads, changes and
/// writes it: two `ghr context set` at once both land, one after the other.
fn lock(path: &Path) -> anyhow::Result<std::fs::File> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&lock_path).with_context(|| format!("cannot open {}", Path::new(&lock_path).display()))?;
    file.lock().with_context(|| format!("cannot lock {}", Path::new(&lock_path).display()))?;
    Ok(file)
}

pub async fn run(command: ContextCommand) -> anyhow::Result<()> {
    let path = contexts_path()?;
    let _lock = lock(&path)?;
    let mut file = load(&path)?;
    match command {
        ContextCommand::Set { name, server, token_env, no_use } => {
            check_name(&name)?;
            let token = read_token(token_env.as_deref())?;
            // The same checks a command makes before its first call: a bad URL is refused now, not later.
            ghr_api::Client::new(&server, token.clone())?;
            let stored = StoredContext { server, token: token.expose_secret().to_owned() };
            file.contexts.insert(name.clone(), stored);
            if !no_use {
                file.current = Some(name.clone());
            }
            save(&path, &file)?;
            let current = if no_use { "" } else { " (current)" };
            note!("context {name} saved in {}{current}", path.display());
        }
        ContextCommand::Use { name } => {
            if !file.contexts.contains_key(&name) {
                bail!("no context named {name:?} in {} (`ghr context list` shows them)", path.display());
            }
            file.current = Some(name.clone());
            save(&path, &file)?;
            note!("current context: {name}");
        }
        ContextCommand::List => {
            let rows: Vec<Vec<String>> = file
                .contexts
                .iter()
                .map(|(name, stored)| {
                    let mark = if file.current.as_deref() == Some(name) { "*" } else { "" };
                    vec![mark.to_owned(), name.clone(), stored.server.clone()]
                })
                .collect();
            out!("{}", table::render(&["CURRENT", "NAME", "SERVER"], &rows));
        }
        ContextCommand::Show { name } => {
            let Some(context) = resolve(name.as_deref())? else {
                bail!("no current context: `ghr context set NAME --server URL` creates one");
            };
            let token_chars = context.token.expose_secret().chars().count();
            outln!("name:   {}\nserver: {}\ntoken:  (set, {token_chars} characters)", context.name, context.server);
        }
        ContextCommand::Remove { name } => {
            if file.contexts.remove(&name).is_none() {
                bail!("no context named {name:?} in {}", path.display());
            }
            if file.current.as_deref() == Some(name.as_str()) {
                file.current = None;
            }
            save(&path, &file)?;
            note!("context {name} removed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain() {
        for good in ["prod", "eu-west.1", "a_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "x/y", &"n".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/contexts.toml");
        let mut file = ContextsFile { current: Some("prod".into()), ..ContextsFile::default() };
        file.contexts.insert("prod".into(), StoredContext { server: "https://h".into(), token: "s3cret".into() });
        save(&path, &file).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.current.as_deref(), Some("prod"));
        assert_eq!(back.contexts["prod"].token, "s3cret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let error = load(&path).unwrap_err().to_string();
            assert!(error.contains("chmod 600"), "{error}");
        }
    }
}
