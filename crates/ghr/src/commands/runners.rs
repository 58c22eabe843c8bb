//! `ghr runners list`.

use super::admin_for;
use super::output::{Row, all_pages, or_dash, print_page, time};
use crate::cli::RunnersCommand;
use ghr_api::{Runner, RunnersQuery};

impl Row for Runner {
    fn headers(wide: bool) -> Vec<&'static str> {
        let mut headers = vec!["RUNNER", "INSTALLATION", "TIER", "STATE", "INSTANCE", "JOB", "LAUNCHED", "TERMINATED"];
        if wide {
            headers.extend(["PLAN", "REPOSITORY", "GITHUB ID", "INTENDED JOB", "LAST ERROR"]);
        }
        headers
    }

    fn cells(&self, wide: bool) -> Vec<String> {
        let mut cells = vec![
            self.name.clone(),
            self.installation_id.to_string(),
            self.tier.clone(),
            self.state.to_string(),
            or_dash(self.instance_id.as_ref()),
            or_dash(self.job_id),
            time(self.launched_at),
            time(self.terminated_at),
        ];
        if wide {
            cells.extend([
                self.tenant_tier.clone(),
                or_dash(self.scope_repo.as_ref()),
                or_dash(self.github_runner_id),
                or_dash(self.intended_job),
                or_dash(self.last_error.as_ref()),
            ]);
        }
        cells
    }
}

pub async fn run(command: RunnersCommand) -> anyhow::Result<()> {
    let RunnersCommand::List { tenant, tier, state, paging, target } = command;
    let admin = admin_for(&target).await?;
    let query = RunnersQuery { tenant, tier, state: Some(state), limit: Some(paging.limit), cursor: paging.cursor };
    let page = if paging.all {
        all_pages(|cursor| admin.runners_list(RunnersQuery { cursor, ..query.clone() })).await?
    } else {
        admin.runners_list(query).await?
    };
    print_page(&target, "runners", &page)
}
