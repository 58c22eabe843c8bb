//! Command-line interface definition (clap).

use clap::{Args, Parser, Subcommand, ValueEnum};
use ghr_api::{JobStatus, Reason, RunnerStates, TenantStatus};
use std::path::PathBuf;

/// ghr: sell ephemeral GitHub Actions runners to many organisations through one GitHub App.
#[derive(Debug, Parser)]
#[command(name = "ghr", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system on this machine against a GitHub emulator and report (no configuration needed).
    Demo(DemoArgs),
    /// Serve webhooks, the admin API and metrics, and run the dispatcher and reconciler.
    Serve(ServeArgs),
    /// Validate a configuration file and print the effective tier table.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Tenants: one per GitHub App installation.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Runners and their states.
    Runners {
        #[command(subcommand)]
        command: RunnersCommand,
    },
    /// Workflow jobs, their timelines and why they wait.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Runner-seconds and estimated cost per tenant and tier.
    Usage(UsageArgs),
    /// The store itself: schema migrations, and copies between stores (SQLite to PostgreSQL and back).
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Named ghr servers (URL and admin token) to run operator commands against, kept in a file only you can read.
    Context {
        #[command(subcommand)]
        command: ContextCommand,
    },
    /// Print a shell completion script (e.g. `ghr completions bash > /etc/bash_completion.d/ghr`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Run the warm-pool agent on this machine (what `ghr-agent` does; the process provider runs this).
    Agent(ghr_agent::AgentArgs),
    /// Play an emulated ephemeral runner against the GitHub emulator (used by `ghr demo` and tests; the
    /// JIT config arrives on stdin).
    #[command(hide = true)]
    EmulatedRunner,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file.
    #[arg(long, short, env = "GHR_CONFIG", default_value = "ghr.toml")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Leave the server, the emulator and the metrics listener running after the report (Ctrl-C to stop).
    #[arg(long)]
    pub keep_running: bool,
    /// Scale of the scenario: how many jobs each burst queues per tenant.
    #[arg(long, default_value_t = 6)]
    pub burst: u32,
    /// How long each emulated job runs, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub job_ms: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// How long a machine takes to boot in the warm-pool comparison, in milliseconds (0 skips the comparison).
    #[arg(long, default_value_t = 2000)]
    pub boot_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print where it came from, the tiers and the effective settings (as
    /// ghr.toml).
    Check {
        /// Configuration file (TOML, or the same keys as a `.json` document, as the serverless functions read
        /// them). Without it: the file GHR_CONFIG names, else ./ghr.toml when the current directory has one,
        /// else the built-in defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the effective configuration, the tiers and where they came from as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// How operator commands print what they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns (the default).
    Table,
    /// Aligned columns, with more of them.
    Wide,
    /// JSON, as the admin API answers it.
    Json,
    /// YAML, the same fields as JSON.
    Yaml,
}

/// Where operator commands find ghr — a running server (`--server`, or a context), or a database (`--db` or the
/// store of `--config`) — and how they print.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// Base URL of a running ghr server (uses the admin API); the token comes from GHR_ADMIN_TOKEN or the context.
    #[arg(long, env = "GHR_SERVER", global = true)]
    pub server: Option<String>,
    /// A named context (`ghr context list`); default: the current one.
    #[arg(long, env = "GHR_CONTEXT", global = true)]
    pub context: Option<String>,
    /// Admin API token. Visible to other users in `ps` and kept in shell history: prefer GHR_ADMIN_TOKEN or a
    /// context.
    #[arg(long, global = true, hide = true)]
    pub token: Option<String>,
    /// Store URL (`sqlite://PATH`, `postgres://...`) of an existing store; it is never created or migrated.
    #[arg(long, env = "GHR_DB", global = true)]
    pub db: Option<String>,
    /// Configuration file (for the store URL and the tier catalog); built-in defaults when absent.
    #[arg(long, short, env = "GHR_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,
    /// Tables without their header line (for scripts).
    #[arg(long, global = true)]
    pub no_headers: bool,
    /// Same as `-o json`.
    #[arg(long, global = true, hide = true)]
    pub json: bool,
}

impl Target {
    /// The output format, `--json` included.
    pub fn format(&self) -> OutputFormat {
        if self.json { OutputFormat::Json } else { self.output }
    }
}

/// Paging of list commands: one page of `--limit`, from `--cursor`, or every page with `--all`.
#[derive(Debug, Args, Clone)]
pub struct Paging {
    /// Page size (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Start at this cursor (the `next_cursor` a previous page printed).
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Follow every page.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// List tenants.
    List {
        /// Only tenants with this status.
        #[arg(long, value_enum)]
        status: Option<TenantStatus>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        target: Target,
    },
    /// Show one tenant: plan, limit, live runners, waiting jobs.
    Show {
        /// Installation id or org login.
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
    /// Onboard a tenant by hand (repair, or ahead of the installation webhook).
    Add {
        installation_id: u64,
        /// Org or user login.
        #[arg(long)]
        org: String,
        /// The account is a personal account (runners at repository level).
        #[arg(long)]
        user: bool,
        /// Plan; the configured default tier when absent.
        #[arg(long)]
        tier: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Move a tenant to another tier; max_runners follows the tier unless given.
    SetTier {
        tenant: String,
        tier: String,
        #[arg(long)]
        max_runners: Option<u32>,
        #[command(flatten)]
        target: Target,
    },
    /// Stop starting runners for a tenant.
    Suspend {
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
    /// Serve a suspended tenant again.
    Resume {
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
    /// Activate a pending tenant (onboarding = "approval").
    Approve {
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunnersCommand {
    /// List runners (live ones by default).
    List {
        /// Installation id or org login.
        #[arg(long)]
        tenant: Option<String>,
        /// A tier of the catalog (`ghr config check` lists them).
        #[arg(long)]
        tier: Option<String>,
        /// Which runners.
        #[arg(long, value_enum, default_value_t = RunnerStates::Live)]
        state: RunnerStates,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Installation id or org login.
        #[arg(long)]
        tenant: Option<String>,
        /// Only jobs with this GitHub status.
        #[arg(long, value_enum)]
        status: Option<JobStatus>,
        /// Only jobs waiting for this reason.
        #[arg(long, value_enum)]
        reason: Option<Reason>,
        #[command(flatten)]
        paging: Paging,
        #[command(flatten)]
        target: Target,
    },
    /// Show a job's timeline and why it waits.
    Show {
        job_id: u64,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Start (RFC 3339); default 30 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// End (RFC 3339); default now.
    #[arg(long)]
    pub to: Option<String>,
    /// Installation id or org login.
    #[arg(long)]
    pub tenant: Option<String>,
    /// CSV instead of a table.
    #[arg(long)]
    pub csv: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the store: a DynamoDB store's tables (on-demand capacity, TTL on; the ones that exist are kept,
    /// an existing seed tenant table with its items), or, for a SQLite or PostgreSQL store, exactly what
    /// `ghr store migrate` does. Running it again changes nothing.
    Init {
        /// Store URL (`dynamodb://PREFIX?region=...`, `sqlite://PATH`, `postgres://...`); default: store.url of
        /// --config.
        #[arg(long, env = "GHR_DB")]
        db: Option<String>,
        /// Configuration file (store.url and [store.pool]); built-in defaults when absent.
        #[arg(long, short, env = "GHR_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Create the store's schema or upgrade it to this ghr's version; running it again changes nothing. A
    /// PostgreSQL store is only ever migrated by this command (run it before starting upgraded replicas). A
    /// DynamoDB store has no schema version: `ghr store init` creates its tables.
    Migrate {
        /// Store URL (`sqlite://PATH`, `postgres://...`); default: store.url of --config.
        #[arg(long, env = "GHR_DB")]
        db: Option<String>,
        /// Configuration file (store.url and [store.pool]); built-in defaults when absent.
        #[arg(long, short, env = "GHR_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Copy every record (tenants, jobs and their timelines, runners, deliveries, checkpoints) into a new,
    /// empty store, in one transaction, verified by row counts. Stop ghr serve first. SQLite and PostgreSQL
    /// only (the copy works at SQL level).
    Copy {
        /// The store to read (`sqlite://PATH` or `postgres://...`); it must be at this ghr's schema version.
        #[arg(long)]
        from: String,
        /// The store to fill; its schema is created or migrated first, and it must hold no records.
        #[arg(long)]
        to: String,
        /// Configuration file ([store.pool] for PostgreSQL); built-in defaults when absent.
        #[arg(long, short, env = "GHR_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Create or replace a context. The admin token is read from standard input (typed without echo on a
    /// terminal, or piped: `ghr context set prod --server https://ghr.internal < token.txt`), never from the
    /// command line.
    Set {
        name: String,
        /// Base URL of the ghr server.
        #[arg(long)]
        server: String,
        /// Read the token from this environment variable instead of standard input.
        #[arg(long)]
        token_env: Option<String>,
        /// Do not make it the current context.
        #[arg(long)]
        no_use: bool,
    },
    /// Make a context the current one.
    Use { name: String },
    /// List contexts (the current one is marked with *).
    List,
    /// Show a context (its token hidden); the current one when no name is given.
    Show { name: Option<String> },
    /// Delete a context.
    Remove { name: String },
}
