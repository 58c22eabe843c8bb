//! The warm-pool comparison of `ghr demo`: the same waves of jobs on a stack whose runners start cold and on
//! one whose tier keeps a warm pool, each machine taking `boot` to come up (a VM's boot, compressed: a local
//! process starts in milliseconds, so the demo sleeps where a machine would boot). Reports queued → running
//! (as the GitHub emulator timestamps it) per phase, and for pooled jobs its split from ghr's timeline:
//! ghr's share (job received → config delivered to the agent), the machine's (→ runner started) and
//! GitHub's (→ job running).

use super::report::percentile;
use crate::stack::{LocalStack, StackOptions};
use ghr_core::ids::JobId;
use ghr_core::job::{JobStatus, event_kind};
use ghr_core::pool::{MachineState, PoolFilter};
use ghr_testkit::github::JobSpec;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Jobs per wave, the tier's limit and the pool's size.
const WAVE: usize = 4;
/// Waves per phase (the pool refills between them).
const WAVES: usize = 2;
/// How long a phase may take before the demo gives up on it.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

/// One phase's measurements, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyPhase {
    pub jobs: usize,
    pub pooled: usize,
    pub cold: usize,
    pub queued_to_running_p50_s: Option<f64>,
    pub queued_to_running_p95_s: Option<f64>,
    /// Pooled jobs: job received → JIT config delivered to the agent (ghr's share), p50.
    pub ghr_share_p50_s: Option<f64>,
    /// Pooled jobs: config delivered → runner started (the machine's share), p50.
    pub machine_share_p50_s: Option<f64>,
    /// Pooled jobs: runner started → job running (GitHub's share), p50.
    pub github_share_p50_s: Option<f64>,
}

/// Cold starts next to a warm pool.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyComparison {
    /// The simulated machine boot, in seconds.
    pub boot_s: f64,
    pub cold: LatencyPhase,
    pub pooled: LatencyPhase,
}

fn config(pool: bool) -> String {
    let warm_pool = if pool { format!("warm_pool = {{ size = {WAVE} }}") } else { String::new() };
    format!(
        r#"
        [tenants]
        default_tier = "small"
        [[tiers]]
        name = "small"
        labels = ["self-hosted", "linux", "x64", "small"]
        instance_types = ["t3.small"]
        max_runners = {WAVE}
        {warm_pool}
        "#
    )
}

/// `sh -c 'sleep <boot>; exec <program> <args>'`.
fn booting(boot: Duration, program: &[String], env: &str) -> Vec<String> {
    let script = format!("sleep {:.3}; {env}exec \"$0\" \"$@\"", boot.as_secs_f64());
    let mut command = vec!["/bin/sh".to_owned(), "-c".to_owned(), script];
    command.extend(program.iter().cloned());
    command
}

/// Run both phases with `ghr_binary` as runner and agent.
pub async fn compare(ghr_binary: &Path, boot: Duration, job: Duration) -> anyhow::Result<LatencyComparison> {
    let cold = phase(ghr_binary, boot, job, false).await?;
    let pooled = phase(ghr_binary, boot, job, true).await?;
    Ok(LatencyComparison { boot_s: boot.as_secs_f64(), cold, pooled })
}

async fn phase(ghr_binary: &Path, boot: Duration, job: Duration, pool: bool) -> anyhow::Result<LatencyPhase> {
    let mut options = StackOptions::new(ghr_binary);
    let runner = options.runner_command.clone();
    options.config_toml = config(pool);
    if pool {
        // The machine boots before its agent says hello; the agent then runs the runner at once.
        let runner_json = serde_json::to_string(&runner)?;
        let env = format!("export {}='{runner_json}'; ", ghr_api::agent::ENV_AGENT_RUNNER_COMMAND);
        options.agent_command = booting(boot, &options.agent_command, &env);
    } else {
        options.runner_command = booting(boot, &runner, "");
    }
    let stack = LocalStack::start(options).await?;
    let result = waves(&stack, job, pool).await;
    stack.stop().await?;
    result
}

async fn waves(stack: &LocalStack, job: Duration, pool: bool) -> anyhow::Result<LatencyPhase> {
    let tenant = stack.emulator.install_org("latency-co").await?;
    let mut jobs: Vec<JobId> = Vec::new();
    for _ in 0..WAVES {
        if pool {
            let filled = stack.wait_for(PHASE_TIMEOUT, || async { ready(stack).await >= WAVE }).await;
            anyhow::ensure!(filled, "the warm pool did not fill within {PHASE_TIMEOUT:?}");
        }
        let mut wave = Vec::new();
        for _ in 0..WAVE {
            let spec =
                JobSpec { duration: job, ..JobSpec::new(tenant, "app", &["self-hosted", "linux", "x64", "small"]) };
            wave.push(stack.emulator.queue_job(spec).await?);
        }
        let done = stack
            .wait_for(PHASE_TIMEOUT, || async {
                let mut done = 0;
                for id in &wave {
                    done += usize::from(
                        stack.store.job_get(*id).await.ok().flatten().is_some_and(|j| j.status == JobStatus::Completed),
                    );
                }
                done == wave.len()
            })
            .await;
        anyhow::ensure!(done, "a wave of jobs did not complete within {PHASE_TIMEOUT:?}");
        jobs.extend(wave);
    }
    measure(stack, &jobs).await
}

async fn ready(stack: &LocalStack) -> usize {
    let Some(pool) = &stack.pool else { return 0 };
    let machines = pool.pool_list(PoolFilter::default()).await.unwrap_or_default();
    machines.iter().filter(|m| m.state == MachineState::Ready).count()
}

fn seconds(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

async fn measure(stack: &LocalStack, jobs: &[JobId]) -> anyhow::Result<LatencyPhase> {
    let mut phase = LatencyPhase { jobs: jobs.len(), ..LatencyPhase::default() };
    let (mut total, mut ghr, mut machine, mut github) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for id in jobs {
        let Some(emulated) = stack.emulator.job(*id) else { continue };
        let Some(running) = emulated.started_at else { continue };
        total.push(seconds(emulated.created_at, running));
        let timeline = stack.store.job_timeline(*id).await?;
        let at = |kind: &str| timeline.iter().find(|e| e.kind == kind).map(|e| e.at);
        if at(event_kind::POOL_BOUND).is_some() {
            phase.pooled += 1;
            let received = stack.store.job_get(*id).await?.map(|j| j.received_at);
            if let (Some(received), Some(delivered), Some(started)) =
                (received, at(event_kind::CONFIG_DELIVERED), at(event_kind::RUNNER_STARTED))
            {
                ghr.push(seconds(received, delivered));
                machine.push(seconds(delivered, started));
                github.push(seconds(started, running));
            }
        } else {
            phase.cold += 1;
        }
    }
    phase.queued_to_running_p50_s = percentile(&total, 50.0);
    phase.queued_to_running_p95_s = percentile(&total, 95.0);
    phase.ghr_share_p50_s = percentile(&ghr, 50.0);
    phase.machine_share_p50_s = percentile(&machine, 50.0);
    phase.github_share_p50_s = percentile(&github, 50.0);
    Ok(phase)
}

impl LatencyComparison {
    /// The report's section: one line per phase.
    pub fn render(&self) -> String {
        let s = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}s"));
        let line = |name: &str, p: &LatencyPhase| {
            format!(
                "  {name:<10} {:>2} jobs ({} pooled, {} cold)  queued → running p50 {}  p95 {}",
                p.jobs,
                p.pooled,
                p.cold,
                s(p.queued_to_running_p50_s),
                s(p.queued_to_running_p95_s)
            )
        };
        format!(
            "Warm pool vs cold start (each machine boots in {:.1}s):\n{}\n{}\n  pooled split (p50): ghr {} · machine {} · GitHub {}",
            self.boot_s,
            line("cold", &self.cold),
            line("warm pool", &self.pooled),
            s(self.pooled.ghr_share_p50_s),
            s(self.pooled.machine_share_p50_s),
            s(self.pooled.github_share_p50_s),
        )
    }
}
