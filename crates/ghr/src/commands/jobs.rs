//! `ghr jobs list|show`.

use super::admin_for;
use super::output::{Row, all_pages, or_dash, print_one, print_page, time};
use crate::cli::JobsCommand;
use crate::table::printable;
use ghr_api::{Job, JobsQuery};

impl Row for Job {
    fn headers(wide: bool) -> Vec<&'static str> {
        let mut headers =
            vec!["JOB", "INSTALLATION", "REPOSITORY", "TIER", "STATUS", "WAITING FOR", "RUNNER", "RECEIVED"];
        if wide {
            headers.extend(["LABELS", "STARTED", "COMPLETED", "CONCLUSION"]);
        }
        headers
    }

    fn cells(&self, wide: bool) -> Vec<String> {
        let mut cells = vec![
            self.job_id.to_string(),
            self.installation_id.to_string(),
            self.repository.clone(),
            or_dash(self.tier.as_ref()),
            self.status.to_string(),
            or_dash(self.wait_reason),
            or_dash(self.runner_name.as_ref()),
            time(Some(self.received_at)),
        ];
        if wide {
            cells.extend([
                self.labels.join(","),
                time(self.started_at),
                time(self.completed_at),
                or_dash(self.conclusion.as_ref()),
            ]);
        }
        cells
    }
}

pub async fn run(command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::List { tenant, status, reason, paging, target } => {
            let admin = admin_for(&target).await?;
            let query = JobsQuery { tenant, status, reason, limit: Some(paging.limit), cursor: paging.cursor };
            let page = if paging.all {
                all_pages(|cursor| admin.jobs_list(JobsQuery { cursor, ..query.clone() })).await?
            } else {
                admin.jobs_list(query).await?
            };
            print_page(&target, "jobs", &page)
        }
        JobsCommand::Show { job_id, target } => {
            let detail = admin_for(&target).await?.job_show(job_id).await?;
            print_one(&target, &detail, || {
                let j = &detail.job;
                let labels = j.labels.iter().map(|l| printable(l).into_owned()).collect::<Vec<_>>().join(", ");
                let mut out = format!(
                    "job:         {}\nrepository:  {}\nlabels:      {}\ntier:        {}\nstatus:      {}\nwhy:         {}\n\ntimeline:\n",
                    j.job_id,
                    printable(&j.repository),
                    labels,
                    j.tier.as_deref().map_or_else(|| "- (no matching tier)".into(), printable),
                    j.status,
                    printable(&detail.explanation),
                );
                for event in &detail.timeline {
                    out.push_str(&format!(
                        "  {}  {:<17} {}\n",
                        time(Some(event.at)),
                        printable(&event.kind),
                        printable(&event.detail)
                    ));
                }
                out
            })
        }
    }
}
