//! The demo's script and the report built from what the store and the emulator recorded.

use super::report::{DemoReport, TenantReport, peak_concurrency, percentile};
use crate::cli::DemoArgs;
use crate::stack::LocalStack;
use anyhow::{Context, bail};
use chrono::Utc;
use ghr_api::{Admin, Client, SetTierRequest, TenantAction, UsageQuery};
use ghr_core::ids::InstallationId;
use ghr_core::job::JobStatus;
use ghr_core::ports::{JobFilter, RunnerFilter};
use ghr_core::reason::Reason;
use ghr_core::runner::RunnerState;
use ghr_core::tenant::TenantStatus;
use ghr_testkit::github::JobSpec;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The longest the scenario waits for the fleet to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(50);
/// How often the progress line is looked at (printed only when it changed).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What a queued job should end as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Served,
    Refused(Reason),
    /// The tenant uninstalls; whatever happens to the job is fine, but no runner may survive.
    TenantGone,
}

pub struct Plan {
    pub tenants: Vec<(String, InstallationId)>,
    pub jobs: Vec<(InstallationId, ghr_core::ids::JobId, Expect)>,
    pub uninstalled: Option<InstallationId>,
    pub suspended_reason_seen: bool,
}

fn labels(tier: &str) -> Vec<&str> {
    vec!["self-hosted", "linux", "x64", tier]
}

async fn queue(
    stack: &LocalStack,
    plan: &mut Plan,
    installation: InstallationId,
    repo: &str,
    job_labels: &[&str],
    duration: Duration,
    expect: Expect,
) -> anyhow::Result<()> {
    let id = stack.emulator.queue_job(JobSpec::new(installation, repo, job_labels).duration(duration)).await?;
    plan.jobs.push((installation, id, expect));
    Ok(())
}

fn elapsed(started: Instant) -> String {
    format!("[{:>5.1}s]", started.elapsed().as_secs_f64())
}

/// One line per tenant: live runners against the limit, jobs waiting by reason (without the time).
async fn progress(stack: &LocalStack, plan: &Plan) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    for (org, id) in &plan.tenants {
        let Some(tenant) = stack.store.tenant_get(*id).await? else { continue };
        let live = stack
            .store
            .runner_list(RunnerFilter {
                installation_id: Some(*id),
                tier: None,
                states: RunnerState::LIVE.to_vec(),
                ..RunnerFilter::default()
            })
            .await?
            .len();
        let waiting = stack.store.job_list_wanting_runner().await?;
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for job in waiting.iter().filter(|j| j.installation_id == *id) {
            *reasons.entry(job.wait_reason.map(Reason::code).unwrap_or("starting")).or_default() += 1;
        }
        let reasons: Vec<String> = reasons.iter().map(|(k, v)| format!("{v} {k}")).collect();
        parts.push(format!(
            "{org}({}) {live}/{} runners{}",
            tenant.status,
            tenant.max_runners,
            if reasons.is_empty() { String::new() } else { format!(", waiting: {}", reasons.join(", ")) }
        ));
    }
    Ok(parts.join(" | "))
}

/// Progress goes to stderr (stdout carries only the report), and only when it changed since it was last
/// printed: a fleet at rest prints nothing.
struct ProgressLine {
    last: Option<String>,
}

impl ProgressLine {
    async fn update(&mut self, stack: &LocalStack, plan: &Plan, started: Instant) -> anyhow::Result<()> {
        let line = progress(stack, plan).await?;
        if self.last.as_ref() != Some(&line) {
            note!("{} {line}", elapsed(started));
            self.last = Some(line);
        }
        Ok(())
    }
}

async fn busy_runners(stack: &LocalStack, id: InstallationId) -> anyhow::Result<usize> {
    let filter = RunnerFilter {
        installation_id: Some(id),
        tier: None,
        states: vec![RunnerState::Busy],
        ..RunnerFilter::default()
    };
    Ok(stack.store.runner_list(filter).await?.len())
}

pub async fn run(stack: &LocalStack, args: &DemoArgs, started: Instant) -> anyhow::Result<Plan> {
    let admin = Client::new(&stack.url(), SecretString::from(stack.admin_token.clone()))?;
    let short = Duration::from_millis(args.job_ms);
    let long = Duration::from_millis(args.job_ms * 20);
    let burst = args.burst.max(1) as usize;
    let mut plan = Plan { tenants: Vec::new(), jobs: Vec::new(), uninstalled: None, suspended_reason_seen: false };

    note!("{} three orgs and a personal account install the App", elapsed(started));
    let acme = stack.emulator.install_org("acme").await?;
    let globex = stack.emulator.install_org("globex").await?;
    let initech = stack.emulator.install_org("initech").await?;
    let jane = stack.emulator.install_user("jane").await?;
    plan.tenants =
        vec![("acme".into(), acme), ("globex".into(), globex), ("initech".into(), initech), ("jane".into(), jane)];
    for (org, id) in &plan.tenants {
        if stack.store.tenant_get(*id).await?.is_none() {
            bail!("installing the App for {org} did not onboard a tenant");
        }
    }
    admin.tenant_set_tier(&globex.to_string(), SetTierRequest { tier: "medium".into(), max_runners: None }).await?;
    admin.tenant_set_tier(&initech.to_string(), SetTierRequest { tier: "large".into(), max_runners: None }).await?;
    note!("{} plans: acme small (2 runners), globex medium (5), initech large (10), jane small (2)", elapsed(started));

    note!(
        "{} burst: {burst} jobs per tenant, plus jobs no tier matches and jobs above a tenant's plan",
        elapsed(started)
    );
    for _ in 0..burst {
        queue(stack, &mut plan, acme, "web", &labels("small"), short, Expect::Served).await?;
    }
    queue(stack, &mut plan, acme, "web", &labels("large"), short, Expect::Refused(Reason::TierNotEntitled)).await?;
    queue(stack, &mut plan, acme, "web", &["ubuntu-latest"], short, Expect::Refused(Reason::NoMatchingTier)).await?;
    for i in 0..burst {
        let tier = if i % 2 == 0 { "small" } else { "medium" };
        queue(stack, &mut plan, globex, "api", &labels(tier), short, Expect::Served).await?;
    }
    queue(stack, &mut plan, globex, "api", &labels("large"), short, Expect::Refused(Reason::TierNotEntitled)).await?;
    for i in 0..burst {
        let tier = ["small", "medium", "large"][i % 3];
        queue(stack, &mut plan, initech, "core", &labels(tier), long, Expect::TenantGone).await?;
    }
    // A bare `self-hosted` job goes to the least specific, first-declared tier: small, not large.
    queue(stack, &mut plan, jane, "dotfiles", &["self-hosted"], short, Expect::Served).await?;
    queue(stack, &mut plan, jane, "blog", &labels("small"), short, Expect::Served).await?;

    let mut shown = ProgressLine { last: None };
    let mut last_progress = Instant::now();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut suspended_at: Option<Instant> = None;
    let mut resumed = false;
    loop {
        if last_progress.elapsed() >= PROGRESS_EVERY {
            shown.update(stack, &plan, started).await?;
            last_progress = Instant::now();
        }
        // Mid-way: suspend globex once it is running something, queue more, resume after a while.
        if suspended_at.is_none() && busy_runners(stack, globex).await? > 0 {
            note!(
                "{} the operator suspends globex mid-way (admin API); its new jobs wait, running ones finish",
                elapsed(started)
            );
            admin.tenant_action(&globex.to_string(), TenantAction::Suspend).await?;
            for _ in 0..2 {
                queue(stack, &mut plan, globex, "api", &labels("medium"), short, Expect::Served).await?;
            }
            suspended_at = Some(Instant::now());
        }
        if let Some(at) = suspended_at
            && !resumed
        {
            let waiting = stack.store.job_list_wanting_runner().await?;
            plan.suspended_reason_seen |=
                waiting.iter().any(|j| j.installation_id == globex && j.wait_reason == Some(Reason::TenantSuspended));
            if plan.suspended_reason_seen || at.elapsed() > Duration::from_secs(5) {
                note!("{} the operator resumes globex", elapsed(started));
                admin.tenant_action(&globex.to_string(), TenantAction::Resume).await?;
                resumed = true;
            }
        }
        // initech uninstalls while its runners are busy.
        if plan.uninstalled.is_none() && busy_runners(stack, initech).await? >= 2 {
            note!(
                "{} initech uninstalls the App while {} of its runners are busy",
                elapsed(started),
                busy_runners(stack, initech).await?
            );
            stack.emulator.uninstall(initech).await?;
            plan.uninstalled = Some(initech);
        }
        if resumed && plan.uninstalled.is_some() && settled(stack, &plan).await? {
            break;
        }
        if Instant::now() >= deadline {
            note!("{} gave up waiting after {:?}", elapsed(started), SETTLE_TIMEOUT);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shown.update(stack, &plan, started).await?;
    Ok(plan)
}

/// Every job that should be served is completed, and no runner is live any more.
async fn settled(stack: &LocalStack, plan: &Plan) -> anyhow::Result<bool> {
    for (_, id, expect) in &plan.jobs {
        if *expect == Expect::Served && stack.emulator.job(*id).is_none_or(|j| j.status != JobStatus::Completed) {
            return Ok(false);
        }
    }
    Ok(stack.leftovers().await?.is_empty())
}

pub async fn report(stack: &LocalStack, plan: &Plan, started: Instant) -> anyhow::Result<DemoReport> {
    let now = Utc::now();
    let mut violations = Vec::new();
    // Teardown is asynchronous: give it a moment to settle before judging leftovers.
    stack.wait_for(Duration::from_secs(10), || async { stack.leftovers().await.is_ok_and(|l| l.is_empty()) }).await;
    let leftovers = stack.leftovers().await?;
    if !leftovers.is_empty() {
        violations.push(format!("leaked: {leftovers:?}"));
    }
    if !plan.suspended_reason_seen {
        violations.push("globex's jobs never showed tenant_suspended while it was suspended".into());
    }
    let admin = Client::new(&stack.url(), SecretString::from(stack.admin_token.clone()))?;
    let usage = admin
        .usage(UsageQuery {
            from: Some(now - chrono::Duration::hours(1)),
            to: Some(now + chrono::Duration::seconds(1)),
            tenant: None,
        })
        .await
        .context("reading usage through the admin API")?;

    let mut tenants = Vec::new();
    for (org, id) in &plan.tenants {
        let tenant = stack.store.tenant_get(*id).await?.with_context(|| format!("tenant {org} vanished"))?;
        let jobs = stack
            .store
            .job_list(JobFilter { installation_id: Some(*id), limit: Some(100_000), ..JobFilter::default() })
            .await?;
        let runners = stack
            .store
            .runner_list(RunnerFilter {
                installation_id: Some(*id),
                tier: None,
                states: RunnerState::ALL.to_vec(),
                ..RunnerFilter::default()
            })
            .await?;
        let refs: Vec<_> = runners.iter().collect();
        let mut line = TenantReport {
            org: org.clone(),
            installation_id: id.0,
            tier: tenant.tier.to_string(),
            status: tenant.status.to_string(),
            max_runners: tenant.max_runners,
            jobs_queued: plan.jobs.iter().filter(|(t, _, _)| t == id).count(),
            peak_runners: peak_concurrency(&refs, now),
            ..TenantReport::default()
        };
        if tenant.status != TenantStatus::Deleted && line.peak_runners > tenant.max_runners {
            violations.push(format!("{org}: {} runners at once, limit {}", line.peak_runners, tenant.max_runners));
        }
        let mut latencies = Vec::new();
        for job in &jobs {
            let ours = job.runner_name.as_ref().is_some_and(|r| r.as_str().starts_with("ghr-"));
            match (job.status, job.wait_reason) {
                (JobStatus::Completed, _) if ours => line.served += 1,
                _ if tenant.status == TenantStatus::Deleted => line.dropped += 1,
                (JobStatus::Queued, Some(reason @ (Reason::NoMatchingTier | Reason::TierNotEntitled))) => {
                    *line.refused.entry(reason.code().to_owned()).or_default() += 1
                }
                (JobStatus::Queued, None) if job.tier.is_none() => {
                    *line.refused.entry(Reason::NoMatchingTier.code().to_owned()).or_default() += 1
                }
                (JobStatus::Queued, reason) => {
                    *line.waiting.entry(reason.map(Reason::code).unwrap_or("starting").to_owned()).or_default() += 1
                }
                _ => {}
            }
            // Queued → running as GitHub saw it (the emulator keeps sub-second timestamps).
            if ours
                && let Some(emulated) = stack.emulator.job(job.job_id)
                && let Some(started_at) = emulated.started_at
            {
                latencies.push((started_at - emulated.created_at).num_milliseconds().max(0) as f64 / 1000.0);
            }
        }
        line.queued_to_running_p50_s = percentile(&latencies, 50.0);
        line.queued_to_running_p95_s = percentile(&latencies, 95.0);
        for row in usage.rows.iter().filter(|r| r.installation_id == id.0) {
            line.runner_seconds += row.runner_seconds;
            line.cost += row.cost.unwrap_or(0.0);
        }
        tenants.push(line);
    }

    for (installation, job_id, expect) in &plan.jobs {
        let org = plan.tenants.iter().find(|(_, id)| id == installation).map(|(o, _)| o.as_str()).unwrap_or("?");
        let emulated = stack.emulator.job(*job_id);
        if emulated.as_ref().is_some_and(|j| j.assignments > 1) {
            violations.push(format!("job {job_id} of {org} was given to more than one runner"));
        }
        let recorded = stack.store.job_get(*job_id).await?;
        match expect {
            Expect::Served => {
                let done = emulated.as_ref().is_some_and(|j| {
                    j.status == JobStatus::Completed && j.runner_name.as_deref().is_some_and(|r| r.starts_with("ghr-"))
                });
                if !done {
                    violations.push(format!("job {job_id} of {org} was not served (lost)"));
                }
            }
            Expect::Refused(reason) => {
                let got = recorded
                    .as_ref()
                    .and_then(|j| j.wait_reason.or(j.tier.is_none().then_some(Reason::NoMatchingTier)));
                if got != Some(*reason) {
                    violations.push(format!("job {job_id} of {org}: expected {reason}, recorded {got:?}"));
                }
            }
            Expect::TenantGone => {}
        }
    }
    Ok(DemoReport { duration_s: started.elapsed().as_secs_f64(), tenants, violations, latency: None })
}
