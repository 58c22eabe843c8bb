//! `ghr-agent`: see the library's documentation for what it does and its exit codes.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "ghr-agent",
    version,
    about = "Runs on a ghr warm-pool machine: waits for its assignment, runs the one job's runner, exits.",
    after_help = "Exit codes: 0 nothing to do (already served or retired); the runner's own code after a job; \
                  70 bad options or the runner could not start; 75 gave up waiting; 77 credential refused."
)]
struct Cli {
    #[command(flatten)]
    agent: ghr_agent::AgentArgs,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    std::process::exit(ghr_agent::main_with(cli.agent).await);
}
