//! `ghr demo`: the whole system on one machine, zero configuration.
//!
//! A GitHub emulator, a SQLite store in a temporary directory, and the process provider running emulated
//! runners that really connect, take jobs and finish them. Scripted: three orgs and a personal account
//! install the App on different plans; bursts of jobs across the tiers, including labels no tier matches,
//! a tier a tenant is not entitled to, and more jobs than a tenant's limit; one tenant is suspended and
//! resumed mid-way; one uninstalls while its runners are busy. Then a report, and a non-zero exit if an
//! invariant failed (limit exceeded, job lost, runner or process leaked).

mod latency;
mod report;
mod scenario;

use crate::cli::DemoArgs;
use crate::stack::{LocalStack, StackOptions};
use anyhow::Context;
use std::time::Instant;

pub use latency::{LatencyComparison, LatencyPhase};
pub use report::{DemoReport, TenantReport, peak_concurrency, percentile};

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let exe = std::env::current_exe().context("cannot find the ghr binary to run emulated runners")?;
    let mut options = StackOptions::new(&exe);
    options.metrics = true;
    let stack = LocalStack::start(options).await?;
    // Everything but the report goes to stderr, so `ghr demo --json | jq` reads one JSON document.
    note!(
        "ghr demo: server {} · GitHub emulator {} · metrics http://{}/metrics",
        stack.url(),
        stack.emulator.base_url(),
        stack.server.metrics_addr.map(|a| a.to_string()).unwrap_or_default()
    );
    let outcome = scenario::run(&stack, &args, started).await;
    let mut report = match outcome {
        Ok(plan) => scenario::report(&stack, &plan, started).await?,
        Err(error) => {
            let _ = stack.stop().await;
            return Err(error.context("the demo scenario could not run"));
        }
    };
    report.latency = comparison(&exe, &args).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        note!();
        outln!("{}", report.render());
    }
    if args.keep_running {
        note!(
            "\nStill running (Ctrl-C to stop):\n  console    {url}/ui (sign in with the admin token {token})\n  admin API  curl -H 'Authorization: Bearer {token}' {url}/api/v1/tenants\n  CLI        GHR_ADMIN_TOKEN={token} ghr jobs list --server {url}\n  metrics    curl http://{metrics}/metrics",
            token = stack.admin_token,
            url = stack.url(),
            metrics = stack.server.metrics_addr.map(|a| a.to_string()).unwrap_or_default(),
        );
        crate::serve::shutdown_signal().await;
    }
    stack.stop().await?;
    if !report.passed() {
        anyhow::bail!("{} invariant(s) failed", report.violations.len());
    }
    Ok(())
}

/// Run the demo programmatically (tests): the runner binary is given, the report returned.
pub async fn run_with(runner_binary: std::path::PathBuf, args: &DemoArgs) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let stack = LocalStack::start(StackOptions::new(&runner_binary)).await?;
    let result = match scenario::run(&stack, args, started).await {
        Ok(plan) => scenario::report(&stack, &plan, started).await,
        Err(error) => Err(error),
    };
    stack.stop().await?;
    let mut report = result?;
    report.latency = comparison(&runner_binary, args).await?;
    Ok(report)
}

/// The warm-pool comparison, unless `--boot-ms 0`.
async fn comparison(ghr_binary: &std::path::Path, args: &DemoArgs) -> anyhow::Result<Option<LatencyComparison>> {
    if args.boot_ms == 0 {
        return Ok(None);
    }
    note!("warm pool comparison: the same jobs started cold, then from a warm pool ...");
    let boot = std::time::Duration::from_millis(args.boot_ms);
    let job = std::time::Duration::from_millis(args.job_ms);
    let comparison = latency::compare(ghr_binary, boot, job).await.context("the warm-pool comparison could not run")?;
    Ok(Some(comparison))
}
