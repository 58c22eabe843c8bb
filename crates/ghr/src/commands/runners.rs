//! `ghr runners list`.

use super::{admin_for, print, time};
use crate::cli::RunnersCommand;
use crate::table;
use ghr_server::admin::RunnersQuery;

pub async fn run(command: RunnersCommand) -> anyhow::Result<()> {
    let RunnersCommand::List { tenant, tier, state, target } = command;
    let query = RunnersQuery { tenant, tier: tier.map(|t| t.as_str().into()), state };
    let runners = admin_for(&target).await?.runners_list(query).await?;
    print(target.json, &runners, || {
        let rows: Vec<Vec<String>> = runners
            .iter()
            .map(|r| {
                vec![
                    r.name.to_string(),
                    r.installation_id.to_string(),
                    r.tier.to_string(),
                    r.state.to_string(),
                    r.instance_id.as_ref().map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                    r.job_id.map(|j| j.to_string()).unwrap_or_else(|| "-".into()),
                    time(r.launched_at),
                    time(r.terminated_at),
                ]
            })
            .collect();
        table::render(&["RUNNER", "INSTALLATION", "TIER", "STATE", "INSTANCE", "JOB", "LAUNCHED", "TERMINATED"], &rows)
    })
}
