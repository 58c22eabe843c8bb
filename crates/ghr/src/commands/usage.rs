//! `ghr usage`.

use super::{admin_for, print};
use crate::cli::UsageArgs;
use crate::table;
use ghr_server::admin::{UsageQuery, parse_instant};

fn instant(name: &str, value: Option<String>) -> anyhow::Result<Option<ghr_core::Timestamp>> {
    parse_instant(&format!("--{name}"), value.as_deref()).map_err(anyhow::Error::msg)
}

pub async fn run(args: UsageArgs) -> anyhow::Result<()> {
    let query = UsageQuery { from: instant("from", args.from)?, to: instant("to", args.to)?, tenant: args.tenant };
    let report = admin_for(&args.target).await?.usage(query).await?;
    if args.csv {
        print!("{}", report.to_csv());
        return Ok(());
    }
    print(args.target.json, &report, || {
        let rows: Vec<Vec<String>> = report
            .rows
            .iter()
            .map(|line| {
                let c = &line.cost;
                vec![
                    c.installation_id.to_string(),
                    line.org_name.clone().unwrap_or_else(|| "-".into()),
                    c.tier.to_string(),
                    c.runners.to_string(),
                    format!("{:.3}", c.runner_seconds),
                    c.cost.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        format!(
            "usage from {} to {}\n{}",
            report.from.format("%Y-%m-%d %H:%M:%S"),
            report.to.format("%Y-%m-%d %H:%M:%S"),
            table::render(&["INSTALLATION", "ORG", "TIER", "RUNNERS", "RUNNER-SECONDS", "COST"], &rows)
        )
    })
}
