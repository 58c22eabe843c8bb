//! `ghr usage`.

use super::admin_for;
use super::output::{Row, or_dash, rows, structured};
use crate::cli::UsageArgs;
use ghr_api::model::parse_instant;
use ghr_api::{UsageLine, UsageQuery};

fn instant(name: &str, value: Option<String>) -> anyhow::Result<Option<ghr_api::Timestamp>> {
    parse_instant(&format!("--{name}"), value.as_deref()).map_err(anyhow::Error::msg)
}

impl Row for UsageLine {
    fn headers(wide: bool) -> Vec<&'static str> {
        let mut headers = vec!["INSTALLATION", "ORG", "TIER", "RUNNERS", "RUNNER-SECONDS", "COST"];
        if wide {
            headers.push("PRICE/H");
        }
        headers
    }

    fn cells(&self, wide: bool) -> Vec<String> {
        let mut cells = vec![
            self.installation_id.to_string(),
            or_dash(self.org_name.as_ref()),
            self.tier.clone(),
            self.runners.to_string(),
            format!("{:.3}", self.runner_seconds),
            self.cost.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into()),
        ];
        if wide {
            cells.push(self.price_per_hour.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into()));
        }
        cells
    }
}

pub async fn run(args: UsageArgs) -> anyhow::Result<()> {
    let query = UsageQuery { from: instant("from", args.from)?, to: instant("to", args.to)?, tenant: args.tenant };
    let report = admin_for(&args.target).await?.usage(query).await?;
    if args.csv {
        out!("{}", report.to_csv());
        return Ok(());
    }
    let target = &args.target;
    if let Some(text) = structured(target.format(), &report)? {
        out!("{text}");
        return Ok(());
    }
    // The period goes to standard error with --no-headers, so the rows alone reach a pipe.
    let period =
        format!("usage from {} to {}", report.from.format("%Y-%m-%d %H:%M:%S"), report.to.format("%Y-%m-%d %H:%M:%S"));
    if target.no_headers {
        note!("{period}");
    } else {
        outln!("{period}");
    }
    out!("{}", rows(target.format(), target.no_headers, &report.rows));
    if !report.pool.is_empty() {
        // The operator's own cost, apart from every tenant's (on stderr with --no-headers, like the period).
        let lines: Vec<String> = report
            .pool
            .iter()
            .map(|p| {
                let cost = p.cost.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
                format!("  {}: {:.0} machine-seconds idle, {cost}", p.tier, p.machine_seconds)
            })
            .collect();
        let text = format!("warm pools (operator's cost, not billed to tenants):\n{}", lines.join("\n"));
        if target.no_headers {
            note!("{text}");
        } else {
            outln!("\n{text}");
        }
    }
    Ok(())
}
