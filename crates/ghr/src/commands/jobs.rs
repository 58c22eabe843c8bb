//! `ghr jobs list|show`.

use super::{admin_for, print, time};
use crate::cli::JobsCommand;
use crate::table;
use anyhow::Context;
use ghr_core::ids::JobId;
use ghr_core::job::JobStatus;
use ghr_core::reason::Reason;
use ghr_server::admin::JobsQuery;

pub async fn run(command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::List { tenant, status, reason, limit, target } => {
            let status = status.as_deref().map(str::parse::<JobStatus>).transpose()?;
            let reason = reason
                .as_deref()
                .map(|r| {
                    Reason::from_code(r).with_context(|| {
                        let known: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
                        format!("unknown reason {r:?} (expected one of: {})", known.join(", "))
                    })
                })
                .transpose()?;
            let jobs =
                admin_for(&target).await?.jobs_list(JobsQuery { tenant, status, reason, limit: Some(limit) }).await?;
            print(target.json, &jobs, || {
                let rows: Vec<Vec<String>> = jobs
                    .iter()
                    .map(|j| {
                        vec![
                            j.job_id.to_string(),
                            j.installation_id.to_string(),
                            j.repository.clone(),
                            j.tier.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                            j.status.to_string(),
                            j.wait_reason.map(|r| r.code().to_owned()).unwrap_or_else(|| "-".into()),
                            j.runner_name.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                            time(Some(j.received_at)),
                        ]
                    })
                    .collect();
                table::render(
                    &["JOB", "INSTALLATION", "REPOSITORY", "TIER", "STATUS", "WAITING FOR", "RUNNER", "RECEIVED"],
                    &rows,
                )
            })
        }
        JobsCommand::Show { job_id, target } => {
            let detail = admin_for(&target).await?.job_show(JobId(job_id)).await?;
            print(target.json, &detail, || {
                let j = &detail.job;
                let mut out = format!(
                    "job:         {}\nrepository:  {}\nlabels:      {}\ntier:        {}\nstatus:      {}\nwhy:         {}\n\ntimeline:\n",
                    j.job_id,
                    j.repository,
                    j.labels.join(", "),
                    j.tier.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "- (no matching tier)".into()),
                    j.status,
                    detail.explanation,
                );
                for event in &detail.timeline {
                    out.push_str(&format!("  {}  {:<17} {}\n", time(Some(event.at)), event.kind, event.detail));
                }
                out
            })
        }
    }
}
