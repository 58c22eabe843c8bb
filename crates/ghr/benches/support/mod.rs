//! Shared by the intake and control-plane benches: which store they run on (SQLite by default, or PostgreSQL
//! with one or two replicas) and the CPU the PostgreSQL server spends.
//!
//! - `GHR_BENCH_STORE=postgres` runs on a fresh schema of the server `GHR_TEST_POSTGRES_URL` names
//!   (`scripts/postgres.sh start` prints it); anything else but `sqlite` (the default) is refused.
//! - `GHR_BENCH_REPLICAS=2` (PostgreSQL only) opens two stores on that schema, each with its own pool, and
//!   starts a server on each, like two `ghr serve` processes behind a load balancer.
//!
//! The PostgreSQL server's CPU is read from `/proc`: utime + stime of the postmaster that listens on the URL's
//! port and of its live children (backends, checkpointer, WAL writer...), plus the postmaster's `cutime` +
//! `cstime`, which hold the CPU of children that already exited. When no postmaster started with that port is
//! found (a server configured another way, or not on this machine), every process named `postgres` counts, and
//! the scope line says so.

use ghr_core::ports::Store;
use ghr_store::StoreOptions;
use std::sync::Arc;

/// Environment variable that picks the store.
pub const STORE_ENV: &str = "GHR_BENCH_STORE";
/// Environment variable that picks the number of replicas (PostgreSQL only).
pub const REPLICAS_ENV: &str = "GHR_BENCH_REPLICAS";
/// Replicas a PostgreSQL run may have.
const MAX_REPLICAS: usize = 2;
/// PostgreSQL's default port, when the URL names none.
const DEFAULT_POSTGRES_PORT: u16 = 5432;
/// The process name (`/proc/<pid>/comm`) of every PostgreSQL server process.
const POSTGRES_COMM: &str = "postgres";
/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The store the bench runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in WAL mode, in a temporary directory (the default).
    Sqlite,
    /// A fresh schema on the PostgreSQL test server, shared by `replicas` store instances.
    Postgres { replicas: usize },
}

impl Backend {
    /// The backend [`STORE_ENV`] and [`REPLICAS_ENV`] pick; panics on a value it does not know.
    pub fn from_env() -> Self {
        let store = std::env::var(STORE_ENV).unwrap_or_default();
        let replicas = match std::env::var(REPLICAS_ENV) {
            Err(_) => 1,
            Ok(value) => value
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_REPLICAS).contains(n))
                .unwrap_or_else(|| panic!("{REPLICAS_ENV}={value:?}: expected 1 or {MAX_REPLICAS}")),
        };
        match store.as_str() {
            "" | "sqlite" if replicas == 1 => Self::Sqlite,
            "" | "sqlite" => panic!(
                "{REPLICAS_ENV}={replicas} needs {STORE_ENV}=postgres: replicas share one database, which SQLite \
                 cannot be across processes"
            ),
            "postgres" => Self::Postgres { replicas },
            other => panic!("{STORE_ENV}={other:?}: expected sqlite or postgres"),
        }
    }

    pub fn is_postgres(self) -> bool {
        matches!(self, Self::Postgres { .. })
    }
}

/// The store instances of one run: one per replica, all on the same data.
pub struct Stores {
    /// One per replica; the first also seeds what a bench needs.
    pub replicas: Vec<Arc<dyn Store>>,
    /// What the run is on, for the printed header.
    pub description: String,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
}

impl Stores {
    /// Open the stores `backend` names as `ghr serve` opens its store (default options): a SQLite file
    /// `file_name` in a new temporary directory, or a fresh migrated PostgreSQL schema opened once per
    /// replica. Call it on the server's runtime: the connections belong to the runtime that opened them.
    pub async fn open(backend: Backend, file_name: &str) -> Self {
        let options = StoreOptions::default();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join(file_name).display());
                let store = ghr_store::open_store(&url, &options).await.expect("store");
                Self { replicas: vec![store], description: "SQLite (WAL file)".into(), _dir: Some(dir) }
            }
            Backend::Postgres { replicas } => {
                let url = ghr_store::testing::fresh_postgres_url().await;
                let mut stores: Vec<Arc<dyn Store>> = Vec::with_capacity(replicas);
                for _ in 0..replicas {
                    let store = ghr_store::open_store(&url, &options).await.unwrap_or_else(|e| {
                        panic!("cannot open {url}: {}", ghr_core::error::ErrorChain(&e));
                    });
                    stores.push(store);
                }
                let schema = url.rsplit_once('=').map_or("?", |(_, schema)| schema);
                let description = format!(
                    "PostgreSQL, fresh schema {schema}, {replicas} replica(s) with a pool of {} connections each",
                    options.postgres.max_connections
                );
                Self { replicas: stores, description, _dir: None }
            }
        }
    }
}

/// The machine's load average as `/proc/loadavg` gives it (it is shared: say how busy it was).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned()
}

/// Which processes count as the PostgreSQL server.
#[derive(Debug, Clone, Copy)]
pub enum PgScope {
    /// The postmaster with this pid and its children.
    Server { postmaster: u32, port: u16 },
    /// Every process named `postgres` (no postmaster of the URL's port found).
    AllPostgres { port: u16 },
}

impl PgScope {
    /// The server `GHR_TEST_POSTGRES_URL` names, found by its postmaster's `-p PORT` argument.
    pub fn of_test_server() -> Self {
        let url = ghr_store::testing::postgres_url();
        let port = url_port(&url);
        let postmaster = processes()
            .into_iter()
            .find(|p| p.comm == POSTGRES_COMM && p.ppid_is_not_postgres() && postmaster_port(p.pid) == Some(port));
        match postmaster {
            Some(p) => Self::Server { postmaster: p.pid, port },
            None => Self::AllPostgres { port },
        }
    }

    /// What is counted, for the printed header.
    pub fn describe(self) -> String {
        match self {
            Self::Server { postmaster, port } => format!(
                "PostgreSQL CPU: the server on port {port} (postmaster {postmaster} and its children, exited ones \
                 included)"
            ),
            Self::AllPostgres { port } => format!(
                "PostgreSQL CPU: every `postgres` process on this machine (no postmaster started with -p {port} \
                 found)"
            ),
        }
    }

    /// CPU seconds (user + system) the server has spent so far.
    pub fn cpu_seconds(self) -> f64 {
        let all = processes();
        let ticks: u64 = match self {
            Self::Server { postmaster, .. } => all
                .iter()
                .filter(|p| p.comm == POSTGRES_COMM)
                .map(|p| {
                    if p.pid == postmaster {
                        p.own_ticks + p.reaped_children_ticks
                    } else if p.ppid == postmaster {
                        p.own_ticks
                    } else {
                        0
                    }
                })
                .sum(),
            Self::AllPostgres { .. } => all.iter().filter(|p| p.comm == POSTGRES_COMM).map(|p| p.own_ticks).sum(),
        };
        ticks as f64 / TICKS_PER_SECOND
    }
}

/// One process's line of `/proc/<pid>/stat`, the fields the CPU count needs.
struct Process {
    pid: u32,
    ppid: u32,
    comm: String,
    /// utime + stime.
    own_ticks: u64,
    /// cutime + cstime: children waited for.
    reaped_children_ticks: u64,
    /// The parent's comm, when it could be read.
    parent_comm: Option<String>,
}

impl Process {
    fn ppid_is_not_postgres(&self) -> bool {
        self.parent_comm.as_deref() != Some(POSTGRES_COMM)
    }
}

fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found: Vec<Process> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| parse_stat(pid, &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
        .collect();
    let names: std::collections::HashMap<u32, String> = found.iter().map(|p| (p.pid, p.comm.clone())).collect();
    for process in &mut found {
        process.parent_comm = names.get(&process.ppid).cloned();
    }
    found
}

/// `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so it ends at the last ')'.
fn parse_stat(pid: u32, stat: &str) -> Option<Process> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    // After comm: state 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14.
    let number = |i: usize| fields.get(i).and_then(|v| v.parse::<i64>().ok()).map(|v| v.max(0) as u64);
    Some(Process {
        pid,
        ppid: number(1)? as u32,
        comm: stat.get(open + 1..close)?.to_owned(),
        own_ticks: number(11)? + number(12)?,
        reaped_children_ticks: number(13)? + number(14)?,
        parent_comm: None,
    })
}

/// The port a postmaster was started with (`-p PORT` or `-pPORT` on its command line).
fn postmaster_port(pid: u32) -> Option<u16> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline.split(|b| *b == 0).map(|arg| String::from_utf8_lossy(arg).into_owned()).collect();
    args.iter().enumerate().find_map(|(i, arg)| match arg.as_str() {
        "-p" => args.get(i + 1)?.parse().ok(),
        _ => arg.strip_prefix("-p")?.parse().ok(),
    })
}

/// The port of a `postgres://user@host:port/db` URL (PostgreSQL's default when it names none).
fn url_port(url: &str) -> u16 {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    host.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).unwrap_or(DEFAULT_POSTGRES_PORT)
}
