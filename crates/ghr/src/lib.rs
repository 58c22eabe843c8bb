//! `ghr`: the binary's library. Command line, wiring of adapters, `serve`, `demo` and the local stack
//! (emulated GitHub + server + process runners) shared by the demo and the end-to-end tests.

#[macro_use]
pub mod stdout;
pub mod cli;
pub mod commands;
pub mod demo;
#[cfg(feature = "dynamodb")]
mod dynamodb;
#[cfg(feature = "ec2")]
mod ec2;
pub mod emulated_runner;
pub mod serve;
pub mod stack;
pub mod table;
pub mod wiring;

use clap::Parser;
use cli::{Cli, Command, ConfigCommand};
use std::process::ExitCode;

fn init_logging(json: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GHR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Config { command: ConfigCommand::Check { config, json } } => {
            commands::config::run(config.as_deref(), json)
        }
        Command::Tenants { command } => commands::tenants::run(command).await,
        Command::Runners { command } => commands::runners::run(command).await,
        Command::Jobs { command } => commands::jobs::run(command).await,
        Command::Usage(args) => commands::usage::run(args).await,
        Command::Store { command } => commands::store::run(command).await,
        Command::Context { command } => commands::context::run(command).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "ghr", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
            Ok(())
        }
        Command::EmulatedRunner => emulated_runner::run().await,
        // `main_entry` runs the agent itself (its exit code is the runner's); this path is for callers of `run`.
        Command::Agent(args) => match ghr_agent::main_with(args).await {
            0 => Ok(()),
            code => anyhow::bail!("the agent ended with exit code {code}"),
        },
    }
}

/// Entry point of the `ghr` binary.
pub fn main_entry() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::EmulatedRunner) {
        return emulated_runner::main();
    }
    if let Command::Agent(args) = cli.command {
        init_logging(false, "info");
        let code = match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(ghr_agent::main_with(args)),
            Err(error) => {
                note!("error: cannot start the async runtime: {error}");
                ghr_agent::EXIT_FAILED
            }
        };
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let (json_logs, level) = match &cli.command {
        Command::Serve(args) => (serve_wants_json(&args.config), "info"),
        Command::Demo(_) => (false, "error"),
        _ => (false, "warn"),
    };
    init_logging(json_logs, level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            note!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if stdout::is_closed_stdout(&error) => ExitCode::SUCCESS,
        Err(error) => {
            note!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Peek at `server.log_format` before logging starts (the config is loaded again, with errors, by serve).
fn serve_wants_json(path: &std::path::Path) -> bool {
    ghr_config::Config::load(path).is_ok_and(|c| c.raw.server.log_format == ghr_config::LogFormat::Json)
}
