//! `ghr store migrate` and `ghr store copy`: the store's schema and moving a deployment's records between
//! stores (SQLite to PostgreSQL when it outgrows one machine, PostgreSQL to SQLite to go back).

use crate::cli::StoreCommand;
use crate::commands::load_config;
use crate::{table, wiring};
use anyhow::anyhow;
use ghr_config::redact_url;
use ghr_store::copy::{CopyReport, copy_store};
use ghr_store::{Migrated, StoreKind, migrate_store};

pub async fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Migrate { db, config } => {
            let config = load_config(config.as_deref())?;
            let url = db.unwrap_or_else(|| config.raw.store.url.clone());
            let shown = redact_url(&url);
            let migrated = migrate_store(&url, &wiring::store_options(&config)).await.map_err(|error| {
                match ghr_store::schema_mismatch(&error) {
                    Some(mismatch) => anyhow!("{mismatch}"),
                    None => anyhow::Error::new(error).context(format!("cannot migrate the store {shown}")),
                }
            })?;
            println!("{} store {shown}: {}", StoreKind::of(&url).as_str(), describe_migration(migrated));
            Ok(())
        }
        StoreCommand::Copy { from, to, config } => {
            let config = load_config(config.as_deref())?;
            println!("copying {} → {}", redact_url(&from), redact_url(&to));
            let report = copy_store(&from, &to, &wiring::store_options(&config)).await?;
            print!("{}", render_copy(&report));
            Ok(())
        }
    }
}

/// `schema version 3 → 7 (migrated)`.
pub fn describe_migration(migrated: Migrated) -> String {
    let from = migrated.from.map_or_else(|| "none".to_owned(), |v| v.to_string());
    let what = match migrated.from {
        None => "created",
        Some(from) if from == migrated.to => "already current",
        Some(_) => "migrated",
    };
    format!("schema version {from} → {} ({what})", migrated.to)
}

fn render_copy(report: &CopyReport) -> String {
    let mut out = format!("target {}: {}\n\n", report.target, describe_migration(report.target_migrated));
    let rows: Vec<Vec<String>> = report
        .tables
        .iter()
        .map(|c| {
            let verdict = if c.source == c.target { "ok" } else { "MISMATCH" };
            vec![c.table.to_owned(), c.source.to_string(), c.target.to_string(), verdict.to_owned()]
        })
        .collect();
    out.push_str(&table::render(&["TABLE", "SOURCE ROWS", "TARGET ROWS", ""], &rows));
    let sequences: Vec<String> =
        report.sequences.iter().map(|s| format!("{}.{} continues at {}", s.table, s.column, s.next)).collect();
    let total: u64 = report.tables.iter().map(|c| c.target).sum();
    out.push_str(&format!(
        "\n{}\njob and tenant status counts on the target match a recount\ncopied and verified: {total} \
         rows in {} tables from {}\n",
        sequences.join(", "),
        report.tables.len(),
        report.source,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_read_as_from_and_to() {
        assert_eq!(describe_migration(Migrated { from: None, to: 7 }), "schema version none → 7 (created)");
        assert_eq!(describe_migration(Migrated { from: Some(3), to: 7 }), "schema version 3 → 7 (migrated)");
        assert_eq!(describe_migration(Migrated { from: Some(7), to: 7 }), "schema version 7 → 7 (already current)");
    }
}
