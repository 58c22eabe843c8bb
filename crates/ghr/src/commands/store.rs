//! `ghr store init`, `ghr store migrate` and `ghr store copy`: creating the store (a DynamoDB store's tables, a
//! SQL store's schema), its schema version, and moving a deployment's records between SQL stores (SQLite to
//! PostgreSQL when it outgrows one machine, PostgreSQL to SQLite to go back).

use crate::cli::StoreCommand;
use crate::commands::load_config;
use crate::wiring::TablesReport;
use crate::{table, wiring};
use anyhow::{anyhow, bail};
use ghr_config::{Config, StoreKind, redact_url};
use ghr_store::copy::{CopyReport, copy_store};
use ghr_store::{Migrated, migrate_store};

pub async fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Init { db, config } => {
            let config = load_config(config.as_deref())?;
            let url = db.unwrap_or_else(|| config.raw.store.url.clone());
            let shown = redact_url(&url);
            if StoreKind::of(&url) == StoreKind::DynamoDb {
                let report = wiring::init_dynamodb(&url, &shown).await?;
                out!("{}", render_init(&shown, &report));
                return Ok(());
            }
            migrate(&config, &url).await
        }
        StoreCommand::Migrate { db, config } => {
            let config = load_config(config.as_deref())?;
            let url = db.unwrap_or_else(|| config.raw.store.url.clone());
            if StoreKind::of(&url) == StoreKind::DynamoDb {
                bail!(
                    "the store {} is a DynamoDB store: it has no schema version to migrate; `ghr store init` \
                     creates its missing tables (and changes nothing when they exist)",
                    redact_url(&url)
                );
            }
            migrate(&config, &url).await
        }
        StoreCommand::Copy { from, to, config } => {
            let config = load_config(config.as_deref())?;
            for url in [&from, &to] {
                if StoreKind::of(url) == StoreKind::DynamoDb {
                    bail!(
                        "ghr store copy moves records between SQLite and PostgreSQL stores (it copies at SQL \
                         level); {} is a DynamoDB store",
                        redact_url(url)
                    );
                }
            }
            note!("copying {} → {}", redact_url(&from), redact_url(&to));
            let report = copy_store(&from, &to, &wiring::store_options(&config)).await?;
            out!("{}", render_copy(&report));
            Ok(())
        }
    }
}

/// `ghr store migrate` (and `ghr store init` on a SQL store).
async fn migrate(config: &Config, url: &str) -> anyhow::Result<()> {
    let shown = redact_url(url);
    let migrated = migrate_store(url, &wiring::store_options(config)).await.map_err(|error| {
        match ghr_store::schema_mismatch(&error) {
            Some(mismatch) => anyhow!("{mismatch}"),
            None => anyhow::Error::new(error).context(format!("cannot migrate the store {shown}")),
        }
    })?;
    outln!("{} store {shown}: {}", StoreKind::of(url).as_str(), describe_migration(migrated));
    Ok(())
}

/// `created: p-jobs, p-runners` / `existing: p-tenants` lines of `ghr store init`.
pub fn render_init(shown: &str, report: &TablesReport) -> String {
    let list = |tables: &[String]| if tables.is_empty() { "none".to_owned() } else { tables.join(", ") };
    format!("dynamodb store {shown}\ncreated: {}\nexisting: {}\n", list(&report.created), list(&report.existing))
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

    #[test]
    fn init_lists_created_and_existing_tables() {
        let report =
            TablesReport { created: vec!["p-jobs".into(), "p-state".into()], existing: vec!["p-tenants".into()] };
        assert_eq!(
            render_init("dynamodb://p", &report),
            "dynamodb store dynamodb://p\ncreated: p-jobs, p-state\nexisting: p-tenants\n"
        );
        assert!(render_init("dynamodb://p", &TablesReport::default()).contains("created: none\nexisting: none"));
    }
}
